"""/api/auth/login (a password for a token), /api/me, /api/tokens (the caller's own), /api/users (admins) and
/api/audit (admins)."""
from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action, caller, quota_defaults, require_admin
from backend.api.spec import spec
from backend.errors import NotFound, Unauthorized
from backend.models import Deployment
from backend.schemas.audit import AuditOut, AuditPage, AuditQuery
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.users import (
    LoginOut,
    LoginRequest,
    MeOut,
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenEnvelope,
    TokenList,
    TokenOut,
    UserCreate,
    UserCreated,
    UserEnvelope,
    UserList,
    UserOut,
    UserUpdate,
)
from backend.services import accounts, audit, passwords

# The one answer to a login that fails, whatever failed: it must not tell which usernames exist.
LOGIN_REFUSED = "invalid username or password"


@api_bp.get("/me")
@spec.validate(resp=Response(HTTP_200=MeOut, HTTP_401=ErrorResponse), tags=["users"])
def me():
    """Who the token belongs to, the quotas that apply and what is in use."""
    user = caller()
    quotas = None if user.is_admin else accounts.quotas_of(user, quota_defaults())
    return {"success": True, "user": dump(UserOut, user), "quotas": quotas, "usage": accounts.usage_of(user.id)}


@api_bp.put("/me/password")
@spec.validate(resp=Response(HTTP_204=None, HTTP_401=ErrorResponse, HTTP_422=ErrorResponse, HTTP_429=ErrorResponse),
               tags=["users"])
def change_own_password(json: PasswordChange):
    """Set the caller's password: the current one is needed when there is one. Tokens stay valid (revoke them with
    DELETE /api/tokens/<id>). Limited like logins (RATELIMIT_LOGIN); audited as user.password_changed."""
    user = caller()
    passwords.change_password(user, json.current_password, json.new_password)
    audit_action("user.password_changed", target=f"user {user.username}")
    return "", 204


# -- logging in ----------------------------------------------------------------------------------------


@api_bp.post("/auth/login")
@spec.validate(resp=Response(HTTP_201=LoginOut, HTTP_401=ErrorResponse, HTTP_422=ErrorResponse,
                             HTTP_429=ErrorResponse), tags=["tokens"], security={})
def login(json: LoginRequest):
    """A username and password for a new named API token (no token needed). The token is in this answer only.

    Every failure answers 401 with the same message: unknown user, no password set, wrong password, disabled.
    Attempts are limited per address and per username (RATELIMIT_LOGIN: 429 with Retry-After) and written to
    the audit log (auth.login, auth.login_failed) with the username (only when it names an account: a password
    typed into the username box stays out) and the address, never the password.
    """
    user = passwords.verify_password(json.username, json.password)
    if user is None:
        named = json.username if passwords.is_account_name(json.username) else None
        audit_action("auth.login_failed", target=f"user {named}" if named else "an unknown username", user=None,
                     username=named)
        raise Unauthorized(LOGIN_REFUSED)
    token, row = accounts.issue_token(user, json.token_name, json.expires_in_days)
    info = dump(TokenOut, row)
    audit_action("auth.login", target=f"token {row.prefix}", user=user, username=user.username, name=row.name,
                 expires_at=info["expires_at"])
    return {"success": True, "token": token, "token_info": info, "user": dump(UserOut, user)}, 201


# -- tokens --------------------------------------------------------------------------------------------


@api_bp.post("/tokens")
@spec.validate(resp=Response(HTTP_201=TokenCreated, HTTP_401=ErrorResponse, HTTP_429=ErrorResponse),
               tags=["tokens"])
def create_token(json: TokenCreate):
    """A new token for the caller. The token is in this answer only; the platform keeps its hash."""
    user = caller()
    token, row = accounts.issue_token(user, json.name, json.expires_in_days)
    info = dump(TokenOut, row)
    audit_action("token.create", target=f"token {row.prefix}", name=row.name, expires_at=info["expires_at"])
    return {"success": True, "token": token, "token_info": info}, 201


