"""Services on fakes: a real, migrated database (tests/conftest.py's app, on every engine) and a Platform
whose Proxmox is an in-memory cluster and whose guests are FakeTransports.
"""
import pytest

from backend.deploy.deployer import Limits
from backend.extensions import db
from backend.models import Deployment, DeploymentEvent, LogLine, Release
from backend.platform import EXTENSION, Platform, platform_of
from backend.proxmox.settings import ProxmoxSettings
from backend.services import accounts
from backend.services.deployments import create_deployment
from backend.services.job_context import JobContext
from tests.fakes.proxmox import FakeNode, FakeProxmoxClient, FakeProxmoxClients
from tests.fakes.transport import FakeTransports, RecordingHooks

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx paas@platform"
TEMPLATE = 9000


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
def new_deployment(app, owner):
    """new_deployment(**fields) -> the id of a pending deployment of owner, created by the service."""
    def make(**fields):
        data = {"name": "shop-api", "deployment_type": "lxc", "framework": "flask",
                "github_url": "https://github.com/acme/shop-api", **fields}
        deployment = create_deployment(data, db.session.merge(owner))
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
