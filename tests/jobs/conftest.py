"""An app whose jobs provision on the fake Proxmox, over real HTTPS with the real proxmoxer."""
import pytest

from backend.platform import platform_of
from tests.helpers.apps import app_on_fake_proxmox


@pytest.fixture
def papp(database_url, fake):
    """The app with in-process jobs (no app context pushed: each request and job has its own)."""
    app = app_on_fake_proxmox(database_url, fake)
    yield app
    platform_of(app).jobs.wait_idle(30)
    platform_of(app).jobs.shutdown()
    fake.assert_no_violations()


@pytest.fixture
def pclient(papp):
    return papp.test_client()
