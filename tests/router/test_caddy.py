"""The edge router against a real Caddy (Debian's 2.6) on loopback, with a tiny upstream app behind it."""
import base64
import hashlib
import json
import ssl
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.router import CaddyRouter, Route, RouterError, RouterSettings, RouterUnavailable
from backend.simulation.edge import EdgeCaddy
from tests.helpers.edge import connect_https, http_get, https_get, require_caddy
from tests.helpers.network import free_port
from tests.helpers.waiting import poll

APP = "app.apps.test"
CUSTOM = "www.custom.test"
OTHER = "other.apps.test"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class UpstreamHandler(BaseHTTPRequestHandler):
    """/sse: one event, then (once the test says so) a last one; an Upgrade: a 101 and an echo; else: the headers."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        elif self.path == "/sse":
            self._events()
        else:
            body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"data: first\n\n")
        self.wfile.flush()
        self.server.release_stream.wait(10)
        self.wfile.write(b"data: last\n\n")
        self.close_connection = True

    def _websocket(self):
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.wfile.flush()
        self.wfile.write(self.rfile.read1(1024))
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), UpstreamHandler)
    server.daemon_threads = True
    server.release_stream = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def router(edge_caddy):
    return CaddyRouter(edge_caddy.settings)


@pytest.fixture
def app_route(upstream):
    return Route(key="0a1b2c", hosts=(APP, CUSTOM), upstreams=(f"127.0.0.1:{upstream.server_port}",))


@pytest.fixture
def other_route(upstream):
    return Route(key="0d0e0f", hosts=(OTHER,), upstreams=(f"127.0.0.1:{upstream.server_port}",))


# The configuration as data, without Caddy


def test_the_config_is_the_same_for_the_same_routes_in_any_order():
    router = CaddyRouter(RouterSettings(admin_url="http://127.0.0.1:2019", access_log_dir="/var/log/edge"))
    one = Route("b2", ("b.test", "a.test"), ("10.0.0.2:8000",))
    two = Route("a1", ("c.test",), ("10.0.0.1:8000",))
    config = router.desired_config([one, two])

    assert config == router.desired_config([two, Route("b2", ("a.test", "b.test"), ("10.0.0.2:8000",))])
    assert config["admin"] == {"listen": "127.0.0.1:2019"}
    edge = config["apps"]["http"]["servers"]["edge"]
    assert edge["listen"] == [":443"]
    assert [route["match"][0]["host"] for route in edge["routes"][:2]] == [["c.test"], ["a.test", "b.test"]]
    assert edge["routes"][0]["handle"][0] == {
        "handler": "reverse_proxy", "upstreams": [{"dial": "10.0.0.1:8000"}], "flush_interval": -1,
        "load_balancing": {"selection_policy": {"policy": "first"}, "try_duration": "5s", "try_interval": "100ms"},
        "health_checks": {"passive": {"fail_duration": "1s", "max_fails": 1}}}
    assert edge["logs"]["logger_names"]["b.test"] == "b2"
    assert config["apps"]["tls"]["automation"]["policies"] == [
        {"subjects": ["a.test", "b.test", "c.test"], "issuers": [{"module": "acme"}]}]
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    assert config["logging"]["logs"]["access_b2"]["writer"]["filename"] == "/var/log/edge/b2.log"
    redirect = config["apps"]["http"]["servers"]["edge_redirect"]
    assert redirect["listen"] == [":80"]
    assert redirect["routes"][0]["handle"][0]["headers"]["Location"] == ["https://{http.request.host}{http.request.uri}"]


def test_settings_shape_the_config():
    settings = RouterSettings(admin_url="unix:///run/caddy/admin.sock", bind="192.0.2.1", acme_email="ops@example.com")
    config = CaddyRouter(settings).desired_config([Route("k", ("a.test",), ("10.0.0.1:80",))])

    assert config["admin"]["listen"] == "unix//run/caddy/admin.sock"
    assert CaddyRouter(replace(settings, admin_url="unix//run/caddy/admin.sock")).desired_config([]) == \
        CaddyRouter(settings).desired_config([])
    assert config["apps"]["http"]["servers"]["edge"]["listen"] == ["192.0.2.1:443"]
    assert config["apps"]["http"]["servers"]["edge_redirect"]["listen"] == ["192.0.2.1:80"]
    assert config["apps"]["tls"]["automation"]["policies"][0]["issuers"] == [
        {"module": "acme", "email": "ops@example.com"}]
    assert "logging" not in config and "logs" not in config["apps"]["http"]["servers"]["edge"]


@pytest.mark.parametrize("key, hosts, upstream", [
    ("../etc", ("a.test",), "10.0.0.1:80"),
    ("UPPER", ("a.test",), "10.0.0.1:80"),
    ("k", ("A.test",), "10.0.0.1:80"),
    ("k", ("{http.request.host}",), "10.0.0.1:80"),
    ("k", "a.test", "10.0.0.1:80"),
    ("k", (), "10.0.0.1:80"),
    ("k", ("a.test",), "example.com:80"),
    ("k", ("a.test",), "10.0.0.1:0"),
])
def test_a_route_refuses_what_cannot_be_a_key_a_host_or_an_upstream(key, hosts, upstream):
    with pytest.raises(ValueError):
        Route(key, hosts, (upstream,))


def test_two_routes_cannot_share_a_key_or_a_host():
    router = CaddyRouter(RouterSettings(admin_url="http://127.0.0.1:2019"))
    with pytest.raises(ValueError, match="a.test"):
        router.desired_config([Route("k1", ("a.test",), ("10.0.0.1:80",)), Route("k2", ("a.test",), ("10.0.0.2:80",))])
    with pytest.raises(ValueError, match="k1"):
        router.desired_config([Route("k1", ("a.test",), ("10.0.0.1:80",)), Route("k1", ("b.test",), ("10.0.0.2:80",))])


# Against Caddy


def test_each_host_of_a_route_serves_its_upstream_with_a_certificate_of_the_internal_ca(edge_caddy, router, app_route):
    router.apply([app_route])

    for host in (APP, CUSTOM):
        response = https_get(edge_caddy, host, "/hello?x=1")
        assert response.status == 200
        assert response.json()["path"] == "/hello?x=1"
        assert ("DNS", host) in response.certificate["subjectAltName"]


def test_plain_http_redirects_to_https_at_the_edge_port(edge_caddy, router, app_route):
    router.apply([app_route])

    response = http_get(edge_caddy, CUSTOM, "/path?q=1")

    assert response.status in (301, 308)
    assert response.headers["Location"] == f"https://{CUSTOM}:{edge_caddy.https_port}/path?q=1"


def test_an_unknown_host_gets_a_404_over_plain_http(edge_caddy, router, app_route):
    router.apply([app_route])

    assert http_get(edge_caddy, "nobody.apps.test").status == 404


def test_the_upstream_learns_the_client_address_and_scheme(edge_caddy, router, app_route):
    router.apply([app_route])

    headers = https_get(edge_caddy, APP, "/", headers={"X-Forwarded-For": "203.0.113.9"}).json()["headers"]

    # Caddy sets both itself; a client's own X-Forwarded-For is not believed (no trusted proxies).
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "https"


def test_a_server_sent_event_arrives_before_the_stream_ends(edge_caddy, router, app_route, upstream):
    router.apply([app_route])
    upstream.release_stream.clear()
    connection = connect_https(edge_caddy, APP)
    try:
        connection.request("GET", "/sse")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "text/event-stream"

        assert response.readline() == b"data: first\n"
        assert not upstream.release_stream.is_set()
        upstream.release_stream.set()
        assert b"data: last" in response.read()
    finally:
        upstream.release_stream.set()
        connection.close()


def test_a_websocket_upgrade_passes(edge_caddy, router, app_route):
    router.apply([app_route])
    connection = connect_https(edge_caddy, APP)
    try:
        tls = connection.sock
        tls.sendall((f"GET /ws HTTP/1.1\r\nHost: {APP}:{edge_caddy.https_port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(4096)
        head, _, echoed = head.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
        assert status_line.startswith("HTTP/1.1 101")
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        tls.sendall(b"\x81\x04ping")  # a frame is only bytes to the proxy: the upstream echoes them
        while len(echoed) < 6:
            echoed += tls.recv(4096)
        assert echoed == b"\x81\x04ping"
    finally:
        connection.close()


def test_apply_is_idempotent(edge_caddy, router, app_route, other_route):
    router.apply([app_route])
    assert router.apply([other_route, app_route]) is True
    loads = edge_caddy.log().count('"uri":"/load"')

    assert router.apply([app_route, other_route]) is False
    assert router.in_sync([other_route, app_route])
    assert edge_caddy.log().count('"uri":"/load"') == loads


def test_a_removed_route_is_no_longer_served(edge_caddy, router, app_route, other_route):
    router.apply([app_route, other_route])
    assert https_get(edge_caddy, OTHER).status == 200

    router.apply([app_route])

    try:
        status = https_get(edge_caddy, OTHER, tls_wait=0).status
    except ssl.SSLError:
        status = None  # Caddy no longer holds a certificate for it: the handshake fails
    assert status in (404, None)
    assert http_get(edge_caddy, OTHER).status == 404
    assert https_get(edge_caddy, APP).status == 200


def test_after_caddy_restarts_empty_apply_brings_the_routes_back(edge_caddy, router, app_route):
    router.apply([app_route])
    edge_caddy.restart_empty()

    assert router.in_sync([app_route]) is False
    assert router.apply([app_route]) is True
    assert router.in_sync([app_route]) is True
    assert https_get(edge_caddy, APP).status == 200


def test_an_unreachable_admin_api_is_router_unavailable(tmp_path, app_route):
    for admin_url in (f"http://127.0.0.1:{free_port()}", f"unix/{tmp_path}/no.sock"):
        router = CaddyRouter(RouterSettings(admin_url=admin_url, timeout=2))
        assert router.ping() is False
        with pytest.raises(RouterUnavailable):
            router.apply([app_route])
        with pytest.raises(RouterUnavailable):
            router.in_sync([app_route])


def test_a_config_caddy_refuses_is_a_router_error_in_its_words(edge_caddy, router, app_route):
    router.apply([app_route])
    refused = CaddyRouter(replace(edge_caddy.settings, http_port=edge_caddy.https_port))

    with pytest.raises(RouterError) as caught:
        refused.apply([app_route])

    assert not isinstance(caught.value, RouterUnavailable)
    assert "listener address repeated" in str(caught.value)
    assert router.in_sync([app_route])  # Caddy kept what it ran


def test_the_access_log_has_the_request_without_its_credentials(edge_caddy, router, app_route):
    router.apply([app_route])
    secret = "s3cret-token-value"

    response = https_get(edge_caddy, CUSTOM, "/logged?n=1", headers={
        "Authorization": f"Bearer {secret}", "Cookie": f"session={secret}", "User-Agent": "edge-test/1"})
    assert response.status == 200

    entries = poll(lambda: [e for e in router.access_log(app_route.key) if e["uri"] == "/logged?n=1"])
    entry = entries[-1]
    assert entry["method"] == "GET" and entry["status"] == 200 and entry["user_agent"] == "edge-test/1"
    assert entry["host"] == f"{CUSTOM}:{edge_caddy.https_port}" and entry["remote_ip"] == "127.0.0.1"
    assert entry["ts"].endswith("+00:00") and entry["duration_ms"] >= 0 and entry["size"] == len(response.body)
    assert set(entry) == {"ts", "remote_ip", "method", "host", "uri", "proto", "status", "duration_ms", "size",
                          "user_agent"}
    assert secret not in json.dumps(router.access_log(app_route.key))
    assert secret not in (edge_caddy.access_dir / f"{app_route.key}.log").read_text()


def test_the_access_log_is_empty_without_one(edge_caddy, router):
    assert router.access_log("ffffff") == []
    assert CaddyRouter(replace(edge_caddy.settings, access_log_dir=None)).access_log("0a1b2c") == []
    with pytest.raises(ValueError):
        router.access_log("../caddy")


def test_the_admin_api_on_a_unix_socket(tmp_path, upstream):
    require_caddy()
    route = Route("5a5a", (APP,), (f"127.0.0.1:{upstream.server_port}",))
    with EdgeCaddy(tmp_path / "edge", admin_socket=tmp_path / "admin.sock") as edge:
        router = CaddyRouter(edge.settings)
        assert edge.settings.admin_url.startswith("unix//")
        assert router.ping()

        assert router.apply([route]) is True
        assert https_get(edge, APP).status == 200
        # Either notation reaches the same socket and keeps the same admin.listen.
        assert CaddyRouter(replace(edge.settings, admin_url=f"unix://{tmp_path}/admin.sock")).in_sync([route])


def test_each_request_goes_to_the_first_upstream_that_accepts_without_a_reload(edge_caddy, router, upstream):
    """What a release switch rests on: the app's port first, the spare second; no config change between."""
    spare = ThreadingHTTPServer(("127.0.0.1", 0), UpstreamHandler)
    spare.daemon_threads = True
    threading.Thread(target=spare.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    closed = free_port()  # nothing listens there: the app's own port while its service restarts
    try:
        route = Route("f1", (APP,), (f"127.0.0.1:{closed}", f"127.0.0.1:{spare.server_port}"))
        router.apply([route])
        for _ in range(5):  # each one refused by the first, answered by the second at once
            answer = https_get(edge_caddy, APP, "/via")
            assert answer.status == 200 and answer.json()["path"] == "/via"
        both = Route("f1", (APP,), (f"127.0.0.1:{upstream.server_port}", f"127.0.0.1:{spare.server_port}"))
        assert router.apply([both]) is True
        # Both answer: only the first gets requests (the second is a release being checked beside the live one).
        spare_hits = []
        original = spare.RequestHandlerClass.do_GET
        spare.RequestHandlerClass = type("Counting", (UpstreamHandler,), {
            "do_GET": lambda self: (spare_hits.append(self.path), original(self))})
        for _ in range(5):
            assert https_get(edge_caddy, APP, "/first").status == 200
        assert spare_hits == []
    finally:
        spare.shutdown()
        spare.server_close()
