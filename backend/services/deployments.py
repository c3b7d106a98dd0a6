"""Creating, finding, listing, changing and deleting deployments."""
import base64
import binascii
import json
import math
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from backend.errors import ConcurrentUpdate, InvalidState, NameTaken, NotFound, ValidationFailed
from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.rules import NAME_RE
from backend.services import accounts, envvars
from backend.services.actions import ACTIONS
from backend.services.cluster import require_proxmox
from backend.services.lifecycle import add_event, change_status
from backend.services.transactions import commit
from backend.status import BUSY_STATUSES

RESOURCE_LIMITS = {
    "lxc": {"cores": (1, 8), "memory": (256, 16384), "disk": (5, 200)},
    "vm": {"cores": (1, 16), "memory": (512, 32768), "disk": (10, 500)},
}
RESOURCE_DEFAULTS = {
    "lxc": {"cores": 1, "memory": 512, "disk": 8},
    "vm": {"cores": 2, "memory": 2048, "disk": 20},
}
SORT_COLUMNS = {
    "created_at": Deployment.created_at,
    "updated_at": Deployment.updated_at,
    "name": Deployment.name,
}


def resolve_resources(deployment_type, requested, current=None):
    """Fill omitted values (from current, else the type's defaults) and check the type's ranges."""
    merged = dict(current or RESOURCE_DEFAULTS[deployment_type])
    merged.update({k: v for k, v in (requested or {}).items() if v is not None})
    errors = {}
    for key, (low, high) in RESOURCE_LIMITS[deployment_type].items():
        if not low <= merged[key] <= high:
            unit = {"memory": " MB", "disk": " GB"}.get(key, "")
            errors[f"resources.{key}"] = f"must be between {low} and {high}{unit} for {deployment_type}"
    if errors:
        raise ValidationFailed("resources out of range", fields=errors)
    return merged


def _name_taken(deployment):
    """The conflict a unique-constraint refusal means when the deployment's name is taken meanwhile."""
    if Deployment.get_by_name(deployment.name) is not None:
        return NameTaken(f"a deployment named {deployment.name!r} already exists", fields={"name": "already taken"})
    return None


APP_SETTINGS = ("build_command", "start_command", "release_command", "port", "health_check_path")
BACKUP_SETTINGS = ("snapshot_before_release", "backup_schedule", "backup_keep_last", "backup_keep_daily",
                   "backup_keep_weekly")


def scoped(stmt, viewer):
    """Restrict a select of deployments to what viewer may see: admins everything, members their own."""
    if viewer.is_admin:
        return stmt
    return stmt.where(Deployment.user_id == viewer.id)


def visible_to(deployment, viewer):
    return deployment is not None and (viewer.is_admin or deployment.user_id == viewer.id)


def create_deployment(data, owner, quota_defaults=None, audit=None, *, proxmox, extra=None, created="created"):
    """Record a new deployment of owner in status pending; the name must be free among live ones.

    Names are unique across users (they become guest hostnames), so a taken name answers 409 even
    when another user holds it; that user's deployment itself stays invisible. audit(deployment), when
    given, adds its entry to the same transaction: one commit writes the row, its event and the entry.
    The returned deployment keeps the values it was written with (no reload before it is shown).
    proxmox: the platform's Proxmox clients (None without a cluster: nothing is recorded). extra: columns set
    as they are (a restore's backup and node, the source's sealed environment); created: the first event's words.
    """
    require_proxmox(proxmox)
    resources = resolve_resources(data["deployment_type"], data.get("resources"))
    if not owner.is_admin:
        accounts.lock_user(owner)
        accounts.check_quota(owner, quota_defaults or accounts.DEFAULT_QUOTAS, resources)
    if Deployment.get_by_name(data["name"]) is not None:
        raise NameTaken(f"a deployment named {data['name']!r} already exists", fields={"name": "already taken"})
    deployment = Deployment(
        id=uuid.uuid4(),  # set here, so that the event below can refer to it before the insert
        name=data["name"],
        deployment_type=data["deployment_type"],
        framework=data["framework"],
        github_url=data["github_url"],
        branch=data.get("branch") or "main",
        resources=resources,
        tags=list(data.get("tags") or []),
        status=DeploymentStatus.PENDING,
        user_id=owner.id,
        build_command=data.get("build_command"),
        start_command=data.get("start_command"),
        release_command=data.get("release_command"),
        port=data.get("port"),
        health_check_path=data.get("health_check_path"),
        **{key: data.get(key) for key in BACKUP_SETTINGS},
        env_encrypted=envvars.encrypt(envvars.validate(data.get("env") or {})),
    )
    for key, value in (extra or {}).items():
        setattr(deployment, key, value)
    db.session.add(deployment)
    add_event(deployment, "status", created, to_status=DeploymentStatus.PENDING.value)
    if audit is not None:
        audit(deployment)
    commit(conflict=lambda: _name_taken(deployment), keep_loaded=True)
    return deployment


