#!/usr/bin/env bash
# tests/bench/bench_serving.sh BUILD_DIR: the serving core's benchmark (prints figures and ratios; not a
# test), on a synthetic llama-160m-shaped Q8_0 model ($PG_INFER_BENCH_SHAPE to change), 2 threads:
#   1. CALL llm_annotate over 64 rows sharing a ~256-token instruction, ~40-token tails, 8 new tokens,
#      against llama.cpp doing the same token ids with 16 parallel sequences (annotate_llama.mjs);
#   2. time to first token of a new session after a ~1,500-token prefix another session used, against cold;
#   3. no prefix shared at all: throughput with the prefix cache against the cache turned off, through SQL
#      and inside the engine (bench_prefix_cache: identical passes checked, bookkeeping timed);
#   4. 16 concurrent sessions generating 64 tokens each against one session alone.
# Each figure is the best of a few runs (2, and 5 for the prefix cache check), ours and the peer's alternating (these machines are shared and noisy:
# the best run is the one least disturbed). Needs root (installs the extension; the server runs as the
# postgres account).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
source "$root/tests/pg/cluster.sh"
shape=${PG_INFER_BENCH_SHAPE:-llama-160m}

pg_test_begin serving "$build"
pg_synth "$build" "$shape" Q8_0 llama-spm bench
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
sql -c "CREATE EXTENSION pg_infer" -c "SELECT llm_load_model('bench', 'bench.gguf')" >/dev/null
sql -c "SET pg_infer.default_model = bench" -c "SELECT llm_generate('warm up', 'bench', max_tokens => 2)" >/dev/null
echo "model: $shape Q8_0; 2 threads"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# 1. Annotation.
sql >/dev/null <<'SQL'
CREATE TABLE tickets (id int, body text, label text);
INSERT INTO tickets SELECT i, 'ticket ' || i || ': ' || repeat('the screen stays blank after login ', 5)
  FROM generate_series(1, 64) i;
SQL
instruction="Classify the support ticket below as billing, access, bug or feature. $(for i in $(seq 1 24); do printf 'Answer with one word and nothing else. '; done)"
max() { awk -v a="$1" -v b="$2" 'BEGIN {print (a > b ? a : b)}'; }
sql -c "SELECT json_agg(llm_tokenize('$instruction Ticket: ' || body || ' Label:', 'bench') ORDER BY id) FROM tickets" \
  >"$work/rows.json"
ours=0; theirs=0; first_ms=""
for run in 1 2; do
  # Each run starts with an empty prefix cache (the model loaded again), as llama.cpp's starts a new context.
  sql -c "UPDATE tickets SET label = NULL" -c "SELECT llm_unload_model('bench')" \
      -c "SELECT llm_load_model('bench', 'bench.gguf')" -c "SELECT llm_generate('warm up', 'bench', max_tokens => 2)" \
      >/dev/null
  t0=$(now_ms)
  sql -c "SET client_min_messages = warning" \
      -c "CALL llm_annotate('tickets', 'label', '$instruction Ticket: {body} Label:', 'bench', max_tokens => 8, batch_size => 64)"
  t1=$(now_ms)
  rows=$(sql -c "SELECT count(label) FROM tickets")
  ours=$(max "$ours" "$(awk -v r=$rows -v ms=$((t1 - t0)) 'BEGIN {printf "%.2f", r / (ms / 1000)}')")
  first_ms=${first_ms:-$((t1 - t0))}
  # llama.cpp on the same token ids: 16 parallel sequences of one context, each keeping its history.
  if command -v node >/dev/null; then
    theirs=$(max "$theirs" "$(node "$here/annotate_llama.mjs" --model "$PG_MODELS/bench.gguf" --rows "$work/rows.json" \
      --gen 8 --sequences 16 --threads 2 | sed 's/.*"rows_per_s":\([0-9.]*\).*/\1/')")
  fi
done
hit=$(sql -c "SELECT round(prefix_hit_rate::numeric, 3) FROM llm_stats() WHERE model = 'bench'")
echo "annotate: $rows rows, best of 2 runs $ours rows/s (the first took $first_ms ms; prefix hit rate $hit)"
if command -v node >/dev/null; then
  echo "annotate, llama.cpp (node-llama-cpp, 16 sequences with history), best of 2: $(printf '%.2f' "$theirs") rows/s;" \
    "ours / llama.cpp = $(awk -v a=$ours -v b=$theirs 'BEGIN {printf "%.2f", a / b}') (goal >= 3)"
