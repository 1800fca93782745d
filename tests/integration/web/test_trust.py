"""Issue 11 sections 2-4: cross-site control, DNS rebinding, reverse proxies, and settings that
protect nothing. Pure-function properties of rtsp2jpg.web.trust, then the real service over a socket."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rtsp2jpg import config
from rtsp2jpg.web.trust import Trust, json_body_problem, split_host
from tests.support.service_process import lan_address

HOSTNAME = socket.gethostname().lower()
SHORT = HOSTNAME.split(".")[0]
ALLOWED = ["cams.example.com", "*.wild.example"]
PROXY_HEADERS = ["X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "Via"]
JSON = {"Content-Type": "application/json"}
REPO = Path(__file__).resolve().parents[3]


def raw(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        host: str | None = None) -> tuple[int, bytes]:
    """One request with exactly these headers (http.client adds Host only when `host` is None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 16)
    finally:
        conn.close()


# --- pure functions --------------------------------------------------------------------------------

TRUST = Trust(ALLOWED, hostname="pi4.home")
_LABEL = st.from_regex(r"\A[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?\Z")
_NAMES = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_PORT = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))


def _known(name: str) -> bool:
    name = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name in {"localhost", "pi4", "pi4.home", "pi4.local", "pi4.home.local", "cams.example.com"} or (
        name.endswith(".wild.example"))


@settings(max_examples=500)
@given(name=_NAMES, dot=st.sampled_from(["", "."]), port=_PORT)
def test_any_other_host_name_is_refused(name, dot, port):
    assume(not _known(name))
    assert not TRUST.host_allowed(name + dot + port)


@settings(max_examples=300)
@given(ip=st.ip_addresses(), port=_PORT)
def test_every_ip_literal_is_allowed(ip, port):
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    assert TRUST.host_allowed(host + port)
    if ip.version == 6:
        assert not TRUST.host_allowed(str(ip) + port)  # a bare IPv6 address is not a valid Host


@settings(max_examples=300)
@given(name=st.sampled_from(["localhost", "pi4", "pi4.home", "pi4.local", "pi4.home.local", "cams.example.com",
                             "a.wild.example", "x.y.wild.example"]),
       case=st.lists(st.booleans(), min_size=20, max_size=20), dot=st.sampled_from(["", "."]), port=_PORT)
def test_own_names_and_allowed_hosts_any_case_trailing_dot_and_port(name, case, dot, port):
    mixed = "".join(c.upper() if up else c for c, up in zip(name, case + [False] * len(name), strict=False))
    assert TRUST.host_allowed(mixed + dot + port)


@settings(max_examples=1000)
@given(st.text(max_size=40))
def test_arbitrary_host_text_is_allowed_only_in_a_known_class(text):
    if TRUST.host_allowed(text) and text.strip():
        parsed = split_host(text)
        assert parsed is not None and _known(parsed[0]), text


def test_host_rule_edges():
    assert not TRUST.host_allowed("wild.example")  # '*.wild.example' is subdomains only
    assert not TRUST.host_allowed("evil.example") and not TRUST.host_allowed("localhost.evil.example")
    assert not TRUST.host_allowed("cams.example.com.evil.example")
    assert not TRUST.host_allowed("::1") and not TRUST.host_allowed("[::1") and not TRUST.host_allowed("h:x")
    assert TRUST.host_allowed(None) and TRUST.host_allowed("")  # HTTP/1.0 without Host
    assert Trust(["*"]).host_allowed("anything.example")


@settings(max_examples=300)
@given(header=st.sampled_from(["HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED", "HTTP_X_FORWARDED_HOST",
                               "HTTP_X_FORWARDED_PROTO", "HTTP_VIA"]), value=st.text(max_size=30),
       peer=st.sampled_from(["127.0.0.1", "::1", "127.8.9.10", "::ffff:127.0.0.1"]))
