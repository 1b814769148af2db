#!/usr/bin/env bash
# tests/pg/run_regress.sh BUILD_DIR: the extension's pg_regress suites (sql/*.sql against expected/*.out)
# on a scratch server with pg_infer installed and preloaded, with synthetic models the test writes.
# Needs root (it installs the extension and starts the server as the postgres account).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
source "$here/cluster.sh"

pg_test_begin regress "$build"
# The models the suites load: a tiny Llama (Llama 2 vocabulary) and a tiny Phi-3-vocabulary one with a
# chat template.
pg_synth "$build" tiny Q8_0 llama-spm tiny
pg_synth "$build" tiny Q8_0 phi-3 tiny-chat

regress=$(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress
tests=$(cd "$root/sql" && ls *.sql | sed 's/\.sql$//' | sort)
chown -R "$PG_USER_OS" "$work"
cp -r "$root/sql" "$root/expected" "$work/"
chown -R "$PG_USER_OS" "$work/sql" "$work/expected"
status=0
(cd "$work" && pg_as_owner "$regress" --inputdir="$work" --outputdir="$work/out" \
  --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=pginfer_regress $tests) || status=$?
if [ $status -ne 0 ] && [ -f "$work/out/regression.diffs" ]; then cat "$work/out/regression.diffs"; fi
exit $status
