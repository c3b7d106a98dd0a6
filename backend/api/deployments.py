"""/api/deployments: create, list, read, change, delete, act, and the history."""
from flask import current_app, url_for
from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action, audit_in_transaction, caller, quota_defaults
from backend.api.spec import spec
from backend.errors import NotFound
from backend.handoff import enqueue
from backend.platform import platform_of
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.deployments import (
    DeploymentCreate,
    DeploymentEnvelope,
    DeploymentListQuery,
    DeploymentPage,
    DeploymentUpdate,
)
from backend.schemas.events import EventList, EventOut, EventQuery, HistoryQuery
from backend.services import cluster, history, snapshots
from backend.services import deployments as service
from backend.services.actions import ACTIONS

TAGS = ["deployments"]


def _envelope(deployment, live=False):
    body = deployment.to_dict()
    if live:
        body["live"] = cluster.live_status(deployment, platform_of().proxmox)
    return {"success": True, "deployment": body}


def find(ident):
    """The caller's deployment (any, for an admin) by id or name; 404 for everyone else's."""
    return service.find_deployment(ident, caller())


@api_bp.post("/deployments")
@spec.validate(resp=Response(HTTP_201=DeploymentEnvelope, HTTP_400=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_413=ErrorResponse, HTTP_415=ErrorResponse), tags=TAGS)
def create_deployment(json: DeploymentCreate):
    """Create a deployment; it starts in status pending and a job provisions it.

    The caller owns it. Members are held to their quotas (422 quota_exceeded names the limit).
    """
    body = json.model_dump()

    def audit(deployment):
        audit_in_transaction("deployment.create", deployment, type=deployment.deployment_type,
                             framework=deployment.framework, github_url=deployment.github_url,
                             resources=deployment.resources, env_keys=sorted((body.get("env") or {}).keys()))

    deployment = service.create_deployment(body, caller(), quota_defaults(), audit=audit,
                                           proxmox=platform_of().proxmox)
    enqueue("provision", deployment)
    location = url_for("api.get_deployment", ident=str(deployment.id))
    return _envelope(deployment), 201, {"Location": location}


@api_bp.get("/deployments")
@spec.validate(resp=Response(HTTP_200=DeploymentPage), tags=TAGS)
def list_deployments(query: DeploymentListQuery):
    """List deployments: filters, sort, page by number or by cursor (next_cursor)."""
    result = service.list_deployments(
        query.model_dump(),
        caller(),
        per_page_default=current_app.config["PER_PAGE_DEFAULT"],
        per_page_max=current_app.config["PER_PAGE_MAX"],
    )
    result["deployments"] = [d.to_dict() for d in result["deployments"]]
    return {"success": True, **result}


@api_bp.get("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_404=ErrorResponse), tags=TAGS)
def get_deployment(ident):
    """One deployment, by id or by name, with its guest's live status when it has one."""
    return _envelope(find(ident), live=True)


@api_bp.patch("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse),
               tags=TAGS)
def update_deployment(ident, json: DeploymentUpdate):
    """Change tags, or resources while the deployment is not busy."""
    changes = json.model_dump(exclude_unset=True)
    deployment = find(ident)
    if changes.get("snapshot_before_release") and platform_of().proxmox is not None:
        snapshots.check_storage(deployment, platform_of().proxmox.quick_client())
    deployment, resize_guest = service.update_deployment(deployment, changes, actor=caller(),
                                                         quota_defaults=quota_defaults())
    audit_action("deployment.update", deployment, changes=changes)
    if resize_guest:
        enqueue("resize", deployment)  # the guest follows its new size
    return _envelope(deployment)


@api_bp.delete("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_202=DeploymentEnvelope, HTTP_404=ErrorResponse),
               tags=TAGS)
def delete_deployment(ident):
    """Delete: 202 and status deleting while a job stops and destroys the guest, then deleted.

    Idempotent: deleting a deleted deployment answers 200. A delete during provisioning wins.
    """
    deployment = find(ident)
    if not service.request_delete(deployment):
        return _envelope(deployment), 200
    audit_action("deployment.delete", deployment)
    enqueue("destroy", deployment)
    return _envelope(deployment), 202


@api_bp.post("/deployments/<ident>/actions/<action>")
@spec.validate(resp=Response(HTTP_202=DeploymentEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse),
               tags=TAGS)
def deployment_action(ident, action):
    """start (a stopped deployment), stop or restart (a running one): 202, a job acts, the status follows."""
    if action not in ACTIONS:
        raise NotFound(f"no action {action[:40]!r}; use one of {', '.join(ACTIONS)}")
    deployment = service.request_action(find(ident), action, proxmox=platform_of().proxmox)
    audit_action(f"deployment.{action}", deployment)
    enqueue(action, deployment)
    return _envelope(deployment), 202


@api_bp.get("/deployments/<ident>/events")
@spec.validate(resp=Response(HTTP_200=EventList, HTTP_404=ErrorResponse), tags=TAGS)
def deployment_events(ident, query: EventQuery):
    """The deployment's history, oldest first: status changes, steps, Proxmox tasks, actions."""
    deployment = find(ident)
    events, next_after = history.events_page(deployment.id, after=query.after, limit=query.limit)
    return {"success": True, "events": [dump(EventOut, e) for e in events], "next_after": next_after}


@api_bp.get("/deployments/<ident>/history")
@spec.validate(resp=Response(HTTP_200=None, HTTP_404=ErrorResponse), tags=TAGS)
def deployment_history(ident, query: HistoryQuery):
    """The history as readable text (text/plain), with each Proxmox task's own log under its line."""
    deployment = find(ident)
    text = history.readable_log(deployment.id, platform_of().proxmox, with_tasks=query.tasks)
    return text, 200, {"Content-Type": "text/plain; charset=utf-8"}