fi

# 2. Time to first token after a long shared prefix.
prefix="$(for i in $(seq 1 150); do printf 'Chapter %d of the manual explains the settings. ' $i; done)"
t0=$(now_ms); sql -c "SELECT llm_generate('$prefix Question one?', 'bench', max_tokens => 1)" >/dev/null; t1=$(now_ms)
t2=$(now_ms); sql -c "SELECT llm_generate('$prefix Question two?', 'bench', max_tokens => 1)" >/dev/null; t3=$(now_ms)
tokens=$(sql -c "SELECT cardinality(llm_tokenize('$prefix Question one?', 'bench'))")
echo "time to first token, ${tokens}-token prompt: cold $((t1 - t0)) ms, a new session after the shared prefix" \
  "$((t3 - t2)) ms: $(awk -v a=$((t1 - t0)) -v b=$((t3 - t2)) 'BEGIN {printf "%.1f", a / (b > 0 ? b : 1)}')x faster (goal >= 10x)"

# 3. Nothing shared: the prefix cache on against off.
batch="ARRAY(SELECT i || ' ' || md5(i::text) || ' ' || md5((i * 7)::text) || ' ' || repeat(md5((i * 13)::text), 6)
              FROM generate_series(1, 32) i)"
run_batch() {  # run_batch on|off SALT: ms for 32 distinct prompts, 16 new tokens each
  local a b
  a=$(now_ms)
  sql -c "SET pg_infer.prefix_cache = $1" -c "SELECT llm_generate(ARRAY(SELECT '$2' || x FROM unnest($batch) x), 'bench', max_tokens => 16)" >/dev/null
  b=$(now_ms)
  echo $((b - a))
}
min() { awk -v a="$1" -v b="$2" 'BEGIN {print (a < b ? a : b)}'; }
on=999999999; off=999999999
# 5 rounds, the order alternating (on-off, off-on, ...) so that a drift of the machine favours neither: a run
# here can be 15% slower than the same run a moment later.
round=0
for salt in a b c d e; do
  if [ $((round % 2)) = 0 ]; then
    on=$(min "$on" "$(run_batch on "on$salt")"); off=$(min "$off" "$(run_batch off "off$salt")")
  else
    off=$(min "$off" "$(run_batch off "off$salt")"); on=$(min "$on" "$(run_batch on "on$salt")")
  fi
  round=$((round + 1))
done
echo "no shared prefix: 32 prompts, best of 5 alternating runs: prefix cache on $on ms, off $off ms:" \
  "throughput with the cache $(awk -v a=$on -v b=$off 'BEGIN {printf "%.1f", (b / a - 1) * 100}')% vs without (goal >= -2%)"
# The same inside the engine, without SQL and the server around it (tests/bench/bench_prefix_cache.cpp):
# both settings plan identical passes (checked), so the cache costs only its bookkeeping, timed in the loop.
"$build/tests/bench_prefix_cache" --shape "$shape" --threads 2 --rounds 6 --work "$work" | sed 's/^/  engine: /'

# 4. 16 concurrent sessions against one.
cat >"$work/gen64.sql" <<'SQL'
SELECT llm_generate('Session ' || :client_id || ' writes a story about', 'bench', max_tokens => 64);
SQL
chmod 644 "$work/gen64.sql"
rate() {
  local before after t0 t1
  before=$(sql -c "SELECT generated_tokens FROM llm_stats() WHERE model = 'bench'")
  t0=$(date +%s%N)
  pg_as_owner "$PG_BIN/pgbench" -n -f "$work/gen64.sql" -t 1 -c "$1" -j "$1" -h "$PGHOST" -p "$PGPORT" postgres >/dev/null 2>&1
  t1=$(date +%s%N)
  after=$(sql -c "SELECT generated_tokens FROM llm_stats() WHERE model = 'bench'")
  awk -v n=$((after - before)) -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", n / (ns / 1e9)}'
}
one=0; sixteen=0
for run in 1 2; do one=$(max "$one" "$(rate 1)"); sixteen=$(max "$sixteen" "$(rate 16)"); done
echo "batching, best of 2: 1 session ${one} tok/s; 16 concurrent sessions ${sixteen} tok/s in all;" \
  "ratio $(awk -v a=$sixteen -v b=$one 'BEGIN {printf "%.2f", a / b}') (goal >= 4)"
