"""The composition root: the one place that builds the platform's collaborators from the configuration.

create_app() calls init_app(); entry points (api/, jobs/, manage_db.py) take the result with
backend.platform.platform_of(app) and hand its parts to the services as arguments. Which transport reaches
guests, which job backend runs jobs and how Proxmox clients are kept is decided here.
"""
import dataclasses
from pathlib import Path

from backend.deploy.deployer import Limits
from backend.deploy.guests import NoGuestHooks, SandboxHooks, SandboxTransports, SSHTransports
from backend.jobs.backends import build_jobs
from backend.jobs.outbox import listen_for_notifications
from backend.platform import EXTENSION, BackupPolicy, Edge, Platform, ProxmoxClients
from backend.router import CaddyRouter, RouterSettings


def simulation_dir(app):
    return Path(app.config.get("SIMULATION_DIR") or Path(app.instance_path) / "simulation")


def key_path(app):
    """The platform's SSH private key (made on first use; its .pub goes into every guest)."""
    return Path(app.config.get("SSH_KEY_PATH") or Path(app.instance_path) / "ssh" / "id_ed25519")


def deploy_limits(config):
    return Limits(command_timeout=config["DEPLOY_COMMAND_TIMEOUT"], health_timeout=config["HEALTH_CHECK_TIMEOUT"],
                  releases_kept=max(1, config["RELEASES_KEPT"]), git_protocols=config["GIT_ALLOW_PROTOCOL"],
                  git_rewrites=tuple(sorted((config.get("GIT_URL_REWRITES") or {}).items())),
                  http_proxy=config.get("GUEST_HTTP_PROXY") or None, no_proxy=config.get("GUEST_NO_PROXY") or None)


def build_platform(app):
    """The collaborators app's configuration asks for (the job backend is added by init_app)."""
    config = app.config
    settings = config.get("PROXMOX_SETTINGS")
    transports, hooks = None, NoGuestHooks()
    if config.get("DEPLOY_APPS", True):
        if config.get("SIMULATE") and config.get("SIMULATION_GUESTS") != "containers":
            transports = SandboxTransports(simulation_dir(app) / "guests")
            hooks = SandboxHooks(transports)
        else:
            transports = SSHTransports(key_path(app), port=config.get("SSH_PORT", 22),
                                       connect_timeout=config["SSH_CONNECT_TIMEOUT"],
                                       vm_user=settings.ci_user if settings else "paas")
            if settings is not None:
                # Guests get the platform's public key (and the administrator's, when PROXMOX_SSH_PUBLIC_KEY has one).
                keys = [key for key in (settings.ssh_public_key, transports.public_key()) if key]
                settings = dataclasses.replace(settings, ssh_public_key="\n".join(dict.fromkeys(keys)))
    proxmox = ProxmoxClients(settings, config["LIVE_STATUS_TIMEOUT"]) if settings is not None else None
    return Platform(proxmox=proxmox, transports=transports, guest_hooks=hooks, deploy_limits=deploy_limits(config),
                    edge=build_edge(config), backups=backup_policy(config))


def backup_policy(config):
    return BackupPolicy(snapshot_default=bool(config["SNAPSHOT_BEFORE_RELEASE"]),
                        snapshots_kept=max(1, config["SNAPSHOTS_KEPT"]), storage=config["BACKUP_STORAGE"],
                        keep_last=config["BACKUP_KEEP_LAST"], keep_daily=config["BACKUP_KEEP_DAILY"],
                        keep_weekly=config["BACKUP_KEEP_WEEKLY"], timeout=config["BACKUP_TIMEOUT"])


def router_settings(config):
    return RouterSettings(admin_url=config["CADDY_ADMIN_URL"], http_port=config["ROUTER_HTTP_PORT"],
                          https_port=config["ROUTER_HTTPS_PORT"], bind=config.get("ROUTER_BIND") or None,
                          tls=config["ROUTER_TLS"], acme_email=config.get("ACME_EMAIL") or None,
                          access_log_dir=config.get("ROUTER_ACCESS_LOG_DIR") or None)


def build_edge(config):
    """The edge router the configuration names (ROUTER=caddy), or None."""
    if config.get("ROUTER", "none") != "caddy":
        return None
    return Edge(router=CaddyRouter(router_settings(config)), apps_domain=config["APPS_DOMAIN"],
                https_port=config["ROUTER_HTTPS_PORT"], drain_seconds=config["ROUTER_DRAIN_SECONDS"])


def init_app(app):
    platform = build_platform(app)
    platform.jobs = build_jobs(app)
    app.extensions[EXTENSION] = platform
    listen_for_notifications()
