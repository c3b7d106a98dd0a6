"""The edge router's desired state, read from the database, and the custom domains that feed it.

The platform owns the router's whole configuration: every change (a release going live, a domain added, a
deployment deleted) and a periodic sweep rebuild the full list of routes from the database and hand it to the
router adapter, which loads it only when it differs from what the router runs. A router that is down costs
no deploy: the change waits in the database, and the next sync (the sweep, `manage_db.py reconcile`) applies it.
"""
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.deploy.deployer import spare_port
from backend.errors import Conflict, DomainError, InvalidState, NotFound, ValidationFailed
from backend.extensions import db
from backend.models import Deployment, DeploymentStatus, Domain
from backend.router import Route, RouterError
from backend.rules import app_hostname, check_hostname
from backend.services.transactions import run_in_transaction

log = logging.getLogger(__name__)

MAX_DOMAINS = 20  # custom domains per deployment
# A route exists while the deployment has a guest whose release served: a stopped app answers 502 from the
# router rather than someone else's app; deleting drops it at once.
UNROUTED = (DeploymentStatus.DELETING, DeploymentStatus.DELETED, DeploymentStatus.PENDING,
            DeploymentStatus.PROVISIONING)


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: loaded (the router's configuration changed), routes (how many), error (why it failed)."""

    loaded: bool
    routes: int
    error: str | None = None

    @property
    def ok(self):
        return self.error is None


def route_key(deployment_id):
    """The router's name for a deployment's route and access log: its id, without dashes."""
    return deployment_id.hex


def desired_routes(session, apps_domain):
    """Every route the router should hold, from the database: a deployment's name under apps_domain and its
    custom domains, to its guest's serving port. A deployment's own name wins over another's custom domain."""
    rows = session.execute(
        select(Deployment.id, Deployment.name, Deployment.ip_address, Deployment.served_port)
        .where(Deployment.deleted_at.is_(None), Deployment.status.not_in(UNROUTED),
               Deployment.live_release.is_not(None), Deployment.ip_address.is_not(None),
               Deployment.served_port.is_not(None))).all()
    ids = [row.id for row in rows]
    custom = {}
    if ids:
        for deployment_id, hostname in session.execute(select(Domain.deployment_id, Domain.hostname)
                                                       .where(Domain.deployment_id.in_(ids))):
            custom.setdefault(deployment_id, []).append(hostname)
    own = {app_hostname(row.name, apps_domain) for row in rows}
    routes = []
    for row in rows:
        hosts = {app_hostname(row.name, apps_domain)}
        hosts.update(h for h in custom.get(row.id, ()) if h not in own)
        # The app's port first, then the spare a new release starts on beside it (deploy/deployer.py).
        upstreams = (f"{row.ip_address}:{row.served_port}", f"{row.ip_address}:{spare_port(row.served_port)}")
        routes.append(Route(key=route_key(row.id), hosts=tuple(sorted(hosts)), upstreams=upstreams))
    return sorted(routes, key=lambda route: route.key)


def sync(edge):
    """Load the desired routes into the router when it differs (RouterError when it cannot)."""
    routes = run_in_transaction(lambda session: desired_routes(session, edge.apps_domain))
    return SyncResult(loaded=edge.router.apply(routes), routes=len(routes))


def sync_quietly(edge, why):
    """sync, a failure logged instead of raised: the change stays in the database for the next sync."""
    if edge is None:
        return None
    try:
        return sync(edge)
    except RouterError as exc:
        log.warning("router not updated after %s: %s (the next sync applies it)", why, exc)
        return SyncResult(loaded=False, routes=0, error=str(exc))
    except Exception as exc:
        log.exception("router not updated after %s (the next sync applies it)", why)
        return SyncResult(loaded=False, routes=0, error=f"internal error ({exc.__class__.__name__})")


def check_sync(edge):
    """(in sync?, the number of routes): whether the router holds exactly the desired routes (RouterError when
    it cannot be asked)."""
    routes = run_in_transaction(lambda session: desired_routes(session, edge.apps_domain))
    return edge.router.in_sync(routes), len(routes)


# -- custom domains ----------------------------------------------------------------------------------------


def require_router(edge):
    if edge is None:
        raise DomainError("no router is configured (ROUTER=none): apps answer at their guest's address only",
                          code="no_router", status=409)


def domains_of(deployment, edge):
    """The names a deployment answers at: its own under the platform's domain, then its custom ones."""
    require_router(edge)
    return app_hostname(deployment.name, edge.apps_domain), Domain.of_deployment(deployment.id)


def add_domain(deployment, hostname, viewer, edge):
    """Claim hostname for deployment: a valid name, not taken, and for a member nothing under the platform's
    domain but the deployment's own name (which it has already)."""
    require_router(edge)
    if deployment.is_deleted or deployment.status in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
        raise InvalidState(f"{deployment.name} is {deployment.status.value}: it takes no new name",
                           fields={"status": deployment.status.value})
    hostname = hostname.strip().lower().rstrip(".")
    try:
        check_hostname(hostname)
    except ValueError as exc:
        raise ValidationFailed(f"hostname {exc}", fields={"hostname": str(exc)}) from None
    own = app_hostname(deployment.name, edge.apps_domain)
    if hostname == own:
        raise Conflict(f"{hostname} is this deployment's own name already", fields={"hostname": "taken"},
                       code="hostname_taken")
    if hostname == edge.apps_domain or hostname.endswith("." + edge.apps_domain):
        if not viewer.is_admin:
            raise DomainError(f"names under {edge.apps_domain} belong to the platform: this deployment's is {own}",
                              fields={"hostname": "reserved"}, code="hostname_reserved", status=403)
        label = hostname[:-len(edge.apps_domain) - 1]
        if db.session.scalars(Deployment.live().where(Deployment.name == label)).first() is not None:
            raise Conflict(f"{hostname} is the name of another deployment", fields={"hostname": "taken"},
                           code="hostname_taken")
    if Domain.get_by_hostname(hostname) is not None:
        raise Conflict(f"{hostname} belongs to a deployment already", fields={"hostname": "taken"},
                       code="hostname_taken")
    if len(Domain.of_deployment(deployment.id)) >= MAX_DOMAINS:
        raise Conflict(f"a deployment has at most {MAX_DOMAINS} custom domains", fields={"hostname": "too many"},
                       code="too_many_domains")
    domain = Domain(deployment_id=deployment.id, hostname=hostname)
    db.session.add(domain)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a racing claim of the same name won
        raise Conflict(f"{hostname} belongs to a deployment already", fields={"hostname": "taken"},
                       code="hostname_taken") from None
    return domain


def remove_domain(deployment, hostname, edge):
    """Give a custom domain up (NotFound when the deployment has no such domain)."""
    require_router(edge)
    domain = Domain.get_by_hostname(hostname.strip().lower().rstrip("."))
    if domain is None or domain.deployment_id != deployment.id:
        raise NotFound(f"{deployment.name} has no custom domain {hostname}", fields={"hostname": "unknown"})
    db.session.delete(domain)
    db.session.commit()


def forget_domains(session, deployment_id):
    """A deleted deployment's names are free again (its routes go with the next sync)."""
    for domain in session.scalars(select(Domain).where(Domain.deployment_id == deployment_id)):
        session.delete(domain)


def access_log(deployment, edge, lines=200):
    """The last requests the router served for a deployment, newest last."""
    require_router(edge)
    try:
        return edge.router.access_log(route_key(deployment.id), lines)
    except RouterError as exc:
        raise DomainError(f"the router's access log could not be read: {exc}", code="router_unavailable",
                          status=502) from None
