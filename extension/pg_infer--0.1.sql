/* extension/pg_infer--0.1.sql: the SQL objects of pg_infer 0.1. */
\echo Use "CREATE EXTENSION pg_infer" to load this file. \quit

-- Models to load again when the engine restarts (written by llm_load_model, read by every session).
CREATE TABLE llm_model_registry (
    name    text PRIMARY KEY,
    path    text NOT NULL,
    options jsonb NOT NULL DEFAULT '{}'
);
REVOKE ALL ON llm_model_registry FROM PUBLIC;
GRANT SELECT ON llm_model_registry TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON llm_model_registry TO pg_read_server_files;

CREATE FUNCTION llm_load_model(name text, path text, options jsonb DEFAULT '{}')
RETURNS void AS 'MODULE_PATHNAME', 'llm_load_model' LANGUAGE C VOLATILE;

CREATE FUNCTION llm_unload_model(name text)
RETURNS void AS 'MODULE_PATHNAME', 'llm_unload_model' LANGUAGE C VOLATILE STRICT;

-- Loading is for superusers and pg_read_server_files (checked inside as well).
REVOKE ALL ON FUNCTION llm_load_model(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION llm_unload_model(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_load_model(text, text, jsonb) TO pg_read_server_files;
GRANT EXECUTE ON FUNCTION llm_unload_model(text) TO pg_read_server_files;

CREATE FUNCTION llm_models()
RETURNS TABLE(name text, path text, architecture text, parameters bigint, tensor_type text,
              context_length int, device text, memory_bytes bigint, status text)
AS 'MODULE_PATHNAME', 'llm_models' LANGUAGE C VOLATILE;

CREATE FUNCTION llm_generate(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 128,
                             temperature float8 DEFAULT 0, top_p float8 DEFAULT 1, top_k int DEFAULT 0,
                             min_p float8 DEFAULT 0, repeat_penalty float8 DEFAULT 1,
                             seed bigint DEFAULT NULL, stop text[] DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'llm_generate' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION llm_chat(messages jsonb, model text DEFAULT NULL, max_tokens int DEFAULT 128,
                         temperature float8 DEFAULT 0, top_p float8 DEFAULT 1, top_k int DEFAULT 0,
                         min_p float8 DEFAULT 0, repeat_penalty float8 DEFAULT 1,
                         seed bigint DEFAULT NULL, stop text[] DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'llm_chat' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION llm_generate_stream(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 128,
                                    temperature float8 DEFAULT 0, top_p float8 DEFAULT 1, top_k int DEFAULT 0,
                                    min_p float8 DEFAULT 0, repeat_penalty float8 DEFAULT 1,
                                    seed bigint DEFAULT NULL, stop text[] DEFAULT NULL)
RETURNS SETOF text AS 'MODULE_PATHNAME', 'llm_generate_stream' LANGUAGE C VOLATILE;

CREATE FUNCTION llm_tokenize(text text, model text DEFAULT NULL)
RETURNS int[] AS 'MODULE_PATHNAME', 'llm_tokenize' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION llm_detokenize(ids int[], model text DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'llm_detokenize' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION llm_stats()
RETURNS TABLE(model text, requests bigint, prompt_tokens bigint, generated_tokens bigint,
              tokens_per_second float8, queue_depth int, active_sequences int,
              kv_blocks_used bigint, kv_blocks_free bigint)
AS 'MODULE_PATHNAME', 'llm_stats' LANGUAGE C VOLATILE;
