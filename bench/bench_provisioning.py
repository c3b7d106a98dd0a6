"""Provisioning at scale: 50 LXC deployments at once against the fake Proxmox, 2 s tasks, K job workers.

Prints figures, passes or fails nothing. Usage:
    python bench/bench_provisioning.py [--workers 5,10,25,50] [--deployments 50] [--task-seconds 2]
        [--mode both|warm|cold] [--warmup 3] [--repeat 1] [--database-url postgresql://...]
The README figures: python bench/bench_provisioning.py --repeat 3 (about 11 minutes).

For each K a fresh fake Proxmox runs in its own process (python -m backend.simulation.fake_proxmox: loopback only,
ends by itself after a bounded lifetime), so its CPU is not the control plane's. It answers with TCP_NODELAY
(--no-fake-nodelay: without, which adds a ~40 ms Nagle/delayed-ACK stall to every answer that no real
pveproxy has). The control plane is the app
in this process: create_app("testing") with the thread job backend and K workers, talking to the fake over
HTTPS with the real proxmoxer. The deployments are created through POST /api/deployments, one after the
other as fast as the app answers; the burst ends when the job pool is idle, and every deployment must then
be running.

makespan  from the first POST to the job pool going idle (accepting the 50 POSTs is part of it).
ideal     ceil(N / K) * the fake task time one deployment needs. That time is measured, not assumed: the fake
          reports every task it ran (type, guest, duration), and the tasks of the burst's guests are summed
          per guest (every guest must need the same); the deployments' "task" events are checked against it.
CPU       time.process_time() of this process over the same window (API requests, job threads, heartbeats,
          the database driver; SQLite itself when it is the database), divided by N.

Modes: cold is a fresh process meeting its first tasks (ProxmoxClient.wait_for_task has no timing history
yet); warm first provisions --warmup deployments one after the other (not counted), as a control plane that
has been running has.

The database named in --database-url (default: BENCH_DATABASE_URL, else the local 'paas_bench', created when
missing) gets the migrated schema, is emptied before each burst and left without tables at the end. When
PostgreSQL does not answer, a SQLite file in a temporary directory stands in.
"""
import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import MetaData, create_engine, delete, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from app import create_app, db  # noqa: E402
from backend.platform import platform_of  # noqa: E402
from backend.proxmox.client import ProxmoxClient  # noqa: E402
from backend.services import accounts  # noqa: E402
from bench.common import FakeProcess  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/paas_bench"
TARGET_RATIO = 1.2
TARGET_CPU_MS = 50.0


# -- the fake Proxmox, in its own process ----------------------------------------------------------


# -- the database ----------------------------------------------------------------------------------


