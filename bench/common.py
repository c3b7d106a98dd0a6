"""What several benchmarks share: the fake Proxmox as a child process, and a table of deployments."""
import json
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import insert, text

from backend.extensions import db
from backend.models import Deployment
from backend.proxmox.settings import ProxmoxSettings
from backend.services import accounts
from backend.status import DeploymentStatus

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ["flask", "django", "fastapi", "express", "nextjs", "static"]
STATUSES = [DeploymentStatus.RUNNING] * 6 + [DeploymentStatus.STOPPED, DeploymentStatus.FAILED,
                                             DeploymentStatus.PENDING, DeploymentStatus.DEPLOYING]
BATCH = 5000


class FakeProcess:
    """The fake as a child process on 127.0.0.1 that ends by itself after `lifetime` seconds."""

    def __init__(self, task_seconds, lifetime, nodelay=True, agent_delay=None):
        command = [sys.executable, "-W", "ignore::RuntimeWarning", "-m", "backend.simulation.fake_proxmox",
                   "--task-seconds", str(task_seconds), "--lifetime", str(lifetime), "--summary"]
        if agent_delay is not None:
            command += ["--agent-delay", str(agent_delay)]
        if nodelay:
            command.append("--tcp-nodelay")
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True)
        self.values = {}
        while "PROXMOX_CA_BUNDLE" not in self.values:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.kill()
                raise RuntimeError("the fake Proxmox did not start")
            key, _, value = line.strip().partition("=")
            self.values[key] = value

    def settings(self):
        v = self.values
        return ProxmoxSettings(host=v["PROXMOX_HOST"], port=int(v["PROXMOX_PORT"]), user=v["PROXMOX_USER"],
                               token_name=v["PROXMOX_TOKEN_NAME"], token_value=v["PROXMOX_TOKEN_VALUE"],
                               ca_bundle=v["PROXMOX_CA_BUNDLE"], timeout=30, storage="local-lvm",
                               task_timeout=120, ip_timeout=60)

    def stop(self):
        """Interrupt the fake and return its summary (every task, requests by endpoint, its own CPU)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in out.splitlines():
            if line.startswith("SUMMARY "):
                return json.loads(line[len("SUMMARY "):])
        raise RuntimeError("the fake Proxmox ended without a summary")


def fresh_schema_with_admin():
    """Drop everything in the app's PostgreSQL database, migrate it, and make an admin (in the app's context);
    returns (the admin, a token of theirs)."""


    db.session.execute(text("DROP SCHEMA public CASCADE"))
    db.session.execute(text("CREATE SCHEMA public"))
    db.session.commit()
    upgrade()
    admin = accounts.create_user("bench", role="admin")
    token, _ = accounts.issue_token(admin, "bench")
    return admin, token


def insert_deployments(rows, start, user_id=None):
    """Bulk-insert rows deployments created 5 minutes apart from start (in the app's context), then ANALYZE;
    returns the id of the first."""
    batch, first = [], None
    for i in range(rows):
        created = start + timedelta(seconds=i * 300)
        status = STATUSES[i % len(STATUSES)]
        row_id = uuid.uuid4()
        first = first or row_id
        batch.append({
            "id": row_id, "name": f"app-{i:06d}", "deployment_type": "vm" if i % 3 == 0 else "lxc",
            "framework": FRAMEWORKS[i % len(FRAMEWORKS)], "github_url": f"https://github.com/acme/app-{i}",
            "branch": "main", "resources": {"cores": 1, "memory": 512, "disk": 8}, "tags": ["bench"],
            "status": status, "created_at": created, "updated_at": created, "user_id": user_id,
            "deployed_at": created if status is DeploymentStatus.RUNNING else None,
            "vm_id": 100000 + i, "version": 1,
        })
        if len(batch) == BATCH:
            db.session.execute(insert(Deployment), batch)
            batch = []
    if batch:
        db.session.execute(insert(Deployment), batch)
    db.session.commit()
    db.session.execute(text("ANALYZE deployments"))
    db.session.commit()
    return first
