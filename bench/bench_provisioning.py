"""Provisioning at scale: 50 LXC deployments at once against the fake Proxmox, 2 s tasks, K job workers.

Prints figures, passes or fails nothing. Usage:
    python bench/bench_provisioning.py [--workers 5,10,25,50] [--deployments 50] [--task-seconds 2]
                                       [--database-url postgresql+psycopg2://...]

For each K a fresh fake Proxmox runs in its own process (loopback, bounded lifetime), so its CPU is not
the control plane's. The control plane is the app in this process: create_app("testing") with the thread
job backend and K workers, over the real proxmoxer and HTTPS. The deployments are created through
POST /api/deployments; the run ends when the job pool is idle, and every deployment must be running.

makespan  from the first POST to the job pool going idle.
ideal     ceil(N / K) * the fake task time one deployment needs. That time is measured, not assumed: the fake
          reports every task it ran (type and duration) and the sum is divided by N.
CPU       time.process_time() of this process over the same window (API requests, job threads, heartbeats,
          the database driver; SQLite's engine too when it is the database), divided by N.

The database named in --database-url (default: BENCH_DATABASE_URL, else the local 'paas_bench', created when
missing) gets the migrated schema and is emptied between runs and dropped at the end. When PostgreSQL is not
reachable, a SQLite file in a temporary directory stands in.
"""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import MetaData, create_engine, delete, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from app import create_app, db  # noqa: E402
from backend.proxmox.settings import ProxmoxSettings  # noqa: E402

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/paas_bench"
TARGET_RATIO = 1.2
TARGET_CPU_MS = 50.0


# -- the fake Proxmox, in its own process ----------------------------------------------------------


class FakeProcess:
    """`python -m tests.fakes.fake_proxmox` as a child: loopback only, ends by itself after `lifetime`."""

    def __init__(self, task_seconds, lifetime, nodelay=True):
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore::RuntimeWarning", "-m", "tests.fakes.fake_proxmox",
             "--task-seconds", str(task_seconds), "--lifetime", str(lifetime), "--summary",
             *(["--tcp-nodelay"] if nodelay else [])],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.values = {}
        deadline = time.monotonic() + 30
        while "PROXMOX_CA_BUNDLE" not in self.values:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("the fake Proxmox did not start")
            key, _, value = line.strip().partition("=")
            self.values[key] = value

    def settings(self):
        v = self.values
        return ProxmoxSettings(host=v["PROXMOX_HOST"], port=int(v["PROXMOX_PORT"]), user=v["PROXMOX_USER"],
                               token_name=v["PROXMOX_TOKEN_NAME"], token_value=v["PROXMOX_TOKEN_VALUE"],
                               ca_bundle=v["PROXMOX_CA_BUNDLE"], timeout=30, storage="local-lvm",
                               task_timeout=120, ip_timeout=60)

    def stop(self):
        """Interrupt the fake and return its summary (tasks by type, requests, its own CPU)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in out.splitlines():
            if line.startswith("SUMMARY "):
                return json.loads(line[len("SUMMARY "):])
        raise RuntimeError("the fake Proxmox ended without a summary")


# -- the database ----------------------------------------------------------------------------------


def pick_database(url):
    """url when its server answers (the database is created if missing), else a SQLite file; (url, label)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        try:
            admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}):
                    conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            admin.dispose()
        except OperationalError as exc:
            path = Path(tempfile.mkdtemp(prefix="paas-bench-")) / "bench.db"
            print(f"PostgreSQL at {parsed.host}:{parsed.port} not reachable ({exc.orig.__class__.__name__}); "
                  f"using SQLite {path}")
            return f"sqlite:///{path}", "SQLite (file)"
        return url, f"PostgreSQL {parsed.host}:{parsed.port}/{parsed.database}"
    return url, parsed.get_backend_name()


def drop_everything(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        metadata = MetaData()
        metadata.reflect(conn)
        metadata.drop_all(conn)
    engine.dispose()


def build_schema(url):
    """Start from nothing and run the migrations, as `flask db upgrade` does."""
    from flask_migrate import upgrade

    drop_everything(url)
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, LOG_LEVEL="WARNING")
    with app.app_context():
        upgrade()
        db.engine.dispose()


