"""Users and their API tokens: creating, authenticating, revoking, and the per-user quotas."""
import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from backend.errors import Conflict, NotFound, QuotaExceeded, ValidationFailed
from backend.extensions import db
from backend.models import ApiToken, Deployment, User, WebSession
from backend.models.types import utcnow
from backend.models.user import QUOTA_KEYS, ROLES, hash_token
from backend.services.transactions import commit

log = logging.getLogger(__name__)
USERNAME_RE = re.compile(r"[a-z][a-z0-9_.-]{1,62}[a-z0-9]")
TOKEN_PREFIX = "paas_"
TOKEN_RE = re.compile(r"paas_[A-Za-z0-9_-]{43}")
PREFIX_LENGTH = 12
# last_used_at is written at most this often per token, not on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
DEFAULT_QUOTAS = {"deployments": 10, "cores": 16, "memory": 32768, "disk": 500}
QUOTA_UNITS = {"deployments": "", "cores": "", "memory": " MB", "disk": " GB"}


def create_user(username, role="member", quotas=None, allow_private_targets=False):
    """A new user; usernames are unique."""
    if not USERNAME_RE.fullmatch(username or ""):
        raise ValidationFailed("invalid username", fields={
            "username": "3-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter"})
    if role not in ROLES:
        raise ValidationFailed("invalid role", fields={"role": f"one of {', '.join(ROLES)}"})
    if User.get_by_username(username) is not None:
        raise Conflict(f"a user named {username!r} already exists", fields={"username": "already taken"})
    user = User(username=username, role=role, allow_private_targets=allow_private_targets)
    for key, value in (quotas or {}).items():
        setattr(user, f"max_{key}", value)
    db.session.add(user)
    try:
        commit()
    except IntegrityError:
        raise Conflict(f"a user named {username!r} already exists", fields={"username": "already taken"}) from None
    return user


def find_user(ident):
    """A user by id or username; NotFound otherwise."""
    user = User.get_by_id(ident) or (User.get_by_username(ident) if USERNAME_RE.fullmatch(ident) else None)
    if user is None:
        raise NotFound(f"no user {ident[:80]!r}")
    return user


def list_users():
    return db.session.scalars(select(User).order_by(User.created_at, User.id)).all()


def update_user(user, changes):
    """Role, quota overrides (null: the default), private notification targets, disabled."""
    if "role" in changes and changes["role"] is not None:
        if changes["role"] not in ROLES:
            raise ValidationFailed("invalid role", fields={"role": f"one of {', '.join(ROLES)}"})
        if user.role == "admin" and changes["role"] != "admin":
            _keep_an_admin(user)
        user.role = changes["role"]
    for key, value in (changes.get("quotas") or {}).items():
        setattr(user, f"max_{key}", value)
    if changes.get("allow_private_targets") is not None:
        user.allow_private_targets = changes["allow_private_targets"]
    if changes.get("disabled") is True and user.disabled_at is None:
        if user.role == "admin":
            _keep_an_admin(user)
        user.disabled_at = utcnow()
        _revoke_all(user)
    elif changes.get("disabled") is False:
        user.disabled_at = None
    commit()
    return user


def _keep_an_admin(user):
    # Lock the active admins' rows first (in a fresh transaction, like lock_user), so two admins
    # demoting each other at once cannot both pass the count.
    user_id = user.id
    commit()
    db.session.execute(update(User).where(User.role == "admin", User.disabled_at.is_(None)).values(role=User.role))
    user = db.session.get(User, user_id)
    if user.is_active and User.count_admins() <= 1:
        raise Conflict("the last active admin cannot be demoted or disabled", fields={"role": "last admin"})


def _revoke_all(user):
    """Every token and dashboard session of user stops working (not committed)."""
    db.session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    WebSession.revoke_for_user(user.id)


# -- tokens -------------------------------------------------------------------------------------------


