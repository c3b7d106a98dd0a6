"""Deploy benchmark: POST to running in simulation mode, next to the bare steps it is made of.

    .venv/bin/python bench/bench_deploy.py [--repeat 3]

Each round runs, one after the other on the same machine and pip cache:
- bare: git clone of the sample Flask app, python3 -m venv, pip install -r requirements.txt gunicorn,
  gunicorn started on a loopback address, polled until it answers 200;
- platform: POST /api/deployments in simulation mode (fake Proxmox with 0.2 s tasks, SQLite, the
  thread pool), polled until status running (the platform's own health check has passed by then).
It prints both per round, the medians, and the overhead (platform - bare). Target: <= 5 s.
"""
import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from backend.platform import platform_of  # noqa: E402
from backend.services import accounts  # noqa: E402
from backend.simulation.fake_proxmox import FakeProxmox, Node  # noqa: E402
from backend.simulation.runtime import address_pool, claim_block, prepare_examples, settings_for  # noqa: E402


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bare(repo_url, work):
    """git clone + venv + pip install + gunicorn until it answers: what a person would type."""
    started = time.perf_counter()
    src = work / "src"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--", repo_url, str(src)], check=True)
    subprocess.run(["python3", "-m", "venv", ".venv"], cwd=src,
                   check=True)
    subprocess.run([".venv/bin/pip", "install", "-q", "--disable-pip-version-check", "-r", "requirements.txt",
                    "gunicorn"], cwd=src, check=True)
    host = "127.78.0.1"
    port = free_port(host)
    server = subprocess.Popen([".venv/bin/gunicorn", "--bind", f"{host}:{port}", "--workers", "2", "app:app"],
                              cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not answers(f"http://{host}:{port}/health"):
            if time.monotonic() > deadline:
                raise RuntimeError("the bare gunicorn never answered")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)


def platform(work, rewrites, fake, round_number):
    block, block_lock = claim_block()  # an address block no running simulation holds
    settings = settings_for(fake, ip_pool=address_pool(block))
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{work / 'bench.db'}", JOBS_BACKEND="thread",
                     PROXMOX_SETTINGS=settings, SIMULATE=True, DEPLOY_APPS=True,
                     SIMULATION_DIR=str(work / "sim"), GIT_URL_REWRITES=rewrites, GIT_ALLOW_PROTOCOL="https:file",
                     JOB_TIME_LIMIT=600, HEALTH_CHECK_TIMEOUT=60, LOG_LEVEL="WARNING")
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        admin = accounts.create_user(f"bench-{round_number}", role="admin")
        token, _ = accounts.issue_token(admin, "bench")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    try:
        started = time.perf_counter()
        response = client.post("/api/deployments", json={
            "name": f"bench-{round_number}", "deployment_type": "lxc", "framework": "flask",
            "github_url": "https://github.com/paas-examples/flask-hello", "health_check_path": "/health"})
        ident = response.get_json()["deployment"]["id"]
        while True:
            deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
            if deployment["status"] in ("running", "failed"):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if deployment["status"] != "running":
            raise RuntimeError(deployment["error_message"])
        client.delete(f"/api/deployments/{ident}")
        platform_of(app).jobs.wait_idle(60)
        return elapsed
    finally:
        platform_of(app).jobs.shutdown()
        block_lock.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    try:
        rewrites = prepare_examples(base, ROOT / "examples")
        repo_url = next(iter(rewrites)) + "flask-hello"
        bare_times, platform_times = [], []
        with FakeProxmox(nodes=[Node("pve1")], task_seconds=0.2) as fake:
            fake.add_template(9000, node="pve1")
            for i in range(args.repeat):
                work = base / f"round-{i}"
                (work / "bare").mkdir(parents=True)
                bare_times.append(bare(repo_url, work / "bare"))
                platform_times.append(platform(work, rewrites, fake, i))
                print(f"round {i + 1}: bare {bare_times[-1]:.2f} s, platform {platform_times[-1]:.2f} s",
                      flush=True)
        b, p = statistics.median(bare_times), statistics.median(platform_times)
        print(f"median of {args.repeat}: bare steps {b:.2f} s, POST to running {p:.2f} s, "
              f"overhead {p - b:.2f} s (target <= 5 s), ratio {p / b:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
