# Copyright (C) nginx-gw authors

"""The article's gateway design in Flask, for bench/peers/scenarios/flask.conf.

Debian 12's python3-flask under gunicorn, with python3-jwt (RS256 through
python3-cryptography), python3-redis, python3-prometheus-client (multiprocess
mode, so every gunicorn worker adds to one set of series) and
python3-requests (a kept-alive session per thread to the upstream).  It does
what the four nginx-gw modules do in bench/peers/scenarios/gw-all.conf:

  trace    a valid incoming traceparent keeps its trace id, else a new
           random one; a new span id per request; traceparent and X-Trace-ID
           upstream, X-Trace-ID on the response;
  auth     Bearer JWT, RS256 only, key from the JWKS by kid, exp/nbf with a
           leeway, "sub" required and sent upstream as X-User-ID; verified
           tokens cached per worker (1024), as gw_auth does; 401 JSON;
  limit    a sliding window per X-Client-ID in Redis, one script call
           (EVALSHA) per request, 50 ms timeouts, open on a Redis failure;
           429 JSON over the limit;
  metrics  gateway_requests_total and the duration histograms, auth and
           rate limit decisions, on /metrics.

Environment: GW_BACKEND (host:port), GW_REDIS_PORT, GW_JWKS (file),
PROMETHEUS_MULTIPROC_DIR (an empty directory).
"""

import itertools
import os
import re
import threading
import time

import jwt
import redis
import requests
from flask import Flask, Response, g, request
from prometheus_client import (CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

BACKEND = os.environ["GW_BACKEND"]
ROUTE = "/api/bench"
LEEWAY = 30
WINDOW_MS = 60000
LIMIT = 100000

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate",
              "proxy-authorization", "te", "trailers", "transfer-encoding",
              "upgrade", "content-length", "host"}

with open(os.environ["GW_JWKS"]) as f:
    KEYS = {k.key_id: k.key for k in jwt.PyJWKSet.from_json(f.read()).keys
            if k.key_id == "rs"}

store = redis.Redis(host="127.0.0.1", port=int(os.environ["GW_REDIS_PORT"]),
                    socket_timeout=0.05, socket_connect_timeout=0.05)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "sliding-window.lua")) as f:
    limiter = store.register_script(f.read())
members = itertools.count()
local = threading.local()
verified = {}

REQUESTS = Counter("gateway_requests_total", "Requests",
                   ["method", "path", "status"])
DURATION = Histogram("gateway_request_duration_seconds", "Request time",
                     ["method", "path"])
UPSTREAM = Histogram("gateway_upstream_response_duration_seconds",
                     "Upstream response time", ["path"])
AUTH = Counter("gateway_auth_decisions_total", "Auth decisions", ["result"])
RATELIMIT = Counter("gateway_ratelimit_decisions_total",
                    "Rate limit decisions", ["result"])

app = Flask(__name__)


def json_error(status, text, **headers):
    return Response('{"error":"%s"}\n' % text, status,
                    mimetype="application/json", headers=headers)


def trace():
    m = TRACEPARENT.match(request.headers.get("traceparent", "").strip())
    if m and m.group(1) != "0" * 32 and m.group(2) != "0" * 16:
        g.trace_id = m.group(1)
        flags = "%02x" % (int(m.group(3), 16) & 3)
    else:
        g.trace_id = os.urandom(16).hex()
        flags = "03"
    g.traceparent = "00-%s-%s-%s" % (g.trace_id, os.urandom(8).hex(), flags)


def verify(token):
    claims = verified.get(token)
    if claims is None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(token, KEYS[kid], algorithms=["RS256"],
                                options={"verify_exp": False,
                                         "verify_nbf": False,
                                         "verify_aud": False})
        except (jwt.PyJWTError, KeyError):
            return None
        if len(verified) >= 1024:
            verified.clear()
        verified[token] = claims
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not isinstance(exp, (int, float))
                            or exp + LEEWAY <= now):
        return None
    if nbf is not None and (not isinstance(nbf, (int, float))
                            or nbf - LEEWAY > now):
        return None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return None
    return claims


def limit():
    client = request.headers.get("X-Client-ID")
    if not client:
        g.ratelimit = "skipped"
        return True
    now = int(time.time() * 1000)
    member = "%d:%d:%d" % (now, os.getpid(), next(members))
    try:
        allowed = limiter(keys=["peer:rl:" + client],
                          args=[now, WINDOW_MS, LIMIT, member])
    except redis.RedisError as e:
        app.logger.error("gw_peer: redis: %s", e)
        g.ratelimit = "error"
        return True
    g.ratelimit = "passed" if allowed else "rejected"
    return bool(allowed)


@app.before_request
def gateway():
    g.start = time.perf_counter()
    g.auth = g.ratelimit = None
    if request.path == "/metrics":
        return None
    trace()
    authz = request.headers.get("Authorization", "")
    token = authz[7:] if authz[:7].lower() == "bearer " else None
    claims = verify(token) if token else None
    if claims is None:
        g.auth = "invalid" if token else "missing"
        return json_error(401, "Unauthorized", **{
            "WWW-Authenticate": 'Bearer realm="bench", error="invalid_token"'})
    g.auth = "ok"
    g.user = claims["sub"]
    if not limit():
        return json_error(429, "Too Many Requests")
    return None


@app.route("/metrics")
def metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry),
                    mimetype="text/plain; version=0.0.4")


@app.route("/", defaults={"path": ""}, methods=["GET", "HEAD", "POST", "PUT",
                                                 "DELETE", "PATCH", "OPTIONS"])
@app.route("/<path:path>", methods=["GET", "HEAD", "POST", "PUT", "DELETE",
                                    "PATCH", "OPTIONS"])
def proxy(path):
    session = getattr(local, "session", None)
    if session is None:
        session = local.session = requests.Session()
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in HOP_BY_HOP}
    headers.update({"traceparent": g.traceparent, "X-Trace-ID": g.trace_id,
                    "X-User-ID": g.user})
    url = "http://%s%s" % (BACKEND, request.full_path.rstrip("?"))
    t = time.perf_counter()
    try:
        r = session.request(request.method, url, headers=headers,
                            data=request.get_data(), timeout=5,
                            allow_redirects=False)
    except requests.RequestException:
        return json_error(502, "Bad Gateway")
    UPSTREAM.labels(ROUTE).observe(time.perf_counter() - t)
    return Response(r.content, r.status_code,
                    [(k, v) for k, v in r.headers.items()
                     if k.lower() not in HOP_BY_HOP])


@app.after_request
def account(response):
    if request.path == "/metrics":
        return response
    response.headers["X-Trace-ID"] = g.trace_id
    REQUESTS.labels(request.method, ROUTE, str(response.status_code)).inc()
    DURATION.labels(request.method, ROUTE).observe(
        time.perf_counter() - g.start)
    if g.auth:
        AUTH.labels(g.auth).inc()
    if g.ratelimit:
        RATELIMIT.labels(g.ratelimit).inc()
    return response
