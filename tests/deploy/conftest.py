"""The deploy step for real, on this machine: simulation mode (fake Proxmox, local sandboxes) and
sample apps in local git repositories, reached through git's url.<base>.insteadOf so that the API
keeps accepting only GitHub URLs."""
import subprocess
import textwrap
from pathlib import Path

import pytest

from backend.simulation.runtime import settings_for
from tests.conftest import TEST_ADDRESS_POOL
from tests.helpers.apps import app_on_fake_proxmox


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request):
    """The long flows run on the default database and on PostgreSQL (the other tests cover MariaDB)."""
    from tests.helpers.database import ENGINE_URLS

    if request.param != "sqlite" and not ENGINE_URLS[request.param]:
        pytest.skip("TEST_POSTGRES_URL is not set")
    return request.param


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True)


class Repos:
    """Local git repositories that stand for https://github.com/<owner>/<name>."""

    def __init__(self, base):
        self.base = base

    def make(self, name, files, owner="acme"):
        path = self.base / owner / name
        path.mkdir(parents=True)
        git(path, "init", "-q")
        return self.commit(name, files, owner=owner, message="first")

    def commit(self, name, files, owner="acme", message="change", branch=None):
        path = self.base / owner / name
        if branch:
            git(path, "checkout", "-q", "-B", branch)
        for relative, text in files.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", message)
        if branch:
            git(path, "checkout", "-q", "main")
        return subprocess.run(["git", "rev-parse", branch or "HEAD"], cwd=path, check=True, capture_output=True,
                              text=True).stdout.strip()

    @staticmethod
    def url(name, owner="acme"):
        return f"https://github.com/{owner}/{name}"


@pytest.fixture
def repos(tmp_path):
    return Repos(tmp_path / "github")


def flask_app(version="v1"):
    return {
        "requirements.txt": "flask\n",
        "app.py": f'''
            import os
            from flask import Flask

            app = Flask(__name__)


            @app.get("/")
            def index():
                return f"hello {{os.environ.get('GREETING', 'nobody')}} from {version}"


            @app.get("/health")
            def health():
                return "ok"
        ''',
    }


STATIC_SITE = {"public/index.html": "<!doctype html><title>static</title><h1>static site v1</h1>\n",
               "README.md": "not served\n"}


@pytest.fixture
def sim(database_url, fake, repos, tmp_path):
    """The app in simulation mode with in-process jobs; guests are sandboxes under tmp_path."""
    settings = settings_for(fake, timeout=5, task_timeout=20, ip_timeout=5, ip_pool=TEST_ADDRESS_POOL)
    app = app_on_fake_proxmox(database_url, fake, settings=settings,
                              SIMULATE=True, DEPLOY_APPS=True, SIMULATION_DIR=str(tmp_path / "simulation"),
                              GIT_URL_REWRITES={f"file://{repos.base}/": "https://github.com/"},
                              GIT_ALLOW_PROTOCOL="https:file", JOB_TIME_LIMIT=300, HEALTH_CHECK_TIMEOUT=20,
                              DEPLOY_COMMAND_TIMEOUT=240)
    yield app
    app.extensions["jobs"].wait_idle(60)
    app.extensions["jobs"].shutdown()
    # Nothing the test started may outlive it: stop every sandbox's app.
    from backend.deploy.local import LocalTransport

    for sandbox in (Path(tmp_path) / "simulation" / "guests").glob("*"):
        LocalTransport(sandbox).stop_service("paas-app")
    fake.assert_no_violations()


@pytest.fixture
def sclient(sim):
    return sim.test_client()
