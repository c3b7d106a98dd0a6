"""The README's newcomer path, as written: python app.py --simulate, then deploy a sample app."""
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.edge import require_caddy, served
from tests.helpers.network import call_api, fetch, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_python_app_py_simulate_deploys_the_sample_flask_app_behind_its_own_caddy(tmp_path):
    require_caddy()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "SIMULATION_DIR": str(tmp_path / "sim"),
           "APP_ENV": "development", "ENV_ENCRYPTION_KEY": "", "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "app.py", "--simulate"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 30
        while fetch(f"http://127.0.0.1:{port}/health")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
            time.sleep(0.2)
        token = (tmp_path / "sim" / "admin-token").read_text().strip()
        assert call_api(base, "GET", "/deployments")[0] == 401
        status, body = call_api(base, "POST", "/deployments", {
            "name": "hello", "deployment_type": "lxc", "framework": "auto",
            "github_url": "https://github.com/paas-examples/flask-hello", "health_check_path": "/health",
            "env": {"GREETING": "Bonjour"}}, token=token)
        assert status == 201
        deadline = time.monotonic() + 240
        while True:
            deployment = call_api(base, "GET", "/deployments/hello", token=token)[1]["deployment"]
            if deployment["status"] in ("running", "failed"):
                break
            assert time.monotonic() < deadline, deployment
            time.sleep(0.5)
        assert deployment["status"] == "running", deployment["error_message"]
        # Its own Caddy on loopback, its ports and CA written where the README says.
        router = json.loads((tmp_path / "sim" / "router.json").read_text())
        assert set(router) == {"http_port", "https_port", "ca"} and Path(router["ca"]).is_file()
        assert deployment["url"] == f"https://hello.apps.localhost:{router['https_port']}"
        edge = SimpleNamespace(host="127.0.0.1", https_port=router["https_port"], http_port=router["http_port"],
                               ca_path=Path(router["ca"]))
        status, page = served(edge, "hello.apps.localhost")
        assert status == 200 and "<h1>Bonjour from Flask</h1>" in page
        assert fetch(f"http://{deployment['ip_address']}:8000/")[0] == 200  # and at the guest's own address
        assert call_api(base, "DELETE", "/deployments/hello", token=token)[0] == 202
        deadline = time.monotonic() + 60
        path = f"/deployments/{deployment['id']}"
        while call_api(base, "GET", path, token=token)[1]["deployment"]["status"] != "deleted":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert fetch(f"http://{deployment['ip_address']}:8000/")[0] is None
        assert served(edge, "hello.apps.localhost", tls_wait=2)[0] != 200
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
    assert not any(f"{tmp_path}/sim/edge" in line for line in _processes())  # its Caddy ended with it


class Simulation:
    """`python app.py --simulate` as a process of its own, with its own directory and port."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1", "SIMULATION_DIR": str(directory),
               "ROUTER": "none", "APP_ENV": "development", "ENV_ENCRYPTION_KEY": "", "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        self.process = subprocess.Popen([sys.executable, "app.py", "--simulate"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while fetch(f"http://127.0.0.1:{self.port}/health")[0] != 200:
            assert self.process.poll() is None and time.monotonic() < deadline, self.process.stdout.read().decode()
            time.sleep(0.2)
        self.token = (self.directory / "admin-token").read_text().strip()
        return self

    def deploy(self, name):
        status, _ = call_api(self.base, "POST", "/deployments", {
            "name": name, "deployment_type": "lxc", "framework": "auto",
            "github_url": "https://github.com/paas-examples/static-site"}, token=self.token)
        assert status == 201

    def wait_running(self, name, timeout=240):
        deadline = time.monotonic() + timeout
        while True:
            deployment = call_api(self.base, "GET", f"/deployments/{name}", token=self.token)[1]["deployment"]
            if deployment["status"] in ("running", "failed"):
                assert deployment["status"] == "running", deployment["error_message"]
                return deployment
            assert time.monotonic() < deadline, deployment
            time.sleep(0.5)

    def terminate(self):
        """SIGTERM, as systemd or docker stop would send; the output it printed."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
        try:
            output = self.process.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            raise
        return output


def test_two_simulations_run_side_by_side_and_each_stops_its_guests_when_it_ends(tmp_path):
    first, second = Simulation(tmp_path / "one"), Simulation(tmp_path / "two")
    try:
        first.wait_ready()
        second.wait_ready()
        # A third in a directory that is in use is refused, plainly, and disturbs nothing.
        third = Simulation(tmp_path / "one")
        output = third.process.communicate(timeout=60)[0].decode()
        assert third.process.returncode == 1, output
        assert "another simulation runs from" in output and "Traceback" not in output
        first.deploy("site")
        second.deploy("site")
        one, two = first.wait_running("site"), second.wait_running("site")
        assert one["ip_address"] != two["ip_address"]
        assert fetch(one["url"])[0] == 200 and fetch(two["url"])[0] == 200
        assert "Simulation ended: stopped the apps of 1 simulated guest(s)" in first.terminate()
        assert fetch(one["url"])[0] is None, "the first simulation's app outlived it"
        assert fetch(two["url"])[0] == 200, "ending one simulation touched the other's guests"
        second.terminate()
        assert fetch(two["url"])[0] is None
    finally:
        for simulation in (first, second):
            if simulation.process.poll() is None:
                simulation.terminate()


def test_the_simulation_gives_its_admin_a_password_that_logs_in(tmp_path):
    directory = tmp_path / "sim"
    directory.mkdir()
    stale = directory / "admin-password"
    stale.write_text("from an earlier run\n")
    stale.chmod(0o644)
    simulation = Simulation(directory)
    try:
        simulation.wait_ready()
        for name in ("admin-token", "admin-password"):
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
        password = (directory / "admin-password").read_text().strip()
        assert len(password) >= 32 and password != "from an earlier run"

        status, body = call_api(simulation.base, "POST", "/auth/login",
                                {"username": "admin", "password": password, "token_name": "trial"})
        assert status == 201, body
        assert body["user"]["username"] == "admin" and body["user"]["role"] == "admin"
        assert call_api(simulation.base, "GET", "/users", token=body["token"])[0] == 200
        assert call_api(simulation.base, "POST", "/auth/login",
                        {"username": "admin", "password": password + "x", "token_name": "trial"})[0] == 401
        output = simulation.terminate()
        # Printed beside the token, where the README's trial starts.
        assert f"export TOKEN={simulation.token}" in output
        assert f"password {password} (also in {directory / 'admin-password'})" in output
    finally:
        if simulation.process.poll() is None:
            simulation.terminate()


def _processes():
    """Every process's command line."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return lines
