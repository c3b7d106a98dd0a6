"""Resuming what was left mid-way: at start (recovery) and every JOB_SWEEP_SECONDS (the sweeper); keeping the
router on the database every ROUTER_SYNC_SECONDS."""
import logging
import threading
from datetime import timedelta

from sqlalchemy import inspect, or_, select
from sqlalchemy.exc import SQLAlchemyError

from backend.errors import DomainError
from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.platform import platform_of
from backend.services import backups, notifications, routing

log = logging.getLogger(__name__)

RESUMABLE = {
    DeploymentStatus.PENDING: "provision",
    DeploymentStatus.PROVISIONING: "provision",
    DeploymentStatus.DEPLOYING: "provision",
    DeploymentStatus.DELETING: "destroy",
}


def recover(app, jobs, stale_after=None):
    """Queue a job for every deployment left mid-way (pending, provisioning, deploying, deleting).

    With stale_after (seconds), only those no job holds and nothing changed for that long: the
    periodic sweep, for jobs whose message was lost. Safe to call from several processes at once:
    each job takes the lease before it acts, and a second run finds the guest by its tag.
    Returns {deployment id: job kind}.
    """
    with app.app_context():
        stmt = select(Deployment.id, Deployment.status, Deployment.pending_restore).where(
            Deployment.status.in_(list(RESUMABLE)))
        if stale_after is not None:
            now = utcnow()
            stmt = stmt.where(or_(Deployment.job_lease_until.is_(None), Deployment.job_lease_until < now),
                              Deployment.updated_at < now - timedelta(seconds=stale_after))
        try:
            rows = db.session.execute(stmt).all()
        finally:
            db.session.remove()
    queued = {}
    for deployment_id, status, pending_restore in rows:
        # A restore left mid-way resumes as a restore (it never rebuilds the app from its repository).
        kind = "restore" if pending_restore and status is DeploymentStatus.DEPLOYING else RESUMABLE[status]
        jobs.submit(kind, deployment_id)
        queued[str(deployment_id)] = kind
    with app.app_context():
        try:
            waiting = notifications.pending_deployments(overdue_by=stale_after)
        finally:
            db.session.remove()
    for deployment_id in waiting:
        jobs.submit("notify", deployment_id)
    if queued:
        log.info("recovery queued %d unfinished deployment(s)", len(queued))
    return queued


RECOVERY_RETRY_SECONDS = 5
RECOVERY_RETRY_MAX_SECONDS = 300


def _why_unready(app, exc):
    """One line on why the database cannot be read yet."""
    try:
        with app.app_context():
            if not inspect(db.engine).has_table("deployments"):
                return "the database has no tables yet (run `flask db upgrade`)"
    except Exception:  # noqa: BLE001 - the database itself is what fails; say so below
        pass
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"the database does not answer ({reason[0] if reason else exc.__class__.__name__})"


def recover_when_ready(app, jobs, delay=None):
    """recover() now; when the database cannot be read yet (no schema, down), log one line and try again
    later (backing off to RECOVERY_RETRY_MAX_SECONDS) instead of failing the serving process."""
    delay = delay or RECOVERY_RETRY_SECONDS
    if getattr(jobs, "stopped", False):
        return {}  # shut down meanwhile: a pending retry must not bring the pool back
    try:
        return recover(app, jobs)
    except SQLAlchemyError as exc:
        log.warning("recovery postponed: %s; trying again in %d s", _why_unready(app, exc), delay)
    timer = threading.Timer(delay, recover_when_ready,
                            args=(app, jobs, min(delay * 2, RECOVERY_RETRY_MAX_SECONDS)))
    timer.name, timer.daemon = "paas-job-recovery", True
    jobs.recovery_timer = timer
    timer.start()
    return {}


class Periodic(threading.Thread):
    """work() every interval seconds until stopped; a failure is logged and the next round comes anyway."""

    def __init__(self, name, interval, work):
        super().__init__(name=name, daemon=True)
        self.interval, self.work = interval, work
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.work()
            except Exception:
                log.warning("%s failed", self.name, exc_info=True)

    def stop(self):
        self.stopping.set()


class Sweepers:
    """The serving process's periodic work: the job sweep (every JOB_SWEEP_SECONDS, queue jobs for deployments
    mid-way that no job holds: a lost message) and the router sync (every ROUTER_SYNC_SECONDS, put back the
    routes a router lost or never got: a Caddy restarted empty, a change made while it was down)."""

    def __init__(self, threads):
        self.threads = threads

    def stop(self):
        for thread in self.threads:
            thread.stop()


def sync_router(app):
    edge = platform_of(app).edge
    with app.app_context():
        result = routing.sync_quietly(edge, "the periodic check")
    if result is not None and result.loaded:
        log.info("router: it did not hold what the database asks for; loaded (%d route(s))", result.routes)


def run_schedules(app, jobs):
    """Queue a backup for every deployment whose schedule fired; across processes, the first to claim a firing
    runs it (the others see the claim and skip)."""
    queued = []
    with app.app_context():
        try:
            stale = backups.fail_stale(platform_of(app).backups)
            if stale:
                log.warning("%d backup(s) were still running long after any task could have: failed", stale)
            for deployment_id, seen in backups.due_schedules():
                if not backups.claim_scheduled_run(deployment_id, seen):
                    continue
                deployment = db.session.get(Deployment, deployment_id)
                try:
                    backups.request_backup(deployment, platform_of(app).backups, trigger="schedule")
                except DomainError as exc:
                    log.info("scheduled backup of %s skipped: %s", deployment.name, exc.message)
                    continue
                queued.append(deployment_id)
        finally:
            db.session.remove()
    for deployment_id in queued:
        jobs.submit("backup", deployment_id)
    return queued


def start_sweeper(app, jobs):
    threads = []
    interval = app.config.get("JOB_SWEEP_SECONDS")
    if interval:
        threads.append(Periodic("paas-job-sweeper", interval,
                                lambda: recover(app, jobs, stale_after=interval)))
    if app.config.get("BACKUP_SCHEDULE_SECONDS"):
        threads.append(Periodic("paas-backup-schedules", app.config["BACKUP_SCHEDULE_SECONDS"],
                                lambda: run_schedules(app, jobs)))
    if platform_of(app).edge is not None and app.config.get("ROUTER_SYNC_SECONDS"):
        threads.append(Periodic("paas-router-sync", app.config["ROUTER_SYNC_SECONDS"], lambda: sync_router(app)))
    for thread in threads:
        thread.start()
    return Sweepers(threads) if threads else None
