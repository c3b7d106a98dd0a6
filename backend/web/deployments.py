"""A deployment's page (/deployments/<name>) and what a person does there: act, redeploy, roll back, change the
environment and settings, turn the GitHub webhook on, delete; and its live parts: the build log (SSE), the
runtime log, the metrics."""
import json
import time

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from backend.errors import DomainError, NotFound
from backend.extensions import db
from backend.handoff import enqueue
from backend.models import Release
from backend.platform import platform_of
from backend.rules import plain_number
from backend.schemas.deployments import DeploymentUpdate
from backend.services import cluster, envvars, history, metrics, releases, web_sessions, webhooks
from backend.services import deployments as service
from backend.services.actions import ACTIONS
from backend.services.logs import runtime_log
from backend.services.processes import processes_of
from backend.streams import event_stream, release_log_events
from backend.web import web_bp
from backend.web.forms import checked, env_lines, field_errors, integer, text
from backend.web.pages import quota_defaults
from backend.web.session import current_session, current_user, record

SETTINGS = ("build_command", "start_command", "release_command", "port", "health_check_path")
EVENTS_SHOWN = 50
RUNTIME_LINES = 200
# How long a log stream waits for a deployment's first release (it is provisioning) before it gives up.
FIRST_RELEASE_WAIT_SECONDS = 600


def find(name):
    """The user's deployment by name (or id); NotFound (a 404 page) for anyone else's."""
    return service.find_deployment(name, current_user())


def _page_context(deployment, **extra):
    all_releases = Release.for_deployment(deployment.id)
    live_release = next((r for r in all_releases if r.version == deployment.live_release), None)
    context = {
        # What the live release was built as: the framework detection settled on when it was asked to (auto).
        "built_as": (live_release.config or {}).get("framework") if live_release is not None else None,
        "nav": "deployments",
        "d": deployment,
        "live": cluster.live_status(deployment, platform_of().proxmox),
        "releases": all_releases,
        "env": envvars.masked(deployment.env_encrypted),
        "processes": list(processes_of(live_release)),
        # What the services would take now (their own rules), so that the page offers nothing they refuse.
        "allowed_actions": service.allowed_actions(deployment),
        "actions": ACTIONS,
        "can_deploy": releases.can_deploy(deployment),
        "settings_form": {key: getattr(deployment, key) for key in SETTINGS},
        "settings_errors": {},
        "env_errors": {},
        "env_typed": "",
        "delete_error": None,
        "webhook_secret": None,
        "webhook_url": url_for("api.github_webhook", deployment_id=str(deployment.id), _external=True),
        "timeframes": metrics.TIMEFRAMES,
    }
    context.update(extra)
    return context


@web_bp.get("/deployments/<name>")
def deployment_page(name):
    return render_template("deployments/detail.html", **_page_context(find(name)))


@web_bp.get("/deployments/<name>/summary")
def deployment_summary(name):
    """The page's status header and releases (htmx: refreshed when the status changes or a build ends)."""
    deployment = find(name)
    return render_template("deployments/_summary.html", **_page_context(deployment))


@web_bp.get("/deployments/<name>/events")
def deployment_events(name):
    deployment = find(name)
    return render_template("deployments/_events.html", events=history.latest_events(deployment.id, EVENTS_SHOWN))


def _refused(deployment, exc, **errors):
    """Show the page again with the refusal: the message on top and, where it names one, beside the field."""
    db.session.rollback()
    deployment = find(str(deployment.id))
    return render_template("deployments/detail.html", **_page_context(deployment, error=exc.message, **errors)), \
        exc.status


# -- actions ----------------------------------------------------------------------------------------------


