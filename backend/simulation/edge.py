"""A Caddy of its own for the simulation and the tests: the edge router's real counterpart, on loopback only.

EdgeCaddy runs `caddy run` with a bootstrap configuration that holds only the admin API (on a free loopback
port, or a unix socket) and Caddy's internal CA (so its root certificate exists for clients to trust); the
edge router (backend.router) then loads the rest through the admin API, as in production. Caddy's data (the
CA, certificates) and configuration live under base_dir, never in the user's home; its output goes to
base_dir/caddy.log, and the apps' access logs to base_dir/access.
"""
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from backend.router import CaddyRouter, RouterSettings

CADDY = "/usr/bin/caddy"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3  # a free port can be taken by someone else before Caddy binds it
LOG_TAIL = 2000


def caddy_binary():
    """The caddy executable's path, or None."""
    if os.access(CADDY, os.X_OK):
        return CADDY
    return shutil.which("caddy")


def caddy_available() -> bool:
    """Whether a caddy executable is installed."""
    return caddy_binary() is not None


def free_ports(host, count):
    """`count` distinct TCP ports on host that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EdgeCaddy:
    """A Caddy process listening on loopback only, for the edge router to drive."""

    def __init__(self, base_dir, host="127.0.0.1", admin_socket=None):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"EdgeCaddy listens on loopback only, not on {host}")
        self.base_dir = Path(base_dir)
        self.host = host
        self.admin_socket = Path(admin_socket) if admin_socket else None
        self.log_path = self.base_dir / "caddy.log"
        self.access_dir = self.base_dir / "access"
        self.data_dir = self.base_dir / "data"
        self.config_dir = self.base_dir / "config"
        self.bootstrap_path = self.base_dir / "bootstrap.json"
        self.admin_port = self.http_port = self.https_port = None
        self.process = None

    @property
    def admin_url(self):
        if self.admin_socket:
            return f"unix/{self.admin_socket}"
        return f"http://{self.host}:{self.admin_port}"

    @property
    def settings(self) -> RouterSettings:
        """How the edge router reaches and configures this Caddy."""
        if self.http_port is None:
            raise RuntimeError("EdgeCaddy is not started")
        return RouterSettings(admin_url=self.admin_url, http_port=self.http_port, https_port=self.https_port,
                              bind=self.host, tls="internal", access_log_dir=str(self.access_dir))

    @property
    def ca_path(self) -> Path:
        """The root certificate of Caddy's internal CA (what a client trusts to reach the apps over HTTPS)."""
        return self.data_dir / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def start(self) -> "EdgeCaddy":
        """Start Caddy with only its admin API and CA; return once both are there."""
        binary = caddy_binary()
        if binary is None:
            raise RuntimeError("caddy is not installed (apt-get install caddy)")
        for directory in (self.base_dir, self.access_dir, self.data_dir, self.config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            self.admin_port, self.http_port, self.https_port = free_ports(self.host, 3)
            try:
                self._launch(binary)
            except RuntimeError:
                self.stop()
                if attempt == START_ATTEMPTS:
                    raise
            else:
                return self

    def restart_empty(self):
        """Kill Caddy and start it again with the bootstrap configuration only: same ports, same CA."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            self.process = None
        self._launch(caddy_binary())

    def stop(self):
        """Stop Caddy: terminate, a bounded wait, then kill."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def write_info(self, path):
        """Write where the edge listens and the CA to trust, as JSON, for other processes (a browser, a script)."""
        info = {"http_port": self.http_port, "https_port": self.https_port, "ca": str(self.ca_path)}
        Path(path).write_text(json.dumps(info), encoding="utf-8")

    def log(self):
        """Caddy's output so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _bootstrap(self):
        return {
            "admin": {"listen": CaddyRouter(self.settings).admin.listen, "config": {"persist": False}},
            "apps": {"pki": {"certificate_authorities": {"local": {"install_trust": False}}}},
        }

    def _launch(self, binary):
        if self.admin_socket and self.admin_socket.exists():
            self.admin_socket.unlink()  # left by a killed Caddy; it would refuse to listen there
        self.bootstrap_path.write_text(json.dumps(self._bootstrap()), encoding="utf-8")
        env = dict(os.environ, XDG_DATA_HOME=str(self.data_dir), XDG_CONFIG_HOME=str(self.config_dir))
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                [binary, "run", "--config", str(self.bootstrap_path)], stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, env=env, cwd=self.base_dir)
        router = CaddyRouter(self.settings)
        deadline = time.monotonic() + START_TIMEOUT
        while not (router.ping() and self.ca_path.exists()):
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited with {self.process.returncode}: {self.log()[-LOG_TAIL:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"caddy did not start within {START_TIMEOUT}s: {self.log()[-LOG_TAIL:]}")
            time.sleep(0.05)

    def __enter__(self):
        return self if self.process is not None else self.start()

    def __exit__(self, *exc_info):
        self.stop()
