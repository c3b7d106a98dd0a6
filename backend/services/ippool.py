"""Static addresses from PROXMOX_IP_POOL ("10.10.0.100-10.10.0.199/24"), one per live deployment."""
import ipaddress

from sqlalchemy import select

from backend.extensions import db
from backend.models import Deployment
from backend.proxmox.errors import ProxmoxError
from backend.services.lifecycle import apply


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
    """The deployment's address in CIDR form: the one it holds, else the lowest free one.

    Two jobs may pick the same address at once; after committing, the one created later
    sees the clash and picks again, so each address ends up with one live deployment.
    """
    first, last, prefix = parse_pool(pool)

    def in_pool(address):
        try:
            return first <= ipaddress.IPv4Address(address) <= last
        except ValueError:
            return False

    for _ in range(int(last) - int(first) + 2):
        def choose(row):
            if row.ip_address and in_pool(row.ip_address):
                return row.ip_address
            used = {ip for ip in db.session.scalars(
                select(Deployment.ip_address).where(Deployment.deleted_at.is_(None),
                                                    Deployment.ip_address.is_not(None)))}
            for number in range(int(first), int(last) + 1):
                address = str(ipaddress.IPv4Address(number))
                if address not in used:
                    row.ip_address = address
                    return address
            raise PoolExhausted(f"every address of {pool} is in use")

        address = apply(deployment_id, choose)

        def keep_or_release(row):
            holders = db.session.scalars(
                select(Deployment).where(Deployment.deleted_at.is_(None), Deployment.ip_address == address)
                .order_by(Deployment.created_at, Deployment.id)).all()
            if holders and holders[0].id != row.id:
                row.ip_address = None
                return False
            return True

        if apply(deployment_id, keep_or_release):
            return f"{address}/{prefix}"
    raise PoolExhausted(f"no address of {pool} could be reserved")


class PoolExhausted(ProxmoxError):
    """No address of the pool is free."""
