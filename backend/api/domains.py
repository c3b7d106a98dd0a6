"""/api/deployments/<ident>/domains and /logs/access: a deployment's names behind the edge router."""
from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action, caller
from backend.api.deployments import find
from backend.api.spec import spec
from backend.platform import platform_of
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.domains import AccessLog, AccessLogQuery, DomainEnvelope, DomainIn, DomainList, DomainOut
from backend.services import routing

TAGS = ["domains"]


@api_bp.get("/deployments/<ident>/domains")
@spec.validate(resp=Response(HTTP_200=DomainList, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def list_domains(ident):
    """The names the deployment answers at over HTTPS: its own under APPS_DOMAIN, then its custom domains.

    409 no_router when the platform has no router (ROUTER=none)."""
    deployment = find(ident)
    default, domains = routing.domains_of(deployment, platform_of().edge)
    return {"success": True, "default": default, "url": deployment.url,
            "domains": [dump(DomainOut, domain) for domain in domains]}


@api_bp.post("/deployments/<ident>/domains")
@spec.validate(resp=Response(HTTP_201=DomainEnvelope, HTTP_403=ErrorResponse, HTTP_404=ErrorResponse,
                             HTTP_409=ErrorResponse, HTTP_422=ErrorResponse), tags=TAGS)
def add_domain(ident, json: DomainIn):
    """Serve the deployment at one more name (point its DNS at the router; with ROUTER_TLS=acme the router gets
    its certificate from Let's Encrypt on the first request).

    A name belongs to one deployment only (409 hostname_taken); names under APPS_DOMAIN are the platform's, and a
    member may not claim one (403 hostname_reserved)."""
    deployment = find(ident)
    edge = platform_of().edge
    domain = routing.add_domain(deployment, json.hostname, caller(), edge)
    body = dump(DomainOut, domain)  # before the sync, whose transaction ends this session's
    audit_action("deployment.domain.add", deployment, hostname=body["hostname"])
    result = routing.sync_quietly(edge, f"the domain {body['hostname']} was added")
    return {"success": True, "domain": body, "routed": result.ok}, 201


@api_bp.delete("/deployments/<ident>/domains/<hostname>")
@spec.validate(resp=Response(HTTP_204=None, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def remove_domain(ident, hostname):
    """Stop serving the deployment at a custom domain; the name is free for others again."""
    deployment = find(ident)
    edge = platform_of().edge
    routing.remove_domain(deployment, hostname, edge)
    audit_action("deployment.domain.remove", deployment, hostname=hostname.lower())
    routing.sync_quietly(edge, f"the domain {hostname} was removed")
    return "", 204


@api_bp.get("/deployments/<ident>/logs/access")
@spec.validate(resp=Response(HTTP_200=AccessLog, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_502=ErrorResponse), tags=TAGS)
def access_log(ident, query: AccessLogQuery):
    """The requests the router served for the deployment, most recent last: time, client address, method, host,
    path, status, duration and size (no request headers but the user agent)."""
    deployment = find(ident)
    entries = routing.access_log(deployment, platform_of().edge, query.lines)
    return {"success": True, "entries": entries}