def issue_token(user, name, expires_in_days=None):
    """A new random token for user: (the token itself, shown this once; its row)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, prefix=token[:PREFIX_LENGTH], token_hash=hash_token(token),
                   expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None)
    db.session.add(row)
    commit()
    return token, row


def authenticate(token):
    """The (user, token row) a bearer token stands for, or None: unknown, revoked, expired, user disabled."""
    if not token or not TOKEN_RE.fullmatch(token):
        return None
    found = ApiToken.find_with_user(token)
    now = utcnow()
    if found is None or not found[0].usable(now):
        return None
    row, user = found
    if not user.is_active:
        return None
    if row.last_used_at is None or now - row.last_used_at > TOUCH_INTERVAL:
        try:
            db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            commit()
        except OperationalError:  # best effort: a busy database must not refuse a valid token
            db.session.rollback()
            log.warning("could not record the use of token %s", row.prefix)
            user = db.session.get(User, row.user_id)
    return user, row


def tokens_of(user):
    """The user's tokens, newest first."""
    return ApiToken.for_user(user.id)


def find_token(user, ident):
    """One of user's tokens, by id; NotFound for anyone else's."""
    for row in tokens_of(user):
        if str(row.id) == ident:
            return row
    raise NotFound(f"no token {ident[:40]!r}")


def revoke_token(row):
    """Revoke (idempotent): the token stops working at once."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        commit()
    return row


# -- quotas -------------------------------------------------------------------------------------------


def quota_defaults(config):
    """The members' default quotas from the configuration (QUOTA_DEPLOYMENTS, _CORES, _MEMORY, _DISK)."""
    return {key: config[f"QUOTA_{key.upper()}"] for key in QUOTA_KEYS}


def quotas_of(user, defaults):
    """The user's limits: their own overrides, else the configured defaults."""
    return {key: getattr(user, f"max_{key}") if getattr(user, f"max_{key}") is not None else defaults[key]
            for key in QUOTA_KEYS}


def usage_of(user_id, exclude=None):
    """Deployments and resources the user holds now: every deployment that is not deleted."""
    stmt = select(Deployment.resources).where(Deployment.user_id == user_id, Deployment.deleted_at.is_(None))
    if exclude is not None:
        stmt = stmt.where(Deployment.id != exclude)
    used = dict.fromkeys(QUOTA_KEYS, 0)
    for resources in db.session.scalars(stmt):
        used["deployments"] += 1
        for key in ("cores", "memory", "disk"):
            used[key] += int((resources or {}).get(key) or 0)
    return used


def lock_user(user):
    """Serialise quota checks of one user until the transaction ends, so two creates cannot both take
    the last slot. A no-op UPDATE locks the user's row on PostgreSQL and MariaDB and takes SQLite's write
    lock. It must open its transaction: MariaDB's repeatable read would otherwise count deployments in a
    snapshot taken before the lock was granted."""
    user_id = user.id
    commit()  # nothing is pending here; this only ends the transaction reads opened
    db.session.execute(update(User).where(User.id == user_id).values(role=User.role))


def check_quota(user, defaults, resources, exclude=None, adding=1, current=None):
    """Raise 422 naming the limit the change would exceed. Admins have no quota.

    current: the resources a resized deployment has now; a value that does not grow is never refused
    (a user an admin put over quota can still shrink).
    """
    if user is None or user.is_admin:
        return
    limits = quotas_of(user, defaults)
    used = usage_of(user.id, exclude=exclude)
    wanted = {"deployments": used["deployments"] + adding,
              **{key: used[key] + int(resources.get(key) or 0) for key in ("cores", "memory", "disk")}}
    growing = {key for key in ("cores", "memory", "disk")
               if current is None or int(resources.get(key) or 0) > int(current.get(key) or 0)}
    if adding:
        growing.add("deployments")
    over = {key: f"limit {limits[key]}{QUOTA_UNITS[key]}, in use {used[key]}{QUOTA_UNITS[key]}, "
                 f"this would make {wanted[key]}{QUOTA_UNITS[key]}"
            for key in QUOTA_KEYS if key in growing and wanted[key] > limits[key]}
    if over:
        names = ", ".join(over)
        raise QuotaExceeded(f"quota exceeded: {names}", fields={f"quota.{key}": text for key, text in over.items()})


def count_users():
    return db.session.scalar(select(func.count()).select_from(User))