def pick_database(url):
    """(url, label, temporary directory or None): url when its server answers (its database created if
    missing), else a SQLite file in a new temporary directory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url, parsed.get_backend_name(), None
    try:
        admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}):
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    except OperationalError as exc:
        directory = tempfile.mkdtemp(prefix="paas-bench-")
        print(f"PostgreSQL at {parsed.host}:{parsed.port} does not answer ({exc.orig.__class__.__name__}); "
              f"using SQLite in {directory}")
        return f"sqlite:///{Path(directory) / 'bench.db'}", "SQLite file", directory
    return url, f"PostgreSQL {parsed.host}:{parsed.port}/{parsed.database}", None


def drop_everything(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        metadata = MetaData()
        metadata.reflect(conn)
        metadata.drop_all(conn)
    engine.dispose()


def build_schema(url):
    """Start from no tables and run the migrations, as `flask db upgrade` does."""
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


# -- one burst -------------------------------------------------------------------------------------


def post(client, name):
    response = client.post("/api/deployments", json={
        "name": name, "deployment_type": "lxc", "framework": "flask",
        "github_url": f"https://github.com/acme/{name}"})
    assert response.status_code == 201, response.get_json()


def listed(client, prefix, count):
    found = []
    for page in range(1, math.ceil(count / 100) + 1):
        found += client.get(f"/api/deployments?name={prefix}&per_page=100&page={page}").get_json()["deployments"]
    return found


def burst(url, workers, deployments, task_seconds, warmup, nodelay):
    """N deployments at once with `workers` job threads; a dict of figures."""
    empty_tables(url)
    ProxmoxClient._task_seconds.clear()  # every burst starts as a fresh process would
    # A bound on the fake's life: four times the ideal of deployments of four tasks, plus a minute.
    lifetime = 60 + 4 * (math.ceil(deployments / workers) + warmup) * 4 * task_seconds
    fake = FakeProcess(task_seconds, lifetime, nodelay)
    jobs = None
    try:
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, JOBS_BACKEND="thread", JOB_WORKERS=workers,
                         JOB_TIME_LIMIT=600, PROXMOX_SETTINGS=fake.settings(), LOG_LEVEL="WARNING")
        jobs = platform_of(app).jobs
        client = app.test_client()
        with app.app_context():
            admin = accounts.create_user(f"bench-{uuid.uuid4().hex[:8]}", role="admin")
            token, _ = accounts.issue_token(admin, "bench")
            db.session.remove()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        # Warm the request path (routing, validation, the pool's first connection) outside the window.
        assert client.get("/health").status_code == 200
        assert client.get("/api/deployments").status_code == 200
        jobs.start()
        tag = uuid.uuid4().hex[:6]
        for i in range(warmup):
            post(client, f"warmup-{tag}-{i}")
            assert jobs.wait_idle(timeout=60), "a warm-up deployment did not finish"
        names = [f"bench-{tag}-{i:03d}" for i in range(deployments)]

        wall0, cpu0 = time.perf_counter(), time.process_time()
        for name in names:
            post(client, name)
        posted = time.perf_counter() - wall0
        idle = jobs.wait_idle(timeout=lifetime - 30)
        makespan, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert idle, f"jobs still running after {lifetime - 30:.0f} s"

        rows = listed(client, f"bench-{tag}-", deployments)
        statuses = Counter(d["status"] for d in rows)
        assert len(rows) == deployments and statuses == {"running": deployments}, dict(statuses)
        task_events = {sum(1 for e in client.get(f"/api/deployments/{name}/events?limit=1000")
                           .get_json()["events"] if e["kind"] == "task") for name in names}
        vmids = {str(d["vm_id"]) for d in rows}
        with app.app_context():
            db.engine.dispose()
    finally:
        if jobs is not None:
            jobs.shutdown(wait=False)
        summary = fake.stop()

    ours = [t for t in summary["tasks"] if t["id"] in vmids]
    assert all(t["finished"] and t["exitstatus"] == "OK" for t in ours), ours
    seconds = Counter()
    for t in ours:
        seconds[t["id"]] += t["seconds"]
    assert len(seconds) == deployments and len(set(seconds.values())) == 1, seconds
    per_deployment = next(iter(seconds.values()))
    return {
        "makespan": makespan, "ideal": math.ceil(deployments / workers) * per_deployment, "posted": posted,
        "cpu": cpu, "task_seconds": per_deployment, "task_events": sorted(task_events),
        "tasks": {k: n / deployments for k, n in sorted(Counter(t["type"] for t in ours).items())},
        "polls_per_task": sum(t["status_polls"] for t in ours) / len(ours),
        "requests": summary["requests"] / (deployments + warmup), "fake_cpu": summary["cpu_seconds"],
        "endpoints": summary["endpoints"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", default="5,10,25,50", help="comma-separated K values (default 5,10,25,50)")
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--task-seconds", type=float, default=2.0, help="duration of every fake task")
    parser.add_argument("--mode", choices=("both", "warm", "cold"), default="both",
                        help="cold: no task history in the process; warm: --warmup deployments provisioned first")
    parser.add_argument("--warmup", type=int, default=3, help="deployments provisioned before a warm burst")
    parser.add_argument("--repeat", type=int, default=1, help="bursts per mode and K; the table shows medians")
    parser.add_argument("--fake-nodelay", action=argparse.BooleanOptionalAction, default=True,
                        help="run the fake with TCP_NODELAY (default); --no-fake-nodelay keeps the ~40 ms "
                             "Nagle/delayed-ACK stall the fake otherwise adds to every answer")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the fake's requests by endpoint (warm-up deployments included)")
    args = parser.parse_args()
    workers = [int(k) for k in args.workers.split(",") if k.strip()]
    modes = {"both": ("cold", "warm"), "warm": ("warm",), "cold": ("cold",)}[args.mode]
    n = args.deployments

    wall0, cpu0 = time.perf_counter(), time.process_time()
    url, label, scratch = pick_database(args.database_url)
    build_schema(url)
    print(f"{label}; {n} LXC deployments per burst; fake tasks of {args.task_seconds:g} s; "
          f"warm = after {args.warmup} deployment(s)")
    rows = []
    try:
        for mode in modes:
            for k in workers:
                runs = []
                for _ in range(args.repeat):
                    r = burst(url, k, n, args.task_seconds, args.warmup if mode == "warm" else 0, args.fake_nodelay)
                    runs.append(r)
                    tasks = " + ".join(f"{count:g} {kind}" for kind, count in r["tasks"].items())
                    print(f"{mode} K={k:<3} makespan {r['makespan']:6.2f} s (POSTs {r['posted']:.2f} s), "
                          f"CPU {r['cpu']:.2f} s | per deployment: {tasks} = {r['task_seconds']:g} s of tasks "
                          f"({'/'.join(map(str, r['task_events']))} task events), {r['requests']:.1f} Proxmox "
                          f"requests, {r['polls_per_task']:.1f} status polls per task | fake CPU "
                          f"{r['fake_cpu']:.2f} s", flush=True)
                    if args.verbose:
                        for endpoint, count in sorted(r["endpoints"].items()):
                            print(f"      {count:6d}  {endpoint}")
                rows.append((mode, k, runs))
    finally:
        drop_everything(url)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\n{n} LXC deployments at once, fake tasks of {args.task_seconds:g} s, {label}"
          + (f", median of {args.repeat} bursts" if args.repeat > 1 else ""))
    print(f"{'mode':<6}{'K':>4}{'ideal s':>10}{'makespan s':>12}{'ratio':>8}{'POSTs s':>9}{'CPU s':>8}"
          f"{'CPU ms/dep':>12}{'polls/task':>12}  verdict")
    worst_ratio = worst_cpu = 0.0
    for mode, k, runs in rows:
        makespan = statistics.median(r["makespan"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        ideal = runs[0]["ideal"]
        ratio, cpu_ms = makespan / ideal, cpu * 1000 / n
        worst_ratio, worst_cpu = max(worst_ratio, ratio), max(worst_cpu, cpu_ms)
        verdict = (("makespan ok" if ratio <= TARGET_RATIO else "MAKESPAN MISS") + ", "
                   + ("cpu ok" if cpu_ms <= TARGET_CPU_MS else "CPU MISS"))
        print(f"{mode:<6}{k:>4}{ideal:>10.2f}{makespan:>12.2f}{ratio:>8.2f}"
              f"{statistics.median(r['posted'] for r in runs):>9.2f}{cpu:>8.2f}{cpu_ms:>12.1f}"
              f"{statistics.median(r['polls_per_task'] for r in runs):>12.1f}  {verdict}")
    print(f"\nworst makespan/ideal: {worst_ratio:.2f} (target <= {TARGET_RATIO}): "
          f"{'met' if worst_ratio <= TARGET_RATIO else 'MISSED'}")
    print(f"worst CPU per deployment: {worst_cpu:.1f} ms (target <= {TARGET_CPU_MS:g} ms): "
          f"{'met' if worst_cpu <= TARGET_CPU_MS else 'MISSED'}")
    print(f"whole run, this process (setup and checks included): wall {time.perf_counter() - wall0:.1f} s, "
          f"CPU {time.process_time() - cpu0:.1f} s")


if __name__ == "__main__":
    main()
