"""Asking for releases: redeploy, rollback and environment changes (a job builds them)."""
from backend.errors import InvalidState, NotFound
from backend.extensions import db
from backend.models import DeploymentStatus, Release
from backend.models.types import utcnow
from backend.services import envvars
from backend.services.cluster import require_proxmox
from backend.services.deployments import APP_SETTINGS
from backend.services.lifecycle import add_event, change_status
from backend.services.transactions import commit


def settings_of(deployment):
    """How the deployment asks to be built and run: its framework and the app settings."""
    return {"framework": deployment.framework, **{key: getattr(deployment, key) for key in APP_SETTINGS}}


def new_release(deployment, reason, *, branch=None, commit=None, rollback_of=None, config=None, env_token=None):
    """A queued release of the deployment (not yet added to the session)."""
    return Release(deployment_id=deployment.id, version=Release.next_version(deployment.id), status="queued",
                   reason=reason, branch=branch or deployment.branch, requested_commit=commit,
                   rollback_of=rollback_of, config=config or settings_of(deployment),
                   env_encrypted=env_token if env_token is not None else deployment.env_encrypted,
                   created_at=utcnow())


def _start(deployment, release, message, proxmox):
    """Put the release in the queue and the deployment in the status whose job will run it.

    Returns the job kind to enqueue ("provision" covers both: a deploying deployment goes straight to
    its deploy step, a pending one gets a guest first).
    """
    require_proxmox(proxmox)
    if deployment.pending_restore:
        raise InvalidState("a restore to a snapshot is on its way: deploy once it has ended",
                           fields={"status": "restoring"})
    if not can_deploy(deployment):
        raise InvalidState(
            f"cannot deploy a deployment that is {deployment.status.value}"
            + ("; start it first" if deployment.status is DeploymentStatus.STOPPED else "; wait until it is running"),
            fields={"status": deployment.status.value},
        )
    served_and_kept = (deployment.status is DeploymentStatus.FAILED and deployment.live_release is not None
                       and deployment.vm_id is not None)
    if deployment.status is DeploymentStatus.RUNNING or served_and_kept:
        change_status(deployment, DeploymentStatus.DEPLOYING, message)
    else:
        # Nothing was left of the guest (its first release failed): start over with a new one.
        release.reason = "retry" if release.reason == "redeploy" else release.reason
        change_status(deployment, DeploymentStatus.PENDING, f"{message}, on a new guest")
    db.session.add(release)
    commit()
    return "provision"


def can_deploy(deployment):
    """Whether a redeploy, a rollback or an environment release would be taken now (_start asks it): a running
    deployment, or a failed one (its guest kept, or a new one)."""
    return (not deployment.is_deleted and deployment.status in (DeploymentStatus.RUNNING, DeploymentStatus.FAILED)
            and not deployment.pending_restore)


def request_redeploy(deployment, branch=None, commit=None, *, proxmox):
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment cannot be deployed")
    if branch:
        deployment.branch = branch
    release = new_release(deployment, "redeploy", branch=branch, commit=commit)
    what = f"branch {release.branch}" + (f" at {commit}" if commit else "")
    kind = _start(deployment, release, f"release {release.version} requested ({what})", proxmox)
    return release, kind


def request_rollback(deployment, version, *, proxmox):
    """A new release with an old release's code (its commit) and config (settings and environment)."""
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment cannot be rolled back")
    old = Release.get(deployment.id, version)
    if old is None:
        raise NotFound(f"no release {version} of {deployment.name}")
    if old.status not in ("live", "superseded") or not old.commit_sha:
        raise InvalidState(f"release {version} never went live; only a release that served can be rolled back to",
                           fields={"version": old.status})
    if old.status == "live":
        raise InvalidState(f"release {version} is the one serving now", fields={"version": "live"})
    config = {key: (old.config or {}).get(key) for key in settings_of(deployment)}
    deployment.framework = config["framework"] or deployment.framework
    for key in APP_SETTINGS:
        setattr(deployment, key, config[key])
    deployment.env_encrypted = old.env_encrypted
    deployment.branch = old.branch
    release = new_release(deployment, "rollback", branch=old.branch, commit=old.commit_sha, rollback_of=version,
                          config=settings_of(deployment), env_token=old.env_encrypted)
    kind = _start(deployment, release, f"rollback to release {version} requested (release {release.version})",
                  proxmox)
    return release, kind


def update_env(deployment, changes, *, proxmox):
    """Apply {KEY: value | None}; a running deployment gets a release with the new environment."""
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment cannot be changed")
    envvars.validate(changes, allow_null=True)
    variables = envvars.merged(deployment.env_encrypted, changes)
    deployment.env_encrypted = envvars.encrypt(variables)
    keys = ", ".join(sorted(changes)) or "nothing"
    if deployment.status is DeploymentStatus.RUNNING and deployment.live_release is not None:
        live = Release.get(deployment.id, deployment.live_release)
        release = new_release(deployment, "env", branch=live.branch if live else None,
                              commit=live.commit_sha if live else None)
        return release, _start(deployment, release, f"environment changed ({keys}); release {release.version}",
                              proxmox)
    add_event(deployment, "action", f"environment changed ({keys}); used by the next release")
    commit()
    return None, None
