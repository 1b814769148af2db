#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh [SECONDS]: builds the GGUF fuzzer with clang (`make fuzz`) and runs it for SECONDS
# (default 30) on a scratch copy of the seed corpus. Exits non-zero when it finds a crash, a leak, undefined
# behaviour, a timeout or an out-of-memory; the failing input is kept in build-fuzz/artifacts/ and the
# command to reproduce it is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}"
case "$seconds" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

if ! make fuzz >/tmp/pginfer-fuzz-build.$$.log 2>&1; then
  cat /tmp/pginfer-fuzz-build.$$.log >&2
  rm -f /tmp/pginfer-fuzz-build.$$.log
  echo "fuzz_gguf: build failed" >&2
  exit 2
fi
rm -f /tmp/pginfer-fuzz-build.$$.log

binary=build-fuzz/tests/fuzz/fuzz_gguf
artifacts="$PWD/build-fuzz/artifacts"
mkdir -p "$artifacts"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp tests/fuzz/corpus/* "$work/corpus/"

status=0
"$binary" "$work/corpus" -dict=tests/fuzz/gguf.dict -max_total_time="$seconds" -max_len=4096 \
  -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$artifacts/" \
  -print_final_stats=1 >"$work/log" 2>&1 || status=$?

if [ "$status" -ne 0 ]; then
  tail -n 60 "$work/log" >&2
  echo "fuzz_gguf: FAILED (exit $status); inputs kept in $artifacts/, reproduce with: $binary <input>" >&2
  exit 1
fi
grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done ' "$work/log" || true
echo "fuzz_gguf: no crash in ${seconds} s (corpus grew to $(ls "$work/corpus" | wc -l) inputs)"
