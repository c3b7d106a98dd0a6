"""The client's event stream against a loopback server that drops the connection mid-stream."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paas_cli import client as client_module
from paas_cli.client import ApiError, Client


class Flaky(BaseHTTPRequestHandler):
    """First connection: two events, then the connection ends without `end`. Later ones: what follows the
    Last-Event-ID they send, then `end`."""

    seen = []

    def do_GET(self):
        last = self.headers.get("Last-Event-ID")
        Flaky.seen.append((self.path, last))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if last is None:
            self.wfile.write(b"retry: 2000\n\nid: 1\nevent: line\ndata: {\"line\": \"one\"}\n\n"
                             b": keep-alive\n\nid: 2\nevent: line\ndata: {\"line\": \"two\"}\n\n")
        else:
            start = int(last) + 1
            for n in range(start, 5):
                self.wfile.write(f"id: {n}\nevent: line\ndata: {{\"line\": \"line {n}\"}}\n\n".encode())
            self.wfile.write(b'event: end\ndata: {"release": 1, "status": "live"}\n\n')
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_dropped_stream_resumes_from_the_last_event(flaky, monkeypatch):
    monkeypatch.setattr(client_module, "RECONNECT_SECONDS", 0.05)
    events = list(Client(flaky, "t").events("/deployments/app/logs/stream", {"release": 1}))
    assert [e.json().get("line") for e in events if e.name == "line"] == ["one", "two", "line 3", "line 4"]
    assert events[-1].name == "end" and events[-1].json() == {"release": 1, "status": "live"}
    assert [last for _, last in Flaky.seen] == [None, "2"]
    assert all(path.startswith("/api/deployments/app/logs/stream?release=1") for path, _ in Flaky.seen)


def test_a_stream_that_never_comes_back_ends_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(client_module, "RECONNECT_SECONDS", 0.01)
    monkeypatch.setattr(client_module, "RECONNECTS", 2)
    with pytest.raises(ApiError, match=r"cannot reach http://127\.0\.0\.1:9"):
        list(Client("http://127.0.0.1:9", "t").events("/x"))


class CutChunked(BaseHTTPRequestHandler):
    """HTTP/1.1 with chunked encoding, cut off in the middle of the body on the first connection."""

    protocol_version = "HTTP/1.1"
    seen = []

    def do_GET(self):
        last = self.headers.get("Last-Event-ID")
        CutChunked.seen.append((last, self.headers.get("Accept-Encoding")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if last is None:
            chunk(b'id: 7\nevent: line\ndata: {"line": "seven"}\n\n')
            self.wfile.write(b"40\r\nid: 8\nevent: li")  # a chunk announced longer than what comes
            self.wfile.flush()
            self.close_connection = True
            return
        chunk(b'id: 8\nevent: line\ndata: {"line": "eight"}\n\nevent: end\ndata: {"status": "failed"}\n\n')
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_chunked_stream_cut_mid_chunk_resumes_without_a_traceback(monkeypatch):
    CutChunked.seen = []
    monkeypatch.setattr(client_module, "RECONNECT_SECONDS", 0.05)
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutChunked)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        events = list(Client(f"http://127.0.0.1:{server.server_address[1]}", "t").events("/s"))
    finally:
        server.shutdown()
        server.server_close()
    assert [e.json().get("line") for e in events if e.name == "line"] == ["seven", "eight"]
    assert events[-1].json() == {"status": "failed"}
    assert CutChunked.seen == [(None, "identity"), ("7", "identity")]
