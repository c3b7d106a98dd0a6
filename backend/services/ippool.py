"""Static addresses from PROXMOX_IP_POOL ("10.10.0.100-10.10.0.199/24"), one per live deployment.

A reservation is a row keyed by the address: two jobs that pick the same one at once cannot both
insert it, and the loser picks again.
"""
import ipaddress

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from backend.extensions import db
from backend.models import IpReservation
from backend.proxmox.errors import ProxmoxError
from backend.services.transactions import commit


class PoolExhausted(ProxmoxError):
    """No address of the pool is free."""


def parse_pool(pool):
    """(first, last, prefix) of a pool written first-last/prefix; ValueError when malformed."""
    try:
        span, prefix = pool.strip().split("/")
        first, last = (ipaddress.IPv4Address(part.strip()) for part in span.split("-"))
        prefix = int(prefix)
    except ValueError:
        raise ValueError(f"PROXMOX_IP_POOL must look like 10.10.0.100-10.10.0.199/24, not {pool!r}") from None
    if last < first or not 8 <= prefix <= 32:
        raise ValueError(f"PROXMOX_IP_POOL {pool!r}: the range is empty or the prefix is not 8..32")
    network = ipaddress.IPv4Network(f"{first}/{prefix}", strict=False)
    if last not in network:
        raise ValueError(f"PROXMOX_IP_POOL {pool!r}: {last} is outside {network}")
    return first, last, prefix


def allocate(deployment_id, pool):
    """The deployment's address in CIDR form: the one it holds, else the lowest free one, reserved."""
    first, last, prefix = parse_pool(pool)
    try:
        for _ in range(int(last) - int(first) + 2):
            held = db.session.scalar(select(IpReservation.address)
                                     .where(IpReservation.deployment_id == deployment_id))
            if held:
                return f"{held}/{prefix}"
            used = set(db.session.scalars(select(IpReservation.address)))
            free = next((str(ipaddress.IPv4Address(n)) for n in range(int(first), int(last) + 1)
                         if str(ipaddress.IPv4Address(n)) not in used), None)
            if free is None:
                raise PoolExhausted(f"every address of {pool} is in use")
            db.session.add(IpReservation(address=free, deployment_id=deployment_id))
            try:
                commit()
                return f"{free}/{prefix}"
            except IntegrityError:
                db.session.rollback()  # taken meanwhile (or this deployment got one): look again
        raise PoolExhausted(f"no address of {pool} could be reserved")
    finally:
        db.session.remove()


def release(deployment_id):
    """Give the deployment's address back to the pool (nothing happens when it holds none)."""
    try:
        db.session.execute(delete(IpReservation).where(IpReservation.deployment_id == deployment_id))
        commit()
    finally:
        db.session.remove()
