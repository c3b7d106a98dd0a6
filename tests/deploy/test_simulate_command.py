"""The README's newcomer path, as written: python app.py --simulate, then deploy a sample app."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from pathlib import Path

from tests.deploy.test_simulation import fetch

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_python_app_py_simulate_deploys_the_sample_flask_app(tmp_path):
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
        with pytest.raises(urllib.error.HTTPError) as refused:
            call(base, "GET", "/deployments")
        assert refused.value.code == 401
        status, body = call(base, "POST", "/deployments", {
            "name": "hello", "deployment_type": "lxc", "framework": "auto",
            "github_url": "https://github.com/paas-examples/flask-hello", "health_check_path": "/health",
            "env": {"GREETING": "Bonjour"}}, token=token)
        assert status == 201
        deadline = time.monotonic() + 240
        while True:
            deployment = call(base, "GET", "/deployments/hello", token=token)[1]["deployment"]
            if deployment["status"] in ("running", "failed"):
                break
            assert time.monotonic() < deadline, deployment
            time.sleep(0.5)
        assert deployment["status"] == "running", deployment["error_message"]
        status, page = fetch(deployment["url"])
        assert status == 200 and "<h1>Bonjour from Flask</h1>" in page
        assert call(base, "DELETE", "/deployments/hello", token=token)[0] == 202
        deadline = time.monotonic() + 60
        while call(base, "GET", f"/deployments/{deployment['id']}", token=token)[1]["deployment"]["status"] != "deleted":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert fetch(deployment["url"])[0] is None
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
