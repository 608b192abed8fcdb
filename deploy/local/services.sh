#!/usr/bin/env bash
# Starts what the platform needs on this machine when it is not running already:
# PostgreSQL (127.0.0.1:5432, user postgres), NATS with JetStream (127.0.0.1:4222) and Redis
# (127.0.0.1:6379). Installs them from Debian's packages when they are missing (needs root).
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; return 1; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 100); do port_open "$port" && return 0; sleep 0.2; done
    log "$name did not start listening on 127.0.0.1:$port"; return 1
}

apt_updated=""
install_packages() {
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null; then
        log "installing PostgreSQL"; install_packages postgresql postgresql-client
    fi
    if ! port_open 5432; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -1)
        log "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_port 5432 PostgreSQL
    fi
    # A fresh Debian install asks for a password on TCP; this platform's local default is
    # trust for the loopback address (development machines only).
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
        local version hba
        version=$(ls /etc/postgresql | sort -V | tail -1)
        hba=/etc/postgresql/$version/main/pg_hba.conf
        log "allowing trust auth for postgres on 127.0.0.1 in $hba"
        as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        sleep 1
    fi
}

ensure_nats() {
    if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
        log "installing NATS"; install_packages nats-server
    fi
    if ! port_open 4222; then
        log "starting NATS with JetStream"
        as_root mkdir -p /var/lib/nats-server
        as_root start-stop-daemon --start --oknodo --background \
            --exec "$(command -v nats-server || echo /usr/sbin/nats-server)" -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
        wait_port 4222 NATS
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null; then
        log "installing Redis"; install_packages redis-server
    fi
    if ! port_open 6379; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
        wait_port 6379 Redis
    fi
}

# Creates a database when it is missing.
ensure_database() {
    local name=$1
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = '$name'" | grep -q 1; then
        log "creating database $name"
        psql -h 127.0.0.1 -U postgres -d postgres -qc "create database \"$name\""
    fi
}

ensure_postgres
ensure_nats
ensure_redis
for database in "$@"; do ensure_database "$database"; done
log "PostgreSQL, NATS and Redis are up"
