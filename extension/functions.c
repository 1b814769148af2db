/*
 * extension/functions.c: the SQL-callable functions of pg_infer. Each builds a request for the engine,
 * waits for its reply interruptibly (extension/engine_client.c) and turns it into a SQL value. Models are
 * recorded in the extension's table llm_model_registry, so that a request for a model the engine lost
 * (the engine restarted) loads it again first.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "engine_client.h"
#include "pg_infer.h"

/* ---- models: names, paths, the registry ---- */

/* The model a call uses: its argument, else pg_infer.default_model. */
static char *
model_name(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		return text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (pg_infer_default_model != NULL && pg_infer_default_model[0] != '\0')
		return pstrdup(pg_infer_default_model);
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("no model given"),
					errhint("Pass a model name or set pg_infer.default_model.")));
	return NULL;
}

/* The registry table, schema-qualified and quoted: it lives in the schema of the extension's functions,
 * such as the calling function `fn_oid`. */
static char *
registry_table(Oid fn_oid)
{
	char	   *schema = get_namespace_name(get_func_namespace(fn_oid));

	return psprintf("%s.llm_model_registry", quote_identifier(schema));
}

/* Refuses callers who may not load or unload models. */
static void
check_model_privileges(void)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("permission denied to load or unload models"),
						errdetail("Only superusers and members of pg_read_server_files may load or unload models.")));
}

/* `path` (relative paths are taken inside pg_infer.model_dir) resolved and checked to lie inside
 * pg_infer.model_dir; palloc'd. */
static char *
checked_model_path(const char *path)
{
	char	   *dir;
	char	   *file;
	char	   *result;
	size_t		n;

	if (pg_infer_model_dir == NULL || pg_infer_model_dir[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("pg_infer.model_dir is not set, so no model can be loaded"),
						errhint("Set pg_infer.model_dir in postgresql.conf to the folder holding the model files.")));
	dir = realpath(pg_infer_model_dir, NULL);
	if (dir == NULL)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not resolve pg_infer.model_dir \"%s\": %m", pg_infer_model_dir)));
	if (!is_absolute_path(path))
		path = psprintf("%s/%s", dir, path);
	file = realpath(path, NULL);
	if (file == NULL)
	{
		free(dir);
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not open model file \"%s\": %m", path)));
	}
	n = strlen(dir);
	if (strncmp(file, dir, n) != 0 || file[n] != '/')
	{
		free(dir);
		free(file);
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("model file \"%s\" is outside pg_infer.model_dir", path)));
	}
	result = pstrdup(file);
	free(dir);
	free(file);
	return result;
}

/*
 * Asks the engine to load model `name` from `path` with `options` (JSON text). When device "auto" ran it on
 * the CPU although a GPU is present, the reply says why, and the user gets it as a NOTICE.
 */
static void
engine_load(const char *name, const char *path, const char *options)
{
	EngineFrame request,
				reply;
	char	   *fallback;

	engine_frame_init(&request, PGI_MSG_LOAD);
	engine_put_cstring(&request, PGI_F_NAME, name);
	engine_put_cstring(&request, PGI_F_PATH, path);
	engine_put_cstring(&request, PGI_F_OPTIONS, options);
	engine_call(&request, &reply, true);
	fallback = engine_get_text(reply.body.data, reply.body.len, PGI_F_MESSAGE);
	if (fallback[0] != '\0')
		ereport(NOTICE,
				(errmsg("model \"%s\" runs on the CPU", name),
				 errdetail("The GPU could not serve it: %s.", fallback)));
}

