#!/usr/bin/env bash
# Installs what pg_infer needs to build and test on Debian 12 (run as root): compilers, CMake, OpenBLAS,
# GoogleTest, clang for the fuzzer, Node.js, and llama.cpp's CPU build (node-llama-cpp, pinned in
# tests/reference/package-lock.json) for the reference comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config libopenblas-dev libgtest-dev libpcre2-dev postgresql-server-dev-15 clang libclang-rt-14-dev \
  ca-certificates >/dev/null
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
(cd tests/reference && npm ci --no-audit --no-fund --loglevel=error)
