/*
 * extension/pg_infer.c: loading the extension into the postmaster: settings (pg_infer.*) and the
 * registration of the supervisor worker. Nothing heavy happens here: no model, no thread, no GPU.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "engine_client.h"
#include "pg_infer.h"

PG_MODULE_MAGIC;

char	   *pg_infer_model_dir = NULL;
char	   *pg_infer_default_model = NULL;
int			pg_infer_threads = 0;
int			pg_infer_max_queue = 64;
int			pg_infer_request_timeout = 0;
int			pg_infer_kv_cache_size = 1024;
bool		pg_infer_prefix_cache = true;

void		_PG_init(void);

void
_PG_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("pg_infer.model_dir",
							   "Folder whose model files may be loaded.",
							   "Paths are checked after resolving symbolic links and \"..\"; empty allows none.",
							   &pg_infer_model_dir, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pg_infer.default_model",
							   "Model used when a function's model argument is NULL.",
							   NULL, &pg_infer_default_model, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_infer.threads",
							"CPU threads the engine gives each model (0: all cores).",
							NULL, &pg_infer_threads, 0, 0, 1024, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_infer.max_queue",
							"Requests that may wait for one model before new ones are refused.",
							NULL, &pg_infer_max_queue, 64, 1, 100000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_infer.request_timeout",
							"Longest time the engine works on one request (0: no limit).",
							NULL, &pg_infer_request_timeout, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_infer.kv_cache_size",
							"Memory of each model's paged KV cache (its prefix cache included), unless the model's load options say otherwise.",
							"A request longer than the whole cache fails with insufficient_resources; when the cache is full, requests wait.",
							&pg_infer_kv_cache_size, 1024, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_infer.prefix_cache",
							 "Whether this session's requests use and fill the engine's prefix cache.",
							 NULL, &pg_infer_prefix_cache, true, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_infer");
	engine_client_init();

	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pg_infer", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "pg_infer_supervisor_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_infer supervisor", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_infer supervisor", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
