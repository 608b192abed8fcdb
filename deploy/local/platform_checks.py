#!/usr/bin/env python3
"""Operations checks against the running platform (deploy/local/browser-test.sh starts it and
calls this with its addresses):

1. the gateway: a GET reaches the query API and a POST the command API, each with one request
   id from the gateway's access log through the service's log (and, for the command, into the
   stored event's metadata); the security headers are on every answer (no HSTS on plain HTTP);
   the body limit answers 413;
2. the rate limit, on a second gateway with the production limit (100 a minute): 100 API
   requests pass, the 101st answers 429 with X-RateLimit-Limit/Remaining/Reset in the error
   shape, and the dashboard's files are not counted;
3. every metric a Prometheus rule or a Grafana panel reads (deploy/check.py
   --referenced-metrics) is exported by one of the services' /metrics, after the traffic above;
4. the Data Streamer end to end (with --simulator): the simulator, streaming into the
   connector's receiver throughout the browser tests, has both streams ACTIVE with records
   delivered; the connector counted exactly the records the simulator delivered, per stream,
   rejected none, and applied some.
"""
import argparse
import http.client
import json
import pathlib
import random
import re
import sys
import time
import urllib.parse

root = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(root / "deploy"))
import check_monitoring  # noqa: E402

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def request(base, method, path, body=None, headers=None):
    """(status, headers as a dict of lists, body text) of one request on a fresh connection."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    payload = json.dumps(body) if isinstance(body, (dict, list)) else body
    all_headers = {"Content-Type": "application/json"} if payload is not None else {}
    all_headers.update(headers or {})
    connection.request(method, path, body=payload, headers=all_headers)
    response = connection.getresponse()
    answer = {}
    for name, value in response.getheaders():
        answer.setdefault(name.lower(), []).append(value)
    text = response.read().decode(errors="replace")
    connection.close()
    return response.status, answer, text


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def security_headers(what, headers):
    for name, value in SECURITY_HEADERS.items():
        check(headers.get(name) == [value], f"{what}: {name} is {headers.get(name)}, expected {value}")
    csp = headers.get("content-security-policy", [""])
    check(len(csp) == 1 and "default-src 'self'" in csp[0] and "frame-ancestors 'none'" in csp[0],
          f"{what}: Content-Security-Policy is {csp}")
    check("strict-transport-security" not in headers, f"{what}: HSTS on plain HTTP")


def in_file(path, text, seconds=5):
    """Whether `text` shows up in the file within `seconds` (logs are written asynchronously)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def gateway(base, run_dir, password):
    status, headers, _ = request(base, "GET", "/")
    check(status == 200, f"GET / through the gateway: {status}")
    security_headers("GET /", headers)
    check(headers.get("cache-control") == ["no-cache"], f"GET /: Cache-Control {headers.get('cache-control')}")
    index = (root / "query-service/web/dist/index.html").read_text()
    asset = re.search(r'src="(/assets/[^"]+)"', index)
    if check(asset, "the dashboard's index.html names no /assets/ script"):
        status, headers, _ = request(base, "GET", asset.group(1))
        check(status == 200, f"GET {asset.group(1)}: {status}")
        security_headers(f"GET {asset.group(1)}", headers)
        check(headers.get("cache-control") == ["public, max-age=31536000, immutable"],
              f"GET {asset.group(1)}: Cache-Control {headers.get('cache-control')}")

    status, headers, text = request(base, "POST", "/api/v1/auth/login", {"username": "admin", "password": password})
    if not check(status == 200, f"login through the gateway: {status} {text[:200]}"):
        return
    token = json.loads(text)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    # A write: the command API, one request id from the gateway to the stored event.
    iccid = "8988" + "".join(random.choice("0123456789") for _ in range(15))
    imsi = "90140" + "".join(random.choice("0123456789") for _ in range(10))
    status, headers, text = request(base, "POST", "/api/v1/sims", {"iccid": iccid, "imsi": imsi}, auth)
    check(status == 201, f"POST /api/v1/sims through the gateway: {status} {text[:200]}")
    security_headers("POST /api/v1/sims", headers)
    post_id = headers.get("x-request-id", [""])[0]
    position = json.loads(text).get("position") if status == 201 else None
    check(in_file(run_dir / "gateway-access.log", f'"POST /api/v1/sims HTTP/1.1" 201'), "the POST is not in the gateway's log")
    check(in_file(run_dir / "gateway-access.log", f"request_id={post_id}"), f"request id {post_id!r} not in the gateway's access log")
    check(in_file(run_dir / "command-service.log", post_id), f"request id {post_id!r} not in the command API's log")

    # A read: the query API (only it has /events), its own request id end to end.
    status, headers, text = request(base, "GET", f"/api/v1/sims/{iccid}/events",
                                    headers={**auth, "X-Consistency-Token": str(position)})
    check(status == 200, f"GET /api/v1/sims/{{iccid}}/events through the gateway: {status} {text[:200]}")
    security_headers("GET /api/v1/sims/{iccid}/events", headers)
    get_id = headers.get("x-request-id", [""])[0]
    if status == 200:
        events = json.loads(text)
        events = events["events"]
        ids = {e.get("metadata", {}).get("request_id") for e in events}
        check(post_id in ids, f"the stored event's request id {ids} is not the POST's {post_id!r}")
    check(get_id and get_id != post_id, f"the GET's request id {get_id!r}")
    check(in_file(run_dir / "gateway-access.log", f"request_id={get_id}"), f"request id {get_id!r} not in the gateway's access log")
    check(in_file(run_dir / "query-service.log", get_id), f"request id {get_id!r} not in the query API's log")
    check("x-ratelimit-limit" not in headers, "X-RateLimit-* on a request that was not limited")

    # Bodies over the limit never reach the services.
    status, headers, _ = request(base, "POST", "/api/v1/sims", "x" * (65 * 1024), auth)
    check(status == 413, f"a 65 KiB body through the gateway: {status}")
    security_headers("413", headers)
    return auth, iccid