@web_bp.post("/deployments/<name>/actions/<action>")
def deployment_action(name, action):
    """start, stop or restart: a job acts and the status follows (the page shows it live)."""
    if action not in ACTIONS:
        abort(404)
    deployment = find(name)
    deployment = service.request_action(deployment, action, proxmox=platform_of().proxmox)
    record(f"deployment.{action}", deployment)
    enqueue(action, deployment)
    flash(f"{deployment.name}: {action} requested.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name))


@web_bp.post("/deployments/<name>/redeploy")
def redeploy(name):
    deployment = find(name)
    release, kind = releases.request_redeploy(deployment, proxmox=platform_of().proxmox)
    record("deployment.redeploy", deployment, release=release.version, branch=release.branch, commit=None)
    enqueue(kind, deployment)
    flash(f"Release {release.version} is being built from {release.branch}.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="build"))


@web_bp.post("/deployments/<name>/releases/<int:version>/rollback")
def rollback(name, version):
    deployment = find(name)
    release, kind = releases.request_rollback(deployment, version, proxmox=platform_of().proxmox)
    record("deployment.rollback", deployment, release=release.version, to_version=version)
    enqueue(kind, deployment)
    flash(f"Release {release.version} brings back release {version}'s code and configuration.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="build"))


# -- environment and settings -----------------------------------------------------------------------------


def _env_change(deployment, changes):
    release, kind = releases.update_env(deployment, changes, proxmox=platform_of().proxmox)
    record("deployment.env", deployment, set=sorted(k for k, v in changes.items() if v is not None),
           deleted=sorted(k for k, v in changes.items() if v is None))
    if kind:
        enqueue(kind, deployment)
    if release is not None:
        flash(f"Release {release.version} is being built with the new environment.", "success")
    else:
        flash("Saved; the next release takes the new environment.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="env"))


@web_bp.post("/deployments/<name>/env")
def set_env(name):
    """Set variables from KEY=value lines (values write-only: they are never shown again)."""
    deployment = find(name)
    typed = request.form.get("env", "")
    try:
        changes = env_lines(typed)
        if not changes:
            raise DomainError("give at least one KEY=value line", fields={"env": "is empty"}, status=422)
        return _env_change(deployment, changes)
    except DomainError as exc:
        # Every refusal (each names its variable); what was typed comes back (in this answer only, never cached).
        messages = "; ".join(exc.fields.values()) or exc.message
        return _refused(deployment, exc, env_errors={"env": messages}, env_typed=typed)


@web_bp.post("/deployments/<name>/env/<key>/delete")
def unset_env(name, key):
    deployment = find(name)
    if key not in envvars.masked(deployment.env_encrypted):
        raise NotFound(f"no variable {key[:64]!r}")
    return _env_change(deployment, {key: None})


@web_bp.post("/deployments/<name>/settings")
def update_settings(name):
    """Build and start commands, release command, port, health path: empty resets one to the recipe's."""
    deployment = find(name)
    form = request.form
    changes = {key: text(form, key) for key in SETTINGS if key != "port"}
    changes["port"] = integer(form, "port")
    try:
        checked(DeploymentUpdate, changes)
        deployment, _ = service.update_deployment(deployment, changes, actor=current_user(),
                                                  quota_defaults=quota_defaults())
    except DomainError as exc:
        shown = {key: form.get(key, "") for key in SETTINGS}
        return _refused(deployment, exc, settings_form=shown, settings_errors=field_errors(exc))
    record("deployment.update", deployment, changes=changes)
    if form.get("redeploy"):
        try:
            return redeploy(deployment.name)
        except DomainError as exc:  # the settings are saved either way: say both
            db.session.rollback()
            flash(f"Settings saved, but the redeploy was refused: {exc.message}", "error")
            return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="settings"))
    flash("Settings saved; they take effect at the next release.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="settings"))


# -- GitHub webhook ---------------------------------------------------------------------------------------


@web_bp.post("/deployments/<name>/webhook")
def enable_webhook(name):
    """Push-to-deploy on, with a new secret shown on this answer only."""
    deployment = find(name)
    secret = webhooks.enable(deployment)
    record("deployment.webhook.enable", deployment)
    return render_template("deployments/detail.html", **_page_context(deployment, webhook_secret=secret))


@web_bp.post("/deployments/<name>/webhook/disable")
def disable_webhook(name):
    deployment = find(name)
    webhooks.disable(deployment)
    record("deployment.webhook.disable", deployment)
    flash("Push-to-deploy is off; GitHub's deliveries are refused from now on.", "success")
    return redirect(url_for("web.deployment_page", name=deployment.name, _anchor="webhook"))


# -- delete -----------------------------------------------------------------------------------------------


@web_bp.post("/deployments/<name>/delete")
def delete_deployment(name):
    """Delete, confirmed by typing the name: the guest is stopped and destroyed."""
    deployment = find(name)
    if request.form.get("confirm", "").strip() != deployment.name:
        return render_template("deployments/detail.html", **_page_context(
            deployment, delete_error=f"type {deployment.name} to confirm")), 422
    if service.request_delete(deployment):
        record("deployment.delete", deployment)
        enqueue("destroy", deployment)
    flash(f"{deployment.name} is being deleted: its guest is stopped and destroyed.", "success")
    return redirect(url_for("web.index"))


# -- live parts -------------------------------------------------------------------------------------------


@web_bp.get("/deployments/<name>/log/stream")
def log_stream(name):
    """A release's build log as Server-Sent Events (the newest release, or ?release=N), as the API's stream:
    `line` events with ids (the browser resumes after the last it saw), `end` with the release's status. While
    the deployment has no release yet (its guest is being provisioned) it waits for the first one."""
    deployment = find(name)
    version = request.args.get("release")
    wanted = plain_number(version, 9) if version is not None else None
    if version is not None and (wanted is None or Release.get(deployment.id, wanted) is None):
        raise NotFound(f"no release {version[:20]!r} of {deployment.name}")
    after = plain_number(request.headers.get("Last-Event-ID", ""), 18)
    deployment_id, session_row_id = deployment.id, current_session().id
    limit = current_app.config["LOG_STREAM_MAX_SECONDS"]
    idle_hours = current_app.config["WEB_SESSION_IDLE_HOURS"]
    db.session.remove()

    def still_open():
        return web_sessions.viewer(session_row_id, idle_hours=idle_hours) is not None

    def release_to_follow():
        """(id, version) of the release to follow; while there is none, wait (the guest is being provisioned),
        unless the deployment failed or went, or the session ended."""
        started = time.monotonic()
        while time.monotonic() - started < FIRST_RELEASE_WAIT_SECONDS:
            try:
                found = (Release.get(deployment_id, wanted) if wanted is not None
                         else next(iter(Release.for_deployment(deployment_id)), None))
                release = (found.id, found.version) if found is not None else None
                waiting = release is None and still_open() and service.awaits_release(deployment_id)
            finally:
                db.session.remove()
            if not waiting:
                return release
            yield ": waiting for the first release\n\n"
            time.sleep(1)
        return None

    def events():
        yield "retry: 2000\n\n"
        release = yield from release_to_follow()
        if release is None:
            yield "event: end\ndata: {\"release\": null, \"status\": null}\n\n"
            return
        release_id, release_version = release
        yield f"event: release\ndata: {json.dumps({'release': release_version})}\n\n"
        yield from release_log_events(deployment_id, release_id, release_version, after=after, max_seconds=limit,
                                      keep_going=still_open)

    return event_stream(events())


@web_bp.get("/deployments/<name>/runtime-log")
def runtime_log_panel(name):
    """The app's recent output, a process's (htmx: loaded on demand)."""
    deployment = find(name)
    process = request.args.get("process", "web")
    try:
        lines, error = runtime_log(deployment, RUNTIME_LINES, platform_of().transports, process=process), None
    except DomainError as exc:
        lines, error = [], exc.message
    return render_template("deployments/_runtime_log.html", lines=lines, error=error, process=process)


@web_bp.get("/deployments/<name>/metrics.json")
def metrics_data(name):
    """The guest's CPU, memory, network and disk series (the page's charts draw them)."""
    deployment = find(name)
    timeframe = request.args.get("timeframe", "hour")
    if timeframe not in metrics.TIMEFRAMES:
        abort(404)
    try:
        return metrics.guest_metrics(deployment, platform_of().proxmox, timeframe)
    except DomainError as exc:
        if exc.code == "no_guest":  # not a failure: the charts say so until the guest is there
            return {"error": "No guest yet: the charts start once it is created.", "points": []}
        return {"error": exc.message, "points": []}, exc.status
