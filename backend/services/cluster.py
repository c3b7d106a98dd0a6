"""Read-only views of the cluster for the API: live guest status, nodes, task logs.

These answer user requests, so they use the platform's quick client (a short timeout, no retries):
a slow or absent Proxmox makes a field say so instead of holding the request.
"""
import threading
import time

from backend.errors import ProxmoxNotConfigured
from backend.models import DeploymentStatus
from backend.proxmox.client import upid_node
from backend.proxmox.errors import ProxmoxError

NOT_CONFIGURED = "Proxmox is not configured: set PROXMOX_HOST and its credentials"
# GET /health asks Proxmox at most this often (per process); the answer in between is the last one seen.
HEALTH_TTL_SECONDS = 15
_health = {"settings": None, "at": 0.0, "state": None, "probing": False}
_health_lock = threading.Lock()


def require_proxmox(proxmox):
    """Refuse (503 proxmox_not_configured) a request that would need a guest when no cluster is configured
    (proxmox: the platform's clients, None without a cluster)."""
    if proxmox is None:
        raise ProxmoxNotConfigured(f"{NOT_CONFIGURED}; nothing was recorded")


def _probe(proxmox):
    """Ask the cluster for its version once; record "ok" or "unreachable" for its settings."""
    try:
        proxmox.quick_client().call("get", "version")
        state = "ok"
    except ProxmoxError:
        state = "unreachable"
    with _health_lock:
        _health.update(settings=proxmox.settings, at=time.monotonic(), state=state, probing=False)
    return state


def proxmox_health(proxmox):
    """"ok", "unreachable" (no answer, or the credentials refused) or "not_configured" (proxmox is None).

    The first call asks the cluster; later ones answer from the last probe and, once it is older than
    HEALTH_TTL_SECONDS, refresh it in the background: a slow cluster never holds a health check.
    """
    if proxmox is None:
        return "not_configured"
    with _health_lock:
        known = _health["settings"] == proxmox.settings
        stale = not known or time.monotonic() - _health["at"] >= HEALTH_TTL_SECONDS
        refresh = known and stale and not _health["probing"]
        if refresh:
            _health["probing"] = True
        state = _health["state"] if known else None
    if state is None:
        return _probe(proxmox)
    if refresh:
        threading.Thread(target=_probe, args=(proxmox,), name="paas-health-probe", daemon=True).start()
    return state


def _quick_client(proxmox):
    if proxmox is None:
        raise ProxmoxError(NOT_CONFIGURED)
    return proxmox.quick_client()


def public_message(exc):
    """What a user may read of a Proxmox failure: not the cluster's address or the platform's user."""
    if str(exc) == NOT_CONFIGURED:
        return NOT_CONFIGURED
    if exc.status is None:
        return "Proxmox did not answer"
    if exc.status == 401:
        return "Proxmox refused the platform's credentials"
    return exc.describe()


def live_status(deployment, proxmox):
    """The guest's status/current (cpu, memory, disk, uptime), an error note, or None without a guest."""
    if deployment.vm_id is None or deployment.node is None or deployment.status is DeploymentStatus.DELETED:
        return None
    try:
        return _quick_client(proxmox).status(deployment.node, deployment.vm_id, deployment.guest_kind)
    except ProxmoxError as exc:
        return {"error": public_message(exc)}


def nodes(proxmox):
    return _quick_client(proxmox).nodes()


def task_log(upid, proxmox, limit=200):
    """The lines of a Proxmox task's log."""
    entries = _quick_client(proxmox).call("get", f"nodes/{upid_node(upid)}/tasks/{upid}/log", start=0, limit=limit)
    return [str(entry.get("t", "")) for entry in entries]
