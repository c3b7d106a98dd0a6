"""The platform as README's first command starts it, for tests that drive it from outside (the CLI, a browser):
`python app.py --simulate` as a process on a free loopback port, with its own simulation directory."""
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.network import fetch, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Platform:
    url: str
    token: str
    password: str | None
    directory: Path


@contextlib.contextmanager
def running_simulation(directory, **settings):
    """A live server in simulation mode on 127.0.0.1, its data in directory; settings: extra environment (the
    rate limits, say). Yields a Platform with the admin's token and password; stops the server afterwards."""
    port = free_port()
    # ROUTER=none: apps at their guest address; tests of the router ask for it (ROUTER="")
    # LIVE_STATUS_TIMEOUT: the fake cluster shares a loaded CI machine; a page's metrics must not time out there.
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "SIMULATION_DIR": str(directory), "ROUTER": "none",
           "LIVE_STATUS_TIMEOUT": "15",
           "APP_ENV": "development", "ENV_ENCRYPTION_KEY": "", "LOG_LEVEL": "WARNING", **settings}
    env.pop("DATABASE_URL", None)
    # Its output goes to a file, never to a pipe nobody reads: a full pipe would stop the server at its next log line.
    output_path = Path(directory).parent / f"{Path(directory).name}-server.log"
    output = open(output_path, "wb")
    server = subprocess.Popen([sys.executable, "app.py", "--simulate"], cwd=ROOT, env=env, stdout=output,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while fetch(f"http://127.0.0.1:{port}/health")[0] != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the simulation did not start: " + output_path.read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        password_file = Path(directory) / "admin-password"
        yield Platform(f"http://127.0.0.1:{port}", (Path(directory) / "admin-token").read_text().strip(),
                       password_file.read_text().strip() if password_file.exists() else None, Path(directory))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        output.close()
