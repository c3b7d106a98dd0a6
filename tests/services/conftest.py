"""Services on fakes: a real, migrated database (tests/conftest.py's app, on every engine) and a Platform
whose Proxmox is an in-memory cluster and whose guests are FakeTransports.
"""
import dataclasses
import http.server
import socket
import threading

import pytest

from backend.deploy.deployer import READ_FILES, Limits
from backend.extensions import db
from backend.models import Deployment, DeploymentEvent, LogLine, Release
from backend.platform import EXTENSION, Platform, platform_of
from backend.proxmox.settings import ProxmoxSettings
from backend.services import accounts
from backend.services.deployments import create_deployment, update_deployment
from backend.services.job_context import JobContext
from backend.services.releases import request_redeploy
from tests.fakes.proxmox import FakeNode, FakeProxmoxClient, FakeProxmoxClients
from tests.fakes.transport import FakeTransports, RecordingHooks

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx paas@platform"
TEMPLATE = 9000
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
FILES = {"requirements.txt": "flask\n", "app.py": "from flask import Flask\napp = Flask(__name__)\n"}


@pytest.fixture
def settings():
    return ProxmoxSettings(host="pve.example.test", token_name="paas", token_value="secret", vm_template_id=TEMPLATE,
                           ssh_public_key=KEY, retries=0, task_timeout=30, ip_timeout=30)


@pytest.fixture
def proxmox(settings):
    """Two nodes, pve2 the emptier (so it is chosen unless a template or PROXMOX_NODE says otherwise)."""
    cluster = FakeProxmoxClient(settings, [FakeNode("pve1", memory_mb=32768), FakeNode("pve2", memory_mb=65536)])
    cluster.add_template(TEMPLATE, node="pve1")
    return cluster


@pytest.fixture
def transports():
    return FakeTransports()


@pytest.fixture
def hooks():
    return RecordingHooks()


@pytest.fixture
def limits():
    return Limits(command_timeout=60, health_timeout=5, releases_kept=3)


@pytest.fixture
def platform(app, proxmox, transports, hooks, limits):
    """The fakes as the app's platform (its job backend kept), so entry points and services both see them."""
    platform = Platform(proxmox=FakeProxmoxClients(proxmox), transports=transports, guest_hooks=hooks,
                        deploy_limits=limits, jobs=platform_of(app).jobs)
    app.extensions[EXTENSION] = platform
    return platform


@pytest.fixture
def owner(app):
    user = accounts.create_user("alice", "member")
    db.session.remove()
    return user


@pytest.fixture
def new_deployment(app, owner, platform):
    """new_deployment(**fields) -> the id of a pending deployment of owner, created by the service."""
    def make(**fields):
        data = {"name": "shop-api", "deployment_type": "lxc", "framework": "flask",
                "github_url": "https://github.com/acme/shop-api", **fields}
        deployment = create_deployment(data, db.session.merge(owner), proxmox=platform.proxmox)
        ident = deployment.id
        db.session.remove()
        return ident
    return make


@pytest.fixture
def job(platform):
    """job(deployment_id) -> a JobContext on the fakes, as backend/jobs/runner.py makes one."""
    def make(deployment_id, **kwargs):
        return JobContext(deployment_id, platform, **{"time_limit": 120, **kwargs})
    return make


def redeploy(deployment_id, platform, **changes):
    """Apply app-setting changes (if any) and queue a redeploy, as PATCH then POST .../redeploy would."""
    if changes:
        update_deployment(db.session.get(Deployment, deployment_id), changes)
    request_redeploy(db.session.get(Deployment, deployment_id), proxmox=platform.proxmox)
    db.session.remove()


def fresh(deployment_id):
    """The deployment as the database has it now (loaded in a new session, then left detached)."""
    db.session.remove()
    deployment = db.session.get(Deployment, deployment_id)
    db.session.remove()
    return deployment


def events(deployment_id):
    db.session.remove()
    found = [(e.kind, e.to_status, e.message) for e in DeploymentEvent.for_deployment(deployment_id)]
    db.session.remove()
    return found


def status_chain(deployment_id):
    return [to for kind, to, _ in events(deployment_id) if kind == "status"]


def releases(deployment_id):
    """{version: (status, commit_sha, error_message, config)} of the deployment's releases."""
    db.session.remove()
    found = {r.version: (r.status, r.commit_sha, r.error_message, dict(r.config or {}))
             for r in Release.for_deployment(deployment_id)}
    db.session.remove()
    return found


def log_lines(deployment_id, release=None):
    db.session.remove()
    lines = [(line.stream, line.line) for line in LogLine.page(deployment_id, release=release, limit=10_000)]
    db.session.remove()
    return lines


# -- the deploy step: a guest's repository, and the app as a loopback HTTP server -----------------------------


class AppServer:
    """'The app': answers 200 to every GET on 127.0.0.1:<a free port>, and remembers the paths asked for."""

    def __init__(self):
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                paths.append(self.path)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-app", daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def app_server():
    server = AppServer()
    yield server
    server.stop()


@pytest.fixture
def dead_port():
    """A loopback port where nothing answers: held by a socket that never listens, so connections are refused."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    yield holder.getsockname()[1]
    holder.close()


@pytest.fixture
def loopback_guests(proxmox, settings):
    """Guests whose address is 127.0.0.1, where the test's app server listens."""
    proxmox.settings = dataclasses.replace(settings, loopback_guests=True)
    proxmox.dhcp_address = lambda vmid: "127.0.0.1"


def script_repository(transport, files=FILES, sha=SHA):
    """The guest's git, find and head answer for a repository holding files at commit sha."""
    def listing(transport, argv):
        src = argv[1]
        return 0, [src, *(f"{src}/{name}" for name in sorted(files))]

    def read(transport, argv):
        marker, names = argv[4], argv[6:]
        return 0, [line for name in names for line in ("", f"{marker} {name}", *files[name].splitlines())]

    transport.script("git", "clone", handler=lambda transport, argv: transport.make_dirs(argv[-1]))
    transport.script("git", "-C", handler=lambda transport, argv: (0, [sha]) if argv[-2:] == ["rev-parse", "HEAD"]
                     else None)
    transport.script("find", handler=listing)
    transport.script("sh", "-c", READ_FILES, handler=read)
    transport.script("python3", "-c", output=["3.11.2"])
    transport.script("node", "--version", output=["v20.19.2"])
    transport.script("sh", "-c", 'command -v "$1"', handler=lambda transport, argv: (0, [f"/usr/bin/{argv[-1]}"]))
    return transport


@pytest.fixture
def guest_of(transports):
    """guest_of(deployment id) -> the scripted FakeTransport of its guest."""
    def make(ident):
        return script_repository(transports.guest(ident))
    return make
