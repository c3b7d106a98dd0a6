"""Running a release: the deploy step of a provisioning job, and the bookkeeping around it.

The deploy adapter (backend/deploy/deployer.py) does the work on the guest; this module owns the
database side: which release runs, its streamed log, its progress, and how it ends.
"""
import logging
import time

from sqlalchemy import select

from backend.deploy.deployer import Deployer, DeployFailed, KeptPrevious, ReleaseSpec
from backend.deploy.transport import TransportError
from backend.models import Deployment, LogLine, Release
from backend.models.types import utcnow
from backend.rules import public_url
from backend.services import envvars, lifecycle, routing, snapshots
from backend.services.guests import guest_target
from backend.services.job_context import AppError, Cancelled, LeaseLost
from backend.services.releases import new_release
from backend.services.transactions import run_in_transaction, transaction

log = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 0.25
LOG_FLUSH_LINES = 100
MAX_LINE = 4000


class ReleaseLogWriter:
    """Appends a release's output to log_lines in small batches, secrets masked, each batch committed."""

    def __init__(self, deployment_id, version, redact):
        self.deployment_id, self.version, self.redact = deployment_id, version, redact
        self.buffer = []
        self.flushed = time.monotonic()

    def __call__(self, line, stream="out"):
        self.buffer.append(LogLine(deployment_id=self.deployment_id, release_version=self.version,
                                   created_at=utcnow(), stream=stream, line=self.redact(line)[:MAX_LINE]))
        if len(self.buffer) >= LOG_FLUSH_LINES or time.monotonic() - self.flushed >= LOG_FLUSH_SECONDS:
            self.flush()

    def step(self, text):
        self(f"==> {text}", stream="step")

    def flush(self):
        self.flushed = time.monotonic()
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        try:
            with transaction() as session:
                session.add_all(batch)
        except Exception:
            log.exception("could not store %d log lines of %s", len(batch), self.deployment_id)


def take_release(deployment_id):
    """The release to run now: the newest queued or building one (older queued ones are cancelled);
    a new one from the deployment's settings when none waits (first deploy, or recovery).

    Returns (release id, ReleaseSpec)."""
    def pick(session):
        deployment = session.get(Deployment, deployment_id)
        waiting = session.scalars(select(Release).where(Release.deployment_id == deployment_id,
                                                        Release.status.in_(("queued", "building")))
                                  .order_by(Release.version.desc())).all()
        if waiting:
            release, older = waiting[0], waiting[1:]
            for other in older:
                other.status, other.finished_at = "cancelled", utcnow()
                other.error_message = f"replaced by release {release.version}"
        else:
            release = new_release(deployment, "create" if deployment.live_release is None else "redeploy")
            session.add(release)
        release.status, release.started_at = "building", utcnow()
        session.flush()
        live = None
        if deployment.live_release is not None:
            live = session.scalars(select(Release).where(Release.deployment_id == deployment_id,
                                                         Release.version == deployment.live_release)).first()
        return release.id, ReleaseSpec(
            deployment_id=str(deployment.id), name=deployment.name, github_url=deployment.github_url,
            address=deployment.ip_address, version=release.version, branch=release.branch,
            commit=release.requested_commit, config=dict(release.config or {}),
            env=envvars.decrypt(release.env_encrypted), live_release=deployment.live_release,
            # Where the live release listens, as it recorded (served_port may name a switch a dead run left).
            live_port=((live.config or {}) if live else {}).get("port") or deployment.served_port,
            live_health_path=((live.config or {}) if live else {}).get("health_check_path"))
    return run_in_transaction(pick)


def finish_release(deployment_id, release_id, status, *, error=None, commit_sha=None, config=None, port=None):
    """Record how a release ended; a live one supersedes the one that served and becomes the deployment's."""
    def change(session):
        release = session.get(Release, release_id)
        release.status, release.finished_at = status, utcnow()
        release.error_message = error
        if commit_sha:
            release.commit_sha = commit_sha
        if config:
            release.config = {**(release.config or {}), **config}
        if status == "live":
            for previous in session.scalars(select(Release).where(Release.deployment_id == deployment_id,
                                                                  Release.status == "live",
                                                                  Release.id != release_id)):
                previous.status = "superseded"
            deployment = session.get(Deployment, deployment_id)
            deployment.live_release = release.version
            deployment.served_port = port
    run_in_transaction(change)


