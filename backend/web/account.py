"""The account page: the user's own API tokens (create one, shown once; revoke) and password, with the API's rules
(POST/DELETE /api/tokens, PUT /api/me/password) and its audit actions."""
from flask import flash, redirect, render_template, request, url_for

from backend.errors import DomainError, ValidationFailed
from backend.extensions import db
from backend.schemas.common import dump
from backend.schemas.users import PasswordChange, TokenCreate, TokenOut
from backend.services import accounts, passwords
from backend.web import web_bp
from backend.web.forms import checked, field_errors, integer, text
from backend.web.session import current_user, record, start_session

PASSWORD_CHANGED = "Password changed; your other dashboard sessions are logged out."


def _page(status=200, **context):
    """The account page: the user's tokens, newest first, and the two forms (with what a failed one was sent)."""
    user = current_user()
    values = {"nav": "account", "tokens": accounts.tokens_of(user), "has_password": user.password_hash is not None,
              "token_form": {}, "token_errors": {}, "token_message": None, "new_token": None,
              "password_errors": {}, "password_message": None}
    values.update(context)
    return render_template("account/index.html", **values), status


@web_bp.get("/account")
def account():
    """The user's API tokens and the password form."""
    return _page()


@web_bp.post("/account/tokens")
def create_token():
    """A new API token for the user, shown on this answer only (not through a redirect: it is never stored)."""
    form = request.form
    body = {"name": text(form, "name"), "expires_in_days": integer(form, "expires_in_days")}
    try:
        data = checked(TokenCreate, {key: value for key, value in body.items() if value is not None})
        token, row = accounts.issue_token(current_user(), data.name, data.expires_in_days)
    except DomainError as exc:
        db.session.rollback()
        shown = {key: form.get(key, "") for key in ("name", "expires_in_days")}
        return _page(exc.status, token_form=shown, token_errors=field_errors(exc), token_message=exc.message)
    info = dump(TokenOut, row)
    record("token.create", target=f"token {row.prefix}", name=row.name, expires_at=info["expires_at"])
    return _page(201, new_token=token, new_token_row=row)


@web_bp.post("/account/tokens/<token_id>/revoke")
def revoke_token(token_id):
    """Revoke one of the user's tokens (anyone else's is not found); idempotent."""
    row = accounts.revoke_token(accounts.find_token(current_user(), token_id))
    record("token.revoke", target=f"token {row.prefix}", name=row.name)
    flash(f"Token {row.name} ({row.prefix}…) is revoked: it no longer works.", "success")
    return redirect(url_for("web.account"))


@web_bp.post("/account/password")
def change_password():
    """The user's own password: the current one when they have one, the new one twice. Every dashboard session of
    theirs ends and this browser goes on in a new one; their API tokens stay. Limited like logins
    (session.limit_logins)."""
    user = current_user()
    form = request.form
    current = form.get("current_password") or None
    new = form.get("new_password") or ""
    try:
        data = checked(PasswordChange, {"current_password": current, "new_password": new})
        if new != form.get("new_password_repeat", ""):
            raise ValidationFailed("the two new passwords differ",
                                   fields={"new_password_repeat": "does not match the new password"})
        passwords.change_password(user, data.current_password, data.new_password)
        # Every session of theirs ended with the old password, this one too (a stolen cookie of it among them):
        # this browser goes on in a new one.
        start_session(user)
    except DomainError as exc:
        db.session.rollback()
        errors = field_errors(exc)
        if "password" in errors:  # the policy names the password it checks "password": here, the new one
            errors.setdefault("new_password", errors.pop("password"))
        return _page(exc.status, password_errors=errors, password_message=exc.message)
    record("user.password_changed", target=f"user {user.username}")
    flash(PASSWORD_CHANGED, "success")
    return redirect(url_for("web.account"))
