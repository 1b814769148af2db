-- pg_infer: loading models, generation, chat, streaming, tokens, statistics, and every error a user can
-- cause. Models are synthetic (random weights, written by tests/pg/run_regress.sh), decoding is greedy,
-- so every output is deterministic.
CREATE EXTENSION pg_infer;
-- Errors are shown as SQLSTATE and message, with the scratch model folder written $MODEL_DIR.
CREATE TABLE regress_model_dir AS SELECT current_setting('pg_infer.model_dir') AS dir;
GRANT SELECT ON regress_model_dir TO PUBLIC;
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || replace(SQLERRM, (SELECT dir FROM regress_model_dir), '$MODEL_DIR');
END $$;

-- Loading (paths are relative to pg_infer.model_dir or absolute inside it).
SELECT llm_load_model('tiny', 'tiny.gguf');
SELECT llm_load_model('tiny', 'tiny.gguf');  -- again: nothing changes
SELECT llm_load_model('chat', 'tiny-chat.gguf', '{"context_length": 512, "threads": 1}');
SELECT name, architecture, parameters, tensor_type, context_length, device, status
  FROM llm_models() ORDER BY name;
SELECT name, options FROM llm_model_registry ORDER BY name;

-- Generation: greedy, deterministic, the continuation only.
SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 8);
SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 8) =
       llm_generate('Once upon a time', 'tiny', max_tokens => 8) AS repeatable;
SET pg_infer.default_model = 'tiny';
SELECT llm_generate('Once upon a time', max_tokens => 8) =
       llm_generate('Once upon a time', 'tiny', max_tokens => 8) AS default_model_used;
SELECT length(llm_generate('Once upon a time', max_tokens => 0)) AS nothing;
SELECT llm_generate(NULL) IS NULL AS null_prompt;
-- Sampling with a seed repeats; a stop string ends the text before it.
SELECT llm_generate('Once upon a time', max_tokens => 12, temperature => 0.9, top_k => 40, top_p => 0.9,
                    min_p => 0.05, repeat_penalty => 1.1, seed => 42) =
       llm_generate('Once upon a time', max_tokens => 12, temperature => 0.9, top_k => 40, top_p => 0.9,
                    min_p => 0.05, repeat_penalty => 1.1, seed => 42) AS seeded_repeats;
WITH full_text AS (SELECT llm_generate('Once upon a time', max_tokens => 12) AS t)
SELECT llm_generate('Once upon a time', max_tokens => 12, stop => ARRAY[substr(t, 6, 3)]) = substr(t, 1, 5)
       AS stopped_before_stop_string
  FROM full_text;

-- A batch of prompts in one call gives each prompt's own text, NULL for NULL.
SELECT llm_generate(ARRAY['Once upon a time', NULL, 'Hello'], max_tokens => 6) =
       ARRAY[llm_generate('Once upon a time', max_tokens => 6), NULL, llm_generate('Hello', max_tokens => 6)]
       AS batch_matches_single_calls;
SELECT llm_generate(ARRAY[]::text[]) AS empty_batch;

-- Streaming gives the same text in pieces.
SELECT count(*) > 1 AS several_pieces,
       string_agg(piece, '' ORDER BY n) = llm_generate('Once upon a time', max_tokens => 8) AS same_text
  FROM llm_generate_stream('Once upon a time', max_tokens => 8) WITH ORDINALITY AS s(piece, n);

-- Chat with the model's own template (Phi-3's).
SELECT llm_chat('[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]',
                'chat', max_tokens => 6) IS NOT NULL AS chat_answers;
SELECT llm_chat('[{"role": "user", "content": "Hello"}]', 'chat', max_tokens => 6) =
       llm_chat('[{"role": "user", "content": "Hello"}]', 'chat', max_tokens => 6) AS chat_repeatable;

-- Tokens.
SELECT llm_tokenize('Hello world');
SELECT llm_detokenize(llm_tokenize('Hello world, ¿qué tal? 🦙'));
SELECT 1 <> ALL ((llm_tokenize('<s>'))[2:]) AS special_text_is_text;

-- A long prompt asked twice: the second time its full blocks come from the prefix cache, same text.
SELECT llm_generate(repeat('All work and no play. ', 10), 'tiny', max_tokens => 4) =
       llm_generate(repeat('All work and no play. ', 10), 'tiny', max_tokens => 4) AS cached_prefix_same_text;

-- A session can opt out of the prefix cache; the text is the same.
SET pg_infer.prefix_cache = off;
SELECT llm_generate(repeat('All work and no play. ', 10), 'tiny', max_tokens => 4) =
       llm_generate(repeat('All work and no play. ', 10), 'tiny', max_tokens => 4) AS uncached_same_text;
RESET pg_infer.prefix_cache;

-- Statistics.
SELECT model, requests > 0 AS used, prompt_tokens > 0 AS prompted, generated_tokens > 0 AS generated,
       queue_depth, active_sequences, kv_blocks_used, kv_blocks_free > 0 AS kv_room,
       prefix_hit_rate > 0 AS prefix_cache_used
  FROM llm_stats() ORDER BY model;

