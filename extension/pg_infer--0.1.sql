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

-- Per model: requests, tokens and rate, queue and running sequences, KV blocks, prefix cache hit rate, and
-- the device with, for a GPU model, its memory (weights and KV pool) and the GPU's free memory.
CREATE FUNCTION llm_stats()
RETURNS TABLE(model text, requests bigint, prompt_tokens bigint, generated_tokens bigint,
              tokens_per_second float8, queue_depth int, active_sequences int,
              kv_blocks_used bigint, kv_blocks_free bigint, prefix_hit_rate float8,
              device text, device_memory_bytes bigint, device_free_bytes bigint)
AS 'MODULE_PATHNAME', 'llm_stats' LANGUAGE C VOLATILE;

-- One call, several prompts: the texts in the prompts' order (NULL for a NULL prompt).
CREATE FUNCTION llm_generate(prompts text[], model text DEFAULT NULL, max_tokens int DEFAULT 128,
                             temperature float8 DEFAULT 0, top_p float8 DEFAULT 1, top_k int DEFAULT 0,
                             min_p float8 DEFAULT 0, repeat_penalty float8 DEFAULT 1,
                             seed bigint DEFAULT NULL, stop text[] DEFAULT NULL)
RETURNS text[] AS 'MODULE_PATHNAME', 'llm_generate_batch' LANGUAGE C VOLATILE PARALLEL SAFE;

-- Progress of llm_annotate calls, one row per target column (written through llm_annotate_report).
CREATE TABLE llm_annotate_progress (
    relation      regclass NOT NULL,
    output_column name NOT NULL,
    pid           int NOT NULL,
    rows_done     bigint NOT NULL,
    rows_total    bigint NOT NULL,
    started       timestamptz NOT NULL,
    updated       timestamptz NOT NULL,
    finished      boolean NOT NULL,
    PRIMARY KEY (relation, output_column)
);
REVOKE ALL ON llm_annotate_progress FROM PUBLIC;
GRANT SELECT ON llm_annotate_progress TO PUBLIC;

-- Records the calling session's progress on (relation, output_column).
CREATE FUNCTION llm_annotate_report(relation regclass, output_column name, rows_done bigint, rows_total bigint,
                                    finished boolean)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO @extschema@.llm_annotate_progress
    VALUES (relation, output_column, pg_backend_pid(), rows_done, rows_total, clock_timestamp(),
            clock_timestamp(), finished)
  ON CONFLICT ON CONSTRAINT llm_annotate_progress_pkey DO UPDATE
    SET pid = EXCLUDED.pid, rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total,
        started = CASE WHEN EXCLUDED.rows_done = 0 THEN EXCLUDED.started
                       ELSE llm_annotate_progress.started END,
        updated = EXCLUDED.updated, finished = EXCLUDED.finished;
$$;
REVOKE ALL ON FUNCTION llm_annotate_report(regclass, name, bigint, bigint, boolean) FROM PUBLIC;

CREATE VIEW llm_progress AS
SELECT relation, output_column, pid, rows_done, rows_total - rows_done AS rows_left,
       round((rows_done / greatest(extract(epoch FROM updated - started), 0.001))::numeric, 2) AS rows_per_second,
       CASE WHEN finished OR rows_done = rows_total THEN interval '0'
            WHEN rows_done = 0 THEN NULL
            ELSE (updated - started) * ((rows_total - rows_done)::float8 / rows_done) END AS eta,
       started, updated, finished
  FROM llm_annotate_progress;
GRANT SELECT ON llm_progress TO PUBLIC;

-- Fills `output_column` of `relation` for the rows where it is NULL: `prompt` is a template whose {column}
-- placeholders are filled from each row; rows are sent `batch_size` at a time as one batch and the
-- transaction commits after each batch, so a cancel or crash loses at most the batch in flight and another
-- CALL goes on where this one stopped. Rows are found by ctid (no primary key needed). Call it outside a
-- transaction block.
CREATE PROCEDURE llm_annotate(relation regclass, output_column text, prompt text, model text DEFAULT NULL,
                              max_tokens int DEFAULT 128, temperature float8 DEFAULT 0, batch_size int DEFAULT 64)
LANGUAGE plpgsql AS $$
DECLARE
  output_type regtype;
  prompt_sql text := '';
  rest text := prompt;
  parts text[];
  ids tid[];
  prompts text[];
  answers text[];
  done bigint := 0;
  total bigint;
  started timestamptz := clock_timestamp();
BEGIN
  IF relation IS NULL OR output_column IS NULL OR prompt IS NULL THEN
    RAISE EXCEPTION 'relation, output_column and prompt must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = '22023';
  END IF;
  SELECT a.atttypid::regtype INTO output_type FROM pg_attribute a
   WHERE a.attrelid = relation AND a.attname = output_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'column "%" of relation % does not exist', output_column, relation USING ERRCODE = '42703';
  END IF;
  IF output_type NOT IN ('text'::regtype, 'character varying'::regtype) THEN
    RAISE EXCEPTION 'column "%" of relation % is of type %, not text', output_column, relation, output_type
      USING ERRCODE = '42804', HINT = 'The output column must be of type text or varchar.';
  END IF;
  -- The prompt as a SQL expression: the template's text as literals, each {column} as the row's value.
  LOOP
    parts := regexp_match(rest, '^(.*?)\{([^{}]+)\}(.*)$', 's');
    EXIT WHEN parts IS NULL;
    PERFORM 1 FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = parts[2] AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'placeholder {%} of the prompt names no column of relation %', parts[2], relation
        USING ERRCODE = '42703';
    END IF;
    prompt_sql := prompt_sql || quote_literal(parts[1]) || ' || coalesce(' || quote_ident(parts[2]) ||
                  '::text, '''') || ';
    rest := parts[3];
  END LOOP;
  prompt_sql := prompt_sql || quote_literal(rest);
  EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NULL', relation, output_column) INTO total;
  PERFORM @extschema@.llm_annotate_report(relation, output_column::name, 0, total, total = 0);
  COMMIT;
  LOOP
    EXECUTE format('SELECT array_agg(id), array_agg(p) FROM (SELECT ctid AS id, %s AS p FROM %s WHERE %I IS NULL LIMIT %s) s',
                   prompt_sql, relation, output_column, batch_size)
      INTO ids, prompts;
    EXIT WHEN ids IS NULL;
    answers := @extschema@.llm_generate(prompts, model, max_tokens, temperature);
    EXECUTE format('UPDATE %s AS t SET %I = a.answer FROM unnest($1, $2) AS a(id, answer) WHERE t.ctid = a.id',
                   relation, output_column)
      USING ids, answers;
    done := done + cardinality(ids);
    PERFORM @extschema@.llm_annotate_report(relation, output_column::name, done, greatest(total, done), false);
    RAISE NOTICE 'llm_annotate: % of % rows done (% rows/s)', done, greatest(total, done),
      round((done / greatest(extract(epoch FROM clock_timestamp() - started), 0.001))::numeric, 1);
    COMMIT;
  END LOOP;
  PERFORM @extschema@.llm_annotate_report(relation, output_column::name, done, greatest(total, done), true);
END $$;
