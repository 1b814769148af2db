#!/usr/bin/env bash
# Sets everything up and runs the main job on the built-in default (Debian 12, as root):
#   1. installs the dependencies, builds, and installs the extension into PostgreSQL 15;
#   2. writes a synthetic TinyLlama-1.1B-shaped Q8_0 model (random weights, the real Phi-3/Llama 2
#      vocabulary and chat template from ../shared) and measures it with `infer bench`;
#   3. starts a local PostgreSQL cluster with pg_infer preloaded (as the postgres account, in
#      $PG_INFER_DEMO_DIR, default /tmp/pg_infer-demo, port $PG_INFER_DEMO_PORT, default 54329), loads the
#      model and runs a generation, a chat and an annotation-style UPDATE in SQL.
# The cluster keeps running afterwards; the script prints how to connect and how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash tools/install_deps.sh
make -j"$(nproc)"
make install >/dev/null

dir=${PG_INFER_DEMO_DIR:-/tmp/pg_infer-demo}
export PG_INFER_TEST_PORT=${PG_INFER_DEMO_PORT:-54329}
source tests/pg/cluster.sh
model=$dir/models/demo.gguf
if [ -f "$dir/data/PG_VERSION" ]; then  # a cluster from an earlier run: start it again if needed
  export PG_TEST_DIR=$dir PG_MODELS=$dir/models PGHOST=$dir PGPORT=$PG_INFER_TEST_PORT PGUSER=$PG_USER_OS
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 ||
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
else
  pg_cluster_start "$dir"
fi
if [ ! -f "$model" ]; then
  build/infer synth --shape tinyllama-1.1b --type Q8_0 --vocab ../shared/vocab/ggml-vocab-phi-3.gguf -o "$model"
  chown "$PG_USER_OS" "$model"
fi
build/infer info -m "$model"
build/infer bench -m "$model" --prompt 128 --gen 32 --json

psql -X -v ON_ERROR_STOP=1 -d postgres <<'SQL'
\pset footer off
CREATE EXTENSION IF NOT EXISTS pg_infer;
SELECT llm_load_model('demo', 'demo.gguf');
SELECT name, architecture, parameters, tensor_type, context_length, device, status FROM llm_models();
SET pg_infer.default_model = 'demo';
\echo 'A greedy continuation (random weights: the text is gibberish, the machinery is real):'
SELECT llm_generate('Once upon a time', max_tokens => 24);
\echo 'A chat, formatted with the model''s own template:'
SELECT llm_chat('[{"role": "user", "content": "Name three colours."}]', max_tokens => 16);
\echo 'Annotating rows:'
DROP TABLE IF EXISTS demo_tickets;
CREATE TABLE demo_tickets (id int PRIMARY KEY, body text, label text);
INSERT INTO demo_tickets VALUES (1, 'The invoice total is wrong', NULL), (2, 'I cannot log in', NULL),
                                (3, 'Please add a dark mode', NULL);
UPDATE demo_tickets SET label = llm_generate('Classify as billing, access or feature: ' || body, max_tokens => 4)
 WHERE label IS NULL;
SELECT * FROM demo_tickets ORDER BY id;
SELECT model, requests, prompt_tokens, generated_tokens, round(tokens_per_second::numeric, 1) AS tokens_per_s
  FROM llm_stats();
SQL
cat <<MSG

The cluster is running: psql -h $dir -p $PG_INFER_TEST_PORT -U $PG_USER_OS postgres
Stop it with:          runuser -u $PG_USER_OS -- $PG_BIN/pg_ctl -D $dir/data stop
MSG
