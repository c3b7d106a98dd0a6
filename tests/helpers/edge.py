"""A real Caddy (the edge) per test worker, and HTTP(S) requests to the names it serves, all on loopback.

`edge_caddy` is a session-scoped fixture: a conftest.py that imports it gives its tests one EdgeCaddy per
pytest-xdist worker (each with its own ports and data). Without caddy the tests are skipped, or fail when
CI=true. An app's name (app.apps.test) is reached without DNS: the connection goes to the edge's loopback
port and the name travels only in the TLS SNI and the Host header, as a browser would send them.
"""
import http.client
import json
import os
import socket
import ssl
import time
from dataclasses import dataclass

import pytest

from backend.simulation.edge import EdgeCaddy, caddy_available


def require_caddy():
    """Fail (in CI) or skip (elsewhere) unless caddy is installed."""
    if not caddy_available():
        problem = "caddy is missing: apt-get install caddy (.ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def edge_caddy(tmp_path_factory):
    """A running EdgeCaddy for this worker (started on first use, stopped at the end of the session)."""
    require_caddy()
    with EdgeCaddy(tmp_path_factory.mktemp("edge")) as edge:
        yield edge


class EdgeHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `host` at the edge's loopback port, trusting only the edge's CA (no DNS: SNI and Host say host)."""

    def __init__(self, edge, host, timeout=5.0):
        self.edge = edge
        context = ssl.create_default_context(cafile=str(edge.ca_path))
        super().__init__(host, edge.https_port, timeout=timeout, context=context)

    def connect(self):
        """Connect to the edge's address, then speak TLS for self.host."""
        sock = socket.create_connection((self.edge.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class EdgeResponse:
    status: int
    headers: dict
    body: bytes
    #: the server's certificate as ssl.getpeercert() gives it (None over plain HTTP)
    certificate: dict | None = None

    def json(self):
        return json.loads(self.body)


def connect_https(edge, host, timeout=5.0, tls_wait=20.0):
    """An EdgeHTTPSConnection to host, connected: the handshake is retried for up to tls_wait seconds, since
    Caddy obtains a new host's certificate just after the load that added it (a failed certificate check is
    not retried)."""
    deadline = time.monotonic() + tls_wait
    while True:
        connection = EdgeHTTPSConnection(edge, host, timeout=timeout)
        try:
            connection.connect()
            return connection
        except ssl.SSLCertVerificationError:
            connection.close()
            raise
        except ssl.SSLError:
            connection.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def https_get(edge, host, path="/", headers=None, timeout=5.0, method="GET", tls_wait=20.0):
    """An EdgeResponse of a request to https://host:<edge https port>path through the edge (see connect_https)."""
    connection = connect_https(edge, host, timeout=timeout, tls_wait=tls_wait)
    try:
        certificate = connection.sock.getpeercert()  # before the answer: a "Connection: close" one drops the socket
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return EdgeResponse(response.status, dict(response.getheaders()), response.read(), certificate)
    finally:
        connection.close()


def http_get(edge, host, path="/", headers=None, timeout=5.0):
    """An EdgeResponse of a plain-HTTP request for host at the edge's HTTP port (redirects are not followed)."""
    connection = http.client.HTTPConnection(edge.host, edge.http_port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{edge.http_port}", **(headers or {})})
        response = connection.getresponse()
        return EdgeResponse(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


APPS_DOMAIN = "apps.test"


def router_config(edge, **overrides):
    """The platform's settings that put it behind edge (internal TLS, apps under APPS_DOMAIN)."""
    settings = edge.settings
    return {"ROUTER": "caddy", "CADDY_ADMIN_URL": settings.admin_url, "APPS_DOMAIN": APPS_DOMAIN,
            "ROUTER_TLS": "internal", "ROUTER_HTTP_PORT": settings.http_port, "ROUTER_HTTPS_PORT": settings.https_port,
            "ROUTER_BIND": settings.bind, "ROUTER_ACCESS_LOG_DIR": settings.access_log_dir,
            "ROUTER_DRAIN_SECONDS": 2, **overrides}


def served(edge, host, path="/", tls_wait=20.0):
    """(status, body text) of an HTTPS request through the edge, or (None, why) when none came. tls_wait: how
    long a failed handshake is retried (a new route's certificate comes a moment after the route)."""
    try:
        answer = https_get(edge, host, path, tls_wait=tls_wait)
    except OSError as exc:
        return None, f"{exc.__class__.__name__}: {exc}"
    return answer.status, answer.body.decode(errors="replace")
