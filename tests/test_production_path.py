"""The production start path, run as the compose api service runs it: real processes from the shell.

`flask db upgrade` on an empty database, then `gunicorn wsgi:app` (the command docker-compose.yml gives,
read from the file), answering /health and a create; two gunicorn workers, each with its own job pool,
recovery and sweeper, never run a job twice. The Flask CLI and gunicorn find wsgi.py: importing it must
start nothing.
"""
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from backend.simulation.fake_proxmox import FakeProxmox, Node
from tests.helpers.apps import PLATFORM_SSH_KEY
from tests.helpers.database import ENGINE_URLS, ensure_database
from tests.helpers.network import call_api, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "fresh-" + uuid.uuid4().hex


def engines(*names):
    return [pytest.param(name, marks=pytest.mark.skipif(name != "sqlite" and not ENGINE_URLS[name],
                                                        reason=f"no {name} server configured"))
            for name in names]


@pytest.fixture
def fresh_database(request, tmp_path):
    """A URL to a database that does not exist yet (SQLite) or is empty (a new one on the server)."""

    def make(engine_name):
        if engine_name == "sqlite":
            return f"sqlite:///{tmp_path / 'fresh.db'}"
        name = f"fresh_{uuid.uuid4().hex[:12]}"
        url = make_url(ENGINE_URLS[engine_name]).set(database=name).render_as_string(hide_password=False)
        ensure_database(url)
        request.addfinalizer(lambda: _drop_database(url))
        return url

    return make


