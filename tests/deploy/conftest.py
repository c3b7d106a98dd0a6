"""The deploy step for real, on this machine: simulation mode (fake Proxmox, local sandboxes) and
sample apps in local git repositories, reached through git's url.<base>.insteadOf so that the API
keeps accepting only GitHub URLs."""
from pathlib import Path

import pytest

from backend.platform import platform_of
from backend.simulation.runtime import settings_for
from tests.conftest import TEST_ADDRESS_POOL
from tests.helpers.apps import app_on_fake_proxmox
from tests.helpers.database import ENGINE_URLS
from tests.helpers.repos import Repos


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request):
    """The long flows run on the default database and on PostgreSQL (the other tests cover MariaDB)."""
    if request.param != "sqlite" and not ENGINE_URLS[request.param]:
        pytest.skip("TEST_POSTGRES_URL is not set")
    return request.param


@pytest.fixture
def repos(tmp_path):
    """Local git repositories standing for GitHub ones, under tmp_path."""
    return Repos(tmp_path / "github")


def simulation_app(database_url, fake, repos, tmp_path, **config):
    """The app in simulation mode with in-process jobs; guests are sandboxes under tmp_path. Yields it, then
    stops every sandbox's app: nothing a test started outlives it."""
    settings = settings_for(fake, timeout=5, task_timeout=20, ip_timeout=5, ip_pool=TEST_ADDRESS_POOL)
    app = app_on_fake_proxmox(database_url, fake, settings=settings,
                              SIMULATE=True, DEPLOY_APPS=True, SIMULATION_DIR=str(tmp_path / "simulation"),
                              GIT_URL_REWRITES={f"file://{repos.base}/": "https://github.com/"},
                              GIT_ALLOW_PROTOCOL="https:file", JOB_TIME_LIMIT=300, HEALTH_CHECK_TIMEOUT=20,
                              DEPLOY_COMMAND_TIMEOUT=240, **config)
    yield app
    platform_of(app).jobs.wait_idle(60)
    platform_of(app).jobs.shutdown()
    from backend.deploy.local import LocalTransport

    for sandbox in (Path(tmp_path) / "simulation" / "guests").glob("*"):
        sandbox_guest = LocalTransport(sandbox)
        for service in sandbox_guest.services():
            sandbox_guest.stop_service(service)
    fake.assert_no_violations()


@pytest.fixture
def sim(database_url, fake, repos, tmp_path):
    """The app in simulation mode with in-process jobs; guests are sandboxes under tmp_path."""
    yield from simulation_app(database_url, fake, repos, tmp_path)


@pytest.fixture
def sclient(sim):
    return sim.test_client()
