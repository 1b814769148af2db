/*
 * extension/engine_client.h: a backend's side of the engine protocol (engine/protocol.h): connecting to
 * the engine's socket in the data directory, sending one request, and waiting for its reply frames
 * interruptibly. An error, a cancel or the end of the transaction closes the connection, which tells the
 * engine to abandon the request.
 */
#ifndef PG_INFER_ENGINE_CLIENT_H
#define PG_INFER_ENGINE_CLIENT_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "engine/protocol.h"

/* Name of the engine's socket, relative to the data directory. */
#define PG_INFER_SOCKET_NAME "pg_infer.sock"

/* A request being built, or a reply frame received. */
typedef struct EngineFrame
{
	uint8		type;
	StringInfoData body;		/* fields */
} EngineFrame;

/* Starts a request of message `type`. */
extern void engine_frame_init(EngineFrame *frame, uint8 type);

/* Appends fields to a request. */
extern void engine_put_text(EngineFrame *frame, uint16 tag, const char *text, int len);
extern void engine_put_cstring(EngineFrame *frame, uint16 tag, const char *text);
extern void engine_put_int64(EngineFrame *frame, uint16 tag, int64 value);
extern void engine_put_float8(EngineFrame *frame, uint16 tag, double value);
extern void engine_put_ids(EngineFrame *frame, uint16 tag, const int32 *ids, int count);

/* Connects to the engine (waiting up to a few seconds while it starts) and sends `request`; returns the
 * socket. ERROR when the engine cannot be reached. */
extern int	engine_send(const EngineFrame *request);

/* Waits for the next reply frame on `sock`; a closed connection is an ERROR saying the engine terminated.
 * With `raise`, an ERROR reply is raised as a PostgreSQL ERROR with the matching SQLSTATE; without, it is
 * returned like any other frame. */
extern void engine_receive(int sock, EngineFrame *reply, bool raise);

/* Raises the ERROR reply `reply` as a PostgreSQL ERROR. */
extern void engine_raise(const EngineFrame *reply) pg_attribute_noreturn();

/* The engine's error code (PgiStatus) of an ERROR reply. */
extern int64 engine_error_code(const EngineFrame *reply);

/* Closes a connection opened by engine_send (connections still open when the transaction ends are
 * closed then). */
extern void engine_close(int sock);

/* Sends `request` and returns its OK reply in *reply, closing the connection. With `raise` false an ERROR
 * reply is returned too (check reply->type). */
extern void engine_call(const EngineFrame *request, EngineFrame *reply, bool raise);

/* Looks up field `tag` in a reply (or a ROW) body; false when absent. */
extern bool engine_get(const char *body, int len, uint16 tag, const char **data, uint32 *field_len);

/* A field of a reply as a palloc'd, server-encoded text; "" when absent. */
extern char *engine_get_text(const char *body, int len, uint16 tag);

/* An 8-byte field as int64 or double; `fallback` when absent. */
extern int64 engine_get_int64(const char *body, int len, uint16 tag, int64 fallback);
extern double engine_get_float8(const char *body, int len, uint16 tag, double fallback);

/* Registers the transaction callback that closes abandoned connections (from _PG_init). */
extern void engine_client_init(void);

#endif							/* PG_INFER_ENGINE_CLIENT_H */