def error_code(text):
    try:
        return json.loads(text).get("error", {}).get("code")
    except (ValueError, AttributeError):
        return None


def routed(base, services, auth, iccid):
    """Every GET route of each API's own OpenAPI document answers through the gateway as the
    API itself does (status and error code): a read the gateway sends to the other API (its
    "reads go to the query API" rule) answers 404 there."""
    unknown = "0190a0b0-c0d0-7e0f-8a0b-0c0d0e0f1a2b"
    for name, address in services.items():
        direct = f"http://{address}"
        status, _, text = request(direct, "GET", "/openapi.json")
        if not check(status == 200, f"GET /openapi.json of the {name} API: {status}"):
            continue
        for path, operations in json.loads(text)["paths"].items():
            if "get" not in operations or not path.startswith("/api/"):
                continue
            concrete = re.sub(r"\{iccid\}", iccid, re.sub(r"\{(id|job_id)\}", unknown, path))
            if "{" in concrete:
                check(False, f"{name} API: no value for the parameters of {path}")
                continue
            want_status, _, want_text = request(direct, "GET", concrete, headers=auth)
            got_status, _, got_text = request(base, "GET", concrete, headers=auth)
            check((got_status, error_code(got_text)) == (want_status, error_code(want_text)),
                  f"GET {concrete} through the gateway answers {got_status} {error_code(got_text)}, "
                  f"the {name} API itself {want_status} {error_code(want_text)}")


def rate_limit(base, limit=100):
    # The dashboard's files are not counted.
    for _ in range(3):
        request(base, "GET", "/")
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    statuses = []
    started = time.monotonic()
    # Until the first 429 (or well past the limit): on a loaded machine the 100 can take longer
    # than the 0.6 s in which the leaky bucket frees one more request, so each 0.6 s elapsed
    # allows one request more; the 101st within the window itself must be refused.
    while len(statuses) < limit + 20 and 429 not in statuses:
        connection.request("GET", "/api/v1/sims")
        response = connection.getresponse()
        body = response.read().decode()
        statuses.append(response.status)
        headers = {k.lower(): v for k, v in response.getheaders()}
    elapsed = time.monotonic() - started
    connection.close()
    check(429 not in statuses[:limit], f"the first {limit} API requests: {statuses[:limit].count(429)} answered 429")
    allowed = limit + int(elapsed * limit / 60)
    first_refused = statuses.index(429) if 429 in statuses else len(statuses)
    check(first_refused <= allowed, f"request {first_refused + 1} was the first refused; "
          f"{allowed} were allowed in {elapsed:.2f} s")
    if check(429 in statuses, f"no 429 after {len(statuses)} requests"):
        check(headers.get("x-ratelimit-limit") == str(limit), f"429: X-RateLimit-Limit {headers.get('x-ratelimit-limit')}")
        check(headers.get("x-ratelimit-remaining") == "0", f"429: X-RateLimit-Remaining {headers.get('x-ratelimit-remaining')}")
        check(headers.get("x-ratelimit-reset") == "1", f"429: X-RateLimit-Reset {headers.get('x-ratelimit-reset')}")
        check(headers.get("retry-after") == "1", f"429: Retry-After {headers.get('retry-after')}")
        check(headers.get("x-content-type-options") == "nosniff", "429 without the security headers")
        error = json.loads(body).get("error", {})
        check(error.get("code") == "RATE_LIMITED" and error.get("request_id"), f"429 body {body}")
    status, _, _ = request(base, "GET", "/")
    check(status == 200, f"the dashboard after the API limit: {status}")


