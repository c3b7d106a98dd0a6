"""Real guests: what the platform adds to a deploy over SSH, and to a guest's start.

    sudo .venv/bin/python bench/bench_real_guests.py [--repeat 3]

Both sides run in the same run, interleaved, on the same image, bridge, proxy and git server:
- deploy: POST /api/deployments of a Flask sample until `running` (the fake Proxmox's create and start, SSH,
  apt-get update and install, the app user, git clone, venv, pip through the proxy, the unit, the health check),
  beside the same steps typed by hand over SSH into a bare container booted directly;
- boot: from the create request to sshd answering, beside a bare container's create and boot.
Prints medians and the ratios (targets: deploy <= 1.2x the hand-run steps). It passes or fails nothing.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from backend.platform import platform_of
from backend.simulation.containers import _answers
from backend.simulation.realguests import RealGuestCluster
from backend.simulation.runtime import claim_block

APP = {"requirements.txt": "flask\n",
       "app.py": "from flask import Flask\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n"
                 "    return 'hello'\n"}
UNIT = """[Unit]
Description=app
After=network.target
[Service]
User=app
WorkingDirectory=/srv/app/src
ExecStart=/srv/app/src/.venv/bin/gunicorn --bind 0.0.0.0:8000 --workers 2 app:app
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""


def make_repo(base):
    path = base / "acme" / "bench"
    path.mkdir(parents=True)
    for name, text in APP.items():
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run([*git, *args], cwd=path, check=True, capture_output=True)


def wait_http(url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def by_hand(cluster, key, public, number):
    """The platform's steps, typed over SSH into a container booted directly (no Proxmox, no jobs)."""
    started = time.perf_counter()
    host = cluster.host
    guest = host.create(f"h{number}", hostname="bench", authorized_keys=[public])
    host.boot(guest.name)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # nosec B507 - the bench's own guest
    client.connect(guest.address, username="root", pkey=key, allow_agent=False, look_for_keys=False)
    proxy = cluster.proxy.url
    env = f"https_proxy={proxy} http_proxy={proxy} no_proxy={host.gateway}"
    steps = [
        f"apt-get -q -o Acquire::http::Proxy={proxy} update",
        # What a person on a fresh Debian guest types too (here they are in the image already: apt checks).
        f"DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Acquire::http::Proxy={proxy} install "
        "--no-install-recommends git ca-certificates python3 python3-venv",
        "useradd --system --home-dir /srv/app app && mkdir -p /srv/app && chown app /srv/app",
        f"cd /srv/app && {env} runuser -u app -- git clone -q --depth 1 {cluster.git.url}acme/bench src",
        "cd /srv/app/src && runuser -u app -- python3 -m venv .venv",
        f"cd /srv/app/src && {env} runuser -u app -- .venv/bin/pip install -q -r requirements.txt gunicorn",
        f"printf '%s' '{UNIT}' > /etc/systemd/system/app.service && systemctl daemon-reload "
        "&& systemctl enable -q --now app",
    ]
    try:
        for command in steps:
            _, stdout, stderr = client.exec_command(command, timeout=600)  # nosec B601 - the bench's own commands
            if stdout.channel.recv_exit_status() != 0:
                raise RuntimeError(f"{command}: {stderr.read().decode()[-500:]}")
        wait_http(f"http://{guest.address}:8000/")
        return time.perf_counter() - started
    finally:
        client.close()
        host.destroy(guest.name)


def platform(app, token, number):
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    response = client.post("/api/deployments", headers=auth, json={
        "name": f"bench-{number}", "deployment_type": "lxc", "framework": "flask",
        "github_url": "https://github.com/acme/bench"})
    ident = response.get_json()["deployment"]["id"]
    while True:
        deployment = client.get(f"/api/deployments/{ident}", headers=auth).get_json()["deployment"]
        if deployment["status"] in ("running", "failed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if deployment["status"] != "running":
        raise RuntimeError(deployment["error_message"])
    client.delete(f"/api/deployments/{ident}", headers=auth)
    return elapsed


def boot_through_proxmox(cluster, number):
    """The fake Proxmox's LXC create and start, as the platform asks for them, until sshd answers."""
    from backend.proxmox.client import ProxmoxClient

    client = ProxmoxClient(cluster.settings)
    vmid = 5000 + number
    address = f"{cluster.host.network.network_address + 200 + number}"
    started = time.perf_counter()
    upid = client.create_lxc("pve1", vmid, hostname="boot", cores=1, memory=512, disk=4, tags=["bench"],
                             ip_cidr=f"{address}/24")
    client.wait_for_task(upid)
    client.wait_for_task(client.start("pve1", vmid, "lxc"))
    while not _answers(address, 22):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    client.wait_for_task(client.stop("pve1", vmid, "lxc"))
    client.wait_for_task(client.destroy("pve1", vmid, "lxc"))
    return elapsed


def bare_boot(cluster, number):
    started = time.perf_counter()
    guest = cluster.host.create(f"b{number}", hostname="boot")
    cluster.host.boot(guest.name)
    elapsed = time.perf_counter() - started
    cluster.host.destroy(guest.name)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    block, lock = claim_block()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_repo(work / "github")
        key_path = work / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
        key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
        public = key_path.with_suffix(".pub").read_text().strip()
        with RealGuestCluster(work / "cluster", block, work / "github", runtimes=True) as cluster:
            app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{work / 'bench.db'}",
                             JOBS_BACKEND="thread", DEPLOY_APPS=True, SSH_KEY_PATH=str(work / "ssh" / "id"),
                             JOB_TIME_LIMIT=900, HEALTH_CHECK_TIMEOUT=120, LOG_LEVEL="WARNING",
                             **cluster.app_config())
            from flask_migrate import upgrade

            from backend.services import accounts

            with app.app_context():
                upgrade()
                token, _ = accounts.issue_token(accounts.create_user("bench", "admin"), "bench")
            results = {"platform": [], "by hand": [], "boot via proxmox": [], "bare boot": []}
            for number in range(args.repeat):
                results["by hand"].append(by_hand(cluster, key, public, number))
                results["platform"].append(platform(app, token, number))
                results["bare boot"].append(bare_boot(cluster, number))
                results["boot via proxmox"].append(boot_through_proxmox(cluster, number))
            platform_of(app).jobs.wait_idle(120)
            platform_of(app).jobs.shutdown()
    lock.close()
    median = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:>17}: median {median[name]:6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"deploy: platform / by hand = {median['platform'] / median['by hand']:.2f}x (target <= 1.2x)")
    print(f"boot: through the fake Proxmox / bare = {median['boot via proxmox'] / median['bare boot']:.2f}x")


if __name__ == "__main__":
    main()
