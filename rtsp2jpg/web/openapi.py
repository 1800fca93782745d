"""The OpenAPI 3 description of the HTTP API, served at `GET /openapi.json`.

Written by hand (the routes are few and their contract is in DESIGN section 4), kept honest by a test that
compares it with the Bottle routes. `document(routes)` keeps only the operations the running app
really has, so a route another module adds later must be described here (the test says which).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rtsp2jpg import __version__
from rtsp2jpg.capture.sources import PREFERENCES

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ID = {"name": "camera_id", "in": "path", "required": True, "description": "camera id (the original's token)",
       "schema": {"type": "string", "pattern": "^[^/]+$"}}
_SECURED = [{"bearer": []}, {"apiKey": []}, {}]  # {} = no key needed while http.api_key is unset


def _q(name: str, kind: str, lo: float, hi: float, text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": text,
            "schema": {"type": kind, "minimum": lo, "maximum": hi}}


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PICTURE = {  # picture settings of POST /register (as cameras[].privacy_masks etc. in the config file)
    "privacy_masks": {"type": "array", "maxItems": 16, "description": "polygons filled black before any encode",
                      "items": {"type": "array", "minItems": 3, "maxItems": 64, "items": {
                          "type": "array", "minItems": 2, "maxItems": 2,
                          "items": {"type": "number", "minimum": 0, "maximum": 1}}}},
    "rotate": {"type": "integer", "enum": [0, 90, 180, 270]},
    "crop": {"type": "array", "description": "x, y, w, h fractions", "minItems": 4, "maxItems": 4,
             "items": {"type": "number", "minimum": 0, "maximum": 1}},
    "timestamp": {"type": "boolean", "description": "draw capture time and name into every picture"},
}

_STREAM = {"name": "stream", "in": "query", "required": False, "schema": {"type": "string", "enum": ["main", "sub"]},
           "description": "of a camera with streams: {main, sub}; default: the sub stream if its picture is at "
           "least width x height, else main (snapshots), the sub stream (MJPEG)"}
_URL = {"type": "string", "maxLength": 2048, "pattern": "^rtsps?://"}

_SNAPSHOT = {
    "summary": "newest frame as JPEG (WebP or PNG by extension or Accept)",
    "parameters": [
        _ID,
        _q("q", "integer", 1, 100, "JPEG quality (default: capture.jpeg_quality)"),
        _q("width", "integer", 1, 8192, "fit into this width, keeping the aspect ratio"),
        _q("height", "integer", 1, 8192, "fit into this height, keeping the aspect ratio"),
        _q("max_age", "number", 0, 86400, "seconds; wait briefly for a fresher frame, else 503"),
        _q("after", "integer", 0, 2**62, "long-poll: wait for a frame with a sequence number above this"),
        _STREAM,
        _q("exp", "integer", 1, 10**12, "signed link: expiry, epoch seconds (with sig)"),
        {"name": "sig", "in": "query", "required": False, "description": "signed link: signature from "
         "POST /cameras/{camera_id}/links; opens this camera without the key until exp", "schema": {"type": "string"}},
        {"name": "rotate", "in": "query", "required": False, "description": "clockwise degrees, on top of the "
         "camera's rotate", "schema": {"type": "integer", "enum": [0, 90, 180, 270]}},
        {"name": "crop", "in": "query", "required": False, "description": "x,y,w,h fractions of the camera's "
         "picture (privacy masks stay filled)", "schema": {"type": "string", "example": "0.25,0,0.5,1"}},
        {"name": "timestamp", "in": "query", "required": False, "description": "1 draws the capture time and "
         "camera name into the picture, 0 turns the camera's default off", "schema": {"type": "integer",
                                                                                      "enum": [0, 1]}},
        {"name": "Accept", "in": "header", "required": False, "description": "image/webp or image/png pick "
         "that format on the extension-less path (default JPEG)", "schema": {"type": "string"}},
        {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
    "security": _SECURED,
    "responses": {
        "200": {"description": "the picture; JPEGs carry EXIF DateTimeOriginal (with sub-seconds and offset) "
                "and the camera id", "content": {"image/jpeg": _BINARY, "image/webp": _BINARY, "image/png": _BINARY},
                "headers": {h: {"schema": {"type": "string"}} for h in
                            ("ETag", "Last-Modified", "X-Frame-Timestamp", "X-Frame-Seq", "Cache-Control", "Vary",
                             "X-Stream")}},
        "304": {"description": "not modified (If-None-Match), or no newer frame before the long-poll ended"},
        "400": _ERROR, "401": {**_ERROR, "description": "API key needed, or the signed link expired"},
        "403": {**_ERROR, "description": "signed link invalid (tampered, another camera, revoked)"}, "404": _ERROR,
        "406": {**_ERROR, "description": "Accept excludes JPEG, WebP and PNG"},
        "503": {**_ERROR, "description": "no frame yet / none fresh enough / too many long-polls; see Retry-After"},
    },
}

# (method, OpenAPI path) -> operation. Bottle's `<camera_id>` is OpenAPI's `{camera_id}`.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/health"): {
        "summary": "service health, capabilities and camera counts",
        "responses": {"200": {"description": "health", "content": {"application/json": {"schema": {
            "type": "object", "required": ["ok", "version", "cameras"],
            "properties": {"ok": {"type": "boolean"}, "version": {"type": "string"},
                           "backends_built": {"type": "object"}, "decoders": {"type": "object"},
                           "cameras": {"type": "object"}, "mqtt": {"type": "string"},
                           "registry": {"type": "object", "description": "only after a corrupt registry "
                                        "file was moved aside at start: recovered_from (its new path), "
                                        "rows_recovered, error"}}}}}}},
    },
    ("get", "/openapi.json"): {
        "summary": "this document",
        "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {}}}},
    },
    ("post", "/register"): {
        "summary": "register a camera (same URL again returns the same camera); never probes it",
        "security": _SECURED,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "rtsp_url, or streams (main and sub) instead",
            "properties": {"rtsp_url": _URL,
                           "streams": {"type": "object", "required": ["main", "sub"], "additionalProperties": False,
                                       "properties": {"main": _URL, "sub": _URL}},
                           "name": {"type": "string", "maxLength": 200},
                           "prefer": {"type": "string", "enum": list(PREFERENCES)}, **_PICTURE}}}}},
        "responses": {"200": {"description": "registered", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"token": {"type": "string"}, "id": {"type": "string"},
                                             "backend": {"type": "string"}, "status": {"type": "string"}}}}}},
                      "400": _ERROR, "401": _ERROR,
                      "403": {**_ERROR, "description": "cross-site request, no API key and not loopback, "
                                                        "or host outside capture.allow_networks"},
                      "409": {**_ERROR, "description": "capture.max_cameras cameras already run (a new URL only), "
                                                        "or the URL's camera has other picture settings or sub stream"},
                      "413": _ERROR, "503": {**_ERROR, "description": "registry not writable"}},
    },
    ("post", "/unregister/{camera_id}"): {
        "summary": "remove a registered camera",
        "parameters": [_ID], "security": _SECURED,
        "responses": {"200": {"description": "removed (or already gone)"}, "401": _ERROR,
                      "409": {**_ERROR, "description": "camera is declared in the config file"},
                      "503": _ERROR},
    },
    ("delete", "/cameras/{camera_id}"): {
        "summary": "remove a registered camera (same as POST /unregister/{camera_id})",
        "parameters": [_ID], "security": _SECURED,
        "responses": {"200": {"description": "removed (or already gone)"}, "401": _ERROR,
                      "409": _ERROR, "503": _ERROR},
    },
    ("get", "/cameras"): {
        "summary": "every camera, URLs redacted",
        "security": _SECURED,
        "responses": {"200": {"description": "list", "content": {"application/json": {"schema": {
            "type": "array", "items": {"type": "object"}}}}}, "401": _ERROR},
    },
    ("post", "/cameras/{camera_id}/links"): {
        "summary": "signed, expiring links to the camera's snapshot and stream (they open it without the key)",
        "parameters": [_ID], "security": _SECURED,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"ttl_sec": {"type": "number", "minimum": 1, "default": 3600,
                                                         "description": "at most http.link_max_ttl_sec"}}}}}},
        "responses": {"200": {"description": "links", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"url": {"type": "string"}, "stream_url": {"type": "string"},
                                             "expires": {"type": "integer"}, "camera": {"type": "string"}}}}}},
                      "400": _ERROR, "401": _ERROR, "404": _ERROR,
                      "409": {**_ERROR, "description": "neither http.api_key nor http.link_secret is set"}},
    },
    ("get", "/status/{camera_id}"): {
        "summary": "one camera's status",
        "parameters": [_ID], "security": _SECURED,
        "responses": {"200": {"description": "status", "content": {"application/json": {"schema": {
            "type": "object", "properties": {k: {} for k in (
                "token", "id", "status", "since", "last_seen", "backend", "error", "fps", "width", "height",
                "frames", "reconnects", "streams")}}}}}, "401": _ERROR, "404": _ERROR},
    },
    ("get", "/snapshot/{camera_id}"): _SNAPSHOT,
    **{("get", f"/snapshot/{{camera_id}}.{ext}"): _SNAPSHOT for ext in ("jpg", "jpeg", "webp", "png")},
    ("get", "/stream/{camera_id}"): {
        "summary": "MJPEG stream (multipart/x-mixed-replace)",
        "parameters": [_ID, _q("fps", "number", 0.1, 1000, "frames per second, capped by http.stream_max_fps"),
                       _q("width", "integer", 1, 8192, "fit into this width"),
                       _q("q", "integer", 1, 100, "JPEG quality"), _STREAM,
                       _q("exp", "integer", 1, 10**12, "signed link: expiry (with sig)"),
                       {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "signed link: stream_url of POST /cameras/{camera_id}/links"}],
        "security": _SECURED,
        "responses": {"200": {"description": "MJPEG", "content": {"multipart/x-mixed-replace": {}}},
                      "400": _ERROR, "401": _ERROR, "404": _ERROR, "503": _ERROR},
    },
    ("get", "/metrics"): {
        "summary": "Prometheus metrics",
        "security": _SECURED,
        "responses": {"200": {"description": "text format", "content": {"text/plain": {}}}, "401": _ERROR},
    },
    ("get", "/cameras/{camera_id}/history"): {
        "summary": "the camera's last status changes",
        "parameters": [_ID], "security": _SECURED,
        "responses": {"200": {"description": "list", "content": {"application/json": {"schema": {
            "type": "array", "items": {"type": "object"}}}}}, "401": _ERROR, "404": _ERROR},
    },
    ("get", "/static/{path}"): {
        "summary": "dashboard assets",
        "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "file"}, "404": _ERROR},
    },
    ("get", "/"): {
        "summary": "dashboard page",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    },
}


def openapi_path(bottle_rule: str) -> str:
    """`/snapshot/<camera_id>.jpg` -> `/snapshot/{camera_id}.jpg` (also `<name:filter>` forms)."""
    out, rest = "", bottle_rule
    while "<" in rest:
        before, _, after = rest.partition("<")
        name, _, rest = after.partition(">")
        out += before + "{" + name.split(":")[0] + "}"
    return out + rest


def _with_trust_answers(method: str, op: dict[str, Any]) -> dict[str, Any]:
    """Every route may answer 421 (Host not allowed); every change also 403 (cross-site) and 415 (not JSON)."""
    extra = {"421": {**_ERROR, "description": "Host not allowed (see http.allowed_hosts)"}}
    if method not in ("get", "head", "options"):
        extra["403"] = {**_ERROR, "description": "cross-site request (Origin / Sec-Fetch-Site), or no API key "
                                                "and not loopback"}
        extra["415"] = {**_ERROR, "description": "body or Content-Type other than application/json"}
    return {**op, "responses": {**extra, **op["responses"]}}


def document(routes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The OpenAPI document for the app's (METHOD, bottle rule) routes; undescribed routes are left out."""
    paths: dict[str, dict[str, Any]] = {}
    for method, rule in routes:
        key = (method.lower(), openapi_path(rule))
        if key in OPERATIONS:
            paths.setdefault(key[1], {})[key[0]] = _with_trust_answers(key[0], OPERATIONS[key])
    return {
        "openapi": "3.0.3",
        "info": {"title": "rtsp2jpg", "version": __version__,
                 "description": "RTSP cameras in, fresh JPEG snapshots out. Errors are JSON {\"detail\": ...}."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["detail"],
                                  "properties": {"detail": {"type": "string"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