def progress_recorder(release_id):
    """on_progress for a Deployer: the commit and the settings, stored as soon as they are known."""
    def record_progress(**fields):
        def change(session):
            release = session.get(Release, release_id)
            for key, value in fields.items():
                setattr(release, key, value)
        run_in_transaction(change)
    return record_progress


def route_switcher(edge, deployment_id):
    """switch_route for a Deployer behind a router: record the port the guest serves on, then sync the router.
    Recorded first, so that any sync from now on (the sweep's too) routes there."""
    def switch_route(port):
        def change(session):
            session.get(Deployment, deployment_id).served_port = port
        run_in_transaction(change)
        result = routing.sync_quietly(edge, "a release switch")
        if result.ok:
            return f"the router sends the app's requests to port {port}"
        return f"the router could not be told ({result.error}); the next sync routes to port {port}"
    return switch_route


def _snapshots_wanted(platform, deployment):
    policy = getattr(platform, "backups", None)
    if policy is None:
        return False
    return run_in_transaction(lambda session: snapshots.wanted(session.get(Deployment, deployment.id), policy))


def run_release(ctx, deployment):
    """The deploy step: run the waiting release (or a new one) on the deployment's guest.

    Raises AppError when it fails and nothing serves. A failed release whose predecessor was switched
    back in returns normally. When a release served before, no failure of this one (build, transport,
    time limit, a bug) may cost the guest: the error is raised with keep_guest, and provisioning leaves
    the guest alone.
    """
    platform = ctx.platform
    served_before = run_in_transaction(lambda session: session.get(Deployment, deployment.id).live_release) \
        is not None
    release_id = spec = writer = transport = deployer = None
    try:
        release_id, spec = take_release(deployment.id)
        writer = ReleaseLogWriter(deployment.id, spec.version, envvars.redactor(spec.env))
        lifecycle.record(deployment.id, "step", f"release {spec.version} started")
        transport = platform.transports.open(guest_target(deployment))
        edge = getattr(platform, "edge", None)
        if spec.live_release is not None and deployment.vm_id is not None and _snapshots_wanted(platform, deployment):
            _, seconds = snapshots.snapshot_live_release(ctx, deployment, spec.live_release, spec.version, writer.step)
            writer(f"snapshot taken in {seconds:.1f} s")
        deployer = Deployer(transport, spec, writer, ctx, platform.deploy_limits,
                            on_progress=progress_recorder(release_id),
                            switch_route=route_switcher(edge, deployment.id) if edge else None,
                            drain_seconds=edge.drain_seconds if edge else 0)
        sha = deployer.run()
    except snapshots.SnapshotFailed as exc:
        # Asked for and not taken: the release does not run without it; the live one was not touched.
        writer(str(exc), stream="error")
        writer.flush()
        finish_release(deployment.id, release_id, "failed", error=f"{exc} (release {spec.live_release} still serves)")
        lifecycle.record(deployment.id, "error", f"release {spec.version} did not start: {exc}")
        return
    except KeptPrevious as exc:
        writer.flush()
        finish_release(deployment.id, release_id, "failed", error=str(exc))
        lifecycle.record(deployment.id, "error",
                         f"release {spec.version} failed and release {spec.live_release} still serves: {exc}")
        return
    except LeaseLost:
        raise  # another run owns the deployment now: touch nothing
    except Cancelled:
        if writer is not None:
            writer.flush()
            finish_release(deployment.id, release_id, "cancelled", error="the deployment was deleted")
        raise
    except Exception as exc:
        worded = isinstance(exc, (DeployFailed, AppError, TimeoutError, envvars.SecretsUnavailable, TransportError))
        message = str(exc) if worded else f"internal error ({exc.__class__.__name__})"
        if not worded:
            log.exception("release of %s", deployment.id)
        if writer is not None:
            writer(message, stream="error")
            writer.flush()
        if release_id is not None:
            finish_release(deployment.id, release_id, "failed", error=message)
        if served_before or (spec is not None and spec.live_release is not None):
            raise AppError(message, keep_guest=True) from None
        raise AppError(message) from None
    finally:
        if transport is not None:
            transport.close()
    address = public_url(spec.name, edge.apps_domain, edge.https_port) if edge \
        else f"http://{spec.address}:{deployer.plan.port}"
    writer(f"release {spec.version} is live at {address}", stream="step")
    writer.flush()
    finish_release(deployment.id, release_id, "live", commit_sha=sha, config=deployer.plan.config(),
                   port=deployer.plan.port)
    routing.sync_quietly(edge, f"release {spec.version} went live")
    lifecycle.record(deployment.id, "step", f"release {spec.version} ({sha[:12]}) is live")
