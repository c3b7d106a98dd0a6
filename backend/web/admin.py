"""Admin pages: users (create, role, quotas, private targets, disable, password), the audit log, the nodes. The
same services, schemas and audit actions as /api/users and /api/audit; a member finds none of them (404)."""
import json
from datetime import UTC

from flask import flash, redirect, render_template, request, url_for

from backend.errors import DomainError, NotFound, ValidationFailed
from backend.extensions import db
from backend.models.user import QUOTA_KEYS, ROLES
from backend.schemas.audit import AuditQuery
from backend.schemas.users import UserCreate, UserUpdate
from backend.services import accounts, audit, passwords
from backend.services import deployments as deployment_service
from backend.web import web_bp
from backend.web.forms import checked, field_errors, integer, text
from backend.web.pages import nodes_now, quota_defaults
from backend.web.session import admin_only, current_user, record, start_session

AUDIT_PER_PAGE = 100
AUDIT_FILTERS = ("action", "user", "deployment", "since", "until")
QUOTA_UNITS = {"deployments": "", "cores": "", "memory": "MB", "disk": "GB"}


def _quotas(form):
    """The quota fields of a form: {key: int, or the text as sent, or None (empty: the default)}."""
    return {key: integer(form, f"quota_{key}") for key in QUOTA_KEYS}


def _quota_errors(exc):
    """field_errors with quotas.cores -> quota_cores, as the form names its quota fields."""
    errors = field_errors(exc)
    for key, message in (exc.fields or {}).items():
        if key.startswith("quotas."):
            errors.pop("quotas", None)
            errors[f"quota_{key.split('.')[1]}"] = message
    return errors


def _form_values(form, *names):
    return {name: form.get(name, "") for name in names}


# -- users ------------------------------------------------------------------------------------------------


def _users_page(status=200, **context):
    values = {"nav": "admin", "section": "users", "users": accounts.list_users(), "defaults": quota_defaults(),
              "roles": ROLES, "quota_keys": QUOTA_KEYS, "units": QUOTA_UNITS, "form": {"role": "member"},
              "errors": {}, "message": None, "created": None, "new_token": None}
    values.update(context)
    return render_template("admin/users.html", **values), status


@web_bp.get("/admin/users")
@admin_only
def admin_users():
    """Every user with their role, state and quotas, and the form for a new one."""
    return _users_page()


@web_bp.post("/admin/users")
@admin_only
def admin_create_user():
    """A new user with a first API token, shown on this answer only (as POST /api/users); a password too when one
    is given (its policy is checked before the user is made)."""
    form = request.form
    quotas = {key: value for key, value in _quotas(form).items() if value is not None}
    body = {"username": text(form, "username"), "role": text(form, "role") or "member",
            "allow_private_targets": form.get("allow_private_targets") == "on"}
    if quotas:
        body["quotas"] = quotas
    password = form.get("password") or None
    try:
        data = checked(UserCreate, body)
        if password is not None:
            passwords.check_policy(password)
        quotas = data.quotas.model_dump(exclude_none=True) if data.quotas else None
        user = accounts.create_user(data.username, data.role, quotas, data.allow_private_targets)
    except DomainError as exc:
        db.session.rollback()
        shown = _form_values(form, "username", "role", "allow_private_targets",
                             *(f"quota_{key}" for key in QUOTA_KEYS))
        return _users_page(exc.status, form=shown, errors=_quota_errors(exc), message=exc.message)
    token, _row = accounts.issue_token(user, "initial")
    record("user.create", target=f"user {user.username}", role=user.role, quotas=quotas or {})
    if password is not None:
        passwords.set_password(user, password)
        record("user.password_set", target=f"user {user.username}")
    return _users_page(201, created=user, new_token=token)


def _user_page(user, status=200, **context):
    values = {"nav": "admin", "section": "users", "user": user, "defaults": quota_defaults(), "roles": ROLES,
              "quota_keys": QUOTA_KEYS, "units": QUOTA_UNITS, "is_self": user.id == current_user().id,
              "failed": None, "form": {}, "errors": {}, "message": None}
    values.update(context)
    return render_template("admin/user.html", **values), status


@web_bp.get("/admin/users/<username>")
@admin_only
def admin_user(username):
    """One user: their role, quotas, private targets, disabled state and password, each with its form."""
    return _user_page(accounts.find_user(username))


def _update(username, section, body, saved, form_names=()):
    """Apply the UserUpdate body to the user (as PATCH /api/users/<id>), audited as user.update, then back to their
    page saying `saved`; a refusal (the last admin rule among them) shows beside the section's form."""
    user = accounts.find_user(username)
    try:
        data = checked(UserUpdate, body)
        changes = data.model_dump(exclude_unset=True)
        if data.quotas is not None:
            changes["quotas"] = data.quotas.model_dump(exclude_unset=True)
        user = accounts.update_user(user, changes)
    except DomainError as exc:
        db.session.rollback()
        user = accounts.find_user(username)
        return _user_page(user, exc.status, failed=section, form=_form_values(request.form, *form_names),
                          errors=_quota_errors(exc), message=exc.message)
    record("user.update", target=f"user {user.username}", changes=changes)
    flash(saved, "success")
    return redirect(url_for("web.admin_user", username=username))


