"""The deployments list (/), its live statuses, the cluster's nodes, and the new-deployment form."""
import json
import time

from flask import current_app, flash, redirect, render_template, request, url_for

from backend.errors import DomainError
from backend.extensions import db
from backend.handoff import enqueue
from backend.platform import platform_of
from backend.proxmox.errors import ProxmoxError
from backend.rules import plain_number
from backend.schemas.deployments import DeploymentCreate, DeploymentListQuery
from backend.services import accounts, cluster, web_sessions
from backend.services import deployments as service
from backend.services.catalogue import catalogue
from backend.services.deployments import RESOURCE_DEFAULTS, RESOURCE_LIMITS, deployment_stats
from backend.status import DeploymentStatus
from backend.streams import event_stream
from backend.web import web_bp
from backend.web.forms import checked, env_lines, field_errors, integer, text
from backend.web.session import current_session, current_user, record

PER_PAGE = 50
# How often the status stream looks at the database, and how long one connection lasts (the browser reconnects).
STATUS_POLL_SECONDS = 1.0
STATUS_STREAM_SECONDS = 300
# At most this many deployments' statuses are sent when a status stream opens (a page shows 50).
WATCHED_MAX = 200
FILTERS = ("status", "deployment_type", "framework", "name")


def quota_defaults():
    return accounts.quota_defaults(current_app.config)


def _list_query():
    """The list's filters from the query string, through the API's own query schema (a bad value is dropped
    with a note rather than refused: a page should still show)."""
    raw = {key: request.args.get(key, "").strip() for key in FILTERS if request.args.get(key, "").strip()}
    try:
        return checked(DeploymentListQuery, {**raw, "per_page": PER_PAGE, "page": _page()}), raw, None
    except DomainError as exc:
        return checked(DeploymentListQuery, {"per_page": PER_PAGE}), {}, exc.fields


def _page():
    return plain_number(request.args.get("page", "1"), 5) or 1


def _listing():
    query, filters, errors = _list_query()
    result = service.list_deployments(query.model_dump(), current_user(), per_page_default=PER_PAGE,
                                      per_page_max=PER_PAGE)
    return {"deployments": result["deployments"], "page": result["page"] or 1,
            "has_more": result["next_cursor"] is not None, "filters": filters, "filter_errors": errors or {},
            "statuses": [s.value for s in DeploymentStatus], "frameworks": catalogue(),
            "stats": deployment_stats(current_user())}


@web_bp.get("/")
def index():
    """Every deployment the user may see, with counts by status, filters, and the cluster's nodes."""
    return render_template("deployments/index.html", nav="deployments", **_listing())


@web_bp.get("/deployments/rows")
def deployment_rows():
    """The list's counts and table alone (htmx: the filters and the live refresh swap them in). The address bar
    gets the list's own URL with the filters (HX-Replace-Url), never this fragment's."""
    context = _listing()
    page = context["page"] if context["page"] > 1 else None
    headers = {"HX-Replace-Url": url_for("web.index", page=page, **context["filters"])}
    return render_template("deployments/_table.html", **context), 200, headers


def nodes_now():
    """(the cluster's nodes as Proxmox reports them now, None) or ([], why it did not answer)."""
    try:
        return cluster.nodes(platform_of().proxmox), None
    except ProxmoxError as exc:
        return [], cluster.public_message(exc)
    except DomainError as exc:
        return [], exc.message


@web_bp.get("/nodes")
def nodes_panel():
    """The cluster's nodes with free CPU, memory and disk (htmx: loaded after the page, as Proxmox may be slow)."""
    found, error = nodes_now()
    return render_template("_nodes.html", nodes=found, error=error)


