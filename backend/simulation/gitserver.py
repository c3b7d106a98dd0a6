"""Local git repositories served read-only over HTTP (git's smart protocol, through `git http-backend`), for
real guests to clone.

Real guests cannot read the host's files, so the repositories that stand for https://github.com/<owner>/<name>
in simulation and tests are served from the bridge's address; git on the guest reaches them through
url.<base>.insteadOf, as the sandbox guests reach them through file://. A repository at <base>/<owner>/<name>
(with its .git inside, or bare) answers at /<owner>/<name>. Only fetching is served (no push).
"""
import logging
import os
import subprocess  # nosec B404 - git http-backend with an argument list
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from backend.simulation.serving import BackgroundServer

log = logging.getLogger(__name__)
SERVICES = ("git-upload-pack",)  # fetch and clone; git-receive-pack (push) is refused
MAX_BODY = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("git server %s: " + format, self.client_address[0], *args)

    def do_GET(self):  # http.server dispatches on the method name
        self._backend()

    def do_POST(self):  # http.server dispatches on the method name
        self._backend()

    def _backend(self):
        parts = urlsplit(self.path)
        service = parts.query.removeprefix("service=") if parts.query.startswith("service=") else None
        wanted = service or parts.path.rsplit("/", 1)[-1]
        if ".." in parts.path or (wanted.startswith("git-") and wanted not in SERVICES):
            self.send_error(403, "fetch only")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        env = {"PATH": os.defpath, "GIT_PROJECT_ROOT": self.server.base,
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
               "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": self.client_address[0],
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": self.server.base}
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,  # nosec B603 B607
                                timeout=120, check=False)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitServer(BackgroundServer):
    """Serve the repositories under base on (address, port); start() and stop(), or use as a context manager."""

    thread_name = "paas-git-server"

    def __init__(self, base, address, port=0):
        super().__init__(ThreadingHTTPServer((address, port), _Handler))
        self.server.base = str(Path(base).resolve())

    @property
    def url(self):
        return super().url + "/"