/* Loads `name` again from the registry when it is recorded there; false when it is not. */
static bool
reload_from_registry(Oid fn_oid, const char *name)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *path = NULL;
	char	   *options = NULL;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	if (SPI_execute_with_args(psprintf("SELECT path, options::text FROM %s WHERE name = $1", registry_table(fn_oid)),
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		path = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		options = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	SPI_finish();
	if (path == NULL)
		return false;
	ereport(NOTICE, (errmsg("loading model \"%s\" again after an engine restart", name)));
	engine_load(name, path, options);
	return true;
}

/* Sends a request that names a model and returns its OK reply; when the engine does not know the model
 * but the registry does, loads it and tries once more. Streaming requests get the socket instead (*sock),
 * with the first reply frame in *reply. */
static void
model_call(FunctionCallInfo fcinfo, const EngineFrame *request, const char *name, EngineFrame *reply, int *sock)
{
	for (int attempt = 0;; attempt++)
	{
		int			s = engine_send(request);

		engine_receive(s, reply, false);
		if (reply->type == PGI_MSG_ERROR && engine_error_code(reply) == PGI_ST_NOT_FOUND && attempt == 0)
		{
			engine_close(s);
			if (reload_from_registry(fcinfo->flinfo->fn_oid, name))
				continue;
			engine_raise(reply);
		}
		if (reply->type == PGI_MSG_ERROR)
		{
			engine_close(s);
			engine_raise(reply);
		}
		if (sock != NULL)
		{
			*sock = s;
			return;
		}
		engine_close(s);
		return;
	}
}

/* ---- loading ---- */

PG_FUNCTION_INFO_V1(llm_load_model);
Datum
llm_load_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *path;
	char	   *options;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	check_model_privileges();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("model name and path must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	path = checked_model_path(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (PG_ARGISNULL(2))
		options = "{}";
	else
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(2);

		options = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	engine_load(name, path, options);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(path);
	values[2] = CStringGetTextDatum(options);
	SPI_connect();
	SPI_execute_with_args(psprintf("INSERT INTO %s (name, path, options) VALUES ($1, $2, $3::jsonb) "
								   "ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path, options = EXCLUDED.options",
								   registry_table(fcinfo->flinfo->fn_oid)),
						  3, types, values, NULL, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(llm_unload_model);
Datum
llm_unload_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	EngineFrame request,
				reply;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	uint64		deleted;

	check_model_privileges();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("model name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	SPI_execute_with_args(psprintf("DELETE FROM %s WHERE name = $1", registry_table(fcinfo->flinfo->fn_oid)), 1, types, values, NULL,
						  false, 0);
	deleted = SPI_processed;
	SPI_finish();
	engine_frame_init(&request, PGI_MSG_UNLOAD);
	engine_put_cstring(&request, PGI_F_NAME, name);
	engine_call(&request, &reply, false);
	if (reply.type == PGI_MSG_ERROR && !(engine_error_code(&reply) == PGI_ST_NOT_FOUND && deleted > 0))
		engine_raise(&reply);
	PG_RETURN_VOID();
}

/* ---- listing ---- */

/* Calls `fn` for each ROW field of a reply body. */
static void
for_each_row(const EngineFrame *reply, void (*fn) (const char *row, int len, void *arg), void *arg)
{
	PgiReader	r;
	uint16		tag;
	const uint8 *data;
	uint32		len;

	pgi_reader_init(&r, reply->body.data, reply->body.len);
	while (pgi_next_field(&r, &tag, &data, &len))
	{
		if (tag == PGI_F_ROW)
			fn((const char *) data, (int) len, arg);
	}
}

/* Loads every model of this database's registry that the MODELS reply `listed` lacks; true when it
 * loaded one. */
static bool
reload_missing(Oid fn_oid, const EngineFrame *listed)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *names = NIL;
	bool		loaded = false;
	ListCell   *lc;

	SPI_connect();
	if (SPI_execute(psprintf("SELECT name FROM %s ORDER BY name", registry_table(fn_oid)), true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			names = lappend(names, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		bool		present = false;
		PgiReader	r;
		uint16		tag;
		const uint8 *data;
		uint32		len;

		pgi_reader_init(&r, listed->body.data, listed->body.len);
		while (!present && pgi_next_field(&r, &tag, &data, &len))
		{
			if (tag == PGI_F_ROW)
			{
				char	   *row_name = engine_get_text((const char *) data, len, PGI_F_NAME);

				present = strcmp(row_name, name) == 0;
			}
		}
		if (!present)
			loaded |= reload_from_registry(fn_oid, name);
	}
	return loaded;
}

/* Appends a text value (NULL when the field is absent). */
static void
put_text_or_null(const char *row, int len, uint16 tag, Datum *value, bool *isnull)
{
	const char *d;
	uint32		n;

	*isnull = !engine_get(row, len, tag, &d, &n);
	if (!*isnull)
		*value = CStringGetTextDatum(engine_get_text(row, len, tag));
}

static void
put_int64_or_null(const char *row, int len, uint16 tag, Datum *value, bool *isnull)
{
	const char *d;
	uint32		n;

	*isnull = !engine_get(row, len, tag, &d, &n);
	if (!*isnull)
		*value = Int64GetDatum(engine_get_int64(row, len, tag, 0));
}

static void
put_int32_or_null(const char *row, int len, uint16 tag, Datum *value, bool *isnull)
{
	const char *d;
	uint32		n;

	*isnull = !engine_get(row, len, tag, &d, &n);
	if (!*isnull)
		*value = Int32GetDatum((int32) engine_get_int64(row, len, tag, 0));
}

/* One row of llm_models(). */
static void
model_row(const char *row, int len, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[9];
	bool		nulls[9];

	put_text_or_null(row, len, PGI_F_NAME, &values[0], &nulls[0]);
	put_text_or_null(row, len, PGI_F_PATH, &values[1], &nulls[1]);
	put_text_or_null(row, len, PGI_F_ARCHITECTURE, &values[2], &nulls[2]);
	put_int64_or_null(row, len, PGI_F_PARAMETERS, &values[3], &nulls[3]);
	put_text_or_null(row, len, PGI_F_TENSOR_TYPE, &values[4], &nulls[4]);
	put_int32_or_null(row, len, PGI_F_CONTEXT, &values[5], &nulls[5]);
	put_text_or_null(row, len, PGI_F_DEVICE, &values[6], &nulls[6]);
	put_int64_or_null(row, len, PGI_F_MEMORY, &values[7], &nulls[7]);
	put_text_or_null(row, len, PGI_F_STATUS, &values[8], &nulls[8]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(llm_models);
Datum
llm_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EngineFrame request,
				reply;

	InitMaterializedSRF(fcinfo, 0);
	engine_frame_init(&request, PGI_MSG_MODELS);
	engine_call(&request, &reply, true);
	/* Registered models the engine lost (it restarted) are loaded again, so that the list shows them. */
	if (reload_missing(fcinfo->flinfo->fn_oid, &reply))
		engine_call(&request, &reply, true);
	for_each_row(&reply, model_row, rsinfo);
	return (Datum) 0;
}

/* One row of llm_stats(). */
static void
stats_row(const char *row, int len, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[13];
	bool		nulls[13];
	int64		prompt_tokens = engine_get_int64(row, len, PGI_F_PREFIX_PROMPT, 0);

	put_text_or_null(row, len, PGI_F_NAME, &values[0], &nulls[0]);
	put_int64_or_null(row, len, PGI_F_REQUESTS, &values[1], &nulls[1]);
	put_int64_or_null(row, len, PGI_F_PROMPT_TOKENS, &values[2], &nulls[2]);
	put_int64_or_null(row, len, PGI_F_GEN_TOKENS, &values[3], &nulls[3]);
	values[4] = Float8GetDatum(engine_get_float8(row, len, PGI_F_TOKENS_PER_S, 0));
	nulls[4] = false;
	put_int32_or_null(row, len, PGI_F_QUEUED, &values[5], &nulls[5]);
	put_int32_or_null(row, len, PGI_F_ACTIVE, &values[6], &nulls[6]);
	put_int64_or_null(row, len, PGI_F_KV_USED, &values[7], &nulls[7]);
	put_int64_or_null(row, len, PGI_F_KV_FREE, &values[8], &nulls[8]);
	/* Tokens reused from the prefix cache / prompt tokens that needed K/V. */
	values[9] = Float8GetDatum(prompt_tokens > 0 ?
							   (double) engine_get_int64(row, len, PGI_F_PREFIX_HITS, 0) / prompt_tokens : 0.0);
	nulls[9] = false;
	/* The device; for a GPU model, its memory (weights and KV pool) and the GPU's free memory; else NULL. */
	put_text_or_null(row, len, PGI_F_DEVICE, &values[10], &nulls[10]);
	put_int64_or_null(row, len, PGI_F_MEMORY, &values[11], &nulls[11]);
	put_int64_or_null(row, len, PGI_F_DEVICE_FREE, &values[12], &nulls[12]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(llm_stats);
Datum
llm_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EngineFrame request,
				reply;

	InitMaterializedSRF(fcinfo, 0);
	engine_frame_init(&request, PGI_MSG_STATS);
	engine_call(&request, &reply, true);
	for_each_row(&reply, stats_row, rsinfo);
	return (Datum) 0;
}

/* ---- generation ---- */

/* Builds a GENERATE or CHAT request from the arguments (input, model, max_tokens, temperature, top_p,
 * top_k, min_p, repeat_penalty, seed, stop) of llm_generate, llm_chat and llm_generate_stream. */
static void
generation_request(FunctionCallInfo fcinfo, bool chat, bool stream, EngineFrame *request, char **model)
{
	*model = model_name(fcinfo, 1);
	engine_frame_init(request, chat ? PGI_MSG_CHAT : PGI_MSG_GENERATE);
	engine_put_cstring(request, PGI_F_MODEL, *model);
	if (chat)
	{
		Jsonb	   *messages = PG_GETARG_JSONB_P(0);

		engine_put_cstring(request, PGI_F_MESSAGES, JsonbToCString(NULL, &messages->root, VARSIZE(messages)));
	}
	else if (get_fn_expr_argtype(fcinfo->flinfo, 0) == TEXTARRAYOID)
	{
		/* A batch: every non-NULL prompt, in order. */
		Datum	   *prompts;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &prompts, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (!nulls[i])
			{
				text	   *p = DatumGetTextPP(prompts[i]);

				engine_put_text(request, PGI_F_PROMPT, VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p));
			}
		}
	}
	else
	{
		text	   *prompt = PG_GETARG_TEXT_PP(0);

		engine_put_text(request, PGI_F_PROMPT, VARDATA_ANY(prompt), VARSIZE_ANY_EXHDR(prompt));
	}
	if (!PG_ARGISNULL(2))
		engine_put_int64(request, PGI_F_MAX_TOKENS, PG_GETARG_INT32(2));
	if (!PG_ARGISNULL(3))
		engine_put_float8(request, PGI_F_TEMPERATURE, PG_GETARG_FLOAT8(3));
	if (!PG_ARGISNULL(4))
		engine_put_float8(request, PGI_F_TOP_P, PG_GETARG_FLOAT8(4));
	if (!PG_ARGISNULL(5))
		engine_put_int64(request, PGI_F_TOP_K, PG_GETARG_INT32(5));
	if (!PG_ARGISNULL(6))
		engine_put_float8(request, PGI_F_MIN_P, PG_GETARG_FLOAT8(6));
	if (!PG_ARGISNULL(7))
		engine_put_float8(request, PGI_F_REPEAT_PENALTY, PG_GETARG_FLOAT8(7));
	if (!PG_ARGISNULL(8))
		engine_put_int64(request, PGI_F_SEED, PG_GETARG_INT64(8));
	if (!PG_ARGISNULL(9))
	{
		Datum	   *stops;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(9), TEXTOID, -1, false, TYPALIGN_INT, &stops, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (!nulls[i])
			{
				text	   *s = DatumGetTextPP(stops[i]);

				engine_put_text(request, PGI_F_STOP, VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s));
			}
		}
	}
	engine_put_int64(request, PGI_F_STREAM, stream ? 1 : 0);
	engine_put_int64(request, PGI_F_PREFIX_CACHE, pg_infer_prefix_cache ? 1 : 0);
}

/* llm_generate and llm_chat: the whole continuation. */
static Datum
generate_text(FunctionCallInfo fcinfo, bool chat)
{
	EngineFrame request,
				reply;
	char	   *model;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	generation_request(fcinfo, chat, false, &request, &model);
	model_call(fcinfo, &request, model, &reply, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(engine_get_text(reply.body.data, reply.body.len, PGI_F_TEXT)));
}

PG_FUNCTION_INFO_V1(llm_generate);
Datum
llm_generate(PG_FUNCTION_ARGS)
{
	return generate_text(fcinfo, false);
}

/* llm_generate(prompts text[], ...): one request for every prompt, the texts in the prompts' order, NULL
 * for a NULL prompt. */
PG_FUNCTION_INFO_V1(llm_generate_batch);
Datum
llm_generate_batch(PG_FUNCTION_ARGS)
{
	EngineFrame request,
				reply;
	char	   *model;
	Datum	   *prompts;
	bool	   *nulls;
	int			n;
	int			dims[1];
	int			lbs[1] = {1};
	Datum	   *texts;
	PgiReader	r;
	uint16		tag;
	const uint8 *data;
	uint32		len;
	int			next = 0;
	bool		any = false;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &prompts, &nulls, &n);
	texts = palloc0(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		any |= !nulls[i];
	if (any)
	{
		generation_request(fcinfo, false, false, &request, &model);
		model_call(fcinfo, &request, model, &reply, NULL);
		pgi_reader_init(&r, reply.body.data, reply.body.len);
		while (pgi_next_field(&r, &tag, &data, &len))
		{
			if (tag != PGI_F_TEXT)
				continue;
			while (next < n && nulls[next])
				next++;
			if (next == n)
				ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
								errmsg("the pg_infer engine answered more texts than prompts")));
			texts[next++] = CStringGetTextDatum(pg_any_to_server(pnstrdup((const char *) data, len), len, PG_UTF8));
		}
	}
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(texts, nulls, n > 0 ? 1 : 0, dims, lbs, TEXTOID, -1, false,
											 TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(llm_chat);
Datum
llm_chat(PG_FUNCTION_ARGS)
{
	return generate_text(fcinfo, true);
}

/* State of one llm_generate_stream call across its rows. */
typedef struct StreamState
{
	int			sock;
	bool		done;
	EngineFrame first;			/* the first reply, read when the request was made */
	bool		first_pending;
} StreamState;

PG_FUNCTION_INFO_V1(llm_generate_stream);
Datum
llm_generate_stream(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	StreamState *state;
	EngineFrame reply;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		EngineFrame request;
		char	   *model;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		state = palloc0(sizeof(StreamState));
		state->sock = -1;
		if (PG_ARGISNULL(0))
			state->done = true;
		else
		{
			generation_request(fcinfo, false, true, &request, &model);
			model_call(fcinfo, &request, model, &state->first, &state->sock);
			state->first_pending = true;
		}
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	state = (StreamState *) funcctx->user_fctx;
	while (!state->done)
	{
		if (state->first_pending)
		{
			reply = state->first;
			state->first_pending = false;
		}
		else
			engine_receive(state->sock, &reply, true);
		if (reply.type == PGI_MSG_PIECE)
			SRF_RETURN_NEXT(funcctx, CStringGetTextDatum(engine_get_text(reply.body.data, reply.body.len, PGI_F_TEXT)));
		state->done = true;		/* the final OK */
	}
	engine_close(state->sock);
	state->sock = -1;
	SRF_RETURN_DONE(funcctx);
}

/* ---- tokens ---- */

PG_FUNCTION_INFO_V1(llm_tokenize);
Datum
llm_tokenize(PG_FUNCTION_ARGS)
{
	EngineFrame request,
				reply;
	char	   *model;
	text	   *input;
	const char *data;
	uint32		len;
	int			n;
	Datum	   *elems;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	input = PG_GETARG_TEXT_PP(0);
	model = model_name(fcinfo, 1);
	engine_frame_init(&request, PGI_MSG_TOKENIZE);
	engine_put_cstring(&request, PGI_F_MODEL, model);
	engine_put_text(&request, PGI_F_TEXT, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input));
	model_call(fcinfo, &request, model, &reply, NULL);
	if (!engine_get(reply.body.data, reply.body.len, PGI_F_IDS, &data, &len))
		len = 0;
	n = len / sizeof(int32);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int32		id;

		memcpy(&id, data + i * sizeof(int32), sizeof(int32));
		elems[i] = Int32GetDatum(id);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(llm_detokenize);
Datum
llm_detokenize(PG_FUNCTION_ARGS)
{
	EngineFrame request,
				reply;
	char	   *model;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int32	   *ids;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	model = model_name(fcinfo, 1);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	ids = palloc(sizeof(int32) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("token ids must not be NULL")));
		ids[i] = DatumGetInt32(elems[i]);
	}
	engine_frame_init(&request, PGI_MSG_DETOKENIZE);
	engine_put_cstring(&request, PGI_F_MODEL, model);
	engine_put_ids(&request, PGI_F_IDS, ids, n);
	model_call(fcinfo, &request, model, &reply, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(engine_get_text(reply.body.data, reply.body.len, PGI_F_TEXT)));
}