@web_bp.get("/stream/statuses")
def status_stream():
    """Server-Sent Events: `status` with {id, status} when one of the user's deployments changes ("deleted" when
    one goes), and `changed` when the set of them changes; when it opens, the status of each it is asked to watch
    (?watch=ID,ID...: what the page shows), so that nothing that changed before it connected is missed. It asks at
    every poll whether the session is still open (a logout or a disabled user ends it at once). Bounded: after
    STATUS_STREAM_SECONDS the browser reconnects."""
    session_row_id = current_session().id
    idle_hours = current_app.config["WEB_SESSION_IDLE_HOURS"]
    watched = set(request.args.get("watch", "").split(",")[:WATCHED_MAX])
    db.session.remove()

    def events():
        yield "retry: 3000\n\n"
        known, seen = None, None
        started = time.monotonic()
        while time.monotonic() - started < STATUS_STREAM_SECONDS:
            try:
                viewer = web_sessions.viewer(session_row_id, idle_hours=idle_hours)
                if viewer is None:
                    return  # the session ended: the browser's reconnection is sent to the login page
                # The statuses themselves are read only when something changed (an admin may see thousands).
                fingerprint = (viewer, service.status_fingerprint(*viewer))
                now = service.status_snapshot(*viewer) if fingerprint != seen else known
                seen = fingerprint
            finally:
                db.session.remove()
            before = known if known is not None else dict.fromkeys(watched)
            for ident, status in now.items():
                if ident in before and before[ident] != status or known is not None and ident not in known:
                    yield f"event: status\ndata: {json.dumps({'id': ident, 'status': status})}\n\n"
            for ident in before.keys() - now.keys():
                if ident:
                    yield f"event: status\ndata: {json.dumps({'id': ident, 'status': 'deleted'})}\n\n"
            if known is not None and now.keys() != known.keys():
                yield "event: changed\ndata: {}\n\n"
            known = now
            time.sleep(STATUS_POLL_SECONDS)

    return event_stream(events())


# -- new deployment ---------------------------------------------------------------------------------------


def _form_context(form=None, errors=None, message=None):
    return {"nav": "new", "form": form or {}, "errors": errors or {}, "message": message,
            "frameworks": catalogue(), "limits": RESOURCE_LIMITS, "defaults": RESOURCE_DEFAULTS}


def _create_body(form):
    """The API's create body from the form's fields."""
    resources = {key: integer(form, key) for key in ("cores", "memory", "disk")}
    body = {
        "name": text(form, "name"),
        "deployment_type": text(form, "deployment_type"),
        "framework": text(form, "framework") or "auto",
        "github_url": text(form, "github_url"),
        "branch": text(form, "branch") or "main",
        "resources": {k: v for k, v in resources.items() if v is not None} or None,
        "env": env_lines(form.get("env")),
    }
    for key in ("build_command", "start_command", "release_command", "health_check_path"):
        body[key] = text(form, key)
    body["port"] = integer(form, "port")
    return {key: value for key, value in body.items() if value is not None}


@web_bp.route("/deployments/new", methods=["GET", "POST"])
def new_deployment():
    """The form; a valid one creates the deployment (the same service and rules as POST /api/deployments)."""
    if request.method == "GET":
        return render_template("deployments/new.html", **_form_context({"deployment_type": "lxc",
                                                                         "branch": "main"}))
    form = request.form
    try:
        data = checked(DeploymentCreate, _create_body(form)).model_dump()

        def audit(deployment):
            record("deployment.create", deployment, commit=False, type=deployment.deployment_type,
                   framework=deployment.framework, github_url=deployment.github_url,
                   resources=deployment.resources, env_keys=sorted((data.get("env") or {}).keys()))

        deployment = service.create_deployment(data, current_user(), quota_defaults(), audit=audit,
                                               proxmox=platform_of().proxmox)
    except DomainError as exc:
        db.session.rollback()
        shown = {k: v for k, v in form.items() if k != "csrf_token"}
        return render_template("deployments/new.html",
                               **_form_context(shown, field_errors(exc), exc.message)), exc.status
    enqueue("provision", deployment)
    flash(f"{deployment.name} is being created: its guest is provisioned, then the app is built and started.",
          "success")
    return redirect(url_for("web.deployment_page", name=deployment.name))
