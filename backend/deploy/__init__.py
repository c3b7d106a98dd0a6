"""Deploying the app into its guest: transports (SSH, local), framework recipes, releases.

init_app wires the deploy step into provisioning: app.extensions["deploy_app"] runs a release,
app.extensions["deploy_transport"] opens a transport to a deployment's guest, and
app.extensions["guest_hooks"] lets a simulated guest's app follow its guest's power state.
"""
import dataclasses
import logging
import shutil
import uuid
from pathlib import Path

from backend.deploy.transport import TransportError

log = logging.getLogger(__name__)


def simulation_dir(app):
    return Path(app.config.get("SIMULATION_DIR") or Path(app.instance_path) / "simulation")


def sandbox_of(app, deployment_id):
    """A simulated guest's directory: one per deployment, named by its id (never by user input)."""
    return simulation_dir(app) / "guests" / str(uuid.UUID(str(deployment_id)))


def key_path(app):
    return Path(app.config.get("SSH_KEY_PATH") or Path(app.instance_path) / "ssh" / "id_ed25519")


class SandboxHooks:
    """Simulation: the app in a sandbox stops, starts and disappears with its simulated guest."""

    def __init__(self, app):
        self.app = app

    def _transport(self, d):
        from backend.deploy.local import LocalTransport  # noqa: PLC0415
        from backend.models import Deployment  # noqa: PLC0415

        root = sandbox_of(self.app, d["id"])
        if not root.exists():
            return None
        ip = Deployment.get_by_id(d["id"]).ip_address or "127.0.0.1"
        return LocalTransport(root, bind_host=ip)

    def stopped(self, d):
        transport = self._transport(d)
        if transport:
            transport.stop_service("paas-app")

    def started(self, d):
        transport = self._transport(d)
        if transport and (Path(transport.root) / ".services" / "paas-app.json").exists():
            transport.restart_service("paas-app")

    restarted = started

    def destroying(self, d):
        transport = self._transport(d)
        if transport:
            transport.stop_service("paas-app")
            shutil.rmtree(transport.root, ignore_errors=True)


def _local_factory(app):
    def open_transport(d):
        from backend.deploy.local import LocalTransport  # noqa: PLC0415
        from backend.models import Deployment  # noqa: PLC0415

        ip = Deployment.get_by_id(d["id"]).ip_address
        if not ip:
            raise TransportError("the guest has no address")
        return LocalTransport(sandbox_of(app, d["id"]), bind_host=ip)
    return open_transport


def _ssh_factory(app):
    def open_transport(d):
        from backend.deploy.keys import load_or_create_keypair  # noqa: PLC0415
        from backend.deploy.ssh import SSHTransport  # noqa: PLC0415
        from backend.models import Deployment  # noqa: PLC0415
        from backend.services.lifecycle import apply  # noqa: PLC0415

        deployment = Deployment.get_by_id(d["id"])
        if not deployment.ip_address:
            raise TransportError("the guest has no address")
        settings = app.config.get("PROXMOX_SETTINGS")
        user = "root" if d["kind"] == "lxc" else (settings.ci_user if settings else "paas")
        pkey, _ = load_or_create_keypair(key_path(app))

        def remember(line):
            def change(row):
                row.ssh_host_key = line
            apply(d["id"], change)

        return SSHTransport(deployment.ip_address, port=app.config.get("SSH_PORT", 22), user=user, pkey=pkey,
                            known_host_key=deployment.ssh_host_key, on_new_host_key=remember,
                            connect_timeout=app.config["SSH_CONNECT_TIMEOUT"])
    return open_transport


def init_app(app):
    from backend.deploy.deployer import deploy_app  # noqa: PLC0415

    if not app.config.get("DEPLOY_APPS", True):
        return
    app.extensions["deploy_app"] = deploy_app
    if app.config.get("SIMULATE") and app.config.get("SIMULATION_GUESTS") != "containers":
        app.extensions["deploy_transport"] = _local_factory(app)
        app.extensions["guest_hooks"] = SandboxHooks(app)
        return
    app.extensions["deploy_transport"] = _ssh_factory(app)
    settings = app.config.get("PROXMOX_SETTINGS")
    if settings is not None:
        # Guests get the platform's public key (and the administrator's, when PROXMOX_SSH_PUBLIC_KEY has one).
        from backend.deploy.keys import load_or_create_keypair  # noqa: PLC0415

        _, public = load_or_create_keypair(key_path(app))
        keys = [k for k in (settings.ssh_public_key, public) if k]
        app.config["PROXMOX_SETTINGS"] = dataclasses.replace(settings, ssh_public_key="\n".join(dict.fromkeys(keys)))
