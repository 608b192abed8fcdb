#!/usr/bin/env bash
# Browser tests of the dashboard: Debian's chromium (installed when missing) driven by npm's
# playwright-core, against the platform started from this checkout (deploy/local/platform.sh)
# on its own database (simplatform_browser_<pid>, dropped at the end, so two runs at once do not
# break each other), its own NATS server and free ports, with the simulator as the provider,
# behind the local gateway. One screenshot per test under target/browser-tests/. Then the
# operations checks on the same platform (deploy/local/platform_checks.py). Called by test.sh;
# runs alone too.
# Arguments name test files to run instead of all of them: `browser-test.sh budget` runs
# browser-tests/budget.test.mjs.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
    echo "[browser-test] installing chromium (Debian)" >&2
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

bash deploy/local/services.sh
browser_database=simplatform_browser_$$
drop_database() {
    psql -h 127.0.0.1 -U postgres -d postgres -qc "drop database if exists $browser_database with (force)" || true
}
drop_database

free_ports() {
    python3 -c 'import socket
socks = [socket.socket() for _ in range(int(__import__("sys").argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
read -r p_command p_query p_projectors p_connector p_simulator p_gateway p_nats p_limited <<<"$(free_ports 8)"

export RUN_DIR=.run/browser-test
rm -rf "$RUN_DIR"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$browser_database
export COMMAND_ADDR=127.0.0.1:$p_command QUERY_ADDR=127.0.0.1:$p_query
export PROJECTORS_ADDR=127.0.0.1:$p_projectors CONNECTOR_ADDR=127.0.0.1:$p_connector
export SIMULATOR_ADDR=127.0.0.1:$p_simulator GATEWAY_ADDR=127.0.0.1:$p_gateway RUN_NATS_PORT=$p_nats
# Its own NATS server (platform.sh starts one when NATS_URL is unset) and Redis keys.
unset NATS_URL ONCE_API_URL
export REDIS_KEY_PREFIX=browser-test-$$
export SIMULATOR_SIMS=${BROWSER_TEST_SIMS:-50} SYNC_POLL_INTERVAL_SECS=2
export BOOTSTRAP_ADMIN_USERNAME=admin BOOTSTRAP_ADMIN_PASSWORD=browser-test-admin
# The connector's Data Streamer receiver on, and the simulator streaming its usage and events
# into it (platform.sh points it there) throughout the tests, as the run command does;
# platform_checks.py then checks that every record delivered arrived.
export STREAMER_BASIC_AUTH=1nce:browser-test-streamer-$$
# Every browser request comes from 127.0.0.1: far above the production limit of 100 a minute
# (the limit itself is tested on a second gateway below).
export GATEWAY_RATE_LIMIT=${GATEWAY_RATE_LIMIT:-100000}
# A slow bulk worker (a job over the 50 SIMs runs ~10 s), so that the test cancelling a running
# job cancels before the last item; the other jobs of the tests have a few items each.
export BULK_ITEMS_PER_SEC=${BROWSER_TEST_BULK_ITEMS_PER_SEC:-5}
# Every test logs in, as the admin and from 127.0.0.1: the login limit per IP and username
# (default 10 a minute; its own tests are the command API's) would refuse the suite's pace.
export LOGIN_RATE_PER_MINUTE=600

# The services in the profile `cargo test` built (BROWSER_TEST_PROFILE=release to measure them
# as they run in production).
export PLATFORM_PROFILE=${BROWSER_TEST_PROFILE:-debug}
source deploy/local/platform.sh
# platform.sh stops the services when this shell exits; the database goes after them.
trap 'stop; drop_database' EXIT INT TERM

# The UI's own checks (platform.sh ran `npm ci` and the build, which type-checks and keeps the
# bundle budget): the generated API types match the services' documents (a route changed
# without `npm run gen:api` fails here), and the unit tests.
bin_abs=$(cd "$bin_dir" && pwd)
(cd query-service/web && OPENAPI_BIN_DIR="$bin_abs" npm run --silent check:api && npm test --silent)

export BROWSER_TEST_URL="http://$GATEWAY_ADDR" BROWSER_TEST_OUT="$PWD/target/browser-tests"
export BROWSER_TEST_SIMS=$SIMULATOR_SIMS
rm -rf "$BROWSER_TEST_OUT" && mkdir -p "$BROWSER_TEST_OUT"
if [ $# -gt 0 ]; then
    files=()
    for name in "$@"; do files+=("browser-tests/$name.test.mjs"); done
    (cd query-service/web && node --test --test-concurrency=1 "${files[@]}")
else
    (cd query-service/web && npm run --silent test:browser)
fi
echo "[browser-test] screenshots in $BROWSER_TEST_OUT" >&2

# Operations checks on the same platform, after the browser tests (the checks register a SIM,
# which the tests' fleet counts must not see; the tests' traffic makes every metric appear):
# requests through the gateway (routing, request ids, headers, body limit), the rate limit on
# a second gateway with the production limit, every metric the alert rules and dashboards
# read exported by the services, and the streamed records all received
# (deploy/local/platform_checks.py).
python3 -c 'import promql_parser' 2>/dev/null || python3 -m pip install --quiet promql-parser
start_gateway gateway-limited "127.0.0.1:$p_limited" 100
python3 deploy/local/platform_checks.py --gateway "http://$GATEWAY_ADDR" \
    --limited-gateway "http://127.0.0.1:$p_limited" --run-dir "$RUN_DIR" \
    --services "$COMMAND_ADDR,$QUERY_ADDR,$PROJECTORS_ADDR,$CONNECTOR_ADDR" \
    --admin-password "$BOOTSTRAP_ADMIN_PASSWORD" \
    --command "$COMMAND_ADDR" --query "$QUERY_ADDR" \
    --connector "$CONNECTOR_ADDR" --simulator "$SIMULATOR_ADDR"
