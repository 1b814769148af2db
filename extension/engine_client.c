/*
 * extension/engine_client.c: connecting to the engine, framing requests and replies, waiting on the
 * socket and the latch together, and turning ERROR replies into PostgreSQL errors.
 */
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "engine_client.h"

/* Connections opened in this backend and not closed yet (closed at transaction end). */
#define MAX_OPEN_CONNECTIONS 16
static int	open_connections[MAX_OPEN_CONNECTIONS];
static int	n_open_connections = 0;

/* How long a request waits for the engine's socket to appear (the engine may be starting). */
#define CONNECT_WAIT_MS 10000

void
engine_frame_init(EngineFrame *frame, uint8 type)
{
	frame->type = type;
	initStringInfo(&frame->body);
}

static void
put_raw(EngineFrame *frame, uint16 tag, const void *data, uint32 len)
{
	uint8		header[PGI_FIELD_HEADER];

	pgi_put_field_header(header, tag, len);
	appendBinaryStringInfo(&frame->body, (const char *) header, sizeof(header));
	appendBinaryStringInfo(&frame->body, (const char *) data, len);
}

void
engine_put_text(EngineFrame *frame, uint16 tag, const char *text, int len)
{
	char	   *utf8 = pg_server_to_any(text, len, PG_UTF8);

	/* Without a conversion the input itself comes back, which need not be NUL-terminated. */
	if (utf8 == text)
		put_raw(frame, tag, text, len);
	else
	{
		put_raw(frame, tag, utf8, strlen(utf8));
		pfree(utf8);
	}
}

void
engine_put_cstring(EngineFrame *frame, uint16 tag, const char *text)
{
	engine_put_text(frame, tag, text, strlen(text));
}

void
engine_put_int64(EngineFrame *frame, uint16 tag, int64 value)
{
	put_raw(frame, tag, &value, 8);
}

void
engine_put_float8(EngineFrame *frame, uint16 tag, double value)
{
	put_raw(frame, tag, &value, 8);
}

void
engine_put_ids(EngineFrame *frame, uint16 tag, const int32 *ids, int count)
{
	put_raw(frame, tag, ids, (uint32) count * sizeof(int32));
}

static void
forget_connection(int sock)
{
	for (int i = 0; i < n_open_connections; i++)
	{
		if (open_connections[i] == sock)
		{
			open_connections[i] = open_connections[--n_open_connections];
			return;
		}
	}
}

void
engine_close(int sock)
{
	if (sock < 0)
		return;
	forget_connection(sock);
	close(sock);
}

/* Closes every connection still open when a transaction (or subtransaction) aborts or ends. */
static void
close_abandoned(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PREPARE)
	{
		while (n_open_connections > 0)
			close(open_connections[--n_open_connections]);
	}
}

void
engine_client_init(void)
{
	RegisterXactCallback(close_abandoned, NULL);
}

/* Waits `ms` milliseconds interruptibly. */
static void
sleep_interruptibly(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Connects to the engine's socket, retrying while it does not exist or refuses (engine starting). */
static int
connect_engine(void)
{
	struct sockaddr_un addr;
	long		waited = 0;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, PG_INFER_SOCKET_NAME, sizeof(addr.sun_path));	/* cwd is the data directory */
	for (;;)
	{
		int			sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (sock < 0)
			ereport(ERROR, (errcode_for_socket_access(), errmsg("could not create a socket: %m")));
		if (connect(sock, (struct sockaddr *) &addr, sizeof(addr)) == 0)
			return sock;
		close(sock);
		if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) || waited >= CONNECT_WAIT_MS)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the pg_infer engine is not running"),
					 errdetail("Connecting to its socket \"%s\" failed: %m.", PG_INFER_SOCKET_NAME),
					 errhint("Add pg_infer to shared_preload_libraries and restart the server; the engine's messages are in the server log.")));
		sleep_interruptibly(100);
		waited += 100;
	}
}

int
engine_send(const EngineFrame *request)
{
	uint8		header[PGI_FRAME_HEADER];
	int			sock;
	const char *parts[2];
	size_t		lens[2];

	if (n_open_connections >= MAX_OPEN_CONNECTIONS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("too many open requests to the pg_infer engine in this session")));
	sock = connect_engine();
	open_connections[n_open_connections++] = sock;
	pgi_put_frame_header(header, request->type, request->body.len);
	parts[0] = (const char *) header;
	lens[0] = sizeof(header);
	parts[1] = request->body.data;
	lens[1] = request->body.len;
	for (int i = 0; i < 2; i++)
	{
		size_t		done = 0;

		while (done < lens[i])
		{
			ssize_t		n = send(sock, parts[i] + done, lens[i] - done, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
								errmsg("could not send a request to the pg_infer engine: %m")));
			done += n;
		}
	}
	if (fcntl(sock, F_SETFL, O_NONBLOCK) != 0)
		ereport(ERROR, (errcode_for_socket_access(), errmsg("could not set the engine socket non-blocking: %m")));
	return sock;
}

