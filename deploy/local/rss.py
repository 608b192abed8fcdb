#!/usr/bin/env python3
"""Resident memory (VmRSS) of the platform's services, idle and under load.

Run the platform first (`bash deploy/local/run.sh`, any ports), then:

    python3 deploy/local/rss.py [--seconds 60] [--threads 16]

It samples /proc/<pid>/status of every running `target/release/<service>` process each
0.5 s: for 10 s idle, then while `--threads` clients send commands (register a SIM, rename it)
to the command API and read (the SIM, a filtered list, the fleet summary) from the query API,
then for 10 s after. Prints one table row per service: idle, peak under load, after. The
standard library only: no dependencies.
"""

import argparse
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

SERVICES = ["command-service", "query-service", "projectors", "sync-connector", "once-simulator"]


def pids():
    found = {}
    for name in SERVICES:
        out = subprocess.run(["pgrep", "-f", f"target/release/{name}$"], capture_output=True, text=True)
        for pid in out.stdout.split():
            found[name] = int(pid)
    return found


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def request(method, url, token=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, b""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--command", default=os.environ.get("COMMAND_URL", "http://127.0.0.1:8081"))
    parser.add_argument("--query", default=os.environ.get("QUERY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--user", default=os.environ.get("BOOTSTRAP_ADMIN_USERNAME", "admin"))
    parser.add_argument("--password", default=os.environ.get("BOOTSTRAP_ADMIN_PASSWORD", "admin-change-me"))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    processes = pids()
    if not processes:
        raise SystemExit("no target/release/<service> process runs: start deploy/local/run.sh first")
    status, body = request("POST", f"{args.command}/api/v1/auth/login",
                           body={"username": args.user, "password": args.password})
    if status != 200:
        raise SystemExit(f"login failed: {status} {body[:200]!r}")
    token = json.loads(body)["access_token"]

    samples = {name: {"idle": [], "load": [], "after": []} for name in processes}
    phase = ["idle"]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            for name, pid in processes.items():
                value = rss_kib(pid)
                if value is not None:
                    samples[name][phase[0]].append(value)
            time.sleep(0.5)

    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    run_id = int(time.time()) % 100000

    def client(index):
        n = 0
        while phase[0] == "load":
            iccid = f"8988307{run_id:05d}{index:03d}{n:04d}"[:19]
            n += 1
            calls = [
                ("POST", f"{args.command}/api/v1/sims",
                 {"iccid": iccid, "imsi": "901405100000001", "label": f"rss {n}"}, {201}),
                ("PATCH", f"{args.command}/api/v1/sims/{iccid}", {"label": f"rss renamed {n}"}, {200}),
                ("GET", f"{args.query}/api/v1/sims/{iccid}", None, {200, 404}),
                ("GET", f"{args.query}/api/v1/sims?status=inactive&page_size=50", None, {200}),
                ("GET", f"{args.query}/api/v1/fleet/summary", None, {200}),
            ]
            for method, url, body, good in calls:
                status, _ = request(method, url, token, body)
                with lock:
                    counts["ok" if status in good else "errors"] += 1

    threading.Thread(target=sampler, daemon=True).start()
    time.sleep(10)
    phase[0] = "load"
    started = time.time()
    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.threads)]
    for thread in clients:
        thread.start()
    time.sleep(args.seconds)
    phase[0] = "after"
    for thread in clients:
        thread.join(timeout=15)
    elapsed = time.time() - started
    time.sleep(10)
    stop.set()

    print(f"load: {args.threads} clients for {elapsed:.0f} s, {counts['ok']} requests answered as expected "
          f"({counts['ok'] / elapsed:.0f}/s), {counts['errors']} otherwise\n")
    print("| service | RSS idle MiB | RSS peak under load MiB | RSS 10 s after MiB |")
    print("|---|---|---|---|")
    mib = lambda values, pick: f"{pick(values) / 1024:.1f}" if values else "-"
    for name in processes:
        s = samples[name]
        print(f"| {name} | {mib(s['idle'], max)} | {mib(s['load'], max)} | {mib(s['after'], lambda v: v[-1])} |")


if __name__ == "__main__":
    main()
