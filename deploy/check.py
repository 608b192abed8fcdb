#!/usr/bin/env python3
"""Static checks of the deploy files (no Docker engine or cluster on the development machines):
every YAML parses; every service the compose file and the Kubernetes manifests run is a binary
of this workspace; every Kubernetes Deployment probes /ready and /health on the port its
*_ADDR variable listens on; Prometheus scrapes every service."""
import glob
import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
binaries = {p.parent.parent.name if p.parent.name == "src" else p.stem
            for p in root.glob("*/src/main.rs")} | {p.parent.parent.name for p in root.glob("crates/*/src/main.rs")}
problems = []

def load_all(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as error:
        problems.append(f"{path}: {error}")
        return []

compose = load_all(root / "deploy/compose/compose.yaml")[0]
for name, service in compose["services"].items():
    if service.get("image", "").startswith("sim-platform"):
        binary = service["command"][0]
        if binary not in binaries:
            problems.append(f"compose service {name} runs {binary}, which is not a workspace binary")

deployments = {}
for path in sorted((root / "deploy/k8s").glob("*.yaml")):
    for doc in load_all(path):
        if doc.get("kind") == "Kustomization":
            for resource in doc["resources"]:
                if not (root / "deploy/k8s" / resource).exists():
                    problems.append(f"kustomization lists a missing file {resource}")
        if doc.get("kind") != "Deployment":
            continue
        name = doc["metadata"]["name"]
        container = doc["spec"]["template"]["spec"]["containers"][0]
        if container["image"] == "sim-gateway":
            # nginx with the dashboard (no workspace binary): probed on the page it serves.
            for probe in ("readinessProbe", "livenessProbe"):
                if container.get(probe, {}).get("httpGet", {}).get("path") != "/":
                    problems.append(f"deployment {name}: {probe} must GET /")
            continue
        deployments[name] = container
        if container["args"][0] not in binaries:
            problems.append(f"deployment {name} runs {container['args'][0]}, not a workspace binary")
        port = container["ports"][0]["containerPort"]
        addrs = [e["value"] for e in container.get("env", []) if e["name"].endswith("_ADDR")]
        if not addrs or not addrs[0].endswith(f":{port}"):
            problems.append(f"deployment {name}: its *_ADDR {addrs} does not listen on port {port}")
        for probe, path_ in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path_:
                problems.append(f"deployment {name}: {probe} must GET {path_}")

missing = binaries - set(deployments) - {"once-simulator"} if deployments else set()
for binary in sorted(missing):
    problems.append(f"no Kubernetes deployment runs {binary}")

prometheus = load_all(root / "deploy/prometheus/prometheus.yml")[0]
scraped = {job["job_name"] for job in prometheus["scrape_configs"]}
for binary in sorted(binaries - scraped):
    problems.append(f"Prometheus does not scrape {binary}")

import json

for path in sorted((root / "deploy/grafana").rglob("*.json")):
    try:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            if not panel["targets"][0]["expr"]:
                problems.append(f"{path}: panel {panel['title']!r} has no query")
    except (ValueError, KeyError) as error:
        problems.append(f"{path}: {error}")
for path in sorted((root / "deploy/grafana").rglob("*.yaml")):
    load_all(path)
mounted = [v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", []) if v.startswith("..")]
for volume in mounted:
    if not (root / "deploy/compose" / volume).resolve().exists():
        problems.append(f"compose mounts {volume}, which does not exist")
# NATS: the Kubernetes copy of the users and permissions is the file itself; every service
# that talks to NATS has a user of its own in compose and Kubernetes; the local configuration
# is one Debian's nats-server 2.9 accepts.
import os
import shutil
import subprocess

auth = (root / "deploy/nats/auth.conf").read_text()
k8s_auth = [d for d in load_all(root / "deploy/k8s/nats-auth.yaml") if d.get("kind") == "ConfigMap"]
if not k8s_auth or k8s_auth[0]["data"]["auth.conf"] != auth:
    problems.append("deploy/k8s/nats-auth.yaml differs from deploy/nats/auth.conf")
users = set(re.findall(r"\{ user: (\w+), password: \$\w+, permissions: \$\w+ \}", auth))
expected_users = {"command-service": {"command"}, "projectors": {"projectors", "relay"}, "sync-connector": {"connector"}}
for binary, needed in expected_users.items():
    for user in needed:
        if user not in users:
            problems.append(f"deploy/nats/auth.conf has no user {user} (for {binary})")
    service = compose["services"][binary]
    given = {service["environment"].get("NATS_USER"), service["environment"].get("RELAY_NATS_USER")} - {None}
    if given != needed:
        problems.append(f"compose service {binary} connects to NATS as {given}, expected {needed}")
    container = deployments.get(binary, {})
    given = {e.get("value") for e in container.get("env", []) if e["name"] in ("NATS_USER", "RELAY_NATS_USER")}
    if given != needed:
        problems.append(f"deployment {binary} connects to NATS as {given}, expected {needed}")
nats_server = shutil.which("nats-server") or "/usr/sbin/nats-server"
if os.path.exists(nats_server):
    env = dict(os.environ, **{f"NATS_{u.upper()}_PASSWORD": "check" for u in users})
    checked = subprocess.run([nats_server, "-t", "-c", str(root / "deploy/nats/local.conf")],
                             env=env, capture_output=True, text=True)
    if checked.returncode != 0:
        problems.append(f"nats-server refuses deploy/nats/local.conf: {checked.stderr.strip()}")

# The gateway: nginx accepts its configurations (when nginx is installed), and compose builds
# the gateway image with the dashboard.
for conf in ("deploy/nginx/nginx.conf", "deploy/nginx/routes.conf", "deploy/local/gateway.conf.template"):
    text = (root / conf).read_text()
    if text.count("{") != text.count("}"):
        problems.append(f"{conf}: unbalanced braces")
if compose["services"]["gateway"].get("build", {}).get("target") != "gateway":
    problems.append("compose service gateway must build deploy/Dockerfile's target gateway (the dashboard)")
nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
if os.path.exists(nginx_bin):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rendered = (root / "deploy/local/gateway.conf.template").read_text()
        for key, value in {"USER": "", "RUN_DIR": tmp, "REPO": str(root), "WEB_ROOT": tmp,
                           "GATEWAY_ADDR": "127.0.0.1:1", "COMMAND_ADDR": "127.0.0.1:2",
                           "QUERY_ADDR": "127.0.0.1:3", "CONNECTOR_ADDR": "127.0.0.1:4"}.items():
            rendered = rendered.replace(f"@{key}@", value)
        (pathlib.Path(tmp) / "gateway.conf").write_text(rendered)
        (pathlib.Path(tmp) / "gateway-tmp").mkdir()
        checked = subprocess.run([nginx_bin, "-t", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/gateway.conf"],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append(f"nginx refuses deploy/local/gateway.conf.template (with routes.conf): {checked.stderr.strip()}")

if problems:
    print("deploy files:", *problems, sep="\n  ")
    sys.exit(1)
print(f"deploy files: ok ({len(binaries)} binaries, {len(deployments)} deployments)")
