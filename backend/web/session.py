"""Who is at the keyboard: password login into a server-side session, CSRF on every change, the login limits,
the page headers, and the error pages."""
import functools
import logging
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from backend.errors import DomainError, NotFound
from backend.extensions import db
from backend.limits import PASSWORD_GUESSES_BY_ADDRESS, PASSWORD_GUESSES_BY_USERNAME, address_count, username_count
from backend.services import audit, passwords, web_sessions
from backend.web import web_bp

log = logging.getLogger(__name__)
csrf = CSRFProtect()

# Pages anyone may open: the login form and the assets.
PUBLIC_ENDPOINTS = frozenset({"web.login", "web.static"})
CHANGING_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The one answer to a failed login, whatever failed: it must not tell which usernames exist.
LOGIN_REFUSED = "Invalid username or password."
INSECURE_LOGIN = ("This dashboard sends its session cookie over HTTPS only, and this page came over plain HTTP: open "
                  "it with https://, or (on a network you trust) set SESSION_COOKIE_SECURE=false.")
# No page runs an inline script or loads anything from another host.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
                           "object-src 'none'")


def init_app(app):
    csrf.init_app(app)
    app.extensions["page_error"] = error_page_for_people


# Forms that check a password: each attempt counts, as a login through the API does, in the same counts.
PASSWORD_ENDPOINTS = ("web.login", "web.change_password")
# The dashboard's forms that do what a tighter-limited API route does, with the same setting (the API's
# ROUTE_LIMITS), counted per person (the default key).
FORM_LIMITS = {
    "web.new_deployment": "RATELIMIT_CREATE",
    "web.create_token": "RATELIMIT_TOKENS",
    "web.revoke_token": "RATELIMIT_TOKENS",
    "web.admin_create_user": "RATELIMIT_TOKENS",
}


def limit_forms(app):
    """The API's tighter limits on the forms that do the same (POST only: showing a form is not limited)."""
    limiter = app.extensions.get("rate_limiter")
    if limiter is None:
        return
    for endpoint, setting in FORM_LIMITS.items():
        app.view_functions[endpoint] = limiter.limit(app.config[setting], methods=["POST"],
                                                     override_defaults=False)(app.view_functions[endpoint])


def limit_logins(app):
    """A login attempt (POST /login) and a password change (POST /account/password) count per address and per
    username (the logged-in user's, for a change), RATELIMIT_LOGIN each, in the counts the API's login and
    password change draw on too (backend/limits.py): a username is guessed no faster through both doors."""
    limiter = app.extensions.get("rate_limiter")
    if limiter is None:
        return
    for endpoint in PASSWORD_ENDPOINTS:
        view = app.view_functions[endpoint]
        for scope, key in ((PASSWORD_GUESSES_BY_ADDRESS, _address_key),
                           (PASSWORD_GUESSES_BY_USERNAME, _username_key)):
            view = limiter.shared_limit(app.config["RATELIMIT_LOGIN"], scope, key_func=key, methods=["POST"],
                                        override_defaults=False)(view)
        app.view_functions[endpoint] = view


def _address_key():
    return address_count(request.remote_addr)


def _username_key():
    """The username the password is tried for: the login form's, or the logged-in user's own (password form)."""
    if request.endpoint == "web.change_password":
        user = current_user()
        return username_count(user.username if user is not None else None)
    return username_count(request.form.get("username", ""))


def current_user():
    """The user of this request's session, or None."""
    return g.get("web_user")


def current_session():
    return g.get("web_session")


@web_bp.before_request
def load_user():
    """Find the session's user; send anyone without one to the login page; check CSRF on every change."""
    g.web_user = g.web_session = None
    if request.endpoint == "web.static":
        return None  # an asset needs no one's session (and costs no query)
    session_id = session.get("sid")
    if session_id:
        found = web_sessions.resume(session_id, idle_hours=current_app.config["WEB_SESSION_IDLE_HOURS"])
        if found is None:
            session.clear()
        else:
            g.web_user, g.web_session = found
    if request.method in CHANGING_METHODS:
        csrf.protect()
    if request.endpoint in PUBLIC_ENDPOINTS or g.web_user is not None:
        return None
    if request.headers.get("HX-Request"):
        # A fragment's URL is no page to come back to: the page the fragment was asked for is.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = current.path + (f"?{current.query}" if current.query else "") if current.netloc == request.host else "/"
        return "", 204, {"HX-Redirect": url_for("web.login", next=_local_path(back))}
    return redirect(url_for("web.login", next=_local_path(request.full_path)))


def _local_path(path):
    """path when it is a path on this site (never another host: //evil.example, https://...), else /."""
    path = (path or "").rstrip("?")
    parts = urlsplit(path)
    # urlsplit drops tabs and line breaks before it parses: look at the text itself for control characters.
    controls = any(ord(c) < 32 or ord(c) == 127 for c in path)
    if (not path.startswith("/") or path.startswith("//") or parts.scheme or parts.netloc or "\\" in path
            or controls):
        return url_for("web.index")
    return path


def require_admin():
    if not current_user().is_admin:
        raise NotFound("no such page")