def find_deployment(ident, viewer):
    """A deployment viewer may see, by id (deleted ones too) or by live name; NotFound otherwise.

    Someone else's deployment is NotFound too, with the same words: its existence is not revealed.
    """
    deployment = Deployment.get_by_id(ident)
    # Only a well-formed name reaches the database: no NUL bytes or megabyte strings.
    if deployment is None and NAME_RE.fullmatch(ident):
        deployment = Deployment.get_by_name(ident)
    if not visible_to(deployment, viewer):
        raise NotFound(f"no deployment {ident[:80]!r}")
    return deployment


def update_deployment(deployment, changes, actor=None, quota_defaults=None):
    """Apply editable fields: tags always, resources only while the guest is not busy.

    Returns (deployment, resize_guest): with a guest (a stopped deployment), new resources are applied
    to it by a resize job, which the caller queues when resize_guest is true.
    """
    resize_guest = False
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment cannot be changed")
    if changes.get("resources") is not None:
        if deployment.status in BUSY_STATUSES:
            raise InvalidState(
                f"resources can only change while the deployment is not {deployment.status.value}; stop it first",
                fields={"resources": f"not editable while {deployment.status.value}"},
            )
        resources = resolve_resources(deployment.deployment_type, changes["resources"], current=deployment.resources)
        if actor is not None and not actor.is_admin:
            current = dict(deployment.resources)
            accounts.lock_user(actor)
            accounts.check_quota(actor, quota_defaults or accounts.DEFAULT_QUOTAS, resources,
                                 exclude=deployment.id, adding=0, current=current)
        if deployment.vm_id is not None and resources["disk"] < deployment.resources["disk"]:
            raise ValidationFailed(
                "a guest's disk can grow but not shrink",
                fields={"resources.disk": f"must be at least {deployment.resources['disk']} GB (the current size)"},
            )
        resize_guest = resources != deployment.resources and deployment.vm_id is not None
        deployment.resources = resources
        if resize_guest:
            add_event(deployment, "action", "resize requested")
    if changes.get("tags") is not None:
        deployment.tags = list(changes["tags"])
    settings = [key for key in APP_SETTINGS if key in changes]
    for key in settings:
        setattr(deployment, key, changes[key])
    if settings:
        add_event(deployment, "action", f"{', '.join(settings)} changed; used by the next release")
    backup = [key for key in BACKUP_SETTINGS if key in changes]
    for key in backup:
        setattr(deployment, key, changes[key])
    if "backup_schedule" in backup:
        deployment.backup_scheduled_at = utcnow()  # a new schedule counts from now
    if backup:
        add_event(deployment, "action", f"{', '.join(backup)} changed")
    commit()
    return deployment, resize_guest


def request_delete(deployment):
    """Mark the deployment deleting (a job destroys the guest, then marks it deleted).

    Returns True when a destroy job should run: always, unless it is deleted already.
    A delete wins over a job still provisioning: that job sees the status and destroys its guest.
    """
    if deployment.is_deleted:
        return False
    if deployment.status is not DeploymentStatus.DELETING:
        change_status(deployment, DeploymentStatus.DELETING, "delete requested")
        try:
            commit()
        except ConcurrentUpdate:
            # A job moved it meanwhile: decide again on the fresh row.
            db.session.refresh(deployment)
            return request_delete(deployment)
    return True


def _action_refusal(deployment, action):
    """Why a power action does not apply to the deployment now (an InvalidState to raise), or None."""
    allowed, _ = ACTIONS[action]
    if deployment.status not in allowed:
        return InvalidState(
            f"cannot {action} a deployment that is {deployment.status.value}; "
            f"{action} applies to {', '.join(sorted(s.value for s in allowed))} deployments",
            fields={"status": deployment.status.value},
        )
    if deployment.vm_id is None:
        return InvalidState(f"the deployment has no guest to {action}")
    return None


def allowed_actions(deployment):
    """The power actions request_action would take now."""
    return {action for action in ACTIONS if _action_refusal(deployment, action) is None}


def request_action(deployment, action, *, proxmox):
    """Check that a power action applies now and record the request; a job carries it out."""
    require_proxmox(proxmox)
    refusal = _action_refusal(deployment, action)
    if refusal is not None:
        raise refusal
    add_event(deployment, "action", f"{action} requested")
    commit()
    return deployment


