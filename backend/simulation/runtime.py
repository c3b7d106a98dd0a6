"""Simulation mode: the platform with an in-process fake Proxmox whose guests are local sandboxes.

Each simulated guest gets an address of its own in 127.77.0.0/16 (all of 127.0.0.0/8 is loopback on
Linux), from the platform's static address pool, and a directory under SIMULATION_DIR; the deploy
step reaches it through the local transport, so the app is really cloned, built, started and
health-checked. The fake's tasks take a short while, like a quick real cluster.

Address blocks keep runs apart: a simulation claims a free 127.77.N.0/24 (N below 128) for as long
as it runs, with a lock that dies with its process; the test suite uses N from 128 up, one per
test worker. Two simulations, and a simulation beside the tests, never share an address.
"""
import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from backend.proxmox.settings import ProxmoxSettings
from backend.simulation.fake_proxmox import FakeProxmox, Node

TEMPLATE_ID = 9000
SIMULATION_BLOCKS = range(0, 128)
TEST_BLOCKS = range(128, 256)


def address_pool(block):
    """The static pool of one address block: 127.77.<block>.10 to .250."""
    if not 0 <= block <= 255:
        raise ValueError(f"address block {block} is not in 0..255")
    return f"127.77.{block}.10-127.77.{block}.250/16"



class SimulationBusy(RuntimeError):
    """Another simulation holds what this one asked for."""


def _locks_dir():
    """One folder for every user's simulations (addresses are shared by all of them), sticky like /tmp."""
    path = Path(tempfile.gettempdir()) / "paas-simulation-locks"
    try:
        path.mkdir(exist_ok=True)
        if path.stat().st_uid == os.getuid():
            path.chmod(0o1777)  # mkdir's mode is cut by the umask
    except OSError as exc:
        raise SimulationBusy(f"cannot use the simulation lock folder {path}: {exc.strerror}") from None
    return path


def _try_lock(path):
    """An open file holding an exclusive lock on path, or None when another process holds it."""
    try:
        handle = open(path, "a+")  # kept open: the lock lasts as long as the file does
    except PermissionError:
        return None  # another user's lock file: that block is theirs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim_block(blocks=SIMULATION_BLOCKS):
    """(block, lock): the first address block no other live process holds; the lock keeps it until closed."""
    for block in blocks:
        lock = _try_lock(_locks_dir() / f"block-{block}.lock")
        if lock is not None:
            return block, lock
    raise SimulationBusy(f"every simulation address block ({blocks.start}..{blocks.stop - 1}) is in use")


def lock_simulation_dir(simulation_dir):
    """Hold simulation_dir for this run: two simulations in one directory would stop each other's guests."""
    base = Path(simulation_dir)
    base.mkdir(parents=True, exist_ok=True)
    lock = _try_lock(base / "running.lock")
    if lock is None:
        raise SimulationBusy(f"another simulation runs from {base}; give this one its own SIMULATION_DIR "
                             "(and PORT)")
    return lock


def start_fake(task_seconds=0.2, **settings):
    """A running fake cluster (two nodes, VM template 9000) and the settings that reach it."""
    token = secrets.token_hex(16)
    fake = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], tokens={"root@pam!paas": token},
                       task_seconds=task_seconds)
    fake.start()
    fake.add_template(TEMPLATE_ID, node="pve1")
    return fake, settings_for(fake, token, **settings)


def settings_for(fake, token="secret", **overrides):
    """Settings that reach fake; guests get loopback addresses from overrides' ip_pool (address_pool(block):
    a simulation claims its block, tests use theirs), or none without one."""
    values = {"host": fake.host, "port": fake.port, "user": "root@pam", "token_name": "paas",
              "token_value": token, "ca_bundle": fake.ca_bundle_path, "timeout": 10,
              "vm_template_id": TEMPLATE_ID, "task_timeout": 120, "ip_timeout": 30, "ip_pool": None,
              "loopback_guests": True, "ssh_public_key": None}
    values.update(overrides)
    return ProxmoxSettings(**values)


EXAMPLES_OWNER = "https://github.com/paas-examples/"


