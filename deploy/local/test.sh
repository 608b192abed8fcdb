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

# Static checks of the compose file, the Kubernetes manifests and the Prometheus config.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
python3 deploy/check.py
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# Both APIs fuzzed against their own OpenAPI documents (no 5xx, every answer as documented).
bash deploy/local/schemathesis.sh
