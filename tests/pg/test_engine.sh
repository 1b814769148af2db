#!/usr/bin/env bash
# tests/pg/test_engine.sh BUILD_DIR: what pg_regress cannot show, on a scratch server with pg_infer:
#   - 16 sessions generating at once all get the text each prompt gives alone;
#   - a parallel query's workers call the engine at once, share its passes, and get the text of each alone;
#   - a cancel frees the engine's sequence within 100 ms;
#   - kill -9 of the engine: waiting sessions fail at once with a clear error, the server does not go
#     through crash recovery, and the next call works once the supervisor has restarted the engine;
#   - a terminated supervisor is started again by the postmaster and brings a new engine;
#   - a LATIN1 database converts text to and from the engine, and refuses what LATIN1 cannot hold;
#   - a model still loading is a clear error (55000) for the requests that name it;
#   - a request whose KV cache does not fit pg_infer.kv_cache_size fails with 53000, smaller ones run;
#   - a device that fails beyond repair (a GPU error, simulated) fails its request with 58000 and restarts the
#     engine, which serves the other models again.
# Needs root (installs the extension; the server runs as the postgres account).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
source "$here/cluster.sh"

export PG_INFER_TEST_SLOW_LOAD=slow:3000  # loads of model "slow" take 3 s longer (server.h)
export PG_INFER_TEST_DEVICE_LOST=lost     # every pass of model "lost" fails as after a GPU error (server.h)
pg_test_begin engine "$build"
pg_synth "$build" tiny Q8_0 llama-spm tiny

