/*
 * extension/pg_infer.h: the extension's settings (GUCs) and entry points shared by its files.
 */
#ifndef PG_INFER_H
#define PG_INFER_H

#include "postgres.h"

/* GUCs (pg_infer.*). */
extern char *pg_infer_model_dir;		/* only files under it can be loaded */
extern char *pg_infer_default_model;	/* model of calls whose model argument is NULL */
extern int	pg_infer_threads;			/* CPU threads per model (0: all cores) */
extern int	pg_infer_max_queue;			/* requests waiting per model at most */
extern int	pg_infer_request_timeout;	/* ms; 0: none */
extern int	pg_infer_kv_cache_size;		/* MB of each model's paged KV cache */
extern bool pg_infer_prefix_cache;		/* requests may use and fill the prefix cache */

/* Main function of the supervisor background worker. */
extern PGDLLEXPORT void pg_infer_supervisor_main(Datum arg);

#endif							/* PG_INFER_H */
