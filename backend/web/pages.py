"""The deployments list (/), its live statuses, the cluster's nodes, and the new-deployment form."""
import json
import time

from flask import Response, current_app, flash, redirect, render_template, request, stream_with_context, url_for

from backend.errors import DomainError
from backend.extensions import db
from backend.handoff import enqueue
from backend.platform import platform_of
from backend.proxmox.errors import ProxmoxError
from backend.rules import plain_number
from backend.schemas.deployments import DeploymentCreate, DeploymentListQuery
from backend.services import cluster
from backend.services import deployments as service
from backend.services.catalogue import catalogue
from backend.services.deployments import RESOURCE_DEFAULTS, RESOURCE_LIMITS, deployment_stats
from backend.status import DeploymentStatus
from backend.web import web_bp
from backend.web.forms import checked, env_lines, field_errors, integer, text
from backend.web.session import current_user, record

PER_PAGE = 50
# How often the status stream looks at the database, and how long one connection lasts (the browser reconnects).
STATUS_POLL_SECONDS = 1.0
STATUS_STREAM_SECONDS = 300
FILTERS = ("status", "deployment_type", "framework", "name")


def quota_defaults():
    return {key: current_app.config[f"QUOTA_{key.upper()}"] for key in ("deployments", "cores", "memory", "disk")}


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
            "statuses": [s.value for s in DeploymentStatus], "frameworks": catalogue()}


@web_bp.get("/")
def index():
    """Every deployment the user may see, with counts by status, filters, and the cluster's nodes."""
    context = _listing()
    context["stats"] = deployment_stats(current_user())
    return render_template("deployments/index.html", nav="deployments", **context)


@web_bp.get("/deployments/rows")
def deployment_rows():
    """The list's table alone (htmx: the filters and the live refresh swap it in)."""
    return render_template("deployments/_table.html", **_listing())


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
    """Server-Sent Events: `status` with {id, status} whenever one of the user's deployments changes status, and
    `changed` when one appears or goes. Bounded: after STATUS_STREAM_SECONDS the browser reconnects."""
    user_id, is_admin = current_user().id, current_user().is_admin
    db.session.remove()

    def events():
        yield "retry: 3000\n\n"
        known = None
        started = time.monotonic()
        while time.monotonic() - started < STATUS_STREAM_SECONDS:
            try:
                now = service.status_snapshot(user_id, is_admin)
            finally:
                db.session.remove()
            if known is not None:
                for ident, status in now.items():
                    if known.get(ident) != status:
                        yield f"event: status\ndata: {json.dumps({'id': ident, 'status': status})}\n\n"
                if now.keys() != known.keys():
                    yield "event: changed\ndata: {}\n\n"
            else:
                yield ": connected\n\n"
            known = now
            time.sleep(STATUS_POLL_SECONDS)

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


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
