"""The control plane beside a bare Flask app doing the same SQL: both under the same gunicorn, one run.

Prints figures and ratios, passes or fails nothing. Usage:
    python bench/bench_control_plane.py [--rows 100000] [--repeat 60] [--seconds 4] [--rounds 2]
        [--clients 8] [--jobs celery|thread] [--url postgresql://postgres@127.0.0.1:5432/bench_control_plane]

The database named in --url (default: BENCH_CONTROL_PLANE_URL, else bench_control_plane on the local server)
is created when missing and wiped: the project's migrations, one admin user with a token, --rows deployments of
that user (bulk insert). Then, each bound to 127.0.0.1 on a free port and stopped at the end:
  - a fake Proxmox (python -m backend.simulation.fake_proxmox, ends by itself after a bounded lifetime);
  - ours: gunicorn wsgi:app with the project's gunicorn.conf.py (2 workers), APP_ENV=production, jobs sent to
    Celery through redis://127.0.0.1:6379/11 (README: the production setting; no Celery worker runs, the
    queue is emptied at the end) or, with --jobs thread, the in-process job pool;
  - bare: this module's bare_app(), the same gunicorn settings, psycopg with one connection per thread,
    answering the same routes with the same SQL (token joined with its user; the deployment; the page;
    the count; on create the name check, the three inserts in one transaction and the job message pushed
    to the same Redis).
Rate limits are off on both sides (a create limit of 20/minute would measure the limiter). The caller is an
admin (members' creates also lock the user and sum their quota).

Measured interleaved (ours, bare, ours, ...), one keep-alive connection per side, medians in ms:
GET by id; POST create; a cursor page of 50 (no total); the same page with ?total=exact; then create
throughput (--clients threads, --seconds each, --rounds alternating rounds, median per second); then the
RSS of each gunicorn worker (VmRSS in /proc/<pid>/status).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from flask import Flask, jsonify, request

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_control_plane"
REDIS_URL = "redis://127.0.0.1:6379/11"
QUEUE = "paas_bench"
PER_PAGE = 50
TARGETS = {"GET by id": 2.0, "POST create": 3.0, "cursor page": 2.0}
FRAMEWORKS = ["flask", "django", "fastapi", "express", "nextjs", "static"]
STATUSES = ["running"] * 6 + ["stopped", "failed", "pending", "deploying"]
COLUMNS = ("id, name, deployment_type, framework, github_url, branch, resources, tags, status, node, vm_id, "
           "ip_address, error_message, user_id, created_at, updated_at, deployed_at, deleted_at, version, "
           "build_command, start_command, port, health_check_path, env_encrypted, live_release, served_port, "
           "webhook_secret_encrypted, notify_url")


# -- the bare app (gunicorn imports this module for it: its top level imports only what the bare app needs) --


def _iso(value):
    """Timestamps are stored as naive UTC (UTCDateTime): shown with a Z, as the API does."""
    return value.replace(tzinfo=None).isoformat() + "Z" if value else None


def _as_dict(row):
    """The deployment as the API shows it (to_dict's fields)."""
    (id_, name, dtype, framework, github_url, branch, resources, tags, status, node, vm_id, ip, error, user_id,
     created, updated, deployed, deleted, version, build, start, port, health, env, live_release, served_port,
     webhook, notify) = row
    return {"id": str(id_), "name": name, "deployment_type": dtype, "framework": framework,
            "github_url": github_url, "branch": branch, "resources": dict(resources or {}), "tags": list(tags or []),
            "status": status, "node": node, "vm_id": vm_id, "ip_address": ip,
            "error_message": error, "user_id": str(user_id) if user_id else None, "created_at": _iso(created),
            "updated_at": _iso(updated), "deployed_at": _iso(deployed), "deleted_at": _iso(deleted),
            "version": version, "build_command": build, "start_command": start, "port": port,
            "health_check_path": health, "env": {}, "live_release": live_release,
            "url": f"http://{ip}:{served_port}" if status == "running" and ip and served_port else None,
            "webhook_enabled": webhook is not None, "notification_url": notify}


def bare_app():
    """A Flask app answering the measured routes with psycopg and hand-written SQL."""
    app = Flask("bare")
    url = os.environ["BARE_DATABASE_URL"]
    local = threading.local()
    redis_addr = ("127.0.0.1", 6379)

    def conn():
        if getattr(local, "conn", None) is None:
            local.conn = psycopg.connect(url, autocommit=True)
        return local.conn

    def redis_push(payload):
        sock = getattr(local, "redis", None)
        if sock is None:
            sock = local.redis = socket.create_connection(redis_addr)
            sock.sendall(b"*2\r\n$6\r\nSELECT\r\n$2\r\n11\r\n")
            sock.recv(64)
        parts = [b"LPUSH", QUEUE.encode(), payload]
        sock.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        sock.recv(64)

    def caller():
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        row = conn().execute(
            "SELECT u.id, u.username, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.disabled_at IS NULL "
            "AND (t.expires_at IS NULL OR t.expires_at > now())",
            (hashlib.sha256(token.strip().encode()).hexdigest(),)).fetchone()
        return row

    def refused():
        return jsonify({"success": False, "error": {"code": "unauthorized", "message": "token"}}), 401

    @app.get("/api/deployments/<ident>")
    def get_one(ident):
        if caller() is None:
            return refused()
        row = conn().execute(f"SELECT {COLUMNS} FROM deployments WHERE id = %s", (uuid.UUID(ident),)).fetchone()
        return jsonify({"success": True, "deployment": _as_dict(row)})

    @app.get("/api/deployments")
    def page():
        if caller() is None:
            return refused()
        per_page = int(request.args.get("per_page", 20))
        data = json.loads(base64.urlsafe_b64decode(request.args["cursor"] + "=="))
        value = datetime.fromisoformat(data["v"]).astimezone(UTC).replace(tzinfo=None)
        row_id = uuid.UUID(data["id"])
        rows = conn().execute(
            f"SELECT {COLUMNS} FROM deployments WHERE deleted_at IS NULL AND created_at <= %s "
            "AND (created_at < %s OR id < %s) ORDER BY created_at DESC, id DESC LIMIT %s",
            (value, value, row_id, per_page + 1)).fetchall()
        total = None
        if request.args.get("total") == "exact":
            total = conn().execute("SELECT count(*) FROM deployments WHERE deleted_at IS NULL").fetchone()[0]
        last = rows[per_page - 1] if len(rows) > per_page else None
        cursor = None
        if last is not None:
            raw = json.dumps({"s": "-created_at", "v": last[14].replace(tzinfo=UTC).isoformat(), "id": str(last[0])},
                             separators=(",", ":"))
            cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return jsonify({"success": True, "deployments": [_as_dict(r) for r in rows[:per_page]], "total": total,
                        "pages": -(-total // per_page) if total is not None else None, "page": None,
                        "per_page": per_page, "next_cursor": cursor})

    @app.post("/api/deployments")
    def create():
        user = caller()
        if user is None:
            return refused()
        body = request.get_json()
        db = conn()
        if db.execute("SELECT 1 FROM deployments WHERE deleted_at IS NULL AND name = %s",
                      (body["name"],)).fetchone():
            return jsonify({"success": False, "error": {"code": "name_taken", "message": "taken"}}), 409
        now = datetime.now(UTC).replace(tzinfo=None)
        dep_id = uuid.uuid4()
        resources = {"cores": 1, "memory": 512, "disk": 8}
        with db.transaction():
            row = db.execute(
                "INSERT INTO deployments (id, name, deployment_type, framework, github_url, branch, resources, "
                "tags, status, user_id, created_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                f"'pending', %s, %s, %s, 1) RETURNING {COLUMNS}",
                (dep_id, body["name"], body["deployment_type"], body["framework"], body["github_url"],
                 body.get("branch") or "main", json.dumps(resources), json.dumps(body.get("tags") or []),
                 user[0], now, now)).fetchone()
            db.execute("INSERT INTO deployment_events (deployment_id, created_at, kind, to_status, message) "
                       "VALUES (%s, %s, 'status', 'pending', 'created')", (dep_id, now))
            db.execute("INSERT INTO audit_log (created_at, user_id, username, action, deployment_id, target, "
                       "ip_address, details) VALUES (%s, %s, %s, 'deployment.create', %s, %s, %s, %s)",
                       (now, user[0], user[1], dep_id, body["name"], request.remote_addr,
                        json.dumps({"type": body["deployment_type"], "framework": body["framework"]})))
        redis_push(json.dumps({"task": "paas.run_job", "args": ["provision", str(dep_id)]}).encode())
        return jsonify({"success": True, "deployment": _as_dict(row)}), 201, {
            "Location": f"/api/deployments/{dep_id}"}

    return app


# -- setting up ------------------------------------------------------------------------------------------------


def prepare(url, rows):
    """A fresh migrated database with one admin, a token and rows deployments: (token, an id, a cursor)."""
    sys.path.insert(0, str(ROOT))
    # Imported here: gunicorn imports this module for the bare app, which must not carry the platform.
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app import create_app, db
    from bench.common import fresh_schema_with_admin, insert_deployments

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if not c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}):
            c.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        user, token = fresh_schema_with_admin()
        start = datetime.now(UTC) - timedelta(days=365)
        some_id = insert_deployments(rows, start, user_id=user.id)
        # A cursor in the middle of the table: the last row of page rows/2/PER_PAGE.
        middle = start + timedelta(seconds=(rows // 2) * 300)
        raw = json.dumps({"s": "-created_at", "v": middle.isoformat(), "id": str(uuid.UUID(int=0))},
                         separators=(",", ":"))
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        db.engine.dispose()
    return token, str(some_id), cursor


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn (the project's gunicorn.conf.py) on 127.0.0.1, stopped by stop()."""

    def __init__(self, name, target, env, extra=()):
        self.name, self.port = name, free_port()
        env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2"}
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), *extra, target]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)

    def wait(self, path, headers, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("GET", path, headers=headers)
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                time.sleep(0.3)
        self.log.seek(0)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read().decode()[-3000:]}")

    def workers(self):
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def rss_mb(self):
        sizes = []
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- measuring -----------------------------------------------------------------------------------------------


