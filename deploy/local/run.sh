#!/usr/bin/env bash
# Runs the platform on this machine: starts (or installs) PostgreSQL, NATS, Redis and nginx,
# builds the services and the dashboard, starts them with a bootstrap admin behind the local
# gateway, and prints how to log in. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."

# With the simulator as the provider, the connector's Data Streamer receiver is on with a local
# random secret, and the simulator streams to it with the same (platform.sh): live usage and
# events without spending the polling budget. Set STREAMER_BASIC_AUTH to choose the secret.
if [ -z "${ONCE_API_URL:-}" ] && [ -z "${STREAMER_BASIC_AUTH:-}" ]; then
    STREAMER_BASIC_AUTH="1nce:$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    export STREAMER_BASIC_AUTH
fi

# Builds and starts everything (services, dashboard, gateway); stops it all on exit.
source deploy/local/platform.sh

cat <<MSG

The platform is running: open http://$GATEWAY_ADDR and log in as $BOOTSTRAP_ADMIN_USERNAME / $BOOTSTRAP_ADMIN_PASSWORD
(the bootstrap admin, created only if no user existed yet).

  dashboard    http://$GATEWAY_ADDR/   (gateway: both APIs under /api/v1 too; log .run/gateway.log)
  command API  http://$COMMAND_ADDR/api/v1   (health: /health, /ready, /metrics; /openapi.json)
  query API    http://$QUERY_ADDR/api/v1   (health: /health, /ready, /metrics; /openapi.json)
  projectors   http://$PROJECTORS_ADDR/metrics   (the relay to NATS JetStream runs inside)
  connector    http://$CONNECTOR_ADDR/metrics   (polls $ONCE_API_URL, carries out requests there)
  NATS         $NATS_URL   (stream SIM_EVENTS, subjects sim.v1.>; read-only user downstream,
               password \$NATS_DOWNSTREAM_PASSWORD = $NATS_DOWNSTREAM_PASSWORD)
MSG
if [ "$with_simulator" = 1 ]; then
    echo "  1NCE (simulated) $ONCE_API_URL   ($SIMULATOR_SIMS SIMs; admin API under /_admin, see docs/simulator.md)"
    if [ -n "${SIMULATOR_STREAM_URL:-}" ]; then
        echo "  Data Streamer    the simulator pushes usage and events to $SIMULATOR_STREAM_URL"
        echo "                   (state: http://$SIMULATOR_ADDR/_admin/stream; reset: POST …/_admin/stream/reset)"
    fi
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
