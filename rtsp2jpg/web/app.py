"""HTTP API on Bottle: routes only translate HTTP to and from Service calls.

Compatible with the original rtsp2jpg (paths, fields, codes; errors as `{"detail": ...}`).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import bottle

from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.service import Service
from rtsp2jpg.urls import redact
from rtsp2jpg.web import api, links, openapi
from rtsp2jpg.web import ops as ops_routes
from rtsp2jpg.web.fastpath import FastSnapshots, presented_key
from rtsp2jpg.web.trust import Trust, json_body_problem

log = logging.getLogger(__name__)

NO_KEY_HINT = ("this endpoint only answers loopback clients while no API key is set; "
               "set http.api_key (or RTSP2JPG_HTTP_API_KEY) and send 'Authorization: Bearer <key>'")

FORWARDED_HINT = ("; this request came through a proxy (it has forwarding headers): list the proxy in "
                  "http.trusted_proxies so its X-Forwarded-For is believed")


def _fail(status: int, detail: str, **headers: str) -> bottle.HTTPError:
    return bottle.HTTPError(status, detail, **headers)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class SameOriginJson:
    """Bottle plugin on every route that changes something (POST/PUT/DELETE...): refuse cross-site
    requests (403) whatever their content type, then bodies that are not JSON (415).

    An HTML form (text/plain, form-encoded) or a no-cors fetch from any page in a browser on the
    device reaches us without a CORS preflight; with these two rules it changes nothing."""

    name = "rtsp2jpg-same-origin-json"
    api = 2

    def __init__(self, trust: Trust) -> None:
        self.trust = trust

    def apply(self, callback: Any, route: bottle.Route) -> Any:
        if route.method.upper() in SAFE_METHODS:
            return callback
        trust = self.trust

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            env = bottle.request.environ
            why = trust.cross_site(env)
            if why:
                log.info("refused cross-site %s %r from %s: %s", bottle.request.method,
                         bottle.request.path, trust.client(env).address, why)
                raise _fail(403, f"cross-site request refused: {why}. Changes are accepted only from this "
                                 "service's own pages or from non-browser clients")
            problem = json_body_problem(env)
            if problem:
                raise _fail(415, problem)
            return callback(*args, **kwargs)

        return wrapper


def make_app(service: Service) -> bottle.Bottle:
    app = bottle.Bottle()
    http = service.config.http

    def json_error(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        if err.status_code >= 500 and err.exception is not None:
            return json.dumps({"detail": "internal error"})
        return json.dumps({"detail": err.body if isinstance(err.body, str) else "error"})

    app.default_error_handler = json_error  # type: ignore[method-assign]

    def guard(callback: Any) -> Any:
        """Unexpected exceptions become a JSON 500 and one redacted log line, never a traceback page."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except Exception as e:
                log.exception("%s %s failed: %s", bottle.request.method, bottle.request.path, redact(repr(e)))
                raise _fail(500, "internal error") from None
        return wrapper

    app.install(guard)
    trust = Trust((*http.allowed_hosts, http.host), http.trusted_proxies)  # a listen name is one clients use

    @app.hook("before_request")
    def check_host() -> None:
        """Before routing, so unknown paths too: a rebinding name (evil.example -> 127.0.0.1) gets
        nothing, not even a 404 that tells it the service is there."""
        bad = trust.hosts_allowed(bottle.request.environ)
        if bad is not None:
            raise _fail(421, f"host {bad[:100]!r} is not one this service answers to; add it to "
                             "http.allowed_hosts if clients reach the service under that name")

    app.install(SameOriginJson(trust))

    def authorize(mutating: bool) -> None:
        if http.api_key:
            presented = presented_key(bottle.request.environ)
            if presented is None or not hmac.compare_digest(presented, http.api_key.encode()):
                raise _fail(401, "missing or wrong API key", WWW_Authenticate="Bearer")
        elif mutating:
            # Not bottle's remote_addr (it believes any client's X-Forwarded-For): trust.client()
            # follows forwarding headers only from http.trusted_proxies, and with forwarding headers
            # from anyone else a loopback peer is a proxy we were not told about, so not loopback.
            client = trust.client(bottle.request.environ)
            if not client.loopback:
                log.info("refused %s %r from %s%s: no API key set", bottle.request.method, bottle.request.path,
                         client.address, " (forwarded by an untrusted proxy)" if client.forwarded else "")
                raise _fail(403, NO_KEY_HINT + (FORWARDED_HINT if client.forwarded else ""))

    signing_key = links.link_key(http.link_secret, http.api_key)

    def protect_reads(camera_id: str = "", kind: str = "") -> None:
        """The read check: the API key when http.protect_snapshots is on, unless the request is a
        valid signed link to this `kind` (snapshot, stream) of this camera. A bad link is refused
        even where reads are open, so a tampered link never looks like it works."""
        query = bottle.request.query
        if kind and ("sig" in query or "exp" in query):
            try:
                links.verify(signing_key, kind, camera_id, query.get("exp"), query.get("sig"),
                             http.link_max_ttl_sec)
            except links.LinkError as e:
                raise _fail(e.status, str(e)) from None
            return
        if http.protect_snapshots:
            authorize(mutating=False)

    def camera_or_404(camera_id: str) -> Camera:
        cam = service.camera(camera_id)
        if cam is None:
            raise _fail(404, "Camera not found")
        return cam

    def read_json() -> dict[str, Any]:
        length = bottle.request.content_length
        if length > http.max_body_bytes:
            raise _fail(413, f"request body larger than {http.max_body_bytes} bytes")
        body = bottle.request.body.read(http.max_body_bytes + 1)
        if len(body) > http.max_body_bytes:
            raise _fail(413, f"request body larger than {http.max_body_bytes} bytes")
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError, not a 500
            raise _fail(400, "body must be JSON") from None
        if not isinstance(data, dict):
            raise _fail(400, 'body must be a JSON object like {"rtsp_url": "rtsp://..."}')
        return data

    # The API (register, cameras, status, snapshots) and the operator routes (dashboard, MJPEG, /metrics).
    api.install(app, service, api.Guards(authorize, protect_reads, camera_or_404, read_json, signing_key))
    metrics = ops_routes.install(app, service, protect_reads=protect_reads, camera_or_404=camera_or_404)

    @app.get("/openapi.json")
    def openapi_json() -> dict[str, Any]:
        return openapi.document((r.method, r.rule) for r in app.routes)

    # Plain polls skip Bottle (fastpath.py); Bottle.__call__ looks `wsgi` up on the instance.
    app.wsgi = FastSnapshots(app.wsgi, service.camera, service.backend.encode_jpeg,  # type: ignore[method-assign]
                             trust, http.api_key, http.protect_snapshots, metrics, http.long_poll_timeout_sec)
    return app

