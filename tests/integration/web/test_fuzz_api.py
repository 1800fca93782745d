"""Bad input: the OpenAPI document matches the routes, and a property-based fuzz of the running
service (real Waitress, real sockets) never gets a 500, a hang or a crash."""

from __future__ import annotations

import http.client
import json
import os
import re
import string
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsp2jpg.web import openapi

FUZZ_EXAMPLES = int(os.environ.get("RTSP2JPG_FUZZ_EXAMPLES", "1000"))


def _app_routes(tmp_path):
    from rtsp2jpg import config
    from rtsp2jpg import service as app_mod
    from rtsp2jpg.capture.backend import default_backend
    from rtsp2jpg.web import app as http

    cfg = config.load(env={}, overrides={"storage": {"db_path": str(tmp_path / "r.db")}})
    service = app_mod.Service(cfg, default_backend(cfg))
    try:
        return {(r.method.lower(), openapi.openapi_path(r.rule)) for r in http.make_app(service).routes}
    finally:
        service.stop()


def test_openapi_document_matches_the_routes(tmp_path):
    """Every Bottle route is described, and the document describes nothing the app lacks."""
    routes = _app_routes(tmp_path)
    missing = sorted(r for r in routes if r not in openapi.OPERATIONS)
    assert not missing, f"describe these routes in rtsp2jpg/web/openapi.py OPERATIONS: {missing}"
    doc = openapi.document((m.upper(), p) for m, p in routes)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    assert doc["openapi"].startswith("3.")
    for (_method, path), op in openapi.OPERATIONS.items():
        assert op["responses"], path
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert names == set(re.findall(r"\{(\w+)\}", path)), path


def test_openapi_is_served(service_factory):
    svc = service_factory({})
    r = svc.get("/openapi.json")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert "/register" in doc["paths"] and "post" in doc["paths"]["/register"]
    assert "/snapshot/{camera_id}" in doc["paths"]


# --- the fuzz ------------------------------------------------------------------------------------

_TEXT = st.text(max_size=40)
_NUMBERISH = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "0x10", "9" * 5000, "1_000", " 5", "５", "true", "[]"]),
    _TEXT)
_ID = st.one_of(st.sampled_from(["cam", "nope", "..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "a" * 300, "%00", "%ff",
                                 "cam.jpg", "%0d%0aSet-Cookie:%20x=1"]),
                _TEXT.map(lambda t: quote(t, safe="")))
_PATHS = st.one_of(
    st.sampled_from(["/health", "/openapi.json", "/register", "/cameras", "/metrics", "/", "//", "/register/"]),
    _ID.map(lambda i: f"/snapshot/{i}"), _ID.map(lambda i: f"/snapshot/{i}.jpg"), _ID.map(lambda i: f"/status/{i}"),
    _ID.map(lambda i: f"/snapshot/{i}.webp"), _ID.map(lambda i: f"/snapshot/{i}.png"),
    _ID.map(lambda i: f"/cameras/{i}/links"),
    _ID.map(lambda i: f"/unregister/{i}"), _ID.map(lambda i: f"/cameras/{i}"), _ID.map(lambda i: f"/stream/{i}"),
    _ID.map(lambda i: f"/cameras/{i}/history"), _ID.map(lambda i: f"/static/{i}"),
    _TEXT.map(lambda t: "/" + quote(t)))
_CROPS = st.lists(st.one_of(st.floats(-1, 2).map(repr), _NUMBERISH), min_size=0, max_size=5).map(",".join)
_QUERY = st.dictionaries(st.sampled_from(["q", "width", "height", "max_age", "after", "fps", "token", "x", "rotate",
                                          "crop", "timestamp", "exp", "sig"]),
                         st.one_of(_NUMBERISH, _CROPS), max_size=5)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_TEXT, kids, max_size=4), max_leaves=12)
_URLS = st.one_of(
    st.builds(lambda user, port, path: f"rtsp://{user}127.0.0.1:{port}/{quote(path)}",
              st.sampled_from(["", "u:p@", "u:%40%3A@", "a@b@"]), st.sampled_from([1, 9, 65535]), _TEXT),
    st.builds(lambda host: f"rtsp://{host}/x", st.sampled_from(["10.0.0.1", "[::1]", "[fe80::1%25eth0]", "0", "",
                                                               "256.1.1.1", "2130706433", "h:99999", ":"])),
    _TEXT, _TEXT.map(lambda t: "rtsp://" + t), st.sampled_from(["file:///etc/passwd", "rtsp://h/ ! filesrc"]))
_REGISTER = st.fixed_dictionaries({}, optional={"rtsp_url": st.one_of(_URLS, _JSON), "name": st.one_of(_TEXT, _JSON),
                                                "prefer": st.one_of(st.sampled_from(["default", "ffmpeg", "gstreamer"]),
                                                                    _JSON),
                                                "privacy_masks": _JSON, "rotate": _JSON, "crop": _JSON,
                                                "timestamp": _JSON, "ttl_sec": _JSON})
_BODIES = st.one_of(st.none(), _REGISTER.map(lambda d: json.dumps(d).encode()),
                    _JSON.map(lambda j: json.dumps(j).encode()), st.binary(max_size=200),
                    st.just(b"[" * 5000 + b"]" * 5000), st.just(b'{"rtsp_url": "' + b"a" * 20000))
_HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=40)
_HEADERS = st.dictionaries(st.sampled_from(["Authorization", "X-API-Key", "If-None-Match", "Content-Type",
                                            "X-Forwarded-For", "Accept", "Origin", "Sec-Fetch-Site", "Host",
                                            "Forwarded", "X-Forwarded-Host", "X-Real-IP"]), _HEADER_TEXT, max_size=3)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, _rtsp_session):
    rtsp = _rtsp_session  # module scope: the session server itself (the `rtsp` fixture is per test)
    from tests.support.service_process import ServiceProcess

    svc = ServiceProcess(tmp_path_factory.mktemp("fuzz"), {
        "capture": {"allow_networks": ["127.0.0.0/8", "::1/128"], "open_timeout_sec": 2, "reconnect_delay_sec": 5},
        "http": {"long_poll_timeout_sec": 0.5},
        "cameras": [{"id": "cam", "url": rtsp.url("cam")}]}).start()
    yield svc
    assert svc.stop() == 0
    svc.kill()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "PATCH"]), path=_PATHS,
       query=_QUERY, body=_BODIES, headers=_HEADERS, as_json=st.booleans())
def test_fuzz_api_never_fails_on_the_server(fuzz_target, method, path, query, body, headers, as_json):
    if as_json and body is not None:  # mostly past the 415 (non-JSON body) so the JSON handling is fuzzed too
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_target.port, timeout=20)
    target = path + ("?" + urlencode(query) if query else "")
    try:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(65536)  # an MJPEG stream never ends: a couple of frames is enough
    finally:
        conn.close()
    assert resp.status < 500 or resp.status == 503, (method, target, body and body[:200], resp.status, data[:300])
    is_json = resp.getheader("Content-Type", "").startswith("application/json")
    if resp.status >= 400 and method != "HEAD" and len(data) < 65536 and is_json:
        assert isinstance(json.loads(data)["detail"], str)
    if resp.status == 503:  # only the documented 503s: no frame yet, long-polls full, registry unwritable
        assert resp.getheader("Retry-After"), (target, data)
    for name, value in resp.getheaders():
        assert "\r" not in value and "\n" not in value, name


def test_fuzzed_service_is_still_healthy(fuzz_target):
    """After the fuzz: alive, answering, and its camera still serving frames."""
    assert fuzz_target.proc.poll() is None
    assert fuzz_target.get("/health").status == 200
    assert fuzz_target.get("/snapshot/cam", timeout=20).status in (200, 503)
    assert "Traceback" not in fuzz_target.log(), fuzz_target.log()[-3000:]


@pytest.fixture(scope="module")
def plain_svc(tmp_path_factory):
    """One service for the table-driven bad-input tests: a config camera that never connects."""
    from tests.support.service_process import ServiceProcess

    svc = ServiceProcess(tmp_path_factory.mktemp("plain"), {
        "cameras": [{"id": "cam", "url": "rtsp://127.0.0.1:9/x"}]}).start()
    yield svc
    svc.stop()
    svc.kill()


@pytest.mark.parametrize("body,status", [
    (b'{"rtsp_url": ["rtsp://h/"]}', 400), (b'{"rtsp_url": {"$ne": 1}}', 400), (b'{"rtsp_url": 5}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "name": 7}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "prefer": []}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "prefer": 0}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "name": "a\\r\\nb"}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "name": "a\\u2028b"}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/x", "name": "\\ud800"}', 400),
    (b'{"rtsp_url": "rtsp://127.0.0.1:9/\\ud800"}', 400),
    (b"[" * 8000 + b"]" * 8000, 400), (b"\xff\xfe", 400), (b"null", 400), (b"[]", 400), (b'"rtsp://h/"', 400),
    (b"x" * 20000, 413),
])
def test_register_type_confusion_and_size_limits(plain_svc, body, status):
    svc = plain_svc
    r = svc.post("/register", raw=body, timeout=20)
    assert r.status == status, (body[:80], r.status, r.body[:200])
    assert [c["id"] for c in svc.get("/cameras").json()] == ["cam"]


@pytest.mark.parametrize("query", ["q=0", "q=101", "q=1e400", "q=" + "9" * 5000, "width=-1", "width=99999",
                                   "height=nan", "max_age=inf", "max_age=-1", "after=-5", "after=" + "9" * 40,
                                   "after=1.5", "q=%00", "rotate=91", "crop=0,0,0,0", "crop=a,b,c,d",
                                   "timestamp=2", "crop=" + "0," * 3000])
def test_absurd_query_values_are_400(plain_svc, query):
    r = plain_svc.get(f"/snapshot/cam?{query}")
    assert r.status == 400 and r.json()["detail"], (query, r.status, r.body[:200])


@pytest.mark.parametrize("path", ["/snapshot/..%2f..%2fetc%2fpasswd", "/snapshot/../../etc/passwd",
                                  "/status/%2e%2e", "/snapshot/" + quote("../registry.db", safe=""),
                                  "/unregister/..%2fregistry.db", "/snapshot/%00"])
def test_path_traversal_in_ids_is_404(plain_svc, path):
    svc = plain_svc
    method = "POST" if path.startswith("/unregister") else "GET"
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    conn.request(method, path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status in (404, 200), (path, resp.status)  # unregister of an unknown id is 200 "already removed"
    assert b"root:" not in data and b"SQLite" not in data
    assert set(string.printable.encode()) >= set(data[:200])
