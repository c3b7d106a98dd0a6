"""Running one job: (kind, deployment id) to its end, under the deployment's lease.

Every backend (backends.py) calls execute(); it builds the job's context from the app's platform
(backend/platform.py) and hands it to the services that do the work.
"""
import logging
import os
import socket
import threading
import time
import uuid

from backend.models import DeploymentStatus
from backend.platform import platform_of
from backend.services import actions, backups, lifecycle, notifications, provisioning, snapshots, teardown
from backend.services.job_context import JobContext, LeaseLost
from backend.services.release_runs import run_release

log = logging.getLogger(__name__)

JOB_KINDS = ("provision", "destroy", "start", "stop", "restart", "resize", "notify", "restore", "backup")
MAX_RESCHEDULES = 200


class Retry(Exception):
    """Another job holds the deployment's lease; run this one again after `seconds`."""

    def __init__(self, seconds):
        super().__init__(f"busy; retry in {seconds:.1f} s")
        self.seconds = seconds


class Heartbeat(threading.Thread):
    """Renews a job's lease while it runs and tells it when its deployment is being deleted."""

    def __init__(self, app, ctx, owner):
        super().__init__(name=f"heartbeat-{ctx.deployment_id}", daemon=True)
        self.app, self.ctx, self.owner = app, ctx, owner
        self.lease = app.config["JOB_LEASE_SECONDS"]
        self.interval = min(app.config["JOB_HEARTBEAT_SECONDS"], self.lease / 3)
        self.stopping = threading.Event()

    def run(self):
        renewed = time.monotonic()
        while not self.stopping.wait(self.interval):
            try:
                with self.app.app_context():
                    if lifecycle.current_status(self.ctx.deployment_id) in (DeploymentStatus.DELETING,
                                                                             DeploymentStatus.DELETED):
                        self.ctx.cancelled.set()
                    if time.monotonic() - renewed >= self.lease / 3:
                        if not lifecycle.renew_lease(self.ctx.deployment_id, self.owner, self.lease):
                            # Stalled past the lease and another run took over: this one must stop.
                            log.error("job on %s lost its lease; stopping it", self.ctx.deployment_id)
                            self.ctx.lease_lost.set()
                            return
                        renewed = time.monotonic()
            except Exception:
                log.warning("heartbeat for %s failed", self.ctx.deployment_id, exc_info=True)

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


def _owner():
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def execute(app, kind, deployment_id):
    """Run one job to its end; returns the final status. Raises Retry while another job holds the lease."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    deployment_id = uuid.UUID(str(deployment_id))
    if kind == "notify":
        return deliver_notifications(app, deployment_id)
    platform = platform_of(app)
    with app.app_context():
        owner = _owner()
        if not lifecycle.take_lease(deployment_id, owner, app.config["JOB_LEASE_SECONDS"]):
            raise Retry(max(0.5, min(lifecycle.lease_remaining(deployment_id), 30.0)))
        ctx = JobContext(deployment_id, platform, time_limit=app.config["JOB_TIME_LIMIT"],
                         watch_deletion=kind != "destroy")
        heartbeat = Heartbeat(app, ctx, owner)
        heartbeat.start()
        try:
            if kind == "provision":
                return provisioning.provision(ctx, deploy_app=run_release if platform.deploys_apps else None)
            if kind == "destroy":
                return teardown.destroy(ctx)
            if kind == "resize":
                return actions.resize(ctx)
            if kind == "restore":
                return snapshots.restore(ctx)
            if kind == "backup":
                return backups.run_backup(ctx)
            return actions.power(ctx, kind)
        except LeaseLost:
            log.warning("%s of %s stopped: another run holds the deployment now", kind, deployment_id)
            return None
        except Exception as exc:
            actions.finish_after_crash(deployment_id, kind, exc)
            raise
        finally:
            heartbeat.stop()
            if platform.proxmox is not None:
                platform.proxmox.keep_connection(ctx.client)
            lifecycle.release_lease(deployment_id, owner)


def deliver_notifications(app, deployment_id):
    """The notify job: no lease (it never touches the guest); retries come back as delayed jobs."""
    with app.app_context():
        next_in = notifications.deliver_due(deployment_id, notifications.settings_from(app.config))
    if next_in is not None:
        platform_of(app).jobs.submit("notify", deployment_id, delay=next_in)
    return None
