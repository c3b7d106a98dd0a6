"""A small forward proxy that lets guests reach the package registries, and nothing else.

Real guests (backend/simulation/containers/) have no route out. Many Proxmox sites are like that and give
their guests an HTTP(S) proxy; the platform's GUEST_HTTP_PROXY passes one to apt, pip, npm and git on the
guest. In simulation and tests this proxy plays that part, bound to the bridge's address: CONNECT tunnels
(https) and plain http requests go through only to the hosts this machine's own apt, pip and npm
configuration names, read at start, never written in the code; everything else is refused with 403.
"""
import contextlib
import logging
import select
import shutil
import socket
import subprocess  # nosec B404 - reads npm's configuration with an argument list
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from backend.rules import plain_number
from backend.simulation.serving import BackgroundServer

log = logging.getLogger(__name__)

IDLE_SECONDS = 120  # a tunnel with no traffic for this long is closed
CONNECT_TIMEOUT = 20


def _hosts_of(urls):
    return {urlsplit(url).hostname.lower() for url in urls if urlsplit(url).scheme in ("http", "https")
            and urlsplit(url).hostname}


def apt_hosts(sources_dir=Path("/etc/apt/sources.list.d"), sources_list=Path("/etc/apt/sources.list")):
    urls = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for line in path.read_text().splitlines():
            if line.strip().lower().startswith("uris:"):
                urls += line.split(":", 1)[1].split()
    for path in [sources_list, *sorted(sources_dir.glob("*.list"))] if sources_dir.is_dir() else [sources_list]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                if len(words) >= 2 and words[0] in ("deb", "deb-src"):
                    urls.append(words[1])
    return _hosts_of(urls)


def pip_hosts():
    """The index pip uses here (its configuration, else its own default) and where that index keeps files."""
    from pip._internal.configuration import Configuration  # noqa: PLC0415 - only the proxy needs pip's view
    from pip._internal.models.index import PyPI  # noqa: PLC0415 - as above

    configuration = Configuration(isolated=False)
    configuration.load()
    urls = [PyPI.simple_url, f"https://{PyPI.file_storage_domain}/"]
    for key, value in configuration.items():
        if key.endswith(("index-url", "extra-index-url", "trusted-host")):
            urls += [v if "://" in v else f"https://{v}/" for v in str(value).split()]
    return _hosts_of(urls)


def npm_hosts():
    npm = shutil.which("npm")
    if npm is None:
        return set()
    result = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True,  # nosec B603
                            timeout=30, check=False)
    return _hosts_of([result.stdout.strip()]) if result.returncode == 0 else set()


def registry_hosts():
    """Every host this machine's apt, pip and npm configuration names."""
    return apt_hosts() | pip_hosts() | npm_hosts()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("proxy %s: " + format, self.client_address[0], *args)

    def _refuse(self, status, reason):
        self.send_response(status, reason)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _allowed(self, host):
        allowed = host.lower() in self.server.allowed
        if not allowed:
            self.server.refused.append(host)
        return allowed

    def do_CONNECT(self):  # http.server dispatches on the method name
        host, _, port = self.path.rpartition(":")
        if plain_number(port, 5) != 443 or not self._allowed(host):
            return self._refuse(403, "not a package registry")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
        except OSError:
            return self._refuse(502, "the registry did not answer")
        self.send_response(200, "Connection established")
        self.end_headers()
        self._pipe(self.connection, upstream)
        self.close_connection = True

    def _pipe(self, client, upstream):
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], IDLE_SECONDS)
                if not readable or self.server.stopping.is_set():
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()

    def _forward(self):
        """A plain http request in absolute form (apt's), passed on to an allowed host."""
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname or not self._allowed(parts.hostname):
            return self._refuse(403, "not a package registry")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        try:
            upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=CONNECT_TIMEOUT)
        except OSError:
            return self._refuse(502, "the registry did not answer")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [f"{k}: {v}" for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection", "keep-alive")]
        request = f"{self.command} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\nConnection: close\r\n\r\n"
        upstream.sendall(request.encode("latin-1") + (body or b""))
        self.close_connection = True
        with contextlib.suppress(OSError):
            upstream.settimeout(IDLE_SECONDS)
            while chunk := upstream.recv(65536):
                self.connection.sendall(chunk)
        upstream.close()

    do_GET = do_HEAD = _forward  # noqa: N815 - http.server's naming


class RegistryProxy(BackgroundServer):
    """The proxy on (address, port); start() and stop(), or use as a context manager."""

    thread_name = "paas-registry-proxy"

    def __init__(self, address, port=0, allowed=None):
        super().__init__(ThreadingHTTPServer((address, port), _Handler))
        self.server.allowed = {h.lower() for h in (registry_hosts() if allowed is None else allowed)}
        self.server.refused = []
        self.server.stopping = threading.Event()

    @property
    def refused(self):
        return list(self.server.refused)

    def stop(self):
        self.server.stopping.set()  # open tunnels end at their next look
        super().stop()