def admin_only(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        require_admin()
        return view(*args, **kwargs)
    return wrapped


def record(action, deployment=None, target=None, user=None, commit=True, **details):
    """An audit entry for what the person did, from their address, as the API records a token's caller;
    commit=False adds it to the caller's transaction instead (written by its commit, with the change)."""
    return audit.record(action, user=user or current_user(), deployment=deployment, target=target,
                        ip_address=request.remote_addr, request_id=g.get("request_id"),
                        details={"via": "dashboard", **details}, commit=commit)


@web_bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a right username and password open a session."""
    next_path = _local_path(request.values.get("next") or "/")
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_path)
        return render_template("login.html", next=next_path)
    if _cookie_would_not_come_back():
        return render_template("login.html", next=next_path, error=INSECURE_LOGIN), 400
    username = request.form.get("username", "")
    user = passwords.verify_password(username, request.form.get("password", ""))
    if user is None:
        named = username if passwords.is_account_name(username) else None
        audit.record("auth.login_failed", user=None, target=f"user {named}" if named else "an unknown username",
                     ip_address=request.remote_addr, request_id=g.get("request_id"),
                     details={"via": "dashboard", "username": named})
        return render_template("login.html", next=next_path, error=LOGIN_REFUSED, username=username[:64]), 401
    start_session(user)
    record("auth.login", user=user, target=f"user {user.username}", username=user.username)
    return redirect(next_path)


def _cookie_would_not_come_back():
    """Whether this browser would drop the session cookie: it is Secure (production) and the page came over plain
    HTTP from a host other than this machine (browsers keep a Secure cookie from http://localhost only)."""
    if not current_app.config.get("SESSION_COOKIE_SECURE") or request.is_secure:
        return False
    return urlsplit(f"//{request.host}").hostname not in ("localhost", "127.0.0.1", "::1")


def start_session(user):
    """A new session for user in this browser, with a new cookie and a new CSRF token; the session the browser
    had (someone else's, or the user's own before their password changed) ends on the server."""
    web_sessions.close(current_session())
    session_id, row = web_sessions.open_session(
        user, lifetime_hours=current_app.config["WEB_SESSION_HOURS"], ip_address=request.remote_addr,
        user_agent=request.headers.get("User-Agent"))
    session.clear()
    session["sid"] = session_id
    session.permanent = False
    g.web_user, g.web_session = user, row


@web_bp.post("/logout")
def logout():
    web_sessions.close(current_session())
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("web.login"))


@web_bp.after_app_request
def page_headers(response):
    """The dashboard's pages: no framing, no inline script, nothing from another host, not cached."""
    if request.blueprint == "web":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "web.static":
            response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- error pages ------------------------------------------------------------------------------------------


def _error_page(status, title, message, headers=None):
    db.session.rollback()  # whatever the refused request wrote or locked is undone now
    if request.headers.get("HX-Request"):
        # htmx swaps nothing on an error answer by default: the page's script shows the message.
        return render_template("_error.html", title=title, message=message), status, headers or {}
    return render_template("error.html", title=title, message=message, status=status), status, headers or {}


@web_bp.errorhandler(CSRFError)
def csrf_refused(exc):
    return _error_page(400, "The form could not be accepted",
                       "It was not sent from this site's page, or its page is older than your session. "
                       "Go back, reload the page and send it again.")


@web_bp.errorhandler(DomainError)
def domain_error(exc):
    if exc.status == 404:
        return _error_page(404, "Not found", "There is nothing here, or it is not yours to see.")
    return _error_page(exc.status, "That did not work", exc.message)


@web_bp.errorhandler(Exception)
def unexpected_error(exc):
    """Anything else a page raised (the database gone, a row changed meanwhile, a bug): a page, never the API's
    JSON; the details go to the log only."""
    log.error("a dashboard page failed: %s", exc.__class__.__name__, exc_info=exc)
    return _error_page(500, "Something went wrong",
                       "The platform could not show this page; it is logged. Try again in a moment.")


def error_page_for_people(exc):
    """The HTML answer to a routing error (an unknown path, a wrong method) outside the API, for a browser: the
    app's error handler asks this (app.extensions["page_error"]) before it answers JSON."""
    if exc.code == 404:
        return _error_page(404, "Not found", "There is nothing here, or it is not yours to see.")
    return _error_page(exc.code or 500, exc.name, exc.description or exc.name)


@web_bp.errorhandler(HTTPException)
def http_error(exc):
    if exc.code == 429:
        retry = exc.retry_after if hasattr(exc, "retry_after") else None
        message = "Too many attempts. Wait a minute, then try again."
        return _error_page(429, "Slow down", message, {"Retry-After": str(retry or 60)})
    if exc.code == 404:
        return _error_page(404, "Not found", "There is nothing here, or it is not yours to see.")
    return _error_page(exc.code or 500, exc.name, exc.description or exc.name)


@web_bp.app_template_filter("when")
def when(value):
    """A time as the pages show it: <time> with the machine-readable value, or "-" (a filter, not a macro: a
    page of a hundred events calls it a hundred times)."""
    if value is None:
        return "-"
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), value.strftime("%Y-%m-%d %H:%M:%S"))


@web_bp.context_processor
def template_globals():
    return {"current_user": current_user()}
