"""`python app.py --simulate --guests=containers` as a user runs it: a sample app deployed over SSH into a guest
from the base image (python3 and git installed with apt through the proxy), and every guest gone when it ends."""
import os
import subprocess
from pathlib import Path

import pytest

from backend.simulation.containers import machine_name
from tests.deploy.test_simulate_command import Simulation
from tests.helpers.network import call_api, fetch
from tests.simulation.test_containers import capable

pytestmark = pytest.mark.slow


class ContainerSimulation(Simulation):
    def __init__(self, directory):
        os.environ["SIMULATION_GUESTS"] = "containers"
        try:
            super().__init__(directory)
        finally:
            del os.environ["SIMULATION_GUESTS"]


def test_the_simulation_deploys_onto_a_real_guest_and_removes_it_when_it_ends(tmp_path):
    if not capable():
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-guest tests: run as root with debootstrap and systemd-container")
        pytest.skip("real guests need root, debootstrap and systemd-nspawn")
    simulation = ContainerSimulation(tmp_path / "sim")
    try:
        simulation.wait_ready(timeout=300)
        status, _ = call_api(simulation.base, "POST", "/deployments", {
            "name": "hello", "deployment_type": "lxc", "framework": "auto", "health_check_path": "/health",
            "github_url": "https://github.com/paas-examples/flask-hello", "env": {"GREETING": "Bonjour"}},
            token=simulation.token)
        assert status == 201
        deployment = simulation.wait_running("hello", timeout=400)
        assert deployment["url"].startswith("http://10.77.")
        status, page = fetch(deployment["url"])
        assert status == 200 and "<h1>Bonjour from Flask</h1>" in page
        log = call_api(simulation.base, "GET", "/deployments/hello/logs?limit=500", token=simulation.token)[1]
        text = "\n".join(line["line"] for line in log["lines"])
        assert "install python3 python3-venv git" in text  # the base image has no python3: apt installed it
        guest = f"g{deployment['vm_id']}"
    finally:
        output = simulation.terminate()
    assert "every real guest it made is removed" in output, output[-2000:]
    # Nothing is asked of the guest's address now: with its bridge gone, it would be routed off this machine.
    block = int(deployment["url"].split("//")[1].split(".")[2])
    assert subprocess.run(["ip", "link", "show", f"paasbr{block}"], capture_output=True).returncode != 0
    machine = machine_name(block, guest)
    assert not Path(f"/run/netns/{machine}").exists()
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text()
    assert subprocess.run(["pgrep", "-f", "--", f"machine={machine}"], capture_output=True).returncode == 1


def test_without_root_the_containers_simulation_says_so_plainly_before_doing_anything(tmp_path, monkeypatch,
                                                                                     capsys):
    import app

    monkeypatch.setenv("SIMULATION_DIR", str(tmp_path / "sim"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as ended:
        app.main(["--simulate", "--guests=containers"])
    assert ended.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: real guests need root") and "Traceback" not in error
    assert not (tmp_path / "sim").exists()