@api_bp.get("/tokens")
@spec.validate(resp=Response(HTTP_200=TokenList, HTTP_401=ErrorResponse), tags=["tokens"])
def list_tokens():
    """The caller's tokens, newest first, by name and prefix (never the token)."""
    return {"success": True, "tokens": [dump(TokenOut, t) for t in accounts.tokens_of(caller())]}


@api_bp.delete("/tokens/<token_id>")
@spec.validate(resp=Response(HTTP_200=TokenEnvelope, HTTP_401=ErrorResponse, HTTP_404=ErrorResponse),
               tags=["tokens"])
def revoke_token(token_id):
    """Revoke one of the caller's tokens; it stops working at once. Idempotent."""
    row = accounts.revoke_token(accounts.find_token(caller(), token_id))
    audit_action("token.revoke", target=f"token {row.prefix}", name=row.name)
    return {"success": True, "token_info": dump(TokenOut, row)}


# -- users (admins) ------------------------------------------------------------------------------------


@api_bp.get("/users")
@spec.validate(resp=Response(HTTP_200=UserList, HTTP_401=ErrorResponse, HTTP_403=ErrorResponse), tags=["users"])
def list_users():
    require_admin()
    return {"success": True, "users": [dump(UserOut, u) for u in accounts.list_users()]}


@api_bp.post("/users")
@spec.validate(resp=Response(HTTP_201=UserCreated, HTTP_401=ErrorResponse, HTTP_403=ErrorResponse,
                             HTTP_409=ErrorResponse), tags=["users"])
def create_user(json: UserCreate):
    """A new user with a first token (in this answer only)."""
    require_admin()
    quotas = json.quotas.model_dump(exclude_none=True) if json.quotas else None
    user = accounts.create_user(json.username, json.role, quotas, json.allow_private_targets)
    token, row = accounts.issue_token(user, "initial")
    audit_action("user.create", target=f"user {user.username}", role=user.role, quotas=quotas or {})
    return {"success": True, "user": dump(UserOut, user), "token": token, "token_info": dump(TokenOut, row)}, 201


@api_bp.get("/users/<ident>")
@spec.validate(resp=Response(HTTP_200=UserEnvelope, HTTP_401=ErrorResponse, HTTP_403=ErrorResponse,
                             HTTP_404=ErrorResponse), tags=["users"])
def get_user(ident):
    require_admin()
    return {"success": True, "user": dump(UserOut, accounts.find_user(ident))}


@api_bp.patch("/users/<ident>")
@spec.validate(resp=Response(HTTP_200=UserEnvelope, HTTP_401=ErrorResponse, HTTP_403=ErrorResponse,
                             HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=["users"])
def update_user(ident, json: UserUpdate):
    """Change a user's role, quotas (null: the default), private notification targets, or disable them."""
    require_admin()
    changes = json.model_dump(exclude_unset=True)
    if json.quotas is not None:
        changes["quotas"] = json.quotas.model_dump(exclude_unset=True)
    user = accounts.update_user(accounts.find_user(ident), changes)
    audit_action("user.update", target=f"user {user.username}", changes=changes)
    return {"success": True, "user": dump(UserOut, user)}


# -- audit (admins) ------------------------------------------------------------------------------------


@api_bp.get("/audit")
@spec.validate(resp=Response(HTTP_200=AuditPage, HTTP_401=ErrorResponse, HTTP_403=ErrorResponse,
                             HTTP_404=ErrorResponse), tags=["audit"])
def audit_log(query: AuditQuery):
    """Who did what to which deployment, when and from where; newest first, filterable, paged by before=."""
    require_admin()
    filters = {"action": query.action, "since": query.since, "until": query.until, "before": query.before}
    if query.user:
        filters["user_id"] = accounts.find_user(query.user).id
    if query.deployment:
        deployment = Deployment.get_by_id(query.deployment)
        if deployment is None:
            raise NotFound(f"no deployment {query.deployment[:80]!r}")
        filters["deployment_id"] = deployment.id
    rows, next_before = audit.entries(filters, query.limit)
    return {"success": True, "entries": [dump(AuditOut, r) for r in rows], "next_before": next_before}
