"""/api/deployments: create, list, read, change, delete."""
from flask import current_app, url_for
from spectree import Response

from backend.api import api_bp
from backend.api.schemas import (
    DeploymentCreate,
    DeploymentEnvelope,
    DeploymentListQuery,
    DeploymentPage,
    DeploymentUpdate,
    ErrorResponse,
)
from backend.api.spec import spec
from backend.services import deployments as service

TAGS = ["deployments"]


def _envelope(deployment):
    return {"success": True, "deployment": deployment.to_dict()}


@api_bp.post("/deployments")
@spec.validate(resp=Response(HTTP_201=DeploymentEnvelope, HTTP_400=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_413=ErrorResponse, HTTP_415=ErrorResponse), tags=TAGS)
def create_deployment(json: DeploymentCreate):
    """Create a deployment; it starts in status pending."""
    deployment = service.create_deployment(json.model_dump())
    location = url_for("api.get_deployment", ident=str(deployment.id))
    return _envelope(deployment), 201, {"Location": location}


@api_bp.get("/deployments")
@spec.validate(resp=Response(HTTP_200=DeploymentPage), tags=TAGS)
def list_deployments(query: DeploymentListQuery):
    """List deployments: filters, sort, page by number or by cursor (next_cursor)."""
    result = service.list_deployments(
        query.model_dump(),
        per_page_default=current_app.config["PER_PAGE_DEFAULT"],
        per_page_max=current_app.config["PER_PAGE_MAX"],
    )
    result["deployments"] = [d.to_dict() for d in result["deployments"]]
    return {"success": True, **result}


@api_bp.get("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_404=ErrorResponse), tags=TAGS)
def get_deployment(ident):
    """One deployment, by id or by name."""
    return _envelope(service.find_deployment(ident))


@api_bp.patch("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse),
               tags=TAGS)
def update_deployment(ident, json: DeploymentUpdate):
    """Change tags, or resources while the deployment is not busy."""
    deployment = service.find_deployment(ident)
    return _envelope(service.update_deployment(deployment, json.model_dump(exclude_unset=True)))


@api_bp.delete("/deployments/<ident>")
@spec.validate(resp=Response(HTTP_200=DeploymentEnvelope, HTTP_404=ErrorResponse), tags=TAGS)
def delete_deployment(ident):
    """Soft-delete a deployment: the row stays, with status deleted. Deleting twice is harmless."""
    deployment = service.find_deployment(ident)
    return _envelope(service.delete_deployment(deployment))
