#!/usr/bin/env bash
# Fuzzes both APIs with schemathesis (PyPI) against their own OpenAPI documents, as an admin:
# no generated request may get a 5xx, and every answer must match its documented status
# codes, content type, headers and schema (docs/api.md, "Checked against the documents").
#
# Runs the services from this checkout (command API, projectors with their relay, query API) on
# a database and a NATS server of their own and free ports; called by
# deploy/local/test.sh after the test suite. SCHEMATHESIS_EXAMPLES sets examples per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[schemathesis] %s\n' "$*" >&2; }

venv=target/schemathesis-venv
version=4.32.5
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
    log "installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --locked --quiet -p command-service -p query-service -p projectors

server=${TEST_DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}
database=simplatform_schemathesis
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" -qc "CREATE DATABASE $database"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
command_addr="127.0.0.1:$(free_port)"
query_addr="127.0.0.1:$(free_port)"
logs=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT

export DATABASE_URL="$server/$database"
export APP_ENV=test LOG_FORMAT=text RUST_LOG=warn
export BOOTSTRAP_ADMIN_USERNAME=schemathesis-admin BOOTSTRAP_ADMIN_PASSWORD=schemathesis-admin-password
# A separate Redis key space; NATS is not needed for these routes (sync jobs wake the
# connector only when it is there).
export REDIS_KEY_PREFIX="schemathesis-$$"
# The projectors (and their relay) run too, on a NATS server of their own: the query API waits
# for the read models to reach a consistency token, and the command API's fuzzing stores
# events, so without them every query with a token would rightly answer 503 after its wait.
nats_port=$(free_port)
projectors_addr="127.0.0.1:$(free_port)"
/usr/sbin/nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$logs/nats" > "$logs/nats-server.log" 2>&1 &
pids+=($!)
export NATS_URL="nats://127.0.0.1:$nats_port"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.2; done
COMMAND_ADDR=$command_addr "${CARGO_TARGET_DIR:-target}/debug/command-service" > "$logs/command-service.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$command_addr/ready" >/dev/null 2>&1 && break; sleep 0.2; done
PROJECTORS_ADDR=$projectors_addr "${CARGO_TARGET_DIR:-target}/debug/projectors" > "$logs/projectors.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$projectors_addr/ready" >/dev/null 2>&1 && break; sleep 0.2; done
QUERY_ADDR=$query_addr "${CARGO_TARGET_DIR:-target}/debug/query-service" > "$logs/query-service.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$query_addr/ready" >/dev/null 2>&1 && break; sleep 0.2; done

token=$(curl -fsS -X POST "http://$command_addr/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$BOOTSTRAP_ADMIN_USERNAME\",\"password\":\"$BOOTSTRAP_ADMIN_PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# Excluded, and why: `positive_data_acceptance` expects every schema-valid request to be
# accepted, but some rules are not expressible in JSON Schema (an ICCID's Luhn digit, a
# position that must exist, `from` before `to`), so such requests rightly get 4xx;
# `negative_data_rejection` counts an unknown request header as a schema violation to be
# refused, which HTTP servers must not do. The refusal of bad input is tested by our own
# attack tests (command-service/tests/attacks.rs) instead.
# One worker: with two, the coverage phase's threads parse source at once and this machine's
# Python 3.11.7 fails spuriously ("SystemError: AST constructor recursion depth mismatch", a
# CPython `ast` bug of threaded programs, cf. gh-106905): a runtime error on a random
# operation, not a finding. Both APIs still take well under a minute each.
status=0
for api in "command:$command_addr" "query:$query_addr"; do
    name=${api%%:*}
    addr=${api#*:}
    log "$name API at $addr"
    "$venv/bin/schemathesis" run "http://$addr/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
        --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" --workers 1 --no-color \
        --warnings off || status=1
done
if [ "$status" != 0 ]; then
    log "failures above; service logs in $logs"
    tail -n 50 "$logs"/*.log >&2
fi
exit "$status"