-- Errors, with their SQLSTATEs.
SELECT try($$SELECT llm_generate('x', 'nope')$$);
SELECT try($$SELECT llm_generate('x', max_tokens => 100000)$$);
SELECT try($$SELECT llm_generate('x', temperature => -1)$$);
SELECT try($$SELECT llm_generate('x', top_p => 0)$$);
SELECT try($$SELECT llm_generate('x', top_k => -1)$$);
SELECT try($$SELECT llm_chat('[{"role": "wizard", "content": "x"}]', 'chat')$$);
SELECT try($$SELECT llm_chat('[{"role": "user"', 'chat')$$);
SELECT try($$SELECT llm_chat('[{"role": "user", "content": "x"}]', 'tiny')$$);
SELECT try($$SELECT llm_detokenize(ARRAY[1, 999999])$$);
RESET pg_infer.default_model;
SELECT try($$SELECT llm_generate('x')$$);
SELECT try($$SELECT llm_load_model('bad', '/etc/passwd')$$);
SELECT try($$SELECT llm_load_model('bad', '../server.log')$$);
SELECT try($$SELECT llm_load_model('bad', 'missing.gguf')$$);
SELECT try($$SELECT llm_load_model('bad', 'tiny.gguf', '{"device": "tpu"}')$$);
SELECT try($$SELECT llm_load_model('bad', 'tiny.gguf', '{"context_length": 999999}')$$);
SELECT try($$SELECT llm_load_model('tiny', 'tiny-chat.gguf')$$);
SELECT try($$SELECT llm_load_model('bad', 'tiny.gguf', '{"kv_cache": 1}')$$);
-- A model's own KV budget: 1 MB holds about 1,000 positions of the tiny model (1 KiB each).
SELECT llm_load_model('small', 'tiny.gguf', '{"kv_cache_size": 1}');
SELECT try($$SELECT llm_generate('x', 'small', max_tokens => 1500)$$);
SELECT llm_generate('x', 'small', max_tokens => 100) IS NOT NULL AS within_budget;
SELECT kv_blocks_free FROM llm_stats() WHERE model = 'small';
SELECT llm_unload_model('small');
DO $$ BEGIN
  EXECUTE format('COPY (SELECT %L) TO %L', 'not a model at all', current_setting('pg_infer.model_dir') || '/corrupt.gguf');
END $$;
SELECT try($$SELECT llm_load_model('corrupt', 'corrupt.gguf')$$);

-- Privileges: loading needs superuser or pg_read_server_files; generating is for everyone.
CREATE ROLE regress_user;
CREATE ROLE regress_loader IN ROLE pg_read_server_files;
SET ROLE regress_user;
SELECT try($$SELECT llm_load_model('x', 'tiny.gguf')$$);
SELECT try($$SELECT llm_unload_model('tiny')$$);
SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 2) IS NOT NULL AS user_generates;
RESET ROLE;
SET ROLE regress_loader;
SELECT llm_load_model('tiny2', 'tiny.gguf');
SELECT try($$SELECT llm_load_model('y', '/etc/hostname')$$);
SELECT llm_unload_model('tiny2');
RESET ROLE;

-- Cancellation: statement_timeout stops a long generation, and the engine serves the next call.
SET statement_timeout = '300ms';
SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 2000);
RESET statement_timeout;
SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 8) IS NOT NULL AS engine_still_serves;
SELECT queue_depth, active_sequences FROM llm_stats() WHERE model = 'tiny';

-- Annotating a table without a primary key, three rows per batch; a second call finishes the job
-- without redoing rows.
CREATE TABLE tickets (body text, label text, priority int);
INSERT INTO tickets (body, priority)
  SELECT 'ticket number ' || i, i % 3 FROM generate_series(1, 10) AS i;
SET client_min_messages = warning;  -- the NOTICE per batch carries a rate, which varies
CALL llm_annotate('tickets', 'label', 'Classify {body} (priority {priority}):', 'tiny', max_tokens => 4,
                  batch_size => 3);
RESET client_min_messages;
SELECT count(*) AS rows, count(label) AS labelled FROM tickets;
SELECT bool_and(label = llm_generate('Classify ' || body || ' (priority ' || priority || '):', 'tiny',
                                     max_tokens => 4)) AS labels_are_the_prompts_continuations
  FROM tickets;
SELECT relation, output_column, rows_done, rows_left, eta, finished FROM llm_progress;
UPDATE tickets SET label = NULL WHERE priority = 0;
CREATE TABLE requests_before AS SELECT requests FROM llm_stats() WHERE model = 'tiny';
SET client_min_messages = warning;
CALL llm_annotate('tickets', 'label', 'Classify {body} (priority {priority}):', 'tiny', max_tokens => 4);
RESET client_min_messages;
SELECT (SELECT requests FROM llm_stats() WHERE model = 'tiny') - requests AS rows_redone,
       (SELECT count(label) FROM tickets) AS labelled
  FROM requests_before;
SELECT try($$CALL llm_annotate('tickets', 'nope', 'x')$$);
SELECT try($$CALL llm_annotate('tickets', 'priority', 'x')$$);
SELECT try($$CALL llm_annotate('tickets', 'label', 'x {missing}')$$);
SELECT try($$CALL llm_annotate('tickets', 'label', 'x', batch_size => 0)$$);
DROP TABLE tickets, requests_before;

-- Unloading.
SELECT llm_unload_model('chat');
SELECT try($$SELECT llm_unload_model('chat')$$);
SELECT name FROM llm_models() ORDER BY name;
DROP ROLE regress_user;
DROP ROLE regress_loader;
