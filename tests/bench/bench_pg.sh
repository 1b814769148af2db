#!/usr/bin/env bash
# tests/bench/bench_pg.sh BUILD_DIR: the extension's benchmark (prints figures and ratios; not a test).
#   1. memory: summed PSS of every server and engine process while 8 sessions generate, against the size
#      of the model file (the weights are mapped once, in the engine);
#   2. overhead of the SQL path: SELECT llm_generate(..., max_tokens => 1) per call, against the engine's
#      own time for those requests, and against the same forward pass (5-token prompt) in `infer bench`;
#   3. tokens/s of a long generation through SQL against `infer bench`'s decode rate, same model, same
#      threads.
# (The serving core's figures, batching included, are in bench_serving.sh.)
# Needs root (installs the extension; the server runs as the postgres account). Model: a synthetic
# TinyLlama-1.1B-shaped Q8_0 file ($PG_INFER_BENCH_SHAPE to change).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
source "$root/tests/pg/cluster.sh"
shape=${PG_INFER_BENCH_SHAPE:-tinyllama-1.1b}

pg_test_begin bench "$build"
pg_synth "$build" "$shape" Q8_0 llama-spm bench
model=$PG_MODELS/bench.gguf
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
sql -c "CREATE EXTENSION pg_infer" -c "SELECT llm_load_model('bench', 'bench.gguf')" >/dev/null
file_bytes=$(stat -c %s "$model")
echo "model: $shape Q8_0, $((file_bytes / 1048576)) MiB; 2 threads"

# 1. PSS while 8 sessions generate.
sql -c "SELECT llm_generate('warm up', 'bench', max_tokens => 1)" >/dev/null
for i in $(seq 1 8); do
  sql -c "SELECT llm_generate('Session $i writes', 'bench', max_tokens => 24)" >/dev/null &
done
sleep 3
pss_kb=0
for pid in $(pgrep -u "$PG_USER_OS"); do
  kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
  pss_kb=$((pss_kb + ${kb:-0}))
done
processes=$(pgrep -u "$PG_USER_OS" | wc -l)
wait
echo "memory: summed PSS of $processes server and engine processes with 8 sessions generating:" \
  "$((pss_kb / 1024)) MiB = $(awk -v p=$pss_kb -v f=$file_bytes 'BEGIN {printf "%.2f", p * 1024 / f}')x the model file (goal <= 1.3x)"

# 2. Per-call overhead of max_tokens => 1: the SQL call's latency minus the engine's own time for the
# request (from llm_stats: generated tokens / tokens per second is the engine's generating time).
calls=100
engine_seconds() { sql -c "SELECT generated_tokens / tokens_per_second FROM llm_stats() WHERE model = 'bench'"; }
echo "SELECT llm_generate('Once upon a time', 'bench', max_tokens => 1);" >"$work/one.sql"
chmod 644 "$work/one.sql"
e0=$(engine_seconds)
latency_ms=$(pg_as_owner "$PG_BIN/pgbench" -n -f "$work/one.sql" -t $calls -c 1 -h "$PGHOST" -p "$PGPORT" postgres 2>/dev/null |
  awk '/latency average/ {print $4}')
e1=$(engine_seconds)
engine_ms=$(awk -v a=$e0 -v b=$e1 -v n=$calls 'BEGIN {printf "%.3f", (b - a) / n * 1000}')
read -r prefill_tok_s decode_tok_s < <("$build/infer" bench -m "$model" --prompt 5 --gen 128 --threads 2 --json |
  sed 's/[{}",:]/ /g' | awk '{print $2, $4}')
forward_ms=$(awk -v t=$prefill_tok_s 'BEGIN {printf "%.3f", 5 / t * 1000}')
echo "overhead: SELECT llm_generate(..., max_tokens => 1): ${latency_ms} ms per call (pgbench, $calls calls), of" \
  "which the engine worked ${engine_ms} ms: SQL path overhead" \
  "$(awk -v a=$latency_ms -v b=$engine_ms 'BEGIN {printf "%.3f", a - b}') ms per call (goal <= 1 ms);" \
  "the same forward pass in infer bench: ${forward_ms} ms"

# 3. Long generation.
n=256
before=$(sql -c "SELECT generated_tokens FROM llm_stats() WHERE model = 'bench'")
t0=$(date +%s%N)
sql -c "SELECT llm_generate('Once upon a time', 'bench', max_tokens => $n)" >/dev/null
t1=$(date +%s%N)
after=$(sql -c "SELECT generated_tokens FROM llm_stats() WHERE model = 'bench'")
sql_tok_s=$(awk -v n=$((after - before)) -v ns=$((t1 - t0)) -v f=$forward_ms 'BEGIN {printf "%.2f", n / (ns / 1e9 - f / 1000)}')
echo "long generation: $((after - before)) tokens through SQL at ${sql_tok_s} tok/s; infer bench decode" \
  "${decode_tok_s} tok/s; ratio $(awk -v a=$sql_tok_s -v b=$decode_tok_s 'BEGIN {printf "%.3f", a / b}') (goal >= 0.95)"

