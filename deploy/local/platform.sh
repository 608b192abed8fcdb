# Starts the platform from this checkout: sourced by run.sh (the run command) and
# browser-test.sh, which set what differs (database, ports, RUN_DIR) before sourcing it.
# Starts PostgreSQL, NATS and Redis when needed, builds the services (release unless
# PLATFORM_PROFILE=debug) and the dashboard, starts every service and the local gateway
# (Debian's nginx, installed when missing), and stops them all when the calling shell exits.
# Logs go to $RUN_DIR/<name>.log.
# shellcheck shell=bash

RUN_DIR=$(mkdir -p "${RUN_DIR:-.run}" && cd "${RUN_DIR:-.run}" && pwd)
database_name=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/simplatform}
database_name=${database_name##*/}
bash deploy/local/services.sh "${database_name%%\?*}"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/simplatform}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export COMMAND_ADDR=${COMMAND_ADDR:-127.0.0.1:8081}
export QUERY_ADDR=${QUERY_ADDR:-127.0.0.1:8080}
export PROJECTORS_ADDR=${PROJECTORS_ADDR:-127.0.0.1:9101}
export CONNECTOR_ADDR=${CONNECTOR_ADDR:-127.0.0.1:9102}
export SIMULATOR_ADDR=${SIMULATOR_ADDR:-127.0.0.1:8090}
export GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8000}
# No 1NCE credentials: the built-in simulator is the provider (see docs/sync-connector.md to
# point the connector at the real API instead).
if [ -z "${ONCE_API_URL:-}" ]; then
    export ONCE_API_URL="http://$SIMULATOR_ADDR"
    export SIMULATOR_SIMS=${SIMULATOR_SIMS:-200}
    export SIMULATOR_CLOCK_SPEED=${SIMULATOR_CLOCK_SPEED:-60}
    export SYNC_POLL_INTERVAL_SECS=${SYNC_POLL_INTERVAL_SECS:-60}
    # The simulator also pushes its usage and events, as 1NCE's Data Streamer would, to the
    # connector's receiver (POST /1nce/data-streamer) with the credentials the receiver checks:
    # only when the receiver is configured (STREAMER_BASIC_AUTH; run.sh sets a local secret).
    # A receiver that is not there yet only costs the simulator retries, then its stream FAILS
    # (GET /_admin/stream); nothing else depends on it.
    if [ -n "${STREAMER_BASIC_AUTH:-}" ] && [ -z "${SIMULATOR_STREAM_URL:-}" ]; then
        export SIMULATOR_STREAM_URL="http://$CONNECTOR_ADDR/1nce/data-streamer"
        export SIMULATOR_STREAM_BASIC_AUTH=${SIMULATOR_STREAM_BASIC_AUTH:-$STREAMER_BASIC_AUTH}
    fi
    with_simulator=1
else
    with_simulator=0
fi
export BOOTSTRAP_ADMIN_USERNAME=${BOOTSTRAP_ADMIN_USERNAME:-admin}
export BOOTSTRAP_ADMIN_PASSWORD=${BOOTSTRAP_ADMIN_PASSWORD:-admin-change-me}

# PLATFORM_PROFILE=debug uses the test build's profile instead: the browser tests take it, as
# `cargo test` has compiled nearly everything already (a release build is ~10 more minutes on
# two cores).
services=(-p command-service -p query-service -p projectors -p sync-connector -p once-simulator)
if [ "${PLATFORM_PROFILE:-release}" = debug ]; then
    echo "[run] building the services (debug)…" >&2
    cargo build --locked "${services[@]}"
    bin_dir=${CARGO_TARGET_DIR:-target}/debug
else
    echo "[run] building the services (release)…" >&2
    cargo build --release --locked "${services[@]}"
    bin_dir=${CARGO_TARGET_DIR:-target}/release
fi

# The dashboard: static files served by the gateway (no Node at run time).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "[run] Node.js 20+ and npm are needed to build the dashboard (apt-get install nodejs npm)" >&2
    exit 1
fi
echo "[run] building the dashboard (query-service/web)…" >&2
(cd query-service/web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build) >&2