def test_forwarding_headers_from_an_untrusted_loopback_peer_are_never_loopback(header, value, peer):
    client = Trust().client({"REMOTE_ADDR": peer, header: value})
    assert not client.loopback and client.forwarded


@settings(max_examples=300)
@given(chain=st.lists(st.ip_addresses(v=4).map(str), max_size=4), client=st.ip_addresses(v=4))
def test_from_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(chain, client):
    trust = Trust(trusted_proxies=["10.9.0.0/16"])
    proxies = ["10.9.0.1", "10.9.3.4"]
    assume(not trust.is_proxy(client))
    xff = ", ".join([*chain, str(client), *proxies[:1]])
    got = trust.client({"REMOTE_ADDR": "10.9.0.2", "HTTP_X_FORWARDED_FOR": xff})
    assert got.address == str(client) and got.loopback == client.is_loopback
    fwd = ", ".join(f'for="{ip}"' for ip in [*chain, str(client), *proxies])
    assert trust.client({"REMOTE_ADDR": "10.9.0.2", "HTTP_FORWARDED": fwd}).address == str(client)


def test_trusted_proxy_fails_closed_on_garbage_and_disagreement():
    trust = Trust(trusted_proxies=["127.0.0.1"])
    peer = {"REMOTE_ADDR": "127.0.0.1"}
    assert trust.client({**peer, "HTTP_X_FORWARDED_FOR": "127.0.0.1"}).loopback
    assert not trust.client({**peer, "HTTP_X_FORWARDED_FOR": "192.0.2.7"}).loopback
    assert not trust.client({**peer, "HTTP_X_FORWARDED_FOR": "garbage, 127.0.0.1"}).loopback
    assert not trust.client({**peer, "HTTP_FORWARDED": "for=unknown"}).loopback
    assert not trust.client({**peer, "HTTP_FORWARDED": "for=_hidden;proto=https"}).loopback
    # nginx sets X-Forwarded-For but passes a client's own X-Real-IP through: both must say loopback.
    assert not trust.client({**peer, "HTTP_X_FORWARDED_FOR": "192.0.2.7", "HTTP_X_REAL_IP": "127.0.0.1"}).loopback
    assert trust.client(peer).loopback  # the proxy host itself, no forwarding headers (the watchdog probe)
    assert not trust.client({"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}).loopback


@pytest.mark.parametrize("env,problem", [
    ({"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "2"}, False),
    ({"CONTENT_TYPE": "Application/JSON; charset=utf-8", "CONTENT_LENGTH": "2"}, False),
    ({"CONTENT_LENGTH": "0"}, False), ({}, False),
    ({"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "2"}, True),
    ({"CONTENT_TYPE": "text/plain"}, True), ({"CONTENT_LENGTH": "5"}, True),
    ({"CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "3"}, True),
    ({"CONTENT_TYPE": "multipart/form-data; boundary=x", "CONTENT_LENGTH": "3"}, True),
    ({"CONTENT_TYPE": "application/json-seq", "CONTENT_LENGTH": "3"}, True),
    ({"HTTP_TRANSFER_ENCODING": "chunked"}, True),
])
def test_json_body_rule(env, problem):
    assert bool(json_body_problem(env)) is problem


def test_origin_rule():
    base = {"HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http"}
    assert TRUST.cross_site(base) is None
    assert TRUST.cross_site({**base, "HTTP_ORIGIN": "http://127.0.0.1:8080"}) is None
    assert TRUST.cross_site({**base, "HTTP_SEC_FETCH_SITE": "same-origin"}) is None
    assert TRUST.cross_site({**base, "HTTP_SEC_FETCH_SITE": "none"}) is None
    for bad in ({"HTTP_ORIGIN": "http://evil.example"}, {"HTTP_ORIGIN": "null"}, {"HTTP_ORIGIN": "https://127.0.0.1:8080"},
                {"HTTP_ORIGIN": "http://127.0.0.1:8081"}, {"HTTP_ORIGIN": "http://localhost:8080"},
                {"HTTP_ORIGIN": "http://127.0.0.1:99999"}, {"HTTP_SEC_FETCH_SITE": "cross-site"},
                {"HTTP_SEC_FETCH_SITE": "same-site"}):
        assert TRUST.cross_site({**base, **bad}), bad
    assert TRUST.cross_site({"HTTP_HOST": "[::1]", "HTTP_ORIGIN": "http://[0:0::1]:80"}) is None
    # Behind a trusted TLS proxy the browser's origin is the proxy's public one.
    proxied = Trust(["cams.example.com"], ["127.0.0.1"])
    env = {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8080", "HTTP_X_FORWARDED_HOST": "cams.example.com",
           "HTTP_X_FORWARDED_PROTO": "https", "HTTP_ORIGIN": "https://cams.example.com"}
    assert proxied.cross_site(env) is None
    assert Trust(["cams.example.com"]).cross_site(env)  # the same headers from an untrusted peer
    assert proxied.hosts_allowed({**env, "HTTP_X_FORWARDED_HOST": "evil.example"}) == "evil.example"


def test_config_keys_validate_and_protect_snapshots_needs_a_key():
    cfg = config.load(env={"RTSP2JPG_HTTP_ALLOWED_HOSTS": "cams.example.com, *.lan",
                           "RTSP2JPG_HTTP_TRUSTED_PROXIES": "127.0.0.1 10.0.0.0/8"})
    assert cfg.http.allowed_hosts == ("cams.example.com", "*.lan")
    assert cfg.http.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    for key, value in (("allowed_hosts", ["evil example"]), ("allowed_hosts", ["a.*.b"]),
                       ("trusted_proxies", ["nginx"])):
        with pytest.raises(config.ConfigError, match=rf"^http\.{key}: "):
            config.load(env={}, overrides={"http": {key: value}})
    with pytest.raises(config.ConfigError, match=r"^http\.protect_snapshots: .*http\.api_key"):
        config.load(env={}, overrides={"http": {"protect_snapshots": True}})
    assert config.load(env={"RTSP2JPG_HTTP_API_KEY": "k"}, overrides={"http": {"protect_snapshots": True}})


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_protect_snapshots_without_key_exits_2_naming_the_key(tmp_path, command):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"http": {"protect_snapshots": True, "port": 0},
                                    "storage": {"db_path": str(tmp_path / "r.db")}}))
    args = [str(path)] if command == "check-config" else ["--config", str(path)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "rtsp2jpg", command, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "http.protect_snapshots" in done.stderr and "http.api_key" in done.stderr


# --- the real service over a socket ---------------------------------------------------------------

@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    from tests.support.service_process import ServiceProcess

    service = ServiceProcess(tmp_path_factory.mktemp("trust"), {
        "http": {"allowed_hosts": ALLOWED},
        "cameras": [{"id": "cam", "url": "rtsp://127.0.0.1:9/x"}]}).start()
    yield service
    service.stop()
    service.kill()


def _ids(svc) -> list[str]:
    return sorted(c["id"] for c in svc.get("/cameras").json())


REBIND_PATHS = [("GET", "/cameras"), ("GET", "/status/cam"), ("GET", "/snapshot/cam"), ("GET", "/snapshot/cam.jpg"),
                ("GET", "/health"), ("GET", "/health?x=1"), ("GET", "/"), ("GET", "/static/app.js"),
                ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/stream/cam"), ("GET", "/no/such/path"),
                ("GET", "/cameras/cam/history"), ("POST", "/register"), ("POST", "/unregister/cam"),
                ("DELETE", "/cameras/cam"), ("PUT", "/register")]


def test_rebinding_host_gets_421_on_every_route(svc):
    for method, path in REBIND_PATHS:
        for host in ("evil.example", f"evil.example:{svc.port}", "EVIL.example.", "wild.example", "localhost.evil"):
            body = b'{"rtsp_url": "rtsp://127.0.0.1:9/y"}' if method != "GET" else None
            status, data = raw(svc.port, method, path, body, {**JSON} if body else {}, host=host)
            assert status == 421, (method, path, host, status, data[:200])
            assert b"http.allowed_hosts" in data
    assert _ids(svc) == ["cam"]


def test_allowed_hosts_are_answered(svc):
    hosts = [f"127.0.0.1:{svc.port}", "127.0.0.1", f"localhost:{svc.port}", "LOCALHOST.", f"[::1]:{svc.port}",
             HOSTNAME, SHORT, f"{SHORT}.local", f"{HOSTNAME}.local", "cams.example.com", f"Cams.Example.Com:{svc.port}",
             "a.wild.example", "10.1.2.3:80"]
    for host in hosts:
        for path in ("/health", "/cameras", "/status/cam", "/no/such/path"):
            status, data = raw(svc.port, "GET", path, host=host)
            assert status == (404 if path == "/no/such/path" else 200), (host, path, status, data[:200])
    status, _ = raw(svc.port, "GET", "/health", host=None)  # http.client's own Host
    assert status == 200


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=_NAMES, port=_PORT)
def test_any_unknown_host_gets_421_over_the_socket(svc, name, port):
    assume(not _known(name) and name.lower() not in (HOSTNAME, SHORT, f"{SHORT}.local", f"{HOSTNAME}.local"))
    status, _ = raw(svc.port, "GET", "/cameras", host=name + port)
    assert status == 421


@pytest.mark.parametrize("method,path", [("POST", "/register"), ("POST", "/unregister/nope"),
                                         ("DELETE", "/cameras/nope")])
@pytest.mark.parametrize("ctype,body", [
    ("text/plain", b'{"rtsp_url": "rtsp://127.0.0.1:9/plain"}'),
    ("text/plain;charset=UTF-8", b'{"rtsp_url":"rtsp://127.0.0.1:9/form","a":"="}'),  # <form enctype=text/plain>
    ("application/x-www-form-urlencoded", b"rtsp_url=rtsp%3A%2F%2F127.0.0.1%3A9%2Fform"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="rtsp_url"\r\n\r\nx\r\n--b--'),
    (None, b'{"rtsp_url": "rtsp://127.0.0.1:9/none"}'),
])
def test_non_json_bodies_are_415(svc, method, path, ctype, body):
    headers = {"Content-Type": ctype} if ctype else {}
    status, data = raw(svc.port, method, path, body, headers)
    assert status == 415, (method, path, ctype, status, data[:200])
    assert b"application/json" in data
    assert _ids(svc) == ["cam"]


def test_json_and_empty_bodies_still_work(svc):
    status, data = raw(svc.port, "POST", "/register", b'{"rtsp_url": "rtsp://127.0.0.1:9/ok"}',
                       {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200, data
    cam_id = json.loads(data)["id"]
    status, data = raw(svc.port, "POST", f"/unregister/{cam_id}")  # the original's clients: no body at all
    assert (status, json.loads(data)) == (200, {"ok": True})
    status, _ = raw(svc.port, "POST", "/unregister/gone", b"", {})
    assert status == 200
    assert _ids(svc) == ["cam"]


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://localhost:1"},
    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
])
def test_cross_site_mutations_are_403_whatever_the_content_type(svc, headers):
    headers = {k: v.format(port=svc.port) for k, v in headers.items()}
    register = b'{"rtsp_url": "rtsp://127.0.0.1:9/x2"}'
    for method, path, body, ctype in (("POST", "/register", register, "application/json"),
                                      ("POST", "/register", register, "text/plain"),
                                      ("POST", "/unregister/cam", None, None), ("DELETE", "/cameras/cam", None, None)):
        extra = {"Content-Type": ctype} if ctype else {}
        status, data = raw(svc.port, method, path, body, {**headers, **extra})
        assert status == 403, (headers, method, path, status, data[:200])
        assert b"cross-site" in data
    assert _ids(svc) == ["cam"]


def test_same_origin_mutations_and_cross_site_reads_pass(svc):
    same = {"Origin": f"http://127.0.0.1:{svc.port}", "Sec-Fetch-Site": "same-origin", **JSON}
    status, data = raw(svc.port, "POST", "/register", b'{"rtsp_url": "rtsp://127.0.0.1:9/same"}', same)
    assert status == 200, data
    cam_id = json.loads(data)["id"]
    assert raw(svc.port, "DELETE", f"/cameras/{cam_id}", None, same)[0] == 200
    # Reads stay open to other origins: <img src=.../snapshot/cam> on another page (503: no frame yet).
    embed = {"Origin": "http://dashboard.example", "Sec-Fetch-Site": "cross-site"}
    assert raw(svc.port, "GET", "/snapshot/cam", None, embed)[0] == 503
    assert raw(svc.port, "GET", "/cameras", None, embed)[0] == 200


@pytest.mark.parametrize("header,value", [("X-Forwarded-For", "127.0.0.1"), ("X-Real-IP", "127.0.0.1"),
                                          ("Forwarded", "for=127.0.0.1"), ("X-Forwarded-Host", "localhost"),
                                          ("Via", "1.1 nginx")])
def test_loopback_with_forwarding_headers_is_not_loopback_without_trusted_proxies(svc, header, value):
    """nginx on the device forwards every LAN client from 127.0.0.1: that must not unlock mutations.
    (Waitress's clear_untrusted_proxy_headers used to strip X-Forwarded-For before the check saw it.)"""
    status, data = raw(svc.port, "POST", "/register", b'{"rtsp_url": "rtsp://127.0.0.1:9/fwd"}',
                       {header: value, **JSON})
    assert status == 403 and b"http.trusted_proxies" in data, (header, status, data[:300])
    assert _ids(svc) == ["cam"]
    assert "forwarded by an untrusted proxy" in svc.log()


def test_trusted_proxy_names_the_client(service_factory):
    svc = service_factory({"http": {"trusted_proxies": ["127.0.0.1"], "allowed_hosts": ["cams.example.com"]}})
    body = b'{"rtsp_url": "rtsp://127.0.0.1:9/p%d"}'
    cases = [({"X-Forwarded-For": "127.0.0.1"}, 200), ({"X-Forwarded-For": "192.0.2.7"}, 403),
             ({"X-Forwarded-For": "192.0.2.7, 127.0.0.1"}, 403), ({"X-Forwarded-For": "127.0.0.1, 192.0.2.7"}, 403),
             ({"Forwarded": "for=127.0.0.1;proto=http"}, 200), ({"Forwarded": 'for="192.0.2.7:4711"'}, 403),
             ({"Forwarded": 'for="[2001:db8::7]"'}, 403), ({"X-Real-IP": "192.0.2.7"}, 403),
             ({"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "192.0.2.7"}, 403), ({}, 200)]
    for i, (headers, expected) in enumerate(cases):
        status, data = raw(svc.port, "POST", "/register", body % i, {**headers, **JSON})
        assert status == expected, (headers, status, data[:300])
    assert "from 192.0.2.7" in svc.log() and "from 2001:db8::7" in svc.log()
    # Behind the proxy the dashboard's origin is the proxy's: https://cams.example.com.
    proxied = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "cams.example.com", "X-Forwarded-Proto": "https",
               "Origin": "https://cams.example.com", "Sec-Fetch-Site": "same-origin", **JSON}
    assert raw(svc.port, "POST", "/register", body % 99, proxied)[0] == 200
    assert raw(svc.port, "GET", "/health", None, {**proxied, "X-Forwarded-Host": "evil.example"})[0] == 421


# --- through a real nginx, configured as docs/deployment.md says ----------------------------------



def _documented_nginx_server(upstream: int, listen: int) -> str:
    """The `server { ... }` block of docs/deployment.md, listening on `listen`, proxying to `upstream`."""
    doc = (REPO / "docs" / "deployment.md").read_text()
    block = doc.split("```nginx\n", 1)[1].split("```", 1)[0]
    assert "server_name cams.example.com;" in block and "proxy_pass http://127.0.0.1:8080;" in block
    block = block.replace("server_name cams.example.com;", f"listen {listen}; server_name cams.example.com;")
    return block.replace("127.0.0.1:8080", f"127.0.0.1:{upstream}")


class Nginx:
    def __init__(self, workdir: Path, upstream: int) -> None:
        from tests.support.service_process import free_port

        self.dir, self.port = workdir, free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        temp = "".join(f"{kind}_temp_path {workdir}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{\naccess_log off;\nproxy_max_temp_file_size 0;\n{temp}"
            f"{_documented_nginx_server(upstream, self.port)}\n}}\n")
        self.proc = subprocess.Popen([self.binary(), "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                                      "-e", str(workdir / "error.log"), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        from tests.support.rtsp_server import wait_until

        def up() -> bool:
            assert self.proc.poll() is None, (workdir / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(up, 10)

    @staticmethod
    def binary() -> str:
        import os
        import shutil

        found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if found is None:
            if os.environ.get("CI"):
                pytest.fail("nginx is missing (scripts/test-packages.txt installs nginx-light)")
            pytest.skip("nginx is not installed")
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _via(host_ip: str, port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, host: str | None = None) -> int:
    conn = http.client.HTTPConnection(host_ip, port, timeout=15)
    try:
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in {**(headers or {}), **({"Content-Length": str(len(body))} if body else {})}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize("trusted", [False, True])
def test_through_the_documented_nginx(service_factory, tmp_path, trusted):
    """nginx on the device forwards everyone from 127.0.0.1. Without http.trusted_proxies nobody may
    change anything through it (fail closed); with it, the client it names decides."""
    Nginx.binary()
    lan = lan_address()
    svc = service_factory({"http": {"allowed_hosts": ["cams.example.com"],
                                    "trusted_proxies": ["127.0.0.1"] if trusted else []}})
    proxy = Nginx(tmp_path / "nginx", svc.port)
    try:
        def register(ip: str, **kw) -> int:
            body = b'{"rtsp_url": "rtsp://127.0.0.1:9/n%d"}' % register.n  # type: ignore[attr-defined]
            register.n += 1  # type: ignore[attr-defined]
            return _via(ip, proxy.port, "POST", "/register", body, {**JSON, **kw.pop("headers", {})}, **kw)

        register.n = 0  # type: ignore[attr-defined]
        assert _via("127.0.0.1", proxy.port, "GET", "/health") == 200
        # A client on the device, through the proxy: loopback only once the proxy is trusted.
        assert register("127.0.0.1") == (200 if trusted else 403)
        # It cannot pretend to be loopback with its own X-Forwarded-For: nginx appends the real peer.
        if lan:
            assert register(lan, headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}) == 403
            assert _via(lan, proxy.port, "GET", "/cameras") == 200
        # DNS rebinding through the proxy: nginx forwards the browser's Host, the service refuses it.
        assert _via("127.0.0.1", proxy.port, "GET", "/cameras", host="evil.example") == 421
        assert _via("127.0.0.1", proxy.port, "GET", "/cameras", host=f"cams.example.com:{proxy.port}") == 200
        # The dashboard served through the proxy is same-origin; another page is not.
        own = f"http://cams.example.com:{proxy.port}"
        assert register("127.0.0.1", host=f"cams.example.com:{proxy.port}",
                        headers={"Origin": own}) == (200 if trusted else 403)
        assert register("127.0.0.1", host=f"cams.example.com:{proxy.port}",
                        headers={"Origin": "http://evil.example"}) == 403
    finally:
        proxy.stop()
    assert len(svc.get("/cameras").json()) == (2 if trusted else 0)
