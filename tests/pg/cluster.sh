#!/usr/bin/env bash
# tests/pg/cluster.sh: a scratch PostgreSQL server with pg_infer preloaded, for the extension's tests.
# Sourced by the test scripts. PostgreSQL refuses to run as root, so the server runs as an unprivileged
# account (postgres by default, PG_INFER_TEST_USER to change) in a folder under /tmp it can read, with its
# own port and socket folder; the model files it reads are written there too.
#
#   pg_cluster_start DIR    initdb + start (sets PGHOST, PGPORT, PGUSER, PGDATABASE, PG_MODELS)
#   pg_cluster_stop         stop the server
#   pg_as_owner CMD...      run a command as the server's account
#   pg_test_begin NAME BUILD_DIR   install the build, start a cluster in /tmp/pginfer-NAME-XXXXXX (sets
#                           `work`; stopped at exit and removed unless KEEP=1)
#   pg_synth BUILD_DIR SHAPE TYPE VOCAB NAME   write $PG_MODELS/NAME.gguf with `infer synth` (VOCAB: the
#                           name of a ../shared/vocab/ggml-vocab-VOCAB.gguf file)
set -euo pipefail

PG_INFER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=$(pg_config --bindir)
PG_USER_OS=${PG_INFER_TEST_USER:-postgres}

pg_as_owner() {
  if [ "$(id -un)" = "$PG_USER_OS" ]; then "$@"; else runuser -u "$PG_USER_OS" -- "$@"; fi
}

pg_cluster_start() {
  local dir=$1
  mkdir -p "$dir"
  chmod 755 "$dir"
  export PG_TEST_DIR=$dir
  export PG_MODELS=$dir/models
  mkdir -p "$PG_MODELS"
  chown -R "$PG_USER_OS" "$dir"
  export PGHOST=$dir PGPORT=${PG_INFER_TEST_PORT:-$((54000 + RANDOM % 1000))} PGUSER=$PG_USER_OS PGDATABASE=postgres
  pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER_OS" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_infer'
pg_infer.model_dir = '$PG_MODELS'
pg_infer.threads = 2
max_connections = 40
log_min_messages = log
CONF
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

pg_cluster_stop() {
  [ -n "${PG_TEST_DIR:-}" ] && pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

pg_test_begin() {
  cmake --install "$2" >/dev/null
  work=$(mktemp -d "/tmp/pginfer-$1-XXXXXX")
  trap 'pg_cluster_stop; [ "${KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT
  pg_cluster_start "$work"
}

pg_synth() {
  "$1/infer" synth --shape "$2" --type "$3" --vocab "$PG_INFER_ROOT/../shared/vocab/ggml-vocab-$4.gguf" \
    -o "$PG_MODELS/$5.gguf" --seed 7 >/dev/null
  chown "$PG_USER_OS" "$PG_MODELS/$5.gguf"
}
