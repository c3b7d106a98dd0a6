"""A ThreadingHTTPServer served from a thread of its own: start() and stop(), or use it as a context manager."""
import threading


class BackgroundServer:
    """Subclasses set self.server (a socketserver) in __init__ and name their thread."""

    thread_name = "paas-server"

    def __init__(self, server):
        self.server = server
        self.server.daemon_threads = True
        self.thread = None

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name=self.thread_name, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