def exported(addresses, wanted, seconds=30):
    """Waits until every metric in `wanted` is exported by one of the services; the missing."""
    deadline = time.time() + seconds
    while True:
        names = set()
        for address in addresses:
            status, _, text = request(f"http://{address}", "GET", "/metrics")
            if status != 200:
                continue
            for kind_line in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
                name, kind = kind_line
                names.add(name)
                if kind == "histogram":
                    names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
        missing = wanted - names
        if not missing or time.time() > deadline:
            return missing
        time.sleep(1)


def samples(text, name):
    """{labels text: value} of one metric in a Prometheus text exposition."""
    return {labels or "": float(value)
            for labels, value in re.findall(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.M)}


def streamed(connector, simulator, seconds=30):
    """The connector received what the simulator delivered. The simulator keeps streaming, so
    the two are compared between its posts: its report, the connector's figures, its report
    again unchanged."""
    def report():
        status, _, text = request(f"http://{simulator}", "GET", "/_admin/stream")
        return json.loads(text) if status == 200 else {}

    deadline = time.time() + seconds
    while True:
        before = report()
        status, _, metrics = request(f"http://{connector}", "GET", "/metrics")
        after = report()
        received = samples(metrics, "streamer_records_received_total")
        by_stream = {stream: sum(v for labels, v in received.items() if f'stream="{stream}"' in labels)
                     for stream in ("usage", "events")}
        delivered = {stream: after.get(stream, {}).get("delivered_records") for stream in ("usage", "events")}
        settled = samples(metrics, "streamer_records_settled_total")
        applied = sum(v for labels, v in settled.items() if 'outcome="applied"' in labels)
        consistent = before == after and by_stream == delivered
        if consistent or time.time() > deadline:
            break
        time.sleep(0.3)
    check(after.get("enabled") is True, f"the simulator does not stream: {after}")
    for stream in ("usage", "events"):
        state = after.get(stream, {})
        check(state.get("state") == "ACTIVE", f"the simulator's {stream} stream is {state.get('state')}: {state}")
    check(by_stream["usage"] > 0, f"the connector received no streamed usage records: {received}")
    check(by_stream == delivered, f"the connector received {by_stream} records by stream, "
          f"the simulator delivered {delivered}")
    rejected = samples(metrics, "streamer_records_rejected_total").get("", None)
    check(rejected == 0, f"streamer_records_rejected_total is {rejected}")
    check(applied > 0, f"no streamed record was applied: {settled}")
    return by_stream, applied


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--limited-gateway", required=True)
    parser.add_argument("--run-dir", required=True, type=pathlib.Path)
    parser.add_argument("--services", required=True, help="comma-separated host:port of every service")
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--command", required=True, help="host:port of the command API")
    parser.add_argument("--query", required=True, help="host:port of the query API")
    parser.add_argument("--connector", help="host:port of the sync connector (with --simulator)")
    parser.add_argument("--simulator", help="host:port of the simulator streaming into the connector")
    args = parser.parse_args()
    signed_in = gateway(args.gateway, args.run_dir, args.admin_password)
    if signed_in:
        routed(args.gateway, {"command": args.command, "query": args.query}, *signed_in)
    rate_limit(args.limited_gateway)
    wanted = check_monitoring.referenced_metrics(root)
    missing = exported(args.services.split(","), wanted)
    check(not missing, f"metrics read by the rules or dashboards that no service exports: {sorted(missing)}")
    stream_note = ""
    if args.simulator:
        by_stream, applied = streamed(args.connector, args.simulator)
        stream_note = (f"; Data Streamer: {int(by_stream['usage'])} usage and {int(by_stream['events'])} "
                       f"event records received, {int(applied)} applied, none rejected")
    if failures:
        print("[platform-checks] FAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"[platform-checks] ok: gateway routing (every GET route of both APIs), request ids, headers, body limit, rate limit; "
          f"{len(wanted)} metrics exported{stream_note}", file=sys.stderr)


if __name__ == "__main__":
    main()
