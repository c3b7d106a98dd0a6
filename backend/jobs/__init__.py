"""Background jobs: one interface, several backends running the same job functions.

- thread (the default): a bounded pool of worker threads inside the API process;
- celery: when CELERY_BROKER_URL is set; `celery -A backend.jobs.celery_app worker` runs them;
- manual: jobs wait in a list until run_pending() (tests, and scripts that want control).

A job is (kind, deployment id). execute() runs one to its end under the deployment's lease.
"""
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from backend.models import DeploymentStatus
from backend.services import lifecycle, notifications, provisioning

log = logging.getLogger(__name__)

JOB_KINDS = ("provision", "destroy", "start", "stop", "restart", "resize", "notify")
RESUMABLE = {
    DeploymentStatus.PENDING: "provision",
    DeploymentStatus.PROVISIONING: "provision",
    DeploymentStatus.DEPLOYING: "provision",
    DeploymentStatus.DELETING: "destroy",
}
MAX_RESCHEDULES = 200
_local = threading.local()


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


def _cached_api(settings):
    """One proxmoxer handle per thread and settings (its requests session is not shared across threads)."""
    cache = getattr(_local, "apis", None)
    if cache is None:
        cache = _local.apis = {}
    return cache, cache.get(settings)


def execute(app, kind, deployment_id, deploy_app=None):
    """Run one job to its end; returns the final status. Raises Retry while another job holds the lease."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    deployment_id = uuid.UUID(str(deployment_id))
    if kind == "notify":
        return deliver_notifications(app, deployment_id)
    with app.app_context():
        owner = _owner()
        if not lifecycle.take_lease(deployment_id, owner, app.config["JOB_LEASE_SECONDS"]):
            raise Retry(max(0.5, min(lifecycle.lease_remaining(deployment_id), 30.0)))
        settings = app.config.get("PROXMOX_SETTINGS")
        cache, api = _cached_api(settings) if settings else ({}, None)
        ctx = provisioning.JobContext(deployment_id, settings, api=api, time_limit=app.config["JOB_TIME_LIMIT"],
                                      watch_deletion=kind != "destroy")
        heartbeat = Heartbeat(app, ctx, owner)
        heartbeat.start()
        try:
            if kind == "provision":
                return provisioning.provision(ctx, deploy_app=deploy_app or app.extensions.get("deploy_app"))
            if kind == "destroy":
                return provisioning.destroy(ctx)
            if kind == "resize":
                return provisioning.resize(ctx)
            return provisioning.power(ctx, kind)
        except provisioning.LeaseLost:
            log.warning("%s of %s stopped: another run holds the deployment now", kind, deployment_id)
            return None
        except Exception as exc:
            provisioning.finish_after_crash(deployment_id, kind, exc)
            raise
        finally:
            heartbeat.stop()
            if settings and ctx.client is not None and ctx.client._api is not None:
                cache[settings] = ctx.client._api
            lifecycle.release_lease(deployment_id, owner)


def deliver_notifications(app, deployment_id):
    """The notify job: no lease (it never touches the guest); retries come back as delayed jobs."""
    with app.app_context():
        next_in = notifications.deliver_due(deployment_id, notifications.settings_from(app.config))
    if next_in is not None:
        app.extensions["jobs"].submit("notify", deployment_id, delay=next_in)
    return None


def _submit_notifications(session):
    """After a commit that wrote notifications, hand them to the notify job (the outbox's relay)."""
    pending = session.info.pop(notifications.PENDING_KEY, None)
    if not pending:
        return
    from flask import current_app  # noqa: PLC0415

    try:
        jobs = current_app.extensions["jobs"]
        for deployment_id in pending:
            jobs.submit("notify", deployment_id)
    except Exception:
        log.warning("could not queue notifications; the sweep will", exc_info=True)


def _forget_notifications(session, *args):
    session.info.pop(notifications.PENDING_KEY, None)


# -- backends --------------------------------------------------------------------------------------


class ThreadJobs:
    """A bounded pool of threads in this process."""

    name = "thread"

    def __init__(self, app, workers):
        self.app = app
        self.workers = workers
        self._executor = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._sweeper = None
        self.recovery_timer = None  # set while recovery waits for the database
        self.stopped = False

    def _pool(self):
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="paas-job")
            return self._executor

    def submit(self, kind, deployment_id, delay=0.0, _attempt=0):
        with self._lock:
            self._pending += 1
        if delay > 0:
            timer = threading.Timer(delay, self._enqueue, args=(kind, deployment_id, _attempt))
            timer.daemon = True
            timer.start()
        else:
            self._enqueue(kind, deployment_id, _attempt)

    def _enqueue(self, kind, deployment_id, attempt):
        try:
            self._pool().submit(self._run, kind, deployment_id, attempt)
        except RuntimeError:  # the pool was shut down
            self._done()

    def _run(self, kind, deployment_id, attempt):
        try:
            execute(self.app, kind, deployment_id)
        except Retry as retry:
            if attempt < MAX_RESCHEDULES:
                self.submit(kind, deployment_id, delay=retry.seconds, _attempt=attempt + 1)
            else:
                log.error("%s of %s gave up waiting for the lease", kind, deployment_id)
        except Exception:
            log.exception("%s of %s crashed", kind, deployment_id)
        finally:
            self._done()

    def _done(self):
        with self._lock:
            self._pending -= 1
            self._idle.notify_all()

    def start(self):
        """Start the pool, resume what an earlier process left unfinished, and sweep from now on."""
        self._pool()
        queued = recover_when_ready(self.app, self)
        if self._sweeper is None:
            self._sweeper = start_sweeper(self.app, self)
        return queued

    def wait_idle(self, timeout):
        """Block until no job is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)


class ManualJobs:
    """Jobs wait until run_pending(); nothing runs behind the caller's back."""

    name = "manual"

    def __init__(self, app):
        self.app = app
        self.queue = []
        self.delayed = []  # (due on the monotonic clock, kind, deployment id)
        self.recovery_timer = None
        self.stopped = False

    def submit(self, kind, deployment_id, delay=0.0):
        if delay and delay > 0:
            self.delayed.append((time.monotonic() + delay, kind, deployment_id))
        else:
            self.queue.append((kind, deployment_id))

    def _due(self):
        now = time.monotonic()
        due = [job for job in self.delayed if job[0] <= now]
        self.delayed = [job for job in self.delayed if job[0] > now]
        self.queue.extend((kind, deployment_id) for _, kind, deployment_id in sorted(due, key=lambda j: j[0]))

    def run_pending(self):
        """Run queued jobs (and those they queue) in order; returns their final statuses.

        Delayed jobs run once their time has come; those still waiting stay queued.
        """
        results = []
        self._due()
        while self.queue:
            kind, deployment_id = self.queue.pop(0)
            result = execute(self.app, kind, deployment_id)
            if kind != "notify":
                results.append(result)
            self._due()
        return results

    def start(self):
        return recover_when_ready(self.app, self)

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()
        self.queue.clear()


