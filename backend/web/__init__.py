"""Entry point for people: the dashboard's pages (Jinja2 templates, htmx, Server-Sent Events), served at /.

It stands beside api/ and jobs/ and calls the same services the API calls, never the API over HTTP. People log
in with a password; a server-side session (web_sessions) rides in a signed, HttpOnly, SameSite=Lax cookie, and
every form and every htmx request carries a CSRF token (Flask-WTF). Pages are scoped to the user as the API is.
Every asset is in static/ (vendored: static/vendor/README.md); no page loads anything from another host.
"""
from flask import Blueprint

web_bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


def init_app(app):
    """Attach the dashboard: its routes, CSRF protection, the login limits and the page headers."""
    # Here, not at the top: the view modules import web_bp from this module and register on it.
    from backend.web import account, admin, deployments, pages, session  # noqa: F401, PLC0415 - the views import web_bp from here

    session.init_app(app)
    app.register_blueprint(web_bp)
    session.limit_logins(app)
    session.limit_forms(app)
