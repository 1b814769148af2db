/*
 * extension/supervisor.c: the supervisor background worker. It starts the engine program
 * (pg_infer_engine, next to postgres) in the data directory, restarts it with backoff when it exits,
 * restarts it when its settings change (sessions load their registered models again on first use), and
 * stops it at shutdown. The engine is killed by the kernel if
 * the supervisor dies (PR_SET_PDEATHSIG) and checks its parent itself, so it never outlives the server.
 */
#include "postgres.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "engine_client.h"
#include "pg_infer.h"

/* Restart delays after the engine exits: doubled each quick failure, up to the maximum. */
#define MIN_BACKOFF_MS 200
#define MAX_BACKOFF_MS 30000
/* An engine that ran this long before exiting restarts after the minimum delay again. */
#define STABLE_RUN_MS 60000

static volatile sig_atomic_t got_sigterm = false;

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
handle_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/* Starts the engine; returns its pid, or 0 when fork failed. */
static pid_t
start_engine(void)
{
	char		engine_path[MAXPGPATH];
	char		threads[16],
				queue[16],
				timeout[32],
				kv_cache[16],
				parent[16];
	pid_t		pid;

	strlcpy(engine_path, my_exec_path, sizeof(engine_path));	/* the postgres binary */
	get_parent_directory(engine_path);
	strlcat(engine_path, "/pg_infer_engine", sizeof(engine_path));
	snprintf(threads, sizeof(threads), "%d", pg_infer_threads);
	snprintf(queue, sizeof(queue), "%d", pg_infer_max_queue);
	snprintf(timeout, sizeof(timeout), "%.3f", pg_infer_request_timeout / 1000.0);
	snprintf(kv_cache, sizeof(kv_cache), "%d", pg_infer_kv_cache_size);
	snprintf(parent, sizeof(parent), "%d", (int) getpid());

	pid = fork();
	if (pid == 0)
	{
		char	   *argv[] = {engine_path, "--socket", PG_INFER_SOCKET_NAME, "--model-dir", pg_infer_model_dir,
			"--threads", threads, "--max-queue", queue, "--request-timeout", timeout,
		"--kv-cache-mb", kv_cache, "--parent-pid", parent, NULL};

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Nothing of the server's (sockets, pipes) may stay open in the engine. */
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execv(engine_path, argv);
		fprintf(stderr, "pg_infer supervisor: could not run \"%s\": %s\n", engine_path, strerror(errno));
		_exit(127);
	}
	if (pid < 0)
	{
		ereport(LOG, (errmsg("pg_infer supervisor could not fork the engine: %m")));
		return 0;
	}
	ereport(LOG, (errmsg("pg_infer supervisor started the engine (pid %d)", (int) pid)));
	return pid;
}

/* Stops the engine: SIGTERM, then SIGKILL after five seconds. */
static void
stop_engine(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 50; i++)
	{
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		pg_usleep(100000);
	}
	kill(pid, SIGKILL);
	(void) waitpid(pid, NULL, 0);
}

void
pg_infer_supervisor_main(Datum arg)
{
	pid_t		engine = 0;
	TimestampTz started = 0;
	TimestampTz next_start = 0;
	long		backoff = MIN_BACKOFF_MS;
	char	   *running_model_dir = NULL;
	int			running_threads = 0;
	int			running_max_queue = 0;
	int			running_timeout = 0;
	int			running_kv_cache = 0;

	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGCHLD, handle_sigchld);
	BackgroundWorkerUnblockSignals();

	while (!got_sigterm)
	{
		int			status;

		/* An engine that exited: log it and schedule a restart. */
		if (engine > 0 && waitpid(engine, &status, WNOHANG) == engine)
		{
			long		ran = (long) ((GetCurrentTimestamp() - started) / 1000);

			if (WIFSIGNALED(status))
				ereport(LOG, (errmsg("pg_infer engine (pid %d) was terminated by signal %d", (int) engine,
									 WTERMSIG(status))));
			else
				ereport(LOG, (errmsg("pg_infer engine (pid %d) exited with code %d", (int) engine,
									 WEXITSTATUS(status))));
			engine = 0;
			backoff = ran >= STABLE_RUN_MS ? MIN_BACKOFF_MS : Min(backoff * 2, MAX_BACKOFF_MS);
			next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
		}
		/* New settings: restart the engine with them. */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (engine > 0 && (strcmp(running_model_dir, pg_infer_model_dir) != 0 ||
							   running_threads != pg_infer_threads || running_max_queue != pg_infer_max_queue ||
							   running_timeout != pg_infer_request_timeout ||
							   running_kv_cache != pg_infer_kv_cache_size))
			{
				ereport(LOG, (errmsg("pg_infer supervisor restarts the engine for new settings")));
				stop_engine(engine);
				engine = 0;
				next_start = 0;
			}
		}
		if (engine == 0 && GetCurrentTimestamp() >= next_start)
		{
			engine = start_engine();
			started = GetCurrentTimestamp();
			if (running_model_dir)
				pfree(running_model_dir);
			running_model_dir = pstrdup(pg_infer_model_dir);
			running_threads = pg_infer_threads;
			running_max_queue = pg_infer_max_queue;
			running_timeout = pg_infer_request_timeout;
			running_kv_cache = pg_infer_kv_cache_size;
			if (engine == 0)
			{
				backoff = Min(backoff * 2, MAX_BACKOFF_MS);
				next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
			}
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	stop_engine(engine);
	/* Exit code 1: if this was not a server shutdown (an administrator terminated the worker), the
	 * postmaster starts a new supervisor, which starts a new engine. */
	proc_exit(1);
}
