#!/usr/bin/env python3
"""Static checks of the deploy files (no Docker engine or cluster on the development machines):
every YAML parses; the monitoring files pass promtool/amtool and their own checks
(check_monitoring.py; `--write` regenerates deploy/k8s/monitoring-config.yaml, and
`--referenced-metrics` lists the metric names the rules and dashboards use); every service the compose file and the Kubernetes manifests run is a binary
of this workspace; every Kubernetes Deployment probes /ready and /health on the port its
*_ADDR variable listens on; Prometheus scrapes every service (command-line tools such as simctl are not services)."""
import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
binaries = {p.parent.parent.name if p.parent.name == "src" else p.stem
            for p in root.glob("*/src/main.rs")} | {p.parent.parent.name for p in root.glob("crates/*/src/main.rs")}
# Command-line tools run by people and scripts, not services: nothing deploys or scrapes them.
tools = {"simctl"}
services = binaries - tools
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
        if container["image"].startswith("prom/"):
            continue  # Prometheus and Alertmanager (monitoring.yaml): no workspace binary
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

# Every manifest against the Kubernetes schemas (PyPI kubernetes-validate, offline, strict:
# unknown fields fail); every replicated Deployment has a PodDisruptionBudget; every
# container has resource requests and a memory limit.
manifests = sorted(str(p) for p in (root / "deploy/k8s").glob("*.yaml") if p.name != "kustomization.yaml")
validator = shutil.which("kubernetes-validate")
if validator:
    validated = subprocess.run([validator, "--strict", "--quiet", *manifests], capture_output=True, text=True)
    if validated.returncode != 0:
        problems.append(f"kubernetes-validate: {(validated.stdout + validated.stderr).strip()}")
else:
    problems.append("kubernetes-validate missing: python3 -m pip install kubernetes-validate")
k8s_docs = [d for p in manifests for d in load_all(pathlib.Path(p))]
budgets = {d["metadata"]["name"] for d in k8s_docs if d.get("kind") == "PodDisruptionBudget"}
for doc in k8s_docs:
    if doc.get("kind") != "Deployment":
        continue
    name = doc["metadata"]["name"]
    if isinstance(doc["spec"].get("replicas"), int) and doc["spec"]["replicas"] > 1 and name not in budgets:
        problems.append(f"deployment {name} has {doc['spec']['replicas']} replicas and no PodDisruptionBudget")
    for container in doc["spec"]["template"]["spec"]["containers"]:
        resources = container.get("resources", {})
        if not resources.get("requests") or "memory" not in resources.get("limits", {}):
            problems.append(f"deployment {name}: container {container['name']} lacks requests or a memory limit")

missing = services - set(deployments) - {"once-simulator"} if deployments else set()
for binary in sorted(missing):
    problems.append(f"no Kubernetes deployment runs {binary}")

prometheus = load_all(root / "deploy/prometheus/prometheus.yml")[0]
scraped = {job["job_name"] for job in prometheus["scrape_configs"]}
for binary in sorted(services - scraped):
    problems.append(f"Prometheus does not scrape {binary}")

# Alerts, recording rules, Alertmanager and dashboards (deploy/check_monitoring.py): promtool
# and amtool accept them, every alert has its tests and runbook, every panel query parses.
sys.path.insert(0, str(root / "deploy"))
import check_monitoring

if "--referenced-metrics" in sys.argv:
    print("\n".join(sorted(check_monitoring.referenced_metrics(root))))
    sys.exit(0)
problems += check_monitoring.check(root, write="--write" in sys.argv)
for path in sorted((root / "deploy/grafana").rglob("*.yaml")):
    load_all(path)
mounted = [v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", []) if v.startswith("..")]
for volume in mounted:
    if not (root / "deploy/compose" / volume).resolve().exists():
        problems.append(f"compose mounts {volume}, which does not exist")
# NATS: the Kubernetes copy of the users and permissions is the file itself; every service
# that talks to NATS has a user of its own in compose and Kubernetes; the local configuration
# is one Debian's nats-server 2.9 accepts.
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
for conf in ("deploy/nginx/nginx.conf", "deploy/nginx/routes.conf", "deploy/nginx/http.conf",
             "deploy/nginx/tls.conf", "deploy/local/gateway.conf.template"):
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
                           "QUERY_ADDR": "127.0.0.1:3", "CONNECTOR_ADDR": "127.0.0.1:4",
                           "RATE_LIMIT": "100", "RATE_BURST": "99", "RATE_RESET": "1"}.items():
            rendered = rendered.replace(f"@{key}@", value)
        (pathlib.Path(tmp) / "gateway.conf").write_text(rendered)
        (pathlib.Path(tmp) / "gateway-tmp").mkdir()
        checked = subprocess.run([nginx_bin, "-t", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/gateway.conf"],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append(f"nginx refuses deploy/local/gateway.conf.template (with routes.conf): {checked.stderr.strip()}")
    # The production gateway as the image runs it, with tls.conf mounted and a throwaway
    # self-signed certificate: /etc/nginx/ becomes the temporary directory, the upstream
    # hosts (unknown here) the loopback address.
    with tempfile.TemporaryDirectory() as tmp:
        etc = pathlib.Path(tmp)
        (etc / "tls").mkdir()
        for name in ("nginx.conf", "routes.conf", "http.conf"):
            text = (root / "deploy/nginx" / name).read_text().replace("/etc/nginx/", f"{tmp}/")
            text = re.sub(r"server [a-z-]+:(\d+);", r"server 127.0.0.1:\1;", text)
            if name == "nginx.conf":
                text = text.replace("events {}", f"pid {tmp}/nginx.pid;\nevents {{}}")
                text = text.replace("listen 80;", "listen 127.0.0.1:1;")
            (etc / name).write_text(text)
        shutil.copy("/etc/nginx/mime.types", etc / "mime.types")
        tls = (root / "deploy/nginx/tls.conf").read_text().replace("/etc/nginx/", f"{tmp}/")
        (etc / "tls" / "server.conf").write_text(tls.replace("listen 443 ssl", "listen 127.0.0.1:2 ssl"))
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                               "-subj", "/CN=gateway.check", "-keyout", str(etc / "tls/tls.key"),
                               "-out", str(etc / "tls/tls.crt")], capture_output=True, text=True)
        if made.returncode != 0:
            problems.append(f"openssl could not make the check's certificate: {made.stderr.strip()}")
        checked = subprocess.run([nginx_bin, "-t", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append(f"nginx refuses deploy/nginx/nginx.conf with tls.conf: {checked.stderr.strip()}")
        tls_text = (root / "deploy/nginx/tls.conf").read_text()
        if not re.search(r"ssl_protocols TLSv1\.2 TLSv1\.3;", tls_text) or "Strict-Transport-Security" not in tls_text:
            problems.append("deploy/nginx/tls.conf must allow TLS 1.2 and 1.3 only and send HSTS")
        if "Strict-Transport-Security" in (root / "deploy/nginx/routes.conf").read_text():
            problems.append("HSTS belongs on the TLS server only (tls.conf), not routes.conf")

if problems:
    print("deploy files:", *problems, sep="\n  ")
    sys.exit(1)
print(f"deploy files: ok ({len(binaries)} binaries, {len(deployments)} deployments)")
