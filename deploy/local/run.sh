#!/usr/bin/env bash
# Runs the platform on this machine: starts (or installs) PostgreSQL, NATS and Redis, builds the
# services, starts them with a bootstrap admin, and prints how to log in. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/services.sh simplatform

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/simplatform}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export COMMAND_ADDR=${COMMAND_ADDR:-127.0.0.1:8081}
export QUERY_ADDR=${QUERY_ADDR:-127.0.0.1:8080}
export PROJECTORS_ADDR=${PROJECTORS_ADDR:-127.0.0.1:9101}
export CONNECTOR_ADDR=${CONNECTOR_ADDR:-127.0.0.1:9102}
export SIMULATOR_ADDR=${SIMULATOR_ADDR:-127.0.0.1:8090}
# No 1NCE credentials: the built-in simulator is the provider (see docs/sync-connector.md to
# point the connector at the real API instead).
if [ -z "${ONCE_API_URL:-}" ]; then
    export ONCE_API_URL="http://$SIMULATOR_ADDR"
    export SIMULATOR_SIMS=${SIMULATOR_SIMS:-200}
    export SIMULATOR_CLOCK_SPEED=${SIMULATOR_CLOCK_SPEED:-60}
    export SYNC_POLL_INTERVAL_SECS=${SYNC_POLL_INTERVAL_SECS:-60}
    with_simulator=1
else
    with_simulator=0
fi
export BOOTSTRAP_ADMIN_USERNAME=${BOOTSTRAP_ADMIN_USERNAME:-admin}
export BOOTSTRAP_ADMIN_PASSWORD=${BOOTSTRAP_ADMIN_PASSWORD:-admin-change-me}

echo "[run] building the services (release)…" >&2
cargo build --release --locked -p command-service -p query-service -p projectors -p sync-connector -p once-simulator

mkdir -p .run
pids=()
stop() {
    echo "[run] stopping" >&2
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# start NAME [VAR=value ...]: a service with extra environment, logging to .run/NAME.log.
start() {
    local name=$1; shift
    env "$@" "./target/release/$name" > ".run/$name.log" 2>&1 &
    pids+=($!)
    echo "[run] $name started (pid $!, log .run/$name.log)" >&2
}

# NATS with the platform's users and permissions (deploy/nats/auth.conf: only the relay
# publishes events), unless NATS_URL names another server. It listens on RUN_NATS_PORT
# (default 4223), beside the machine's own NATS on 4222 if there is one, and keeps its store
# in .run/nats. The passwords are development defaults unless set.
nats_users=(relay projectors connector command downstream)
for user in "${nats_users[@]}"; do
    var="NATS_${user^^}_PASSWORD"
    export "$var=${!var:-dev-$user-password}"
done
if [ -z "${NATS_URL:-}" ]; then
    nats_port=${RUN_NATS_PORT:-4223}
    mkdir -p .run/nats
    nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    "$nats_bin" -c deploy/nats/local.conf -a 127.0.0.1 -p "$nats_port" -sd .run/nats \
        > .run/nats-server.log 2>&1 &
    pids+=($!)
    echo "[run] nats-server started on 127.0.0.1:$nats_port (users of deploy/nats/auth.conf; log .run/nats-server.log)" >&2
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
    export NATS_URL="nats://127.0.0.1:$nats_port"
fi

wait_ready() {
    local name=$1 url=$2
    for _ in $(seq 1 150); do
        if curl -fsS "$url" >/dev/null 2>&1; then echo "[run] $name is ready" >&2; return 0; fi
        sleep 0.2
    done
    echo "[run] $name did not become ready; see .run/$name.log" >&2
    tail -20 ".run/$name.log" >&2
    return 1
}

start command-service NATS_USER=command NATS_PASSWORD="$NATS_COMMAND_PASSWORD"
wait_ready command-service "http://$COMMAND_ADDR/ready"
start projectors NATS_USER=projectors NATS_PASSWORD="$NATS_PROJECTORS_PASSWORD" \
    RELAY_NATS_USER=relay RELAY_NATS_PASSWORD="$NATS_RELAY_PASSWORD"
wait_ready projectors "http://$PROJECTORS_ADDR/ready"
start query-service
wait_ready query-service "http://$QUERY_ADDR/ready"
if [ "$with_simulator" = 1 ]; then
    start once-simulator
    wait_ready once-simulator "http://$SIMULATOR_ADDR/ready"
fi
start sync-connector NATS_USER=connector NATS_PASSWORD="$NATS_CONNECTOR_PASSWORD"
wait_ready sync-connector "http://$CONNECTOR_ADDR/ready"

cat <<MSG

The platform is running.
  command API  http://$COMMAND_ADDR/api/v1   (health: /health, /ready, /metrics; /openapi.json)
  query API    http://$QUERY_ADDR/api/v1   (health: /health, /ready, /metrics; /openapi.json)
  projectors   http://$PROJECTORS_ADDR/metrics   (the relay to NATS JetStream runs inside)
  connector    http://$CONNECTOR_ADDR/metrics   (polls $ONCE_API_URL, carries out requests there)
  NATS         $NATS_URL   (stream SIM_EVENTS, subjects sim.v1.>; read-only user downstream,
               password \$NATS_DOWNSTREAM_PASSWORD = $NATS_DOWNSTREAM_PASSWORD)
MSG
if [ "$with_simulator" = 1 ]; then
    echo "  1NCE (simulated) $ONCE_API_URL   ($SIMULATOR_SIMS SIMs; admin API under /_admin, see docs/simulator.md)"
fi
cat <<MSG

Log in as the bootstrap admin (created only if no user existed yet):
  curl -s -X POST http://$COMMAND_ADDR/api/v1/auth/login \\
       -H 'Content-Type: application/json' \\
       -d '{"username":"$BOOTSTRAP_ADMIN_USERNAME","password":"$BOOTSTRAP_ADMIN_PASSWORD"}'

Then register a SIM with the access token:
  curl -s -X POST http://$COMMAND_ADDR/api/v1/sims \\
       -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"iccid":"8988303000123456789","imsi":"901405100000001","label":"demo"}'

The connector registers the provider's SIMs on its first poll (a minute or two); list them:
  curl -s 'http://$QUERY_ADDR/api/v1/sims?page_size=5' -H "Authorization: Bearer \$TOKEN"

and read one back, waiting until the read models have a write (its "position"):
  curl -s http://$QUERY_ADDR/api/v1/sims/8988303000123456789 \\
       -H "Authorization: Bearer \$TOKEN" -H "X-Consistency-Token: <position>"

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
