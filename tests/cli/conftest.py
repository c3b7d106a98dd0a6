"""`paas` as a user runs it: a subprocess, against a live server in simulation mode (python app.py --simulate)."""
import json
import os
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from tests.helpers.simulation_server import running_simulation

PAAS = Path(sys.executable).parent / "paas"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The platform in simulation mode, one per test module, as README's first command starts it."""
    if not PAAS.exists():
        pytest.fail(f"{PAAS} is missing: setup.sh installs the command-line client (pip install -e .)")
    # Every login and password change of the module's tests comes from 127.0.0.1 as admin: more than the default
    # five a minute (tests/api/test_login.py tests the limit itself).
    with running_simulation(tmp_path_factory.mktemp("simulation"), RATELIMIT_LOGIN="60 per minute") as platform:
        yield platform


@dataclass
class TlsServer:
    url: str
    ca: Path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on loopback whose certificate comes from a CA of the test's own (trustme): it answers
    GET /api/deployments with an empty page, for as long as the module runs."""
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"success": true, "deployments": [], "next_cursor": null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield TlsServer(f"https://127.0.0.1:{server.server_address[1]}", ca_file)
    server.shutdown()
    server.server_close()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def paas(tmp_path):
    """paas(*args, stdin=None, env={...}) -> Result: the installed console script, with its own config home and
    no colour (its output goes to a pipe)."""
    home = tmp_path / "config"

    def run(*args, stdin=None, env=None, timeout=600):
        full_env = {key: value for key, value in os.environ.items() if not key.startswith("PAAS_")}
        full_env.update({"XDG_CONFIG_HOME": str(home), "HOME": str(tmp_path), "BROWSER": "", **(env or {})})
        full_env.pop("DISPLAY", None)
        completed = subprocess.run([str(PAAS), *args], input=stdin, capture_output=True, text=True, env=full_env,
                                   timeout=timeout, cwd=tmp_path)
        assert "Traceback" not in completed.stderr, completed.stderr
        return Result(completed.returncode, completed.stdout, completed.stderr)
    run.home = home
    return run


@pytest.fixture
def logged_in(paas, platform):
    result = paas("login", "--url", platform.url, "--token", platform.token)
    assert result.code == 0, result.err
    return paas
