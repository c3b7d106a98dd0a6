"""A real OpenSSH server on 127.0.0.1 for the SSH transport's tests.

`start_sshd(directory, authorized_key)` runs /usr/sbin/sshd in the foreground with its own host key,
config, pid file and authorized_keys, all under `directory`, on a free loopback port, and returns
once the port answers. sshd must run as root (privilege separation, logging in as root). When sshd
is missing the tests fail in CI (CI=true) and are skipped elsewhere.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.helpers.network import free_port

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10


def require_sshd():
    """Fail (in CI) or skip (elsewhere) unless a usable sshd is installed and we are root."""
    problem = None
    if not os.access(SSHD, os.X_OK):
        problem = f"{SSHD} is missing: install openssh-server (.ci/run does)"
    elif os.geteuid() != 0:
        problem = "the sshd tests run sshd as root and log in as root; run them as root"
    elif shutil.which("ssh-keygen") is None:
        problem = "ssh-keygen is missing: install openssh-client"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


class SSHServer:
    def __init__(self, directory, port, process, host_key_line, log_path):
        self.directory = directory
        self.host = "127.0.0.1"
        self.port = port
        self.process = process
        #: the server's host key as "type base64"
        self.host_key_line = host_key_line
        self.log_path = log_path

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _config(directory, port):
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {directory}/ssh_host_ed25519_key",
        f"PidFile {directory}/sshd.pid",
        f"AuthorizedKeysFile {directory}/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxSessions 64",
        "MaxStartups 64",
        "ClientAliveInterval 0",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        "",
    ])


def start_sshd(directory, authorized_key):
    """Start sshd under directory (a fresh, empty dir) trusting authorized_key; returns an SSHServer."""
    require_sshd()
    directory = os.fspath(directory)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    host_key = os.path.join(directory, "ssh_host_ed25519_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", host_key],
                   check=True, capture_output=True, timeout=30)
    with open(host_key + ".pub") as f:
        host_key_line = " ".join(f.read().split()[:2])
    with open(os.path.join(directory, "authorized_keys"), "w") as f:
        f.write(authorized_key.strip() + "\n")

    last_error = "no attempt"
    for attempt in range(3):  # another process may take the free port before sshd binds it
        port = free_port()
        config = os.path.join(directory, "sshd_config")
        with open(config, "w") as f:
            f.write(_config(directory, port))
        log_path = os.path.join(directory, f"sshd-{attempt}.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
        server = SSHServer(directory, port, process, host_key_line, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-"):
                        return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        last_error = server.log()[-2000:] or f"sshd did not answer within {START_TIMEOUT} s"
    raise RuntimeError(f"sshd did not start: {last_error}")