@web_bp.post("/admin/users/<username>/role")
@admin_only
def admin_user_role(username):
    return _update(username, "role", {"role": text(request.form, "role")},
                   f"{username} is now {request.form.get('role')}.", ("role",))


@web_bp.post("/admin/users/<username>/quotas")
@admin_only
def admin_user_quotas(username):
    return _update(username, "quotas", {"quotas": _quotas(request.form)}, f"The quotas of {username} are saved.",
                   tuple(f"quota_{key}" for key in QUOTA_KEYS))


@web_bp.post("/admin/users/<username>/private-targets")
@admin_only
def admin_user_private_targets(username):
    allowed = request.form.get("allow_private_targets") == "on"
    return _update(username, "private_targets", {"allow_private_targets": allowed},
                   f"{username} {'may' if allowed else 'may not'} send notifications to private addresses.")


@web_bp.post("/admin/users/<username>/disabled")
@admin_only
def admin_user_disabled(username):
    """disabled=true ends every API token and dashboard session of the user; false enables them again."""
    disabled = request.form.get("disabled") == "true"
    return _update(username, "disabled", {"disabled": disabled},
                   f"{username} is disabled: their tokens are revoked and their sessions ended." if disabled
                   else f"{username} is enabled again (their old tokens stay revoked).")


@web_bp.post("/admin/users/<username>/password")
@admin_only
def admin_user_password(username):
    """Set the user's password (the policy's check); their dashboard sessions end (but the admin's own current one,
    when it is their own), their API tokens stay. Audited as user.password_set, as manage_db.py set-password."""
    user = accounts.find_user(username)
    password = request.form.get("password", "")
    try:
        if password != request.form.get("password_repeat", ""):
            raise ValidationFailed("the two passwords differ",
                                   fields={"password_repeat": "does not match the password"})
        passwords.set_password(user, password)
        if user.id == current_user().id:  # their own: this browser goes on in a new session
            start_session(user)
    except DomainError as exc:
        db.session.rollback()
        return _user_page(accounts.find_user(username), exc.status, failed="password", errors=field_errors(exc),
                          message=exc.message)
    record("user.password_set", target=f"user {user.username}")
    flash(f"The password of {username} is set; their dashboard sessions are logged out.", "success")
    return redirect(url_for("web.admin_user", username=username))


# -- audit log --------------------------------------------------------------------------------------------


def _aware(moment):
    """A datetime-local value (no zone) is UTC, as the page says."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _audit_filters(raw):
    """The service's filters from the page's (as GET /api/audit builds them): NotFound beside the field for an
    unknown user or deployment."""
    query = checked(AuditQuery, {**raw, "limit": AUDIT_PER_PAGE})
    filters = {"action": query.action, "since": _aware(query.since), "until": _aware(query.until),
               "before": query.before}
    if query.user:
        try:
            filters["user_id"] = accounts.find_user(query.user).id
        except NotFound as exc:
            raise NotFound(exc.message, fields={"user": "no such user"}) from None
    if query.deployment:
        try:
            filters["deployment_id"] = deployment_service.find_deployment(query.deployment, current_user()).id
        except NotFound as exc:
            raise NotFound(exc.message, fields={"deployment": "no such deployment"}) from None
    return filters


@web_bp.get("/admin/audit")
@admin_only
def admin_audit():
    """The audit log, newest first, filtered by action prefix, user, deployment and time, a page at a time."""
    raw = {key: request.args.get(key, "").strip() for key in AUDIT_FILTERS if request.args.get(key, "").strip()}
    before = request.args.get("before", "").strip()
    status, errors, message = 200, {}, None
    try:
        rows, next_before = audit.entries(_audit_filters({**raw, **({"before": before} if before else {})}),
                                          AUDIT_PER_PAGE)
    except DomainError as exc:
        rows, next_before = [], None
        status, errors, message = exc.status, field_errors(exc), exc.message
    entries = [{"row": row, "details": json.dumps(row.details or {}, separators=(",", ":"), sort_keys=True,
                                                  default=str)} for row in rows]
    return render_template("admin/audit.html", nav="admin", section="audit", entries=entries, filters=raw,
                           next_before=next_before, paged=bool(before), errors=errors, message=message), status


# -- nodes ------------------------------------------------------------------------------------------------


@web_bp.get("/admin/nodes")
@admin_only
def admin_nodes():
    """The cluster's nodes with their free CPU, memory and disk (asked of Proxmox now)."""
    found, error = nodes_now()
    return render_template("admin/nodes.html", nav="admin", section="nodes", nodes=found, error=error)