def empty_tables(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(delete(table))
    engine.dispose()


# -- one run ---------------------------------------------------------------------------------------


def run(url, workers, deployments, task_seconds, nodelay=True):
    """N deployments at once with `workers` job threads; a dict of figures."""
    empty_tables(url)
    # A bound on the fake's life: four times the ideal of a deployment needing four tasks, plus a minute.
    lifetime = 60 + 4 * math.ceil(deployments / workers) * 4 * task_seconds
    fake = FakeProcess(task_seconds, lifetime, nodelay)
    summary = None
    try:
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, JOBS_BACKEND="thread", JOB_WORKERS=workers,
                         JOB_TIME_LIMIT=600, PROXMOX_SETTINGS=fake.settings(), LOG_LEVEL="WARNING")
        jobs = app.extensions["jobs"]
        client = app.test_client()
        # Warm the request path (routing, validation, the pool's first connection) outside the window.
        assert client.get("/health").status_code == 200
        assert client.get("/api/deployments").status_code == 200
        jobs.start()
        tag = uuid.uuid4().hex[:6]
        names = [f"bench-{tag}-{i:03d}" for i in range(deployments)]

        wall0, cpu0 = time.perf_counter(), time.process_time()
        for name in names:
            response = client.post("/api/deployments", json={
                "name": name, "deployment_type": "lxc", "framework": "flask",
                "github_url": f"https://github.com/acme/{name}"})
            assert response.status_code == 201, response.get_json()
        posted = time.perf_counter() - wall0
        idle = jobs.wait_idle(timeout=lifetime - 30)
        makespan, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert idle, f"jobs still running after {lifetime - 30:.0f} s"

        listed = []
        for page in range(1, math.ceil(deployments / 100) + 1):
            body = client.get(f"/api/deployments?name=bench-{tag}-&per_page=100&page={page}").get_json()
            listed += body["deployments"]
        statuses = {}
        for d in listed:
            statuses[d["status"]] = statuses.get(d["status"], 0) + 1
        assert len(listed) == deployments and statuses == {"running": deployments}, statuses
        task_events = sum(1 for name in names for e in client.get(f"/api/deployments/{name}/events")
                          .get_json()["events"] if e["kind"] == "task")
        jobs.shutdown()
        with app.app_context():
            db.engine.dispose()
    finally:
        summary = fake.stop()

    tasks = summary["tasks"]
    task_count = sum(t["count"] for t in tasks.values())
    assert all(t["unfinished"] == 0 for t in tasks.values()), tasks
    assert task_count % deployments == 0, f"{task_count} tasks for {deployments} deployments: {tasks}"
    per_deployment = sum(t["seconds"] for t in tasks.values()) / deployments
    ideal = math.ceil(deployments / workers) * per_deployment
    polls = sum(n for k, n in summary["endpoints"].items() if k.endswith("/tasks/{upid}/status"))
    return {
        "workers": workers, "ideal": ideal, "makespan": makespan, "ratio": makespan / ideal, "cpu": cpu,
        "cpu_ms": cpu * 1000 / deployments, "posted": posted,
        "tasks": {k: t["count"] // deployments for k, t in sorted(tasks.items())},
        "task_seconds_per_deployment": per_deployment, "task_events": task_events / deployments,
        "requests": summary["requests"] / deployments, "polls_per_task": polls / task_count,
        "fake_cpu_ms": summary["cpu_seconds"] * 1000 / deployments, "summary": summary,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", default="5,10,25,50", help="comma-separated K values (default 5,10,25,50)")
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--task-seconds", type=float, default=2.0, help="duration of every fake task")
    parser.add_argument("--fake-nodelay", action=argparse.BooleanOptionalAction, default=True,
                        help="run the fake with TCP_NODELAY (default); --no-fake-nodelay keeps its ~40 ms "
                             "Nagle/delayed-ACK stall on every answer")
    parser.add_argument("--verbose", action="store_true", help="also print the fake's requests by endpoint")
    args = parser.parse_args()
    workers = [int(k) for k in args.workers.split(",") if k.strip()]

    wall0, cpu0 = time.perf_counter(), time.process_time()
    url, label = pick_database(args.database_url)
    build_schema(url)
    print(f"database: {label}; {args.deployments} LXC deployments per run, fake tasks of {args.task_seconds:g} s")
    results = []
    try:
        for k in workers:
            result = run(url, k, args.deployments, args.task_seconds, args.fake_nodelay)
            results.append(result)
            tasks = ", ".join(f"{n} {kind}" for kind, n in result["tasks"].items())
            print(f"K={k:<3} makespan {result['makespan']:6.2f} s (POSTs {result['posted']:.2f} s), "
                  f"CPU {result['cpu']:.2f} s; per deployment: {tasks} = {result['task_seconds_per_deployment']:g} s"
                  f" of tasks ({result['task_events']:g} recorded as task events), "
                  f"{result['requests']:.1f} Proxmox requests, {result['polls_per_task']:.1f} status polls/task, "
                  f"fake CPU {result['fake_cpu_ms']:.0f} ms", flush=True)
            if args.verbose:
                for endpoint, n in sorted(result["summary"]["endpoints"].items()):
                    print(f"      {n / args.deployments:6.2f}  {endpoint}")
    finally:
        drop_everything(url)

    n = args.deployments
    print(f"\n{n} LXC deployments at once, fake tasks of {args.task_seconds:g} s, {label}")
    print(f"{'K':>4}{'ideal s':>10}{'makespan s':>12}{'ratio':>8}{'CPU s':>8}{'CPU ms/dep':>12}  verdict")
    for r in results:
        verdict = "ok" if r["ratio"] <= TARGET_RATIO and r["cpu_ms"] <= TARGET_CPU_MS else "MISS"
        print(f"{r['workers']:>4}{r['ideal']:>10.2f}{r['makespan']:>12.2f}{r['ratio']:>8.2f}{r['cpu']:>8.2f}"
              f"{r['cpu_ms']:>12.1f}  {verdict}")
    worst_ratio = max(r["ratio"] for r in results)
    worst_cpu = max(r["cpu_ms"] for r in results)
    print(f"\nworst makespan/ideal: {worst_ratio:.2f} (target <= {TARGET_RATIO}): "
          f"{'met' if worst_ratio <= TARGET_RATIO else 'MISSED'}")
    print(f"worst CPU per deployment: {worst_cpu:.1f} ms (target <= {TARGET_CPU_MS:g} ms): "
          f"{'met' if worst_cpu <= TARGET_CPU_MS else 'MISSED'}")
    print(f"whole run (this process, setup included): wall {time.perf_counter() - wall0:.1f} s, "
          f"CPU {time.process_time() - cpu0:.1f} s")


if __name__ == "__main__":
    main()
