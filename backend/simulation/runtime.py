"""Simulation mode: the platform with an in-process fake Proxmox whose guests are local sandboxes.

Each simulated guest gets an address of its own in 127.77.0.0/16 (all of 127.0.0.0/8 is loopback on
Linux), from the platform's static address pool, and a directory under SIMULATION_DIR; the deploy
step reaches it through the local transport, so the app is really cloned, built, started and
health-checked. The fake's tasks take a short while, like a quick real cluster.
"""
import secrets

from backend.proxmox.settings import ProxmoxSettings

ADDRESS_POOL = "127.77.0.10-127.77.3.250/16"
TEMPLATE_ID = 9000


def start_fake(task_seconds=0.2):
    """A running fake cluster (two nodes, VM template 9000) and the settings that reach it."""
    from backend.simulation.fake_proxmox import FakeProxmox, Node  # noqa: PLC0415

    token = secrets.token_hex(16)
    fake = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], tokens={"root@pam!paas": token},
                       task_seconds=task_seconds)
    fake.start()
    fake.add_template(TEMPLATE_ID, node="pve1")
    return fake, settings_for(fake, token)


def settings_for(fake, token="secret", **overrides):
    values = {"host": fake.host, "port": fake.port, "user": "root@pam", "token_name": "paas",
              "token_value": token, "ca_bundle": fake.ca_bundle_path, "timeout": 10,
              "vm_template_id": TEMPLATE_ID, "task_timeout": 120, "ip_timeout": 30, "ip_pool": ADDRESS_POOL,
              "loopback_guests": True, "ssh_public_key": None}
    values.update(overrides)
    return ProxmoxSettings(**values)


EXAMPLES_OWNER = "https://github.com/paas-examples/"


def prepare_examples(simulation_dir, examples_dir):
    """Each directory of examples/ as a git repository under simulation_dir, refreshed from the files;
    returns the git URL rewrites that make https://github.com/paas-examples/<name> clone it."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

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


def reset(simulation_dir):
    """Stop the apps of an earlier run's simulated guests and forget them; the URL of a fresh
    SQLite database for this run."""
    import shutil  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from backend.deploy.local import LocalTransport  # noqa: PLC0415

    base = Path(simulation_dir)
    base.mkdir(parents=True, exist_ok=True)
    guests = base / "guests"
    if guests.exists():
        for sandbox in guests.iterdir():
            LocalTransport(sandbox).stop_service("paas-app")
        shutil.rmtree(guests)
    database = base / "simulation.db"
    database.unlink(missing_ok=True)
    return f"sqlite:///{database.resolve()}"


def admin_token(app, simulation_dir):
    """An admin and a fresh token for this simulation run, also written to <simulation dir>/admin-token (0600)."""
    import os  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from backend.models import User  # noqa: PLC0415
    from backend.services import accounts  # noqa: PLC0415

    with app.app_context():
        user = User.get_by_username("admin") or accounts.create_user("admin", "admin")
        token, _ = accounts.issue_token(user, "simulation")
    path = Path(simulation_dir) / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, path