def prepare_examples(simulation_dir, examples_dir):
    """Each directory of examples/ as a git repository under simulation_dir, refreshed from the files;
    returns the git URL rewrites that make https://github.com/paas-examples/<name> clone it."""
    target = Path(simulation_dir) / "examples"
    for source in sorted(Path(examples_dir).iterdir()):
        if not source.is_dir():
            continue
        repo = target / source.name
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(source, repo)
        git = ["git", "-c", "user.name=PaaS simulation", "-c", "user.email=simulation@paas.invalid",
               "-c", "init.defaultBranch=main"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", f"{source.name} sample"]):
            subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True, timeout=60)
    return {f"file://{target.resolve()}/": EXAMPLES_OWNER}


def stop_guest_apps(simulation_dir):
    """Stop the app of every simulated guest under simulation_dir; how many sandboxes there were."""
    from backend.deploy.local import LocalTransport  # noqa: PLC0415 (deploy imports this package)

    guests = Path(simulation_dir) / "guests"
    sandboxes = [path for path in guests.iterdir() if path.is_dir()] if guests.exists() else []
    for sandbox in sandboxes:
        with contextlib.suppress(OSError):
            guest = LocalTransport(sandbox)
            for service in guest.services():  # the web process and the Procfile's others
                guest.stop_service(service)
    return len(sandboxes)


def reset(simulation_dir):
    """Stop the apps of an earlier run's simulated guests and forget them; the URL of a fresh
    SQLite database for this run."""
    base = Path(simulation_dir)
    base.mkdir(parents=True, exist_ok=True)
    stop_guest_apps(base)
    shutil.rmtree(base / "guests", ignore_errors=True)
    database = base / "simulation.db"
    database.unlink(missing_ok=True)
    return f"sqlite:///{database.resolve()}"


class AdminCredentials(NamedTuple):
    token: str
    token_path: Path
    password: str
    password_path: Path


def admin_credentials(app, simulation_dir):
    """An admin with a fresh token and a fresh random password for this simulation run, also written to
    <simulation dir>/admin-token and admin-password (0600): the password logs in with POST /api/auth/login."""
    from backend.models import User  # noqa: PLC0415 - the app is built before this runs
    from backend.services import accounts, passwords  # noqa: PLC0415 - as above

    password = secrets.token_urlsafe(24)
    with app.app_context():
        user = User.get_by_username("admin") or accounts.create_user("admin", "admin")
        token, _ = accounts.issue_token(user, "simulation")
        passwords.set_password(user, password)
    base = Path(simulation_dir)
    return AdminCredentials(token, _write_private(base / "admin-token", token),
                            password, _write_private(base / "admin-password", password))


def _write_private(path, secret):
    """secret and a newline in path, readable by this user alone (an existing file's mode is put right too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return path


SIMULATION_APPS_DOMAIN = "apps.localhost"  # *.localhost resolves to loopback in browsers and curl


def router_wanted(environ=os.environ):
    """Whether this simulation runs its own edge router: when Caddy is installed, unless ROUTER=none says not."""
    from backend.simulation.edge import caddy_available  # noqa: PLC0415 - the edge module runs a process

    return caddy_available() and (environ.get("ROUTER") or "").strip().lower() != "none"


def start_edge(simulation_dir):
    """A Caddy of this simulation's own on loopback ports, its ports and CA in <simulation dir>/router.json;
    returns (the running edge, the settings that make the platform drive it)."""
    from backend.simulation.edge import EdgeCaddy  # noqa: PLC0415 - as above

    base = Path(simulation_dir)
    edge = EdgeCaddy(base / "edge").start()
    edge.write_info(base / "router.json")
    settings = edge.settings
    config = {"ROUTER": "caddy", "CADDY_ADMIN_URL": settings.admin_url, "APPS_DOMAIN": SIMULATION_APPS_DOMAIN,
              "ROUTER_TLS": "internal", "ROUTER_HTTP_PORT": settings.http_port,
              "ROUTER_HTTPS_PORT": settings.https_port, "ROUTER_BIND": settings.bind,
              "ROUTER_ACCESS_LOG_DIR": settings.access_log_dir, "ROUTER_DRAIN_SECONDS": 1}
    return edge, config


def backup_settings(environ=os.environ):
    """Backups go to the fake cluster's shared storage (every node reaches it), unless BACKUP_STORAGE says."""
    return {} if environ.get("BACKUP_STORAGE") else {"BACKUP_STORAGE": "backup"}
