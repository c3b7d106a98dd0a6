"""Build cache benchmark: a redeploy whose dependency files are unchanged, next to a first deploy and a full reinstall.

    .venv/bin/python bench/bench_build_cache.py [--repeat 3] [--samples flask,express] [--steps]

Simulation mode, as bench_deploy.py (fake Proxmox with 0.2 s tasks, SQLite, the thread pool, warm pip and npm
caches). For each sample (examples/flask-hello: requirements.txt; examples/express-build: package-lock.json and
a build step), each round starts from a fresh git repository of the example and times, one after the other:
- first: POST /api/deployments until the deployment is `running` (guest, clone, install, health check);
- cached: a commit that changes only the code (app.py, src/server.js), POST .../actions/redeploy until release
  2 is `live`; its build log must say the dependencies are those of release 1 (the virtualenv or node_modules
  copied, not installed), and the app must serve the new code;
- uncached: a commit that changes a dependency file (a comment in requirements.txt, the description in
  package.json), redeploy until release 3 is `live`; its log must say no earlier release has these dependencies.
The deployment is deleted at the end of each round. It prints each round, the medians, cached/first (target:
<= 0.40) and cached/uncached. --steps adds where the time of the last round's cached redeploy went, from the
times of its build log's lines.
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from backend.platform import platform_of  # noqa: E402
from backend.services import accounts  # noqa: E402
from backend.simulation.fake_proxmox import FakeProxmox, Node  # noqa: E402
from backend.simulation.runtime import (  # noqa: E402
    EXAMPLES_OWNER,
    address_pool,
    claim_block,
    prepare_examples,
    settings_for,
    stop_guest_apps,
)

TARGET = 0.40
CACHE_HIT = "build cache: the dependencies are those of release 1"
CACHE_MISS = "build cache: no earlier release on the guest has these dependencies"
WAIT_SECONDS = 300  # no step of a round may take longer


@dataclass(frozen=True)
class Sample:
    directory: str  # under examples/
    framework: str
    code_file: str  # the code-only change: old -> new in this file, new seen on the app's page
    code_old: str
    code_new: str
    deps_file: str  # the dependency change: old -> new in this file
    deps_old: str
    deps_new: str


SAMPLES = {
    "flask": Sample("flask-hello", "flask", "app.py", "from Flask</h1>", "from Flask, release 2</h1>",
                    "requirements.txt", "flask\n", "flask\n# bench: a dependency file changed\n"),
    "express": Sample("express-build", "express", "src/server.js", "from a built express app",
                      "from a built express app, release 2", "package.json", '"description": "An Express app',
                      '"description": "(changed by the bench) An Express app'),
}


def commit(repo, path, old, new, message):
    """Replace old by new in repo/path and commit it on main."""
    file = repo / path
    text = file.read_text()
    if old not in text:
        raise RuntimeError(f"{path} of {repo.name} no longer holds {old!r}: update the bench")
    file.write_text(text.replace(old, new, 1))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@paas.invalid"]
    for args in (["add", "--", path], ["commit", "-q", "-m", message]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True, timeout=60)


def page(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode(errors="replace")
    except OSError as exc:
        return f"(no answer: {exc})"


def wait_for(what, read, done, timeout=WAIT_SECONDS, interval=0.05):
    """Poll read() until done(value); the value, or RuntimeError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done within {timeout} s (last: {value})")
        time.sleep(interval)


class Bench:
    """One platform in simulation mode (its own SQLite, address block and guests) and an admin's API client."""

    def __init__(self, base, rewrites, fake):
        self.block, self.block_lock = claim_block()  # an address block no running simulation holds
        self.sim = base / "sim"
        settings = settings_for(fake, ip_pool=address_pool(self.block))
        self.app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{base / 'bench.db'}",
                              JOBS_BACKEND="thread", PROXMOX_SETTINGS=settings, SIMULATE=True, DEPLOY_APPS=True,
                              SIMULATION_DIR=str(self.sim), GIT_URL_REWRITES=rewrites,
                              GIT_ALLOW_PROTOCOL="https:file", JOB_TIME_LIMIT=600, HEALTH_CHECK_TIMEOUT=60,
                              LOG_LEVEL="WARNING")
        with self.app.app_context():
            upgrade()
            admin = accounts.create_user("bench", role="admin")
            token, _ = accounts.issue_token(admin, "bench")
        self.client = self.app.test_client()
        self.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def close(self):
        try:
            platform_of(self.app).jobs.shutdown()
            stop_guest_apps(self.sim)  # after a failed round: no app of a guest outlives the bench
        finally:
            self.block_lock.close()

    def call(self, method, path, json=None):
        response = self.client.open(f"/api{path}", method=method, json=json)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        return response

    def deployment(self, ident):
        return self.call("GET", f"/deployments/{ident}").get_json()["deployment"]

    def release(self, ident, version):
        return self.call("GET", f"/deployments/{ident}/releases/{version}").get_json()["release"]

    def log_text(self, ident, version):
        return self.call("GET", f"/deployments/{ident}/logs/text?release={version}&limit=5000").get_data(as_text=True)

    def log_lines(self, ident, version):
        return self.call("GET", f"/deployments/{ident}/logs?release={version}&limit=5000").get_json()["lines"]

    def first_deploy(self, name, sample):
        """POST /api/deployments until running: (seconds, the deployment)."""
        started = time.perf_counter()
        created = self.call("POST", "/deployments", {
            "name": name, "deployment_type": "lxc", "framework": sample.framework, "health_check_path": "/health",
            "github_url": f"{EXAMPLES_OWNER}{sample.directory}"}).get_json()["deployment"]
        deployment = wait_for(f"{name}: first deploy", lambda: self.deployment(created["id"]),
                              lambda d: d["status"] in ("running", "failed"))
        elapsed = time.perf_counter() - started
        if deployment["status"] != "running":
            raise RuntimeError(f"{name}: the first deploy failed: {deployment['error_message']}")
        return elapsed, deployment

    def redeploy(self, ident, version):
        """POST .../actions/redeploy until the release is live: (seconds, the wall-clock time of the POST)."""
        posted, started = time.time(), time.perf_counter()
        release = self.call("POST", f"/deployments/{ident}/actions/redeploy", {}).get_json()["release"]
        if release["version"] != version:
            raise RuntimeError(f"the redeploy made release {release['version']}, not {version}")
        release = wait_for(f"release {version}", lambda: self.release(ident, version),
                           lambda r: r["status"] not in ("queued", "building"))
        elapsed = time.perf_counter() - started
        if release["status"] != "live":
            raise RuntimeError(f"release {version} ended {release['status']}: {release['error_message']}")
        return elapsed, posted

    def delete(self, ident):
        self.call("DELETE", f"/deployments/{ident}")
        wait_for(f"deleting {ident}", lambda: self.deployment(ident)["status"], lambda s: s in ("deleted", "failed"),
                 timeout=120, interval=0.1)
        if self.deployment(ident)["status"] != "deleted":
            raise RuntimeError(f"deleting {ident} failed")


