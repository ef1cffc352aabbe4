#!/usr/bin/env bash
# Generated clients must work (issue 14): the live OpenAPI document of a service on Postgres goes
# through openapi-python-client (warnings fail; every operation must become a function; a scenario
# runs through the generated client), openapi-typescript + openapi-fetch + `tsc --strict` (the seed's
# body compiles and runs; a SELECT option that is not {label, value} must not compile), Spectral
# (spectral:oas) and Redocly (recommended), both with 0 errors.
#
#   bash .ci/clients/check.sh            # needs .venv (make .venv/.installed-test), Postgres, node/npm
#
# Under CI=true a missing tool or service fails the step; elsewhere it is skipped with a message.
# Environment: PGHOST/PGPORT/PGUSER (127.0.0.1/5432/postgres); CLIENTS_DB (odeus_clients, dropped and
# created anew); CLIENTS_WORK (the working folder, emptied first: $TMPDIR/odeus-triggers-clients, outside
# the checkout, so that the project's ruff settings stay out of the generator's formatting);
# CLIENTS_REQUIRE_TRIGGER_READS=1 (GET trigger and list triggers must be in the document).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

OPC_VERSION=0.29.1      # openapi-python-client, from PyPI (it brings httpx, attrs and ruff)
DATEUTIL_VERSION=2.9.0.post0 # what the generated client imports besides httpx and attrs
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB="${CLIENTS_DB:-odeus_clients}"
WORK="${CLIENTS_WORK:-${TMPDIR:-/tmp}/odeus-triggers-clients}"
VENV="$ROOT/.venv"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1 NODE_NO_WARNINGS=1

