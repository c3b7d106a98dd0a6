"""The edge router (Caddy, HTTPS, its internal CA) beside the same request straight to the app: latency of each.

The app: a small Flask app answering GET / with 1 KB of HTML, written to a temporary folder and served by
gunicorn (2 workers, gthread, 127.0.0.1, access log on) or, without gunicorn, by werkzeug's threaded server.
The edge: an EdgeCaddy (backend.simulation.edge: loopback only, its own CA and data) with one route loaded
through its admin API as the platform loads it (backend.router: bench.apps.test, the app's port first, a spare
port next that nothing listens on; the route's access log on).

Clients, in this process, one request at a time:
  - keep-alive, as a browser: a connection per side per round, http.client to the app's port, and HTTPS to the
    edge's loopback port with SNI and Host bench.apps.test, trusting only the edge's CA. A connection's first
    request (which opens it: the TCP and TLS handshakes) is not counted;
  - a new connection per request (TCP, and for the edge a full TLS handshake: no session resumption), as context.
After a warm-up, --rounds rounds of --requests keep-alive requests per side (and a quarter as many on new
connections), the side that goes first alternating by round. Prints p50, p90 and p99 of each side, the p50 and
p90 ratios (router / direct) and the spread of the per-round p50 ratio; the target is a p50 ratio <= 1.3x.
Passes or fails nothing. Usage:
    python bench/bench_router.py [--rounds 20] [--requests 200] [--worker-class gthread|sync]
--worker-class sync is the platform's own gunicorn line for a Flask guest (backend/deploy/recipes.py): its
workers close the connection after every answer, so the direct side has no keep-alive, nor has Caddy's hop.
"""
import argparse
import http.client
import importlib.util
import math
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.router import CaddyRouter, Route
from backend.simulation.edge import EdgeCaddy, caddy_available, caddy_binary, free_ports

HOST = "bench.apps.test"
BODY_SIZE = 1024
TARGET = 1.3
TIMEOUT = 10.0
START_TIMEOUT = 30.0
WARMUP = 200
THREADS = 4

APP_SOURCE = f'''"""bench_router's app: GET / answers {BODY_SIZE} bytes of HTML."""
import os

from flask import Flask, Response

BODY = ("<!doctype html><title>bench</title>\\n" + "<p>hello from the app</p>\\n" * 37).ljust({BODY_SIZE})
app = Flask(__name__)


@app.get("/")
def index():
    return Response(BODY, mimetype="text/html")


if __name__ == "__main__":  # without gunicorn: werkzeug's threaded server (HTTP/1.1, keep-alive)
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", int(os.environ["PORT"]), app, threaded=True)
'''


def app_ports():
    """A free port for the app whose next port is free too (the route's spare upstream: nothing listens there)."""
    for _ in range(50):
        port = free_ports("127.0.0.1", 1)[0]
        if port < 65535 and not listening(port + 1):
            return port
    raise RuntimeError("no free port with a free neighbour")


def listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class App:
    """The Flask app in folder, served on 127.0.0.1:port in its own session (stop() ends it, workers included)."""

    def __init__(self, folder, port, worker_class):
        folder = Path(folder)
        (folder / "bench_app.py").write_text(APP_SOURCE, encoding="utf-8")
        self.port = port
        self.gunicorn = importlib.util.find_spec("gunicorn") is not None
        if self.gunicorn:
            command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                       "--worker-class", worker_class, "--graceful-timeout", "5", "--access-logfile", "-",
                       "--chdir", str(folder)]
            if worker_class == "gthread":
                command += ["--threads", str(THREADS)]
            command.append("bench_app:app")
            self.label = f"gunicorn {version('gunicorn')}, 2 workers, {worker_class}" + (
                f" x {THREADS} threads" if worker_class == "gthread" else "")
        else:
            command = [sys.executable, "bench_app.py"]
            self.label = "werkzeug's threaded server (gunicorn is not installed)"
        self.log_path = folder / "app.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=folder, env={**os.environ, "PORT": str(port)},
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                fetch(connection)
                return
            except OSError:
                time.sleep(0.1)
            finally:
                connection.close()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"the app did not start:\n{log}")

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the master and its workers: the session it leads
            self.proc.wait()