class CeleryJobs:
    """Jobs go to Celery through the broker; workers run execute()."""

    name = "celery"

    def __init__(self, app, celery):
        self.app = app
        self.celery = celery
        self.recovery_timer = None
        self.stopped = False

    def submit(self, kind, deployment_id, delay=0.0):
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        self.celery.send_task("paas.run_job", args=[kind, str(deployment_id)],
                              countdown=delay or None, queue=self.app.config["CELERY_QUEUE"])

    def start(self):
        """In a worker: resume what was left mid-way, and sweep from now on."""
        queued = recover_when_ready(self.app, self)
        start_sweeper(self.app, self)
        return queued

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()


def recover(app, jobs, stale_after=None):
    """Queue a job for every deployment left mid-way (pending, provisioning, deploying, deleting).

    With stale_after (seconds), only those no job holds and nothing changed for that long: the
    periodic sweep, for jobs whose message was lost. Safe to call from several processes at once:
    each job takes the lease before it acts, and a second run finds the guest by its tag.
    Returns {deployment id: job kind}.
    """
    from datetime import timedelta  # noqa: PLC0415

    from sqlalchemy import or_, select  # noqa: PLC0415

    from backend.extensions import db  # noqa: PLC0415
    from backend.models import Deployment  # noqa: PLC0415
    from backend.models.types import utcnow  # noqa: PLC0415

    with app.app_context():
        stmt = select(Deployment.id, Deployment.status).where(Deployment.status.in_(list(RESUMABLE)))
        if stale_after is not None:
            now = utcnow()
            stmt = stmt.where(or_(Deployment.job_lease_until.is_(None), Deployment.job_lease_until < now),
                              Deployment.updated_at < now - timedelta(seconds=stale_after))
        try:
            rows = db.session.execute(stmt).all()
        finally:
            db.session.remove()
    queued = {}
    for deployment_id, status in rows:
        kind = RESUMABLE[status]
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
    from sqlalchemy import inspect  # noqa: PLC0415 (see recover)

    from backend.extensions import db  # noqa: PLC0415

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
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 (see recover)

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


class Sweeper(threading.Thread):
    """Every JOB_SWEEP_SECONDS, queue jobs for deployments mid-way that no job holds (a lost message)."""

    def __init__(self, app, jobs):
        super().__init__(name="paas-job-sweeper", daemon=True)
        self.app, self.jobs = app, jobs
        self.interval = app.config["JOB_SWEEP_SECONDS"]
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self.interval):
            try:
                recover(self.app, self.jobs, stale_after=self.interval)
            except Exception:
                log.warning("job sweep failed", exc_info=True)

    def stop(self):
        self.stopping.set()


def start_sweeper(app, jobs):
    if app.config.get("JOB_SWEEP_SECONDS"):
        sweeper = Sweeper(app, jobs)
        sweeper.start()
        return sweeper
    return None


def build_jobs(app):
    """The backend the configuration asks for: celery when a broker is set, else JOBS_BACKEND."""
    backend = app.config.get("JOBS_BACKEND") or ("celery" if app.config.get("CELERY_BROKER_URL") else "thread")
    if backend == "celery":
        from backend.jobs.celery_support import make_celery  # noqa: PLC0415 (celery only when used)

        return CeleryJobs(app, make_celery(app))
    if backend == "manual":
        return ManualJobs(app)
    if backend == "thread":
        return ThreadJobs(app, app.config["JOB_WORKERS"])
    raise ValueError(f"JOBS_BACKEND must be thread, celery or manual, not {backend!r}")


def init_app(app):
    from backend.proxmox.settings import ProxmoxSettings  # noqa: PLC0415

    if "PROXMOX_SETTINGS" not in app.config:
        app.config["PROXMOX_SETTINGS"] = ProxmoxSettings.from_env(os.environ)
    app.extensions["jobs"] = build_jobs(app)
    _listen_for_notifications()


def _listen_for_notifications():
    from sqlalchemy import event  # noqa: PLC0415
    from sqlalchemy.orm import Session  # noqa: PLC0415

    if not event.contains(Session, "after_commit", _submit_notifications):
        event.listen(Session, "after_commit", _submit_notifications)
        event.listen(Session, "after_rollback", _forget_notifications)


def get_jobs(app=None):
    from flask import current_app  # noqa: PLC0415

    return (app or current_app).extensions["jobs"]
