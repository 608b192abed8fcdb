#!/usr/bin/env bash
# Runs the whole test suite against the real PostgreSQL, NATS and Redis of this machine,
# starting (or installing) them when needed. Every test gets its own database.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/services.sh simplatform_test

# #[sqlx::test] creates one database per test on the server named here.
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/simplatform_test}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

# Static checks of the compose file, the Kubernetes manifests (kubernetes-validate against the
# Kubernetes schemas, offline), nginx (nginx -t, TLS included), the Prometheus
# rules (promtool check/test rules), Alertmanager (amtool) and the Grafana dashboards (every
# query parses).
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
python3 -c 'import promql_parser' 2>/dev/null || python3 -m pip install --quiet promql-parser
command -v kubernetes-validate >/dev/null || python3 -m pip install --quiet kubernetes-validate
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null \
    || { ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; }; then
    echo "[test] installing promtool, amtool and nginx (Debian's prometheus, prometheus-alertmanager, nginx-light)" >&2
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-alertmanager nginx-light openssl >/dev/null
fi
python3 deploy/check.py
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The dashboard in a real browser (Debian's chromium) against the services through the gateway,
# after the operations checks on the same running platform (deploy/local/platform_checks.py:
# the gateway's routing, headers and rate limit; every metric the rules and dashboards read).
bash deploy/local/browser-test.sh

# Tests that need TimescaleDB run whenever the server has it; say so when it does not (they
# pass as "not run" there, which a passing line would hide). TEST_DATABASE_URL can name a
# TimescaleDB server (shared_preload_libraries = 'timescaledb') to run the whole suite on it.
if [ "$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'" 2>/dev/null)" = "1" ]; then
    echo "TimescaleDB: present on the test server; the whole suite ran on it, TimescaleDB-only tests included"
else
    echo "TimescaleDB: NOT on the test server; TimescaleDB-only tests NOT RUN:" \
        "$( (grep -rhoE 'NOT RUN: [a-z_0-9]+' --include=*.rs crates projectors query-service command-service sync-connector || true) | sed 's/NOT RUN: //' | tr '\n' ' ')"
fi

# Both APIs fuzzed against their own OpenAPI documents (no 5xx, every answer as documented).
bash deploy/local/schemathesis.sh
