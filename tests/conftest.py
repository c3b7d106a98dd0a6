"""Fixtures: app, client, runner and a fresh database per test on SQLite, PostgreSQL and MariaDB.

SQLite always runs. PostgreSQL and MariaDB run when TEST_POSTGRES_URL and TEST_MYSQL_URL are set
(.ci/run sets both and fails when either server is unreachable). The schema is built once per
engine by the migrations themselves, then every test starts from empty tables.

Under pytest-xdist each worker gets databases of its own on those servers (the URL's database name
with _gw0, _gw1, ... appended, created when missing), and its own simulation address block.

Plain functions the tests share (users, payloads, waiting, app builders) live in tests/helpers/.
"""
import shutil
import socket

import pytest

from app import db
from backend.platform import platform_of
from backend.proxmox.settings import ProxmoxSettings
from backend.simulation.runtime import TEST_BLOCKS, address_pool, claim_block
from tests.helpers.accounts import admin_token
from tests.helpers.api import create_deployment
from tests.helpers.apps import PLATFORM_SSH_KEY, create_test_app
from tests.helpers.database import ENGINE_URLS, build_schema, drop_everything, empty_tables, ensure_database
from tests.helpers.edge import edge_caddy  # noqa: F401 - a fixture: one real Caddy per test worker

# Simulated guests of this test worker: a block apart from every running simulation, from the other
# workers and from any other test run on this machine (claimed by lock, held while the worker lives).
# Blocks from 200 up belong to the real-guest tests, which pick theirs by name.
_BLOCK, _BLOCK_LOCK = claim_block(range(TEST_BLOCKS.start, 200))
TEST_ADDRESS_POOL = address_pool(_BLOCK)


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory):
    """Per engine, a URL whose database has the migrated schema (built on first use)."""
    prepared = {}

    def get(engine_name):
        if engine_name not in prepared:
            if engine_name == "sqlite":
                template = tmp_path_factory.mktemp("sqlite") / "template.db"
                url = f"sqlite:///{template}"
            else:
                url = ENGINE_URLS[engine_name]
                ensure_database(url)
                drop_everything(url)
            build_schema(url)
            prepared[engine_name] = url
        return prepared[engine_name]

    return get


@pytest.fixture(params=list(ENGINE_URLS))
def engine_name(request):
    """Each database engine the suite can reach: sqlite always, the others when configured."""
    if request.param != "sqlite" and not ENGINE_URLS[request.param]:
        pytest.skip(f"TEST_{'POSTGRES' if request.param == 'postgresql' else 'MYSQL'}_URL is not set")
    return request.param


@pytest.fixture
def database_url(engine_name, migrated_urls, tmp_path):
    """A URL to a migrated, empty database for this test alone."""
    url = migrated_urls(engine_name)
    if engine_name == "sqlite":
        copy = tmp_path / "test.db"
        shutil.copy(url.removeprefix("sqlite:///"), copy)
        yield f"sqlite:///{copy}"
        return
    yield url
    empty_tables(url)


@pytest.fixture(scope="session")
def unreachable_proxmox():
    """Proxmox settings whose port refuses every connection: a configured cluster that is down.

    The port is held by a socket bound on loopback that never listens, so nothing else can take it.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    try:
        yield ProxmoxSettings(host="127.0.0.1", port=holder.getsockname()[1], token_name="paas",
                              token_value="secret", timeout=2, retries=0, task_timeout=5, ip_timeout=5,
                              ssh_public_key=PLATFORM_SSH_KEY)
    finally:
        holder.close()


@pytest.fixture
def app(database_url, unreachable_proxmox):
    """The API with manual jobs; Proxmox is configured but down, so a job that reaches it fails at once.

    Its test_client() is an AuthedClient: requests to /api/ carry the suite's admin token unless told otherwise.
    """
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox)
    admin_token(app)  # before the test's own session opens a snapshot (MariaDB's repeatable read)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_deployment(client):
    """Create a deployment through the API and return its JSON."""

    def make(**overrides):
        return create_deployment(client, **overrides)

    return make


@pytest.fixture
def run_jobs(app):
    """Run the jobs the requests queued so far (the testing config queues them without running).

    The test's own session then starts a new transaction, so it sees what the jobs committed
    (MariaDB's repeatable read would otherwise keep showing the snapshot from before).
    """
    from backend.extensions import db

    def run():
        results = platform_of(app).jobs.run_pending()
        db.session.rollback()
        return results
    return run


@pytest.fixture
def delete_deployment(client, run_jobs):
    """DELETE a deployment and run the destroy job; returns the DELETE response."""
    def delete(ident):
        response = client.delete(f"/api/deployments/{ident}")
        run_jobs()
        return response
    return delete


@pytest.fixture
def fake():
    """A running two-node fake Proxmox (HTTPS on loopback) with VM template 9000 on pve1 and quick tasks."""
    from backend.simulation.fake_proxmox import FakeProxmox, Node

    with FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=0.02) as server:
        server.add_template(9000, node="pve1")
        yield server