def _drop_database(url):
    parsed = make_url(url)
    postgres = parsed.get_backend_name() == "postgresql"
    engine = create_engine(parsed.set(database="postgres" if postgres else "mysql"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = f'"{parsed.database}"' if postgres else f"`{parsed.database}`"
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}" + (" WITH (FORCE)" if postgres else "")))
    finally:
        engine.dispose()


def process_env(database_url, tmp_path, **extra):
    """The environment of a production process: its database, secrets and keys in tmp_path, loopback only."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PROXMOX_", "CELERY_", "JOBS_", "DATABASE_", "USE_POSTGRES"))}
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "APP_ENV": "production",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATABASE_URL": database_url,
        "ENV_ENCRYPTION_KEY": "2fcIRJ7s1l0EA_lXnNzOlYjcJIzBxMnh9rQ-TZxoZ6w=",
        "SSH_KEY_PATH": str(tmp_path / "ssh" / "id_ed25519"),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DEPLOY_APPS": "false",  # the fake's guests run nothing: these tests are about the control plane
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


def proxmox_env(fake):
    return {"PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": str(fake.port), "PROXMOX_USER": "root@pam",
            "PROXMOX_TOKEN_NAME": "paas", "PROXMOX_TOKEN_VALUE": "secret",
            "PROXMOX_CA_BUNDLE": str(fake.ca_bundle_path), "PROXMOX_VM_TEMPLATE_ID": "9000",
            "PROXMOX_SSH_PUBLIC_KEY": PLATFORM_SSH_KEY,
            "PROXMOX_TASK_TIMEOUT": "30", "PROXMOX_IP_TIMEOUT": "10"}


def run(argv, env, timeout=120):
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def compose_api_command():
    """The api service's command from docker-compose.yml, as the argument list the container runs."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["api"]["command"]
    return command if isinstance(command, list) else shlex.split(command)


class Served:
    """The compose api command running as a process group; stopped (and waited for) on exit."""

    def __init__(self, env, log_path):
        self.env = env
        self.base = f"http://127.0.0.1:{env['PORT']}"
        self.log_path = log_path
        self.log = open(log_path, "w")  # closed in stop()
        self.process = subprocess.Popen(compose_api_command(), cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the api command exited:\n{self.output()}"
            try:
                status, body = call_api(self.base, "GET", "/health")
                if status == 200:
                    return body
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"/health did not answer 200 in {timeout} s:\n{self.output()}")

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text()[-4000:]

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


def admin_token(env):
    result = run([sys.executable, "manage_db.py", "create-user", "admin", "--admin"], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("engine_name", engines("sqlite", "postgresql", "mysql"))
def test_flask_db_upgrade_builds_an_empty_database_and_downgrade_base_undoes_it(engine_name, fresh_database,
                                                                                  tmp_path):
    url = fresh_database(engine_name)
    env = process_env(url, tmp_path)
    for step in (["flask", "db", "upgrade"], ["flask", "db", "downgrade", "base"], ["flask", "db", "upgrade"]):
        result = run(step, env)
        assert result.returncode == 0, f"{' '.join(step)} failed:\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"deployments", "users", "api_tokens", "releases", "alembic_version"} <= tables


@pytest.mark.parametrize("engine_name", engines("postgresql", "mysql"))
def test_the_compose_api_command_serves_a_fresh_database(engine_name, fresh_database, tmp_path):
    with FakeProxmox(nodes=[Node("pve1")], task_seconds=0.02) as fake:
        fake.add_template(9000, node="pve1")
        env = process_env(fresh_database(engine_name), tmp_path, **proxmox_env(fake))
        served = Served(env, tmp_path / "api.log")
        try:
            health = served.wait_healthy()
            assert health == {"status": "ok", "database": "ok", "proxmox": "ok"}
            token = admin_token(env)
            status, body = call_api(served.base, "POST", "/api/deployments", token=token, body={
                "name": "fresh-app", "deployment_type": "lxc", "framework": "flask",
                "github_url": "https://github.com/acme/fresh-app"})
            assert status == 201, body
        finally:
            served.stop()
        assert "Traceback" not in served.output()


def test_two_gunicorn_workers_never_run_a_job_twice(fresh_database, tmp_path):
    """Ten creates through a real gunicorn with two workers, each with a pool, recovery and a sweeper that
    looks every second: every deployment gets exactly one guest, created once."""
    url = fresh_database("postgresql") if ENGINE_URLS["postgresql"] else fresh_database("sqlite")
    with FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=0.05) as fake:
        fake.add_template(9000, node="pve1")
        env = process_env(url, tmp_path, WEB_CONCURRENCY="2", JOB_SWEEP_SECONDS="1", **proxmox_env(fake))
        served = Served(env, tmp_path / "api.log")
        try:
            served.wait_healthy()
            token = admin_token(env)
            idents = []
            for number in range(10):
                status, body = call_api(served.base, "POST", "/api/deployments", token=token, body={
                    "name": f"app-{number:02d}", "deployment_type": "lxc", "framework": "flask",
                    "github_url": f"https://github.com/acme/app-{number}"})
                assert status == 201, body
                idents.append(body["deployment"]["id"])
            deadline = time.monotonic() + 90
            while True:
                answers = [call_api(served.base, "GET", f"/api/deployments/{i}", token=token)[1] for i in idents]
                statuses = [answer["deployment"]["status"] for answer in answers]
                if all(s == "running" for s in statuses):
                    break
                assert time.monotonic() < deadline, f"not all running: {statuses}\n{served.output()}"
                time.sleep(0.3)
            time.sleep(2.5)  # two more sweeps in each worker: nothing may be queued again
        finally:
            served.stop()
    creates = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/lxc") and r.status == 200]
    assert len(creates) == 10, [r.path for r in creates]
    assert len({r.params["vmid"] for r in creates}) == 10
    assert len(fake.guest_ids()) == 10
    starts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/status/start")]
    assert len(starts) == 10
    output = served.output()
    assert "Traceback" not in output


BAD_URLS = {
    "malformed": ("nonsense", "DATABASE_URL is not a database URL"),
    "unknown-kind": ("oracle2://u:sekrit@127.0.0.1/db", "unknown database kind 'oracle2'"),
    "missing-driver": ("postgresql+pg8000://u:sekrit@127.0.0.1/db", "its driver is not installed"),
    "refused": ("postgresql://u:sekrit@127.0.0.1:1/db", "cannot use the database at DATABASE_URL="),
    "refused-mysql": ("mysql://root:sekrit@127.0.0.1:1/db", "cannot use the database at DATABASE_URL="),
}
COMMANDS = {
    "flask-db-upgrade": ["flask", "db", "upgrade"],
    "manage-db-stats": [sys.executable, "manage_db.py", "stats"],
    "python-app-py": [sys.executable, "app.py"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_a_database_url_that_cannot_work_is_one_line_naming_it_from_every_command(command, case, tmp_path):
    url, words = BAD_URLS[case]
    env = process_env(url, tmp_path, APP_ENV="development", PROXMOX_HOST="")
    result = run(COMMANDS[command], env, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and words in lines[-1], result.stderr[-2000:]
    assert "DATABASE_URL" in lines[-1]
    assert "Traceback" not in result.stderr and "No such command" not in result.stderr
    assert "sekrit" not in result.stderr + result.stdout
