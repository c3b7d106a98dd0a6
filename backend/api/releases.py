"""Releases, environment variables and logs of a deployment."""

from flask import current_app, g, request
from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action
from backend.api.deployments import enqueue, find
from backend.api.spec import spec
from backend.errors import NotFound, ValidationFailed
from backend.extensions import db
from backend.models import Release
from backend.platform import platform_of
from backend.rules import plain_number
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.releases import (
    BuildLogPage,
    BuildLogQuery,
    EnvOut,
    LogLineOut,
    ProcessList,
    ProcessOut,
    RedeployIn,
    ReleaseEnvelope,
    ReleaseList,
    ReleaseOut,
    RuntimeLogQuery,
    StreamQuery,
)
from backend.services import envvars, history, releases
from backend.services.logs import runtime_log
from backend.services.processes import process_states
from backend.streams import event_stream, release_log_events

TAGS = ["releases"]


def release_envelope(release, deployment, status=202):
    return {"success": True, "release": dump(ReleaseOut, release), "deployment": deployment.to_dict()}, status


@api_bp.post("/deployments/<ident>/actions/redeploy")
@spec.validate(resp=Response(HTTP_202=ReleaseEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def redeploy(ident, json: RedeployIn):
    """Build and switch in a new release from the branch's head (or another branch, or a commit).

    The body may be empty ({}). A failed release leaves the previous one serving.
    """
    deployment = find(ident)
    release, kind = releases.request_redeploy(deployment, branch=json.branch, commit=json.commit,
                                             proxmox=platform_of().proxmox)
    audit_action("deployment.redeploy", deployment, release=release.version, branch=release.branch,
                 commit=json.commit)
    enqueue(kind, deployment)
    return release_envelope(release, deployment)


@api_bp.get("/deployments/<ident>/releases")
@spec.validate(resp=Response(HTTP_200=ReleaseList, HTTP_404=ErrorResponse), tags=TAGS)
def list_releases(ident):
    """Every release, newest first."""
    deployment = find(ident)
    return {"success": True, "releases": [dump(ReleaseOut, r) for r in Release.for_deployment(deployment.id)]}


def release_of(deployment, version):
    number = plain_number(version, 9)
    if number is None:
        raise NotFound(f"no release {version[:20]!r}")
    release = Release.get(deployment.id, number)
    if release is None:
        raise NotFound(f"no release {version} of {deployment.name}")
    return release


@api_bp.get("/deployments/<ident>/releases/<version>")
@spec.validate(resp=Response(HTTP_200=ReleaseEnvelope, HTTP_404=ErrorResponse), tags=TAGS)
def get_release(ident, version):
    deployment = find(ident)
    return release_envelope(release_of(deployment, version), deployment, 200)


@api_bp.post("/deployments/<ident>/releases/<version>/rollback")
@spec.validate(resp=Response(HTTP_202=ReleaseEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def rollback(ident, version):
    """A new release with that release's commit and config (settings and environment) together."""
    deployment = find(ident)
    release, kind = releases.request_rollback(deployment, release_of(deployment, version).version,
                                             proxmox=platform_of().proxmox)
    audit_action("deployment.rollback", deployment, release=release.version, to_version=int(version))
    enqueue(kind, deployment)
    return release_envelope(release, deployment)


# -- environment ----------------------------------------------------------------------------------


@api_bp.get("/deployments/<ident>/env")
@spec.validate(resp=Response(HTTP_200=EnvOut, HTTP_404=ErrorResponse), tags=TAGS)
def get_env(ident):
    """The variable names, values masked: values never leave the platform."""
    deployment = find(ident)
    return {"success": True, "env": envvars.masked(deployment.env_encrypted), "release": None}


@api_bp.patch("/deployments/<ident>/env")
@spec.validate(resp=Response(HTTP_200=EnvOut, HTTP_202=EnvOut, HTTP_400=ErrorResponse, HTTP_404=ErrorResponse,
                             HTTP_409=ErrorResponse, HTTP_413=ErrorResponse, HTTP_415=ErrorResponse,
                             HTTP_422=ErrorResponse), tags=TAGS)
def patch_env(ident):
    """Set variables ({"KEY": "value"}) and delete them ({"KEY": null}).

    A running deployment gets a new release with the new environment (202); otherwise the change
    waits for the next release (200).
    """
    body = g.get("json_body")  # parsed by api_bp's body guard (a strict JSON object), when one was sent
    if not body:
        raise ValidationFailed("the body must be a JSON object of variables", fields={"body": "must be an object"})
    deployment = find(ident)
    release, kind = releases.update_env(deployment, body, proxmox=platform_of().proxmox)
    audit_action("deployment.env", deployment, set=sorted(k for k, v in body.items() if v is not None),
                 deleted=sorted(k for k, v in body.items() if v is None))
    if kind:
        enqueue(kind, deployment)
    body = {"success": True, "env": envvars.masked(deployment.env_encrypted),
            "release": dump(ReleaseOut, release) if release else None}
    return body, 202 if release else 200


# -- logs -----------------------------------------------------------------------------------------


def _log_page(ident, query):
    deployment = find(ident)
    return history.log_page(deployment.id, after=query.after, release=query.release, limit=query.limit)


@api_bp.get("/deployments/<ident>/logs")
@spec.validate(resp=Response(HTTP_200=BuildLogPage, HTTP_404=ErrorResponse), tags=TAGS)
def build_log(ident, query: BuildLogQuery):
    """The build and deploy log, kept in the database: every release's, or one's; paged by after=."""
    lines, next_after = _log_page(ident, query)
    return {"success": True, "lines": [dump(LogLineOut, line) for line in lines], "next_after": next_after}


@api_bp.get("/deployments/<ident>/logs/text")
@spec.validate(resp=Response(HTTP_200=None, HTTP_404=ErrorResponse), tags=TAGS)
def build_log_text(ident, query: BuildLogQuery):
    """The same lines as text/plain, each prefixed with its release; X-Next-After carries the paging id."""
    lines, next_after = _log_page(ident, query)
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if next_after is not None:
        headers["X-Next-After"] = str(next_after)
    return "".join(f"[{line.release_version}] {line.line}\n" for line in lines), 200, headers


@api_bp.get("/deployments/<ident>/logs/runtime")
@spec.validate(resp=Response(HTTP_200=None, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def app_log(ident, query: RuntimeLogQuery):
    """The app's own recent output (its journal on a real guest), as text/plain: the web process's, or another's
    (?process=worker)."""
    deployment = find(ident)
    lines = runtime_log(deployment, query.lines, platform_of().transports, process=query.process)
    return "".join(f"{line}\n" for line in lines), 200, {"Content-Type": "text/plain; charset=utf-8"}


@api_bp.get("/deployments/<ident>/processes")
@spec.validate(resp=Response(HTTP_200=ProcessList, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_502=ErrorResponse), tags=TAGS)
def list_processes(ident):
    """The live release's processes (web and its Procfile's others) and the state of each on the guest now."""
    deployment = find(ident)
    release, found = process_states(deployment, platform_of().transports)
    return {"success": True, "release": release, "processes": [dump(ProcessOut, p) for p in found]}


@api_bp.get("/deployments/<ident>/logs/stream")
@spec.validate(resp=Response(HTTP_200=None, HTTP_404=ErrorResponse), tags=TAGS)
def stream_log(ident, query: StreamQuery):
    """A release's log as Server-Sent Events (event: line, id: the line's id), live while it builds.

    Resumable: send Last-Event-ID (or after=). Ends with `event: end` (data: the release's status)
    once the release has finished and every line is sent.
    """
    deployment = find(ident)
    if query.release is not None:
        release = release_of(deployment, str(query.release))
    else:
        release = next(iter(Release.for_deployment(deployment.id)), None)
        if release is None:
            raise NotFound(f"{deployment.name} has no release yet")
    resumed = plain_number(request.headers.get("Last-Event-ID", ""), 18)
    after = resumed if resumed is not None else query.after
    deployment_id, version, release_id = deployment.id, release.version, release.id
    limit = current_app.config["LOG_STREAM_MAX_SECONDS"]
    db.session.remove()

    def events():
        yield "retry: 2000\n\n"
        yield from release_log_events(deployment_id, release_id, version, after=after, max_seconds=limit)

    return event_stream(events())