def expect(log, wanted, what):
    if wanted not in log:
        raise RuntimeError(f"{what}: the build log does not say {wanted!r}:\n{log[-3000:]}")


def one_round(bench, repos, key, sample, number):
    """First deploy, cached redeploy, uncached redeploy of one sample: (seconds each, the cached release's log
    lines, when its POST was sent)."""
    repo = repos / sample.directory
    first, deployment = bench.first_deploy(f"cache-{key}-{number}", sample)
    ident = deployment["id"]
    try:
        commit(repo, sample.code_file, sample.code_old, sample.code_new, "a code change")
        cached, posted = bench.redeploy(ident, 2)
        expect(bench.log_text(ident, 2), CACHE_HIT, f"{key}: release 2")
        body = page(deployment["url"] + "/")
        if sample.code_new not in body:
            raise RuntimeError(f"{key}: release 2 is live but the app does not serve its code: {body[:300]}")
        commit(repo, sample.deps_file, sample.deps_old, sample.deps_new, "a dependency file change")
        uncached, _ = bench.redeploy(ident, 3)
        expect(bench.log_text(ident, 3), CACHE_MISS, f"{key}: release 3")
        lines = bench.log_lines(ident, 2)
    finally:
        bench.delete(ident)
    return (first, cached, uncached), lines, posted


def stamp(line):
    moment = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def print_steps(key, lines, posted, total):
    """Where the cached redeploy's time went: each logged step (==> lines) until the next, by the lines' times."""
    print(f"{key}: the last cached redeploy ({total:.2f} s), by its build log's times:")
    marks = [(stamp(line), line["line"]) for line in lines if line["stream"] == "step"]
    if not marks:
        print("  (no step lines)")
        return
    print(f"  {marks[0][0] - posted:6.2f} s  POST until the job's first log line")
    ends = [t for t, _ in marks[1:]] + [stamp(lines[-1])]
    for (start, text), end in zip(marks, ends, strict=True):
        print(f"  {end - start:6.2f} s  {text[:100]}")
    print(f"  {posted + total - stamp(lines[-1]):6.2f} s  the last log line until the release was seen live")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", default="flask,express", help=f"any of {','.join(SAMPLES)}")
    parser.add_argument("--steps", action="store_true", help="show where the last cached redeploy's time went")
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.samples.split(",") if key.strip()]
    unknown = [key for key in keys if key not in SAMPLES]
    if unknown or not keys or args.repeat < 1:
        parser.error(f"--samples takes some of {','.join(SAMPLES)}; --repeat at least 1")
    base = Path(tempfile.mkdtemp(prefix="bench-build-cache-"))
    times = {key: [] for key in keys}
    last = {}
    try:
        rewrites = prepare_examples(base, ROOT / "examples")
        with FakeProxmox(nodes=[Node("pve1")], task_seconds=0.2) as fake:
            fake.add_template(9000, node="pve1")
            bench = Bench(base, rewrites, fake)
            try:
                for i in range(args.repeat):
                    prepare_examples(base, ROOT / "examples")  # fresh repositories, the same URLs
                    for key in keys:
                        figures, lines, posted = one_round(bench, base / "examples", key, SAMPLES[key], i + 1)
                        times[key].append(figures)
                        last[key] = (lines, posted, figures[1])
                        first, cached, uncached = figures
                        print(f"round {i + 1} {key}: first {first:.2f} s, cached {cached:.2f} s, "
                              f"uncached {uncached:.2f} s, cached/first {cached / first:.2f}", flush=True)
            finally:
                bench.close()
        print(f"median of {args.repeat}:")
        for key in keys:
            first, cached, uncached = (statistics.median(column) for column in zip(*times[key], strict=True))
            verdict = "met" if cached / first <= TARGET else "NOT met"
            print(f"  {key}: first deploy {first:.2f} s, cached redeploy {cached:.2f} s, uncached redeploy "
                  f"{uncached:.2f} s; cached/first {cached / first:.2f} (target <= {TARGET:.2f}: {verdict}), "
                  f"cached/uncached {cached / uncached:.2f}")
        if args.steps:
            for key in keys:
                print_steps(key, *last[key])
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
