"""The same jobs under Celery: a real worker process, this machine's Redis, the fake Proxmox."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.helpers.api import create_deployment, status_chain, wait_for_status
from tests.helpers.apps import PLATFORM_SSH_KEY, app_on_fake_proxmox, guests_of

pytestmark = pytest.mark.slow  # real git, pip, npm, gunicorn, sshd or Celery processes

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module", autouse=True)
def redis_is_there():
    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {BROKER} ({exc}); start it (see the README) or set TEST_REDIS_URL")


class Workers:
    """Celery worker processes for one test, each in its own process group; all killed at the end."""

    def __init__(self, database_url, fake, queue, tmp_path):
        self.env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": database_url,
                    "CELERY_BROKER_URL": BROKER, "CELERY_QUEUE": queue, "JOBS_BACKEND": "celery",
                    "CELERY_VISIBILITY_TIMEOUT": "10", "JOB_LEASE_SECONDS": "8", "JOB_TIME_LIMIT": "90",
                    "PROXMOX_HOST": fake.host, "PROXMOX_PORT": str(fake.port), "PROXMOX_USER": "root@pam",
                    "PROXMOX_TOKEN_NAME": "paas", "PROXMOX_TOKEN_VALUE": "secret",
                    "PROXMOX_CA_BUNDLE": fake.ca_bundle_path, "PROXMOX_VM_TEMPLATE_ID": "9000",
                    "PROXMOX_SSH_PUBLIC_KEY": PLATFORM_SSH_KEY, "PROXMOX_TASK_TIMEOUT": "30",
                    "PROXMOX_IP_TIMEOUT": "10", "PROXMOX_TIMEOUT": "5", "LOG_LEVEL": "INFO",
                    # These tests are about the queue: provisioning ends at a running guest.
                    "DEPLOY_APPS": "false", "SSH_KEY_PATH": str(tmp_path / "id_ed25519")}
        self.tmp_path = tmp_path
        self.processes = []

    def start(self, concurrency=2):
        name = f"w{len(self.processes)}-{uuid.uuid4().hex[:6]}@paas-test"
        log = open(self.tmp_path / f"{name.split('@')[0]}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "backend.jobs.celery_app", "worker", "--loglevel=INFO",
             f"--concurrency={concurrency}", "-n", name, "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process, sig=signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=20)

    def stop_all(self):
        for process in self.processes:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def logs(self):
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp_path.glob("w*.log")))


@pytest.fixture
def celery_setup(database_url, fake, tmp_path):
    queue = f"paas-test-{uuid.uuid4().hex[:8]}"
    app = app_on_fake_proxmox(database_url, fake, backend="celery", CELERY_BROKER_URL=BROKER, CELERY_QUEUE=queue,
                              CELERY_VISIBILITY_TIMEOUT=10)
    workers = Workers(database_url, fake, queue, tmp_path)
    yield app, workers
    workers.stop_all()
    redis.Redis.from_url(BROKER).delete(queue)
    fake.assert_no_violations()


def test_a_deployment_is_provisioned_and_deleted_by_a_celery_worker(celery_setup, fake):
    app, workers = celery_setup
    client = app.test_client()
    workers.start()
    created = create_deployment(client, deployment_type="vm")
    running = wait_for_status(client, created["id"], timeout=60)
    assert running["status"] == "running", (running["error_message"], workers.logs())
    assert status_chain(client, created["id"]) == ["pending", "provisioning", "deploying", "running"]
    assert guests_of(fake) == [running["vm_id"]]
    assert client.post(f"/api/deployments/{created['id']}/actions/stop").status_code == 202
    assert wait_for_status(client, created["id"], {"stopped"}, timeout=30)["status"] == "stopped"
    assert client.delete(f"/api/deployments/{created['id']}").status_code == 202
    assert wait_for_status(client, created["id"], {"deleted"}, timeout=30)["status"] == "deleted"
    assert guests_of(fake) == []


def test_a_worker_killed_mid_provision_is_replaced_and_the_job_finishes_once(celery_setup, fake):
    app, workers = celery_setup
    client = app.test_client()
    fake.task_durations = {"vzcreate": 3.0}
    first = workers.start(concurrency=1)
    created = create_deployment(client)
    deadline = time.monotonic() + 30
    while not guests_of(fake):  # the create task is running on Proxmox
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.05)
    assert wait_for_status(client, created["id"], {"provisioning"})["status"] == "provisioning"
    workers.kill(first)  # SIGKILL to the whole worker: no chance to ack, release or clean up

    workers.start(concurrency=1)
    final = wait_for_status(client, created["id"], timeout=60)
    assert final["status"] == "running", (final["error_message"], workers.logs())
    tagged = [g.vmid for g in fake.guests.values() if f"paas-{created['id']}" in str(g.config.get("tags"))]
    assert tagged == [final["vm_id"]] and guests_of(fake) == tagged
    messages = [e["message"] for e in client.get(f"/api/deployments/{created['id']}/events").get_json()["events"]]
    assert any("resuming" in m for m in messages), messages