class Client:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        """(status, ms) of one request."""
        began = time.perf_counter()
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - began) * 1000


def create_body(tag):
    return {"name": f"b-{tag}"[:63], "deployment_type": "lxc", "framework": "flask",
            "github_url": "https://github.com/acme/app"}


def latencies(sides, token, ident, cursor, repeat):
    """Interleaved requests; {case: {side: [ms]}}."""
    cases = {
        "GET by id": ("GET", f"/api/deployments/{ident}", None, 200),
        "POST create": ("POST", "/api/deployments", "create", 201),
        "cursor page": ("GET", f"/api/deployments?per_page={PER_PAGE}&cursor={cursor}", None, 200),
        "page, exact total": ("GET", f"/api/deployments?per_page={PER_PAGE}&cursor={cursor}&total=exact", None,
                              200),
    }
    clients = {name: Client(server.port, token) for name, server in sides.items()}
    # Before ?total=exact existed (it answers 422 there), every page carried the exact total.
    exact = cases["page, exact total"][1]
    old_contract = {name for name, c in clients.items() if c.call("GET", exact)[0] == 422}
    if old_contract:
        print(f"{', '.join(sorted(old_contract))}: no ?total=exact (every page counts): plain pages stand for both")
    samples = {case: {name: [] for name in sides} for case in cases}
    names = list(sides)
    for i in range(repeat + 3):  # three warm-up rounds
        for case, (method, path, body, expected) in cases.items():
            for name in (names if i % 2 else names[::-1]):
                payload = create_body(f"{name}-{i}-{uuid.uuid4().hex[:12]}") if body else None
                if name in old_contract:
                    path = path.replace("&total=exact", "")
                status, ms = clients[name].call(method, path, payload)
                if status != expected:
                    raise RuntimeError(f"{name}: {method} {path} answered {status}")
                if i >= 3:
                    samples[case][name].append(ms)
    return samples