pids=()
stop() {
    echo "[run] stopping" >&2
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# start NAME [VAR=value ...]: a service with extra environment, logging to $RUN_DIR/NAME.log.
start() {
    local name=$1; shift
    env "$@" "$bin_dir/$name" > "$RUN_DIR/$name.log" 2>&1 &
    pids+=($!)
    echo "[run] $name started (pid $!, log $RUN_DIR/$name.log)" >&2
}

# NATS with the platform's users and permissions (deploy/nats/auth.conf: only the relay
# publishes events), unless NATS_URL names another server. It listens on RUN_NATS_PORT
# (default 4223), beside the machine's own NATS on 4222 if there is one, and keeps its store
# in $RUN_DIR/nats. The passwords are development defaults unless set.
nats_users=(relay projectors connector command downstream)
for user in "${nats_users[@]}"; do
    var="NATS_${user^^}_PASSWORD"
    export "$var=${!var:-dev-$user-password}"
done
if [ -z "${NATS_URL:-}" ]; then
    nats_port=${RUN_NATS_PORT:-4223}
    mkdir -p "$RUN_DIR/nats"
    nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    "$nats_bin" -c deploy/nats/local.conf -a 127.0.0.1 -p "$nats_port" -sd "$RUN_DIR/nats" \
        > "$RUN_DIR/nats-server.log" 2>&1 &
    pids+=($!)
    echo "[run] nats-server started on 127.0.0.1:$nats_port (users of deploy/nats/auth.conf; log $RUN_DIR/nats-server.log)" >&2
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
    export NATS_URL="nats://127.0.0.1:$nats_port"
fi

wait_ready() {
    local name=$1 url=$2
    for _ in $(seq 1 150); do
        if curl -fsS "$url" >/dev/null 2>&1; then echo "[run] $name is ready" >&2; return 0; fi
        sleep 0.2
    done
    echo "[run] $name did not become ready; see $RUN_DIR/$name.log" >&2
    tail -20 "$RUN_DIR/$name.log" >&2
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

# The gateway: Debian's nginx with a configuration rendered into $RUN_DIR.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "[run] installing nginx (Debian's nginx-light)" >&2
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi
# As root, nginx's workers would switch to an unprivileged user that cannot write the run
# directory; they stay the user who started them.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
# render_gateway NAME ADDR RATE_LIMIT: the template as $RUN_DIR/NAME.conf, logging to
# $RUN_DIR/NAME.log and NAME-access.log (deploy/local/platform-checks.sh starts a second one).
render_gateway() {
    local name=$1 addr=$2 limit=$3
    mkdir -p "$RUN_DIR/$name-tmp"
    sed -e "s|@USER@|$user_line|" -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@REPO@|$PWD|g" \
        -e "s|@WEB_ROOT@|$PWD/query-service/web/dist|g" -e "s|@GATEWAY_ADDR@|$addr|g" \
        -e "s|@COMMAND_ADDR@|$COMMAND_ADDR|g" -e "s|@QUERY_ADDR@|$QUERY_ADDR|g" \
        -e "s|@CONNECTOR_ADDR@|$CONNECTOR_ADDR|g" \
        -e "s|@RATE_LIMIT@|$limit|g" -e "s|@RATE_BURST@|$((limit - 1))|g" \
        -e "s|@RATE_RESET@|$(( (60 + limit - 1) / limit ))|g" \
        -e "s|/gateway-tmp/|/$name-tmp/|g" -e "s|/gateway.pid|/$name.pid|" \
        -e "s|/gateway.log|/$name.log|" -e "s|/gateway-access.log|/$name-access.log|" \
        deploy/local/gateway.conf.template > "$RUN_DIR/$name.conf"
}
# start_gateway NAME ADDR RATE_LIMIT: nginx with that configuration, stopped with the others.
start_gateway() {
    local name=$1 addr=$2
    render_gateway "$@"
    "$nginx_bin" -p "$RUN_DIR" -e "$RUN_DIR/$name.log" -c "$RUN_DIR/$name.conf" -g 'daemon off;' \
        >> "$RUN_DIR/$name.log" 2>&1 &
    pids+=($!)
    echo "[run] $name (nginx) started on $addr (pid $!, log $RUN_DIR/$name.log)" >&2
    wait_ready "$name" "http://$addr/"
}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
# GATEWAY_RATE_LIMIT: API requests a minute per client address (the browser tests raise it).
start_gateway gateway "$GATEWAY_ADDR" "${GATEWAY_RATE_LIMIT:-100}"