def fail_unqueued(deployment, reason):
    """The job could not be queued: say so on the deployment instead of leaving it waiting forever."""
    db.session.refresh(deployment)
    if deployment.status is DeploymentStatus.PENDING:
        change_status(deployment, DeploymentStatus.FAILED, f"could not queue the job: {reason}")
        commit()


# -- listing -----------------------------------------------------------------


def _encode_cursor(sort, row):
    column = sort.lstrip("-")
    value = getattr(row, column)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": str(row.id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor, sort):
    bad = ValidationFailed("invalid cursor", fields={"cursor": "not a cursor this API issued for this sort"})
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("s") != sort or not isinstance(data.get("id"), str):
            raise bad
        row_id = uuid.UUID(data["id"])
        value = data["v"]
        if sort.lstrip("-") in ("created_at", "updated_at"):
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise bad
            value = value.astimezone(UTC)
        elif not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise bad
        return value, row_id
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise bad from None


def list_deployments(query, viewer, per_page_default=20, per_page_max=100):
    """A filtered, sorted page of what viewer may see, by number or by keyset cursor; with the total and the
    number of pages only when query asks for total=exact (None otherwise)."""
    per_page = min(query.get("per_page") or per_page_default, per_page_max)
    sort = query.get("sort") or "-created_at"
    column = SORT_COLUMNS[sort.lstrip("-")]
    descending = sort.startswith("-")

    stmt = scoped(select(Deployment) if query.get("include_deleted") else Deployment.live(), viewer)
    if query.get("status"):
        stmt = stmt.where(Deployment.status == DeploymentStatus(query["status"]))
    if query.get("deployment_type"):
        stmt = stmt.where(Deployment.deployment_type == query["deployment_type"])
    if query.get("framework"):
        stmt = stmt.where(Deployment.framework == query["framework"])
    if query.get("name"):
        pattern = query["name"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Deployment.name.like(f"%{pattern}%", escape="\\"))

    # The exact count scans every match (30 ms at 100000 rows): only when the caller asks for it.
    total = None
    if query.get("total") == "exact":
        total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))

    page = None
    if query.get("cursor"):
        value, row_id = _decode_cursor(query["cursor"], sort)
        # column <= v AND (column < v OR id < i): a range on the index, on every engine.
        if descending:
            stmt = stmt.where(column <= value, (column < value) | (Deployment.id < row_id))
        else:
            stmt = stmt.where(column >= value, (column > value) | (Deployment.id > row_id))
    else:
        page = query.get("page") or 1
        stmt = stmt.offset((page - 1) * per_page)

    order = (column.desc(), Deployment.id.desc()) if descending else (column.asc(), Deployment.id.asc())
    rows = db.session.scalars(stmt.order_by(*order).limit(per_page + 1)).all()
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    return {
        "deployments": rows,
        "total": total,
        "pages": None if total is None else math.ceil(total / per_page),
        "page": page,
        "per_page": per_page,
        "next_cursor": _encode_cursor(sort, rows[-1]) if has_more and rows else None,
    }


# -- statistics --------------------------------------------------------------


def awaits_release(deployment_id):
    """Whether a deployment without a release yet will get one: it is still being created (not failed, not gone)."""
    deployment = Deployment.get_by_id(deployment_id)
    return deployment is not None and deployment.status in (DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING,
                                                            DeploymentStatus.DEPLOYING)


def status_fingerprint(viewer_id, viewer_is_admin):
    """What changes whenever a status a viewer may see changes (a count and the latest update): cheap to ask."""
    return Deployment.fingerprint(None if viewer_is_admin else viewer_id)


def status_snapshot(viewer_id, viewer_is_admin):
    """{deployment id: status} of what a viewer may see (given by id: a stream holds no row between its polls)."""
    return dict(Deployment.statuses(None if viewer_is_admin else viewer_id))


def deployment_stats(viewer):
    """Totals by status and type of what viewer may see, and the share of finished ones that succeeded."""
    pairs = Deployment.breakdown(owner=None if viewer.is_admin else viewer.id)
    by_status = Deployment.status_breakdown(pairs)
    by_type = Deployment.type_breakdown(pairs)
    succeeded = by_status["running"] + by_status["stopped"]
    finished = succeeded + by_status["failed"]
    return {
        "total": sum(n for s, n in by_status.items() if s != DeploymentStatus.DELETED.value),
        "by_status": by_status,
        "by_type": by_type,
        "success_rate": round(succeeded / finished, 4) if finished else None,
    }
