"""The HTTPS side of the fake: a throwaway CA (trustme), a threaded TLS server on loopback in a thread of its
own, and the request handler that hands each request to FakeProxmox.handle and writes pveproxy-style answers."""
import json
import shutil
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme


class TLSServer(ThreadingHTTPServer):
    """A threaded HTTPS server that tracks its connections so stop() can close them."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address, handler, context, fake):
        """Bind and keep the TLS context; the handshake happens in the connection's own thread."""
        super().__init__(address, handler)
        self.context = context
        self.fake = fake
        self._connections = set()
        self._connections_lock = threading.Lock()

    def get_request(self):
        """Accept a connection and wrap it for TLS without handshaking in the accept loop."""
        sock, address = self.socket.accept()
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request):
        """Forget and close a finished connection."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        """Shut down every open (keep-alive) connection so its thread ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        """Stay quiet about clients that go away (TLS aborts, resets)."""


class RequestHandler(BaseHTTPRequestHandler):
    """Turns HTTP requests into FakeProxmox.handle calls and writes pveproxy-style answers."""

    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 30

    def setup(self):
        """Apply the idle timeout, then finish the TLS handshake."""
        super().setup()
        self.connection.do_handshake()

    def log_message(self, format, *args):
        """No access log on stderr."""

    def do_GET(self):
        """GET."""
        self._dispatch("GET")

    def do_POST(self):
        """POST."""
        self._dispatch("POST")

    def do_PUT(self):
        """PUT."""
        self._dispatch("PUT")

    def do_DELETE(self):
        """DELETE."""
        self._dispatch("DELETE")

    def _dispatch(self, method):
        """Read the body, let the fake answer, write the reply (or drop the connection)."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake.handle(method, self.path, self.headers, body)
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(reply.body).encode("utf-8")
        reason = reply.reason.splitlines()[0] if reply.reason else ""
        self.send_response(reply.status, reason.encode("latin-1", "replace").decode("latin-1"))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if reply.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)


class HttpsService:
    """A running TLSServer for a fake, its serving thread, and the CA bundle file a client verifies with."""

    def __init__(self, fake, host):
        """Issue a certificate for 127.0.0.1 from a new CA, write the CA, bind a free port, start serving."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.tmpdir = tempfile.mkdtemp(prefix="fake-pve-")
        self.ca_bundle_path = str(Path(self.tmpdir) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle_path)
        self.server = TLSServer((host, 0), RequestHandler, context, fake)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"fake-pve-{self.port}", daemon=True)
        self.thread.start()

    def stop(self):
        """Stop serving, close open connections, join every thread and remove the CA file."""
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self.thread.join(timeout=10)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
