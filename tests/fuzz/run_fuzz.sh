#!/usr/bin/env bash
# Builds the GGUF fuzzer with clang and runs it for N seconds (default 30) on a scratch copy of the seed
# corpus; exits non-zero when it finds a crash, a leak or undefined behaviour.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}"
make fuzz >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/* "$work/"
build-fuzz/tests/fuzz/fuzz_gguf "$work" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" -print_final_stats=1 2>&1 | tail -n 12
echo "fuzz_gguf: no crash in ${seconds} s"
