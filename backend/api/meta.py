"""/api/stats, /api/frameworks and /api/openapi.json."""
from flask import jsonify
from spectree import Response

from backend.api import api_bp
from backend.api.auth import caller
from backend.api.spec import openapi_document as document_with_common_answers
from backend.api.spec import spec
from backend.errors import DomainError
from backend.platform import platform_of
from backend.proxmox.errors import ProxmoxError
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.meta import FrameworkList, FrameworkOut, NodeList, StatsOut
from backend.services import cluster
from backend.services.catalogue import catalogue
from backend.services.deployments import deployment_stats


@api_bp.get("/stats")
@spec.validate(resp=Response(HTTP_200=StatsOut), tags=["stats"])
def stats():
    """Totals by status and type, and the success rate."""
    return {"success": True, **deployment_stats(caller())}


@api_bp.get("/frameworks")
@spec.validate(resp=Response(HTTP_200=FrameworkList), tags=["frameworks"])
def frameworks():
    """The catalogue of frameworks the platform builds and runs."""
    return {"success": True, "frameworks": [dump(FrameworkOut, entry) for entry in catalogue()]}


@api_bp.get("/nodes")
@spec.validate(resp=Response(HTTP_200=NodeList, HTTP_503=ErrorResponse), tags=["cluster"])
def nodes():
    """The cluster's nodes with their status and free memory and disk."""
    try:
        return {"success": True, "nodes": cluster.nodes(platform_of().proxmox)}
    except ProxmoxError as exc:
        raise DomainError(cluster.public_message(exc), code="proxmox_unavailable", status=503) from None


@api_bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3 document, generated from the same schemas that validate requests."""
    return jsonify(document_with_common_answers())