failures=()
pass() { printf '  PASS  %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failures+=("$*"); }
part() { printf '\n-- %s\n' "$*"; }
indent() { awk -v w="${1:-100000}" '{ print "    " (length($0) > w ? substr($0, 1, w) " …" : $0) }'; }
missing() {
  if [[ "${CI:-}" == "true" ]]; then echo "clients: $* is missing (required under CI=true)" >&2; exit 1; fi
  echo "clients: $* is missing; skipping the generated-client checks (they are required under CI=true)"
  exit 0
}

[[ -x "$VENV/bin/odeus-triggers" ]] || missing "the project's .venv (make .venv/.installed-test)"
command -v node >/dev/null || missing "node"
command -v npm >/dev/null || missing "npm"
command -v psql >/dev/null || missing "psql"
pg_isready -q -t 10 || missing "Postgres on $PGHOST:$PGPORT"

rm -rf "$WORK"
mkdir -p "$WORK"
started=$SECONDS

# ---------------------------------------------------------------------------------------------------
part "tools (pinned): npm ci in .ci/clients, openapi-python-client $OPC_VERSION in a throwaway venv"
(cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$WORK/npm-ci.log" 2>&1) \
  || { cat "$WORK/npm-ci.log"; echo "clients: npm ci failed" >&2; exit 1; }
BIN="$HERE/node_modules/.bin"
OPC_VENV="$WORK/opc-venv"
"$VENV/bin/python" -m venv "$OPC_VENV"
"$OPC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openapi-python-client==$OPC_VERSION" "python-dateutil==$DATEUTIL_VERSION" >"$WORK/pip.log" 2>&1 \
  || { cat "$WORK/pip.log"; echo "clients: pip install openapi-python-client==$OPC_VERSION failed" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------
part "the service on Postgres (database $DB, fresh)"
psql -qAt -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
psql -qAt -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
export DATABASE_URL="postgresql+asyncpg://$PGUSER@$PGHOST:$PGPORT/$DB"
unset REDIS_URL ODEUS_REDIS_URL
export ODEUS_ENCRYPTION_KEYS="$("$VENV/bin/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
export ODEUS_RATE_LIMIT=100000/minute ODEUS_RATE_LIMIT_UNAUTHENTICATED=100000/minute ODEUS_LOG_LEVEL=WARNING
# The scenario's webhook URL is on loopback; no worker runs, so nothing is delivered there.
export ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK=true ODEUS_EMBEDDED_WORKER=false
"$VENV/bin/odeus-triggers" migrate >/dev/null
"$VENV/bin/odeus-triggers" bootstrap --workspace clients --json >"$WORK/bootstrap.json"
export CLIENTS_KEY="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["apiKey"])' "$WORK/bootstrap.json")"
PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export CLIENTS_BASE="http://127.0.0.1:$PORT"
"$VENV/bin/odeus-triggers" serve --host 127.0.0.1 --port "$PORT" --workers 1 >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if curl -fsS -o "$WORK/openapi.served.json" "$CLIENTS_BASE/openapi.json" 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -50 "$WORK/serve.log"; echo "clients: the service exited" >&2; exit 1; }
  sleep 0.2
done
[[ -s "$WORK/openapi.served.json" ]] || { tail -50 "$WORK/serve.log"; echo "clients: no /openapi.json within 60 s" >&2; exit 1; }
# Indented, so that the linters' line numbers point somewhere; the same document otherwise.
"$VENV/bin/python" -m json.tool "$WORK/openapi.served.json" >"$WORK/openapi.json"
DOC="$WORK/openapi.json"
pass "the service answers at $CLIENTS_BASE; /openapi.json saved as $DOC"

# ---------------------------------------------------------------------------------------------------
part "openapi-python-client $OPC_VERSION"
PYCLIENT="$WORK/odeus_client"
if (cd "$WORK" && PATH="$OPC_VENV/bin:$PATH" "$OPC_VENV/bin/openapi-python-client" generate --path "$DOC" --output-path "$PYCLIENT" \
      --meta none --overwrite --fail-on-warning) >"$WORK/opc.log" 2>&1; then opc_rc=0; else opc_rc=$?; fi
if ((opc_rc != 0)) || grep -qiE 'warning|unable to|could not' "$WORK/opc.log"; then
  indent <"$WORK/opc.log"
  fail "openapi-python-client generated with warnings (exit $opc_rc)"
else
  pass "openapi-python-client generated without a warning"
fi
if [[ -d "$PYCLIENT" ]]; then
  if "$OPC_VENV/bin/python" "$HERE/python_operations.py" "$DOC" "$PYCLIENT"; then
    pass "every operation of the document is a function of the generated client"
  else
    fail "operations missing from the generated Python client"
  fi
  if PYTHONPATH="$WORK" "$OPC_VENV/bin/python" "$HERE/python_scenario.py" "$DOC"; then
    pass "the Python scenario ran through the generated client"
  else
    fail "the Python scenario through the generated client"
  fi
else
  fail "openapi-python-client generated no package"
fi

# ---------------------------------------------------------------------------------------------------
part "openapi-typescript + openapi-fetch + tsc --strict"
TS="$WORK/ts"
mkdir -p "$TS"
cp "$HERE"/ts/*.mts "$HERE"/ts/tsconfig*.json "$TS/"
ln -s "$HERE/node_modules" "$TS/node_modules"
if "$BIN/openapi-typescript" "$DOC" -o "$TS/schema.d.ts" >"$WORK/openapi-typescript.log" 2>&1; then
  pass "openapi-typescript generated schema.d.ts"
  if (cd "$TS" && "$BIN/tsc" --pretty false --strict --noEmit -p tsconfig.json) >"$WORK/tsc-scenario.log" 2>&1; then
    pass "tsc --strict --noEmit: the scenario with the seed's body type-checks"
    if (cd "$TS" && "$BIN/tsc" --pretty false --strict --noEmit false -p tsconfig.json && node out/scenario.mjs) \
        >"$WORK/ts-run.log" 2>&1; then
      indent <"$WORK/ts-run.log"
      pass "the TypeScript scenario ran against the service through openapi-fetch"
    else
      indent <"$WORK/ts-run.log"
      fail "the TypeScript scenario against the service"
    fi
  else
    indent <"$WORK/tsc-scenario.log"
    fail "tsc --strict --noEmit: the scenario with the seed's body"
  fi
  # The bad file must fail, and on its marked line only: not for a reason elsewhere in it.
  bad_line="$(grep -n '// MUST-NOT-COMPILE$' "$TS/bad_select_option.mts" | head -1 | cut -d: -f1)"
  if (cd "$TS" && "$BIN/tsc" --pretty false --strict --noEmit -p tsconfig.bad.json) >"$WORK/tsc-bad.log" 2>&1; then
    fail "tsc --strict accepted a SELECT option that is not {label, value} (bad_select_option.mts)"
  else
    elsewhere="$(grep -E '^[^ ]+\([0-9]+,[0-9]+\): error' "$WORK/tsc-bad.log" \
      | grep -vE "^bad_select_option\.mts\($bad_line," || true)"
    if grep -qE "^bad_select_option\.mts\($bad_line,[0-9]+\): error" "$WORK/tsc-bad.log" && [[ -z "$elsewhere" ]]; then
      pass "tsc --strict rejects a SELECT option that is not {label, value} (bad_select_option.mts:$bad_line)"
    else
      indent <"$WORK/tsc-bad.log"
      fail "bad_select_option.mts must fail on its line $bad_line alone"
    fi
  fi
else
  indent <"$WORK/openapi-typescript.log"
  fail "openapi-typescript"
fi

# ---------------------------------------------------------------------------------------------------
part "Spectral (spectral:oas)"
if "$BIN/spectral" lint "$DOC" --ruleset "$HERE/.spectral.yaml" --fail-severity error --format text \
    >"$WORK/spectral.log" 2>&1; then spectral_rc=0; else spectral_rc=$?; fi
indent 400 <"$WORK/spectral.log"  # Spectral quotes a whole pattern in its message: the full log is in $WORK
if ((spectral_rc == 0)); then pass "Spectral: 0 errors ($(grep -c ' warning ' "$WORK/spectral.log" || true) warnings)"
else fail "Spectral: errors"; fi

part "Redocly (recommended)"
if "$BIN/redocly" lint "$DOC" --config "$HERE/redocly.yaml" --format stylish >"$WORK/redocly.log" 2>&1; then
  redocly_rc=0; else redocly_rc=$?; fi
indent <"$WORK/redocly.log"
if ((redocly_rc == 0)); then pass "Redocly: 0 errors"; else fail "Redocly: errors"; fi

# ---------------------------------------------------------------------------------------------------
printf '\n-- generated clients: %d failure(s) in %d s\n' "${#failures[@]}" "$((SECONDS - started))"
for f in "${failures[@]}"; do printf '  FAIL  %s\n' "$f"; done
((${#failures[@]} == 0))
