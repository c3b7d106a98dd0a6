"""The platform's collaborators as services receive them, and where an app keeps them.

backend/bootstrap.py builds a Platform from the configuration; entry points take it with
platform_of(app) and hand its parts to services; tests build one from fakes.
"""
import dataclasses
import threading
from dataclasses import dataclass

from flask import current_app

from backend.deploy.deployer import Limits
from backend.proxmox.client import ProxmoxClient

EXTENSION = "paas.platform"


class ProxmoxClients:
    """Proxmox clients for one cluster's settings, each thread keeping its own connection
    (a proxmoxer handle's requests session is not shared across threads)."""

    def __init__(self, settings, quick_timeout):
        self.settings = settings
        self.quick_settings = dataclasses.replace(settings, timeout=quick_timeout, retries=0)
        self._local = threading.local()

    def job_client(self, sleep):
        """A client for a job: full timeouts and retries, its waits through sleep (the job's own)."""
        return ProxmoxClient(self.settings, api=getattr(self._local, "job_connection", None), sleep=sleep)

    def keep_connection(self, client):
        """Let the next job on this thread reuse client's connection."""
        if client is not None and client.connection is not None:
            self._local.job_connection = client.connection

    def quick_client(self):
        """A client for a user's request: a short timeout and no retries, so that a slow cluster never
        holds a request (a field then says so)."""
        client = getattr(self._local, "quick", None)
        if client is None:
            client = self._local.quick = ProxmoxClient(self.quick_settings)
        return client


@dataclass(frozen=True)
class Edge:
    """The edge router as services use it: the adapter (a CaddyRouter) and what names and addresses apps get."""

    router: object  # .apply(routes), .in_sync(routes), .access_log(key, lines)
    apps_domain: str
    https_port: int = 443
    drain_seconds: float = 2


@dataclass(frozen=True)
class BackupPolicy:
    """Snapshots and backups as the configuration sets them (a deployment may override the defaults)."""

    snapshot_default: bool = False
    snapshots_kept: int = 3
    storage: str = "local"
    keep_last: int = 3
    keep_daily: int = 7
    keep_weekly: int = 4
    timeout: float = 3600


@dataclass
class Platform:
    """What services work with, built once per app."""

    proxmox: ProxmoxClients | None  # None: no cluster configured
    transports: object | None  # .open(GuestTarget) -> Transport; None: apps are not deployed
    guest_hooks: object  # .started/.stopped/.restarted/.destroying(GuestTarget)
    deploy_limits: Limits
    jobs: object = None  # the job backend: .submit(kind, deployment id, delay=0), .start(), .shutdown()
    edge: Edge | None = None  # None: no router (ROUTER=none); apps answer at http://GUEST-IP:PORT
    backups: BackupPolicy = dataclasses.field(default_factory=BackupPolicy)

    @property
    def proxmox_settings(self):
        return self.proxmox.settings if self.proxmox is not None else None

    @property
    def deploys_apps(self):
        return self.transports is not None


def platform_of(app=None):
    """The app's Platform (the current app's without one)."""
    return (app or current_app).extensions[EXTENSION]