class EdgeConnection(http.client.HTTPSConnection):
    """HTTPS to HOST at the edge's loopback address: SNI and Host say HOST (no DNS), only the edge's CA trusted."""

    def __init__(self, edge, context):
        super().__init__(HOST, edge.https_port, timeout=TIMEOUT, context=context)
        self.address = (edge.host, edge.https_port)

    def connect(self):
        sock = socket.create_connection(self.address, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(connection):
    """GET / on connection; raises unless it is a 200 with the app's body."""
    connection.request("GET", "/")
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or len(body) != BODY_SIZE:
        raise RuntimeError(f"unexpected answer: {response.status}, {len(body)} bytes: {body[:200]!r}")


def wait_for_certificate(connect):
    """The first HTTPS request: Caddy issues the route's certificate just after the load that adds it."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        connection = connect()
        try:
            fetch(connection)
            return connection.sock.version(), connection.sock.cipher()[0]
        except ssl.SSLCertVerificationError:
            raise
        except (ssl.SSLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


def keep_alive(connect, count):
    """ms of count requests on one connection (not counting the first, which opens it), and how many times the
    connection had to be opened again (the server closed it)."""
    connection = connect()
    samples, reopened = [], 0
    try:
        fetch(connection)
        for _ in range(count):
            reopened += connection.sock is None
            began = time.perf_counter_ns()
            fetch(connection)
            samples.append((time.perf_counter_ns() - began) / 1e6)
    finally:
        connection.close()
    return samples, reopened


def new_connections(connect, count):
    """ms of count requests, each on a new connection (connect, handshake, request, answer)."""
    samples = []
    for _ in range(count):
        began = time.perf_counter_ns()
        connection = connect()
        try:
            fetch(connection)
            samples.append((time.perf_counter_ns() - began) / 1e6)
        finally:
            connection.close()
    return samples


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure(sides, rounds, requests):
    """{variant: {side: [ms per round]}}, and the keep-alive connections reopened per side."""
    fresh = max(1, requests // 4)
    for connect in sides.values():  # warm-up: both paths, both kinds of connection
        keep_alive(connect, WARMUP)
        new_connections(connect, fresh)
    results = {"keep-alive": {name: [] for name in sides}, "new connection": {name: [] for name in sides}}
    reopened = dict.fromkeys(sides, 0)
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            samples, again = keep_alive(sides[name], requests)
            results["keep-alive"][name].append(samples)
            reopened[name] += again
        for name in order:
            results["new connection"][name].append(new_connections(sides[name], fresh))
    return results, reopened


def report(results, reopened, rounds):
    for variant, by_side in results.items():
        flat = {name: [ms for batch in batches for ms in batch] for name, batches in by_side.items()}
        count = len(flat["direct"]) // rounds
        print(f"\n{variant}: {rounds} rounds x {count} requests a side, alternating (ms)")
        print(f"{'':<10}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}")
        for name, samples in flat.items():
            figures = [percentile(samples, p) for p in (50, 90, 99)] + [statistics.fmean(samples)]
            print(f"{name:<10}" + "".join(f"{value:>9.3f}" for value in figures))
        p50 = {name: percentile(samples, 50) for name, samples in flat.items()}
        p90 = {name: percentile(samples, 90) for name, samples in flat.items()}
        per_round = [percentile(router, 50) / percentile(direct, 50)
                     for router, direct in zip(by_side["router"], by_side["direct"], strict=True)]
        print(f"p50 ratio router/direct: {p50['router'] / p50['direct']:.2f}x "
              f"(+{p50['router'] - p50['direct']:.3f} ms), p90 ratio: {p90['router'] / p90['direct']:.2f}x; "
              f"per-round p50 ratio: median {statistics.median(per_round):.2f}x, "
              f"min {min(per_round):.2f}x, max {max(per_round):.2f}x")
        if variant == "keep-alive":
            met = "met" if p50["router"] / p50["direct"] <= TARGET else "not met"
            print(f"target: p50 <= {TARGET}x: {met}")
            if any(reopened.values()):
                print("keep-alive connections the server closed and the client reopened: "
                      + ", ".join(f"{name} {count}" for name, count in reopened.items()))
        else:
            print("(context: a browser opens a connection once per site and reuses it, and resumes TLS sessions)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200, help="keep-alive requests per side per round")
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread")
    args = parser.parse_args()
    if not caddy_available():
        sys.exit("caddy is not installed (apt-get install caddy)")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a `&` job)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp:
        app = edge = None
        try:
            port = app_ports()
            (Path(tmp) / "app").mkdir()
            app = App(Path(tmp) / "app", port, args.worker_class)
            edge = EdgeCaddy(Path(tmp) / "edge")
            edge.start()
            upstreams = (f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}")
            CaddyRouter(edge.settings).apply([Route(key="bench", hosts=(HOST,), upstreams=upstreams)])
            app.wait()
            context = ssl.create_default_context(cafile=str(edge.ca_path))
            sides = {"direct": lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT),
                     "router": lambda: EdgeConnection(edge, context)}
            tls = wait_for_certificate(sides["router"])
            caddy = subprocess.run([caddy_binary(), "version"], capture_output=True, text=True,
                                   check=False).stdout.split()[:1]
            print(f"app: {app.label}, GET / answering {BODY_SIZE} bytes on 127.0.0.1:{port}")
            print(f"router: caddy {' '.join(caddy)} on 127.0.0.1:{edge.https_port}, {HOST}, {tls[0]} {tls[1]}, "
                  f"upstreams {', '.join(upstreams)} (the second: nothing listens), access log on")
            results, reopened = measure(sides, args.rounds, args.requests)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping caddy and the app", file=sys.stderr)
            sys.exit(130)
        finally:
            if edge is not None:
                edge.stop()
            if app is not None:
                app.stop()
    report(results, reopened, args.rounds)
    print(f"\nwhole run: {time.perf_counter() - began:.1f} s (a shared machine: compare the ratios within one run)")


if __name__ == "__main__":
    main()