/* Reads exactly `len` bytes, waiting on the socket and the latch so that a cancel interrupts. */
static void
receive_exact(int sock, char *dst, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = recv(sock, dst, len, 0);

		if (n > 0)
		{
			dst += n;
			len -= n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the pg_infer engine terminated while processing the request"),
					 errhint("The supervisor restarts it; the server log has its messages.")));
		(void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH, sock, -1,
								 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The SQLSTATE of an engine error code. */
static int
sqlstate_of(int64 code)
{
	switch (code)
	{
		case PGI_ST_INVALID_ARGUMENT:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case PGI_ST_CORRUPT_FILE:
			return ERRCODE_DATA_CORRUPTED;
		case PGI_ST_UNSUPPORTED:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case PGI_ST_NOT_FOUND:
			return ERRCODE_UNDEFINED_OBJECT;
		case PGI_ST_IO_ERROR:
			return ERRCODE_IO_ERROR;
		case PGI_ST_OUT_OF_MEMORY:
		case PGI_ST_BUSY:
			return ERRCODE_INSUFFICIENT_RESOURCES;
		case PGI_ST_NOT_READY:
			return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		case PGI_ST_PERMISSION:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case PGI_ST_TIMEOUT:
			return ERRCODE_QUERY_CANCELED;
		case PGI_ST_DEVICE_LOST:
			return ERRCODE_SYSTEM_ERROR;
		default:
			return ERRCODE_INTERNAL_ERROR;
	}
}

int64
engine_error_code(const EngineFrame *reply)
{
	return engine_get_int64(reply->body.data, reply->body.len, PGI_F_CODE, PGI_ST_INTERNAL);
}

void
engine_raise(const EngineFrame *reply)
{
	char	   *message = engine_get_text(reply->body.data, reply->body.len, PGI_F_MESSAGE);
	char	   *hint = engine_get_text(reply->body.data, reply->body.len, PGI_F_HINT);

	ereport(ERROR, (errcode(sqlstate_of(engine_error_code(reply))), errmsg("%s", message),
					hint[0] ? errhint("%s", hint) : 0));
	pg_unreachable();
}

void
engine_receive(int sock, EngineFrame *reply, bool raise)
{
	uint8		header[PGI_FRAME_HEADER];
	uint32		body_len;

	receive_exact(sock, (char *) header, sizeof(header));
	if (!pgi_get_frame_header(header, &reply->type, &body_len))
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("malformed reply from the pg_infer engine")));
	initStringInfo(&reply->body);
	enlargeStringInfo(&reply->body, body_len);
	receive_exact(sock, reply->body.data, body_len);
	reply->body.len = body_len;
	reply->body.data[body_len] = '\0';
	if (reply->type == PGI_MSG_ERROR && raise)
	{
		engine_close(sock);
		engine_raise(reply);
	}
}

void
engine_call(const EngineFrame *request, EngineFrame *reply, bool raise)
{
	int			sock = engine_send(request);

	engine_receive(sock, reply, raise);
	engine_close(sock);
	if (reply->type != PGI_MSG_OK && (raise || reply->type != PGI_MSG_ERROR))
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
						errmsg("unexpected reply %d from the pg_infer engine", reply->type)));
}

bool
engine_get(const char *body, int len, uint16 tag, const char **data, uint32 *field_len)
{
	PgiReader	r;
	uint16		t;
	const uint8 *d;
	uint32		n;

	pgi_reader_init(&r, body, len);
	while (pgi_next_field(&r, &t, &d, &n))
	{
		if (t == tag)
		{
			*data = (const char *) d;
			*field_len = n;
			return true;
		}
	}
	return false;
}

char *
engine_get_text(const char *body, int len, uint16 tag)
{
	const char *data;
	uint32		n;
	char	   *copy;
	char	   *converted;

	if (!engine_get(body, len, tag, &data, &n))
		return pstrdup("");
	copy = pnstrdup(data, n);
	converted = pg_any_to_server(copy, n, PG_UTF8);
	return converted;
}

int64
engine_get_int64(const char *body, int len, uint16 tag, int64 fallback)
{
	const char *data;
	uint32		n;
	int64		v;

	if (!engine_get(body, len, tag, &data, &n) || !pgi_field_i64((const uint8 *) data, n, &v))
		return fallback;
	return v;
}

double
engine_get_float8(const char *body, int len, uint16 tag, double fallback)
{
	const char *data;
	uint32		n;
	double		v;

	if (!engine_get(body, len, tag, &data, &n) || !pgi_field_f64((const uint8 *) data, n, &v))
		return fallback;
	return v;
}