def throughput(server, token, clients, seconds, tag):
    """Creates per second from `clients` threads each posting as fast as answered for `seconds`."""
    done = []
    stop_at = time.monotonic() + seconds

    def run(n):
        client, count = Client(server.port, token), 0
        while time.monotonic() < stop_at:
            status, _ = client.call("POST", "/api/deployments", create_body(f"{tag}-{n}-{uuid.uuid4().hex[:16]}"))
            if status != 201:
                raise RuntimeError(f"{server.name}: create answered {status}")
            count += 1
        done.append(count)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - began)


def flush_redis_db():
    """Empty the bench's own Redis database (11): the job messages nobody consumed."""
    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as sock:
        sock.sendall(b"*2\r\n$6\r\nSELECT\r\n$2\r\n11\r\n*1\r\n$7\r\nFLUSHDB\r\n")
        time.sleep(0.1)
        sock.recv(256)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_CONTROL_PLANE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", choices=("celery", "thread"), default="celery")
    args = parser.parse_args()

    began = time.perf_counter()
    token, ident, cursor = prepare(args.url, args.rows)
    print(f"database ready: {args.rows} deployments in {time.perf_counter() - began:.1f} s")
    started = []
    tmp = tempfile.TemporaryDirectory(prefix="bench-control-plane-")
    try:
        from bench.common import FakeProcess  # here too: see prepare()

        fake = FakeProcess(task_seconds=0.2, lifetime=600, agent_delay=0.2)
        started.append(fake)
        env = {"APP_ENV": "production", "SECRET_KEY": uuid.uuid4().hex * 2, "DATABASE_URL": args.url,
               "RATELIMIT_ENABLED": "false", "SSH_KEY_PATH": str(Path(tmp.name) / "ssh" / "id_ed25519"),
               "ENV_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
               "PROXMOX_VM_TEMPLATE_ID": "9000", "LOG_LEVEL": "WARNING", **fake.values}
        if args.jobs == "celery":
            env.update(CELERY_BROKER_URL=REDIS_URL, CELERY_QUEUE=QUEUE)
        else:
            env.update(JOBS_BACKEND="thread", CELERY_BROKER_URL="", DEPLOY_APPS="false")
        ours = Server("ours", "wsgi:app", env)
        started.append(ours)
        bare = Server("bare", "bench_control_plane:bare_app()", {"BARE_DATABASE_URL": args.url},
                      extra=("--pythonpath", str(ROOT / "bench")))
        started.append(bare)
        sides = {"ours": ours, "bare": bare}
        probe = Client(0, token).headers
        for server in sides.values():
            server.wait(f"/api/deployments/{ident}", probe)

        samples = latencies(sides, token, ident, cursor, args.repeat)
        rates = {name: [] for name in sides}
        for r in range(args.rounds):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                rates[name].append(throughput(sides[name], token, args.clients, args.seconds, f"t{r}{name}"))
        rss = {name: server.rss_mb() for name, server in sides.items()}
    finally:
        for process in reversed(started):
            process.stop()
        tmp.cleanup()
        if args.jobs == "celery":
            flush_redis_db()

    print(f"\n{args.rows} deployments, gunicorn 2 workers x 8 threads each side, jobs: {args.jobs}, "
          f"{args.repeat} interleaved runs (ms, median; p95 in brackets)")
    print(f"{'request':<20}{'ours':>18}{'bare':>18}{'ratio':>8}{'target':>9}")
    for case, by_side in samples.items():
        o, b = (statistics.median(by_side[s]) for s in ("ours", "bare"))
        p95 = {s: sorted(v)[int(len(v) * 0.95) - 1] for s, v in by_side.items()}
        target = f"<= {TARGETS[case]:.0f}x" if case in TARGETS else ""
        print(f"{case:<20}{o:>9.2f} ({p95['ours']:>5.1f}){b:>9.2f} ({p95['bare']:>5.1f}){o / b:>7.2f}x{target:>9}")
    o, b = statistics.median(rates["ours"]), statistics.median(rates["bare"])
    print(f"{'creates/s':<20}{o:>18.0f}{b:>18.0f}{b / o:>7.2f}x  ({args.clients} clients, "
          f"{args.rounds} rounds of {args.seconds:.0f} s; ratio bare/ours)")
    rss_ours = ", ".join(f"{v:.0f}" for v in rss["ours"])
    rss_bare = ", ".join(f"{v:.0f}" for v in rss["bare"])
    print(f"{'worker RSS (MB)':<20}{rss_ours:>18}{rss_bare:>18}{max(rss['ours']) / max(rss['bare']):>7.2f}x"
          f"{'<= 70 MB':>9}")


if __name__ == "__main__":
    main()
