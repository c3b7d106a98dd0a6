"""Read-only views of the cluster for the API: live guest status, nodes, task logs.

These answer user requests, so they use a client with a short timeout and no retries: a slow or
absent Proxmox makes a field say so instead of holding the request.
"""
import dataclasses
import threading
import time

from flask import current_app

from backend.errors import ProxmoxNotConfigured
from backend.models import DeploymentStatus
from backend.proxmox.client import ProxmoxClient
from backend.proxmox.errors import ProxmoxError

_local = threading.local()
NOT_CONFIGURED = "Proxmox is not configured: set PROXMOX_HOST and its credentials"
# GET /health asks Proxmox at most this often (per process); the answer in between is the last one seen.
HEALTH_TTL_SECONDS = 15
_health = {"settings": None, "at": 0.0, "state": None, "probing": False}
_health_lock = threading.Lock()


def require_proxmox():
    """Refuse (503 proxmox_not_configured) a request that would need a guest when no cluster is configured."""
    if current_app.config.get("PROXMOX_SETTINGS") is None:
        raise ProxmoxNotConfigured(f"{NOT_CONFIGURED}; nothing was recorded")


def _probe(settings, timeout):
    """Ask the cluster for its version once; record "ok" or "unreachable" for settings."""
    try:
        ProxmoxClient(dataclasses.replace(settings, timeout=timeout, retries=0)).call("get", "version")
        state = "ok"
    except ProxmoxError:
        state = "unreachable"
    with _health_lock:
        _health.update(settings=settings, at=time.monotonic(), state=state, probing=False)
    return state


def proxmox_health():
    """"ok", "unreachable" (no answer, or the credentials refused) or "not_configured".

    The first call asks the cluster; later ones answer from the last probe and, once it is older than
    HEALTH_TTL_SECONDS, refresh it in the background: a slow cluster never holds a health check.
    """
    settings = current_app.config.get("PROXMOX_SETTINGS")
    if settings is None:
        return "not_configured"
    timeout = current_app.config["LIVE_STATUS_TIMEOUT"]
    with _health_lock:
        known = _health["settings"] == settings
        stale = not known or time.monotonic() - _health["at"] >= HEALTH_TTL_SECONDS
        refresh = known and stale and not _health["probing"]
        if refresh:
            _health["probing"] = True
        state = _health["state"] if known else None
    if state is None:
        return _probe(settings, timeout)
    if refresh:
        threading.Thread(target=_probe, args=(settings, timeout), name="paas-health-probe", daemon=True).start()
    return state


def quick_client():
    """A per-thread client for the app's Proxmox settings; ProxmoxError when none are configured."""
    settings = current_app.config.get("PROXMOX_SETTINGS")
    if settings is None:
        raise ProxmoxError(NOT_CONFIGURED)
    quick = dataclasses.replace(settings, timeout=current_app.config["LIVE_STATUS_TIMEOUT"], retries=0)
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    if quick not in clients:
        clients[quick] = ProxmoxClient(quick)
    return clients[quick]


def public_message(exc):
    """What a user may read of a Proxmox failure: not the cluster's address or the platform's user."""
    if exc.status is None:
        return "Proxmox did not answer"
    if exc.status == 401:
        return "Proxmox refused the platform's credentials"
    return exc.describe()


def live_status(deployment):
    """The guest's status/current (cpu, memory, disk, uptime), an error note, or None without a guest."""
    if deployment.vm_id is None or deployment.node is None or deployment.status is DeploymentStatus.DELETED:
        return None
    try:
        return quick_client().status(deployment.node, deployment.vm_id, deployment.guest_kind)
    except ProxmoxError as exc:
        return {"error": public_message(exc)}


def nodes():
    return quick_client().nodes()


def task_log(upid, limit=200):
    """The lines of a Proxmox task's log."""
    from backend.proxmox.client import upid_node  # noqa: PLC0415

    entries = quick_client().call("get", f"nodes/{upid_node(upid)}/tasks/{upid}/log", start=0, limit=limit)
    return [str(entry.get("t", "")) for entry in entries]