failures=0
check() {  # check NAME CONDITION-EXIT-STATUS
  if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
engine_pid() { pgrep -u "$PG_USER_OS" -f pg_infer_engine | head -1; }
wait_for_engine() {  # waits until a call succeeds (the engine restarted and the model is back)
  for _ in $(seq 1 100); do
    sql -c "SELECT llm_generate('x', 'tiny', max_tokens => 1)" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

sql -c "CREATE EXTENSION pg_infer" -c "SELECT llm_load_model('tiny', 'tiny.gguf')" >/dev/null

# 16 sessions at once, each prompt's text compared with the text it gets alone.
for i in $(seq 1 16); do
  sql -c "SELECT llm_generate('Prompt number $i says', 'tiny', max_tokens => 24)" >"$work/alone.$i"
done
for i in $(seq 1 16); do
  sql -c "SELECT llm_generate('Prompt number $i says', 'tiny', max_tokens => 24)" >"$work/together.$i" &
done
wait
same=0
for i in $(seq 1 16); do cmp -s "$work/alone.$i" "$work/together.$i" && same=$((same + 1)); done
echo "     16 concurrent sessions: $same/16 got the text of their prompt alone"
check "16 concurrent sessions get correct results" $([ $same = 16 ]; echo $?)

# A parallel query: llm_generate is PARALLEL SAFE, so the workers evaluate it, their calls reach the engine
# at once and share its passes (active sequences above 1 while it runs); every row gets what its prompt gives
# alone.
sql >/dev/null <<'SQL'
CREATE TABLE prompts (id int, body text, pad char(1000)) WITH (fillfactor = 10, parallel_workers = 4);
INSERT INTO prompts SELECT i, 'Row ' || i || ' begins', '' FROM generate_series(1, 24) i;  -- a page per row
SQL
parallel="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
          SET max_parallel_workers_per_gather = 4;"
query="SELECT id, llm_generate(body, 'tiny', max_tokens => 64) FROM prompts"
plan=$(sql -c "$parallel" -c "EXPLAIN (VERBOSE, COSTS OFF) $query")
check "llm_generate runs in the parallel workers" \
  $(echo "$plan" | grep -A2 "Parallel Seq Scan" | grep -q "Output: id, llm_generate"; echo $?)
sql -c "$query ORDER BY id" >"$work/rows.alone"
# A second session samples the engine's running sequences every few milliseconds while the query runs.
sql -c "CREATE FUNCTION peak_active(seconds float8) RETURNS int LANGUAGE plpgsql AS \$\$
        DECLARE peak int := 0; stop timestamptz := clock_timestamp() + seconds * interval '1 second';
        BEGIN
          WHILE clock_timestamp() < stop LOOP
            peak := greatest(peak, (SELECT active_sequences FROM llm_stats() WHERE model = 'tiny'));
            PERFORM pg_sleep(0.002);
          END LOOP;
          RETURN peak;
        END \$\$" >/dev/null
sql -c "SELECT peak_active(3)" >"$work/peak" &
sampler_pid=$!
sql -c "$parallel" -c "$query" >"$work/rows.parallel"
wait $sampler_pid
peak=$(cat "$work/peak")
echo "     parallel query: at most $peak sequences in the engine's passes at once"
check "a parallel query's rows share the engine's passes" $([ "$peak" -ge 2 ]; echo $?)
check "a parallel query's rows get what each gives alone" \
  $(sort -n "$work/rows.parallel" | cmp -s - "$work/rows.alone"; echo $?)

# Cancel: a long generation is cancelled; the engine frees its sequence within 100 ms.
sql -c "SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 2000)" >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  [ "$(sql -c "SELECT active_sequences FROM llm_stats() WHERE model = 'tiny'")" = 1 ] && break
  sleep 0.05
done
sql >/dev/null <<'SQL'
CREATE FUNCTION cancel_and_measure() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
BEGIN
  PERFORM pg_cancel_backend(pid) FROM pg_stat_activity
    WHERE query LIKE '%max_tokens => 2000%' AND pid <> pg_backend_pid();
  t0 := clock_timestamp();
  WHILE (SELECT active_sequences FROM llm_stats() WHERE model = 'tiny') > 0
        AND clock_timestamp() - t0 < interval '5 s' LOOP
  END LOOP;
  RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
SQL
freed_ms=$(sql -c "SELECT cancel_and_measure()")
wait || true
echo "     cancel: the engine freed the sequence after ${freed_ms} ms"
check "cancel frees the engine's sequence within 100 ms" $([ "$freed_ms" -lt 100 ]; echo $?)

# kill -9 of the engine while three sessions wait.
for i in 1 2 3; do
  (sql -c "SELECT llm_generate('Once upon a time', 'tiny', max_tokens => 2000)" >"$work/killed.$i" 2>&1; echo $? >>"$work/killed.$i") &
done
for _ in $(seq 1 100); do
  [ "$(sql -c "SELECT active_sequences + queue_depth FROM llm_stats() WHERE model = 'tiny'")" = 3 ] && break
  sleep 0.05
done
old_engine=$(engine_pid)
t0=$(date +%s%N)
kill -9 "$old_engine"
wait || true
waited_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
errors=$(grep -l "pg_infer engine terminated while processing the request" "$work"/killed.* | wc -l)
echo "     kill -9: $errors/3 waiting sessions got the error, all within ${waited_ms} ms"
check "waiting sessions fail at once when the engine dies" $([ "$errors" = 3 ] && [ "$waited_ms" -lt 2000 ]; echo $?)
wait_for_engine
check "the next call works once the engine is back" $?
new_engine=$(engine_pid)
check "the supervisor started a new engine" $([ -n "$new_engine" ] && [ "$new_engine" != "$old_engine" ]; echo $?)
check "the registered model came back" $([ "$(sql -c "SELECT status FROM llm_models() WHERE name = 'tiny'")" = ready ]; echo $?)

# The supervisor terminated: the postmaster starts a new one, which starts a new engine.
old_engine=$(engine_pid)
# (The worker has no database connection, so it is not in pg_stat_activity: signal it directly.)
supervisor=$(pgrep -u "$PG_USER_OS" -f "pg_infer supervisor" | head -1)
kill -TERM "$supervisor"
sleep 1
check "the supervisor exited" $(! kill -0 "$supervisor" 2>/dev/null; echo $?)
check "the engine does not outlive its supervisor" $(! kill -0 "$old_engine" 2>/dev/null; echo $?)
sleep 5
wait_for_engine
check "a new supervisor brings the engine back" $([ $? = 0 ] && [ -n "$(engine_pid)" ] && [ "$(engine_pid)" != "$old_engine" ]; echo $?)

# A LATIN1 database: text converts both ways; what LATIN1 cannot hold is a clear error.
createdb -E LATIN1 --locale=C -T template0 latin1db
sql -d latin1db -c "CREATE EXTENSION pg_infer" >/dev/null
back=$(PGCLIENTENCODING=UTF8 sql -d latin1db -c "SELECT llm_detokenize(llm_tokenize('café crème', 'tiny'), 'tiny')")
check "LATIN1 text goes to the engine and back" $([ "$back" = "café crème" ]; echo $?)
han=$(printf '%s' "中" | "$build/infer" tokenize -m "$PG_MODELS/tiny.gguf" --no-bos | tr ' ' ',')
msg=$(sql -d latin1db -c "SELECT llm_detokenize(ARRAY[$han], 'tiny')" 2>&1 || true)
echo "     LATIN1: $msg"
check "text LATIN1 cannot hold is refused clearly" $(echo "$msg" | grep -q 'has no equivalent in encoding "LATIN1"'; echo $?)

# Devices: with a GPU, "cuda" and "auto" load there (the paged KV cache in GPU memory) and serve; without
# one, "cuda" is a clear error and "auto" runs on the CPU.
msg=$(psql -X -q -At -v VERBOSITY=verbose -c "SELECT llm_load_model('gpu', 'tiny.gguf', '{\"device\": \"cuda\"}')" 2>&1 || true)
echo "     device cuda: $(echo "$msg" | head -1)"
if nvidia-smi >/dev/null 2>&1; then
  check "device cuda loads on a machine with a GPU" $(! echo "$msg" | grep -q ERROR; echo $?)
  check "a model on the GPU generates" $(sql -c "SELECT llm_generate('Hello', 'gpu', max_tokens => 4)" >/dev/null; echo $?)
  sql -c "SELECT llm_load_model('auto', 'tiny.gguf', '{\"device\": \"auto\"}')" >/dev/null
  check "device auto picks the GPU" $([ "$(sql -c "SELECT device FROM llm_models() WHERE name = 'auto'")" = cuda ]; echo $?)
  check "llm_stats shows the GPU model's memory and the GPU's free memory" $([ "$(sql -c "SELECT device || \
    (device_memory_bytes > 0) || (device_free_bytes > 0) FROM llm_stats() WHERE model = 'gpu'")" = cudatruetrue ]; echo $?)
else
  check "device cuda without a GPU is a clear error" $(echo "$msg" | grep -q 'device "cuda" is not available'; echo $?)
  sql -c "SELECT llm_load_model('auto', 'tiny.gguf', '{\"device\": \"auto\"}')" >/dev/null
  check "device auto falls back to the CPU" $([ "$(sql -c "SELECT device FROM llm_models() WHERE name = 'auto'")" = cpu ]; echo $?)
  check "llm_stats shows no GPU memory for a CPU model" $([ "$(sql -c "SELECT device || coalesce(device_memory_bytes::text, \
    'none') || coalesce(device_free_bytes::text, 'none') FROM llm_stats() WHERE model = 'auto'")" = cpunonenone ]; echo $?)
fi

# A model still loading.
sql -c "SELECT llm_load_model('slow', 'tiny.gguf')" >/dev/null 2>&1 &
sleep 1
msg=$(psql -X -q -At -v VERBOSITY=verbose -c "SELECT llm_generate('x', 'slow')" 2>&1 || true)
wait
echo "     loading: $(echo "$msg" | head -1)"
check "a model still loading is a clear error" $(echo "$msg" | grep -q '55000: model "slow" is still loading'; echo $?)

# The KV cache budget: 1 MB holds about 1,000 positions of the tiny model (1 KiB each).
old_engine=$(engine_pid)
sql -c "ALTER SYSTEM SET pg_infer.kv_cache_size = '1MB'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 50); do [ -n "$(engine_pid)" ] && [ "$(engine_pid)" != "$old_engine" ] && break; sleep 0.1; done
wait_for_engine
msg=$(psql -X -q -At -v VERBOSITY=verbose -c "SELECT llm_generate('x', 'tiny', max_tokens => 1500)" 2>&1 || true)
echo "     KV budget: $(echo "$msg" | head -1)"
check "a request beyond pg_infer.kv_cache_size fails with 53000" $(echo "$msg" | grep -q '53000: the request needs'; echo $?)
check "a request within it runs" $(sql -c "SELECT llm_generate('x', 'tiny', max_tokens => 100) IS NOT NULL" >/dev/null; echo $?)
check "llm_stats counts the free KV blocks" $([ "$(sql -c "SELECT kv_blocks_used || '/' || kv_blocks_free FROM llm_stats() WHERE model = 'tiny'")" = 0/64 ]; echo $?)

# A device failure beyond repair (simulated for model "lost"): the request fails with 58000 at once, the engine
# exits so that the supervisor starts a new one, and the next request to another model works.
sql -c "SELECT llm_load_model('lost', 'tiny.gguf')" >/dev/null
before=$(engine_pid)
msg=$(psql -X -q -At -v VERBOSITY=verbose -c "SELECT llm_generate('x', 'lost', max_tokens => 4)" 2>&1 || true)
echo "     device lost: $(echo "$msg" | head -1)"
check "a device failure fails the request with 58000" $(echo "$msg" | grep -q '58000: the GPU failed'; echo $?)
for _ in $(seq 1 100); do [ -n "$(engine_pid)" ] && [ "$(engine_pid)" != "$before" ] && break; sleep 0.1; done
back=1; wait_for_engine && back=0
check "after a device failure the engine restarts and serves" \
  $([ $back = 0 ] && [ -n "$(engine_pid)" ] && [ "$(engine_pid)" != "$before" ]; echo $?)
sql -c "SELECT llm_unload_model('lost')" >/dev/null

# The devices again on a CUDA device emulated on the CPU (tests/cuda_emu), when the build has one and the machine
# no GPU: the server is restarted with the engine pointed at the emulated module. "cuda" and "auto" then load
# there, report its memory, and generate the CPU's text (greedy); the models loaded before are loaded again on
# first use, "auto" ones on the device.
emu=$build/libpginfer_cuda_emu.so
if ! nvidia-smi >/dev/null 2>&1 && [ -f "$emu" ]; then
  install -o "$PG_USER_OS" -m 644 "$emu" "$work/libpginfer_cuda_emu.so"
  pg_cluster_stop
  PG_INFER_CUDA_MODULE=$work/libpginfer_cuda_emu.so \
    pg_as_owner "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
  small='"gpu_memory_fraction": 0.05'
  sql -c "SELECT llm_load_model('emu_cpu', 'tiny.gguf', '{\"device\": \"cpu\"}')" >/dev/null
  msg=$(psql -X -q -At -v VERBOSITY=verbose \
    -c "SELECT llm_load_model('emu_gpu', 'tiny.gguf', '{\"device\": \"cuda\", $small}')" 2>&1 || true)
  echo "     device cuda, emulated: $(echo "$msg" | head -1)"
  check "device cuda loads on an emulated GPU" $(! echo "$msg" | grep -q ERROR; echo $?)
  want=$(sql -c "SELECT llm_generate('The emulated device says', 'emu_cpu', max_tokens => 8)")
  got=$(sql -c "SELECT llm_generate('The emulated device says', 'emu_gpu', max_tokens => 8)")
  echo "     CPU: $want | emulated GPU: $got"
  check "a model on the emulated GPU generates the CPU's text" $([ -n "$got" ] && [ "$got" = "$want" ]; echo $?)
  sql -c "SELECT llm_load_model('emu_auto', 'tiny.gguf', '{\"device\": \"auto\", $small}')" >/dev/null
  check "device auto picks the emulated GPU" \
    $([ "$(sql -c "SELECT device FROM llm_models() WHERE name = 'emu_auto'")" = cuda ]; echo $?)
  stats=$(sql -c "SELECT device || (device_memory_bytes > 0) || (device_free_bytes > 0) FROM llm_stats() \
    WHERE model = 'emu_gpu'")
  check "llm_stats shows the emulated GPU model's memory and the device's free memory" \
    $([ "$stats" = cudatruetrue ]; echo $?)
fi

# Never a crash recovery.
crashes=$(grep -c "terminating any other active server processes\|all server processes terminated" "$work/server.log" || true)
check "no crash recovery in the server log" $([ "$crashes" = 0 ]; echo $?)
[ $failures = 0 ]
