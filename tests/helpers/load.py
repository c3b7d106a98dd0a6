"""A constant request rate against an app, counting every answer that is not a success."""
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.api import wait_for_release
from tests.helpers.repos import BROKEN_APP, flask_app


class ConstantLoad:
    """Calls request() `rate` times a second from a pool of threads (a slow answer never slows the rate) until
    stopped or `limit_seconds` passed. request() returns (status, body) or raises; a status other than 200 or an
    exception is a failure."""

    def __init__(self, request, rate=50, limit_seconds=600, workers=32):
        self.request, self.rate, self.limit_seconds = request, rate, limit_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.bodies = Counter()  # body of each 200 answer -> how many
        self.failures = []  # (seconds since start, what went wrong)
        self.started = None
        self.thread = threading.Thread(target=self._pace, name="load-pacer", daemon=True)

    def _one(self):
        try:
            status, body = self.request()
        except Exception as exc:  # noqa: BLE001 - every kind of failure is counted, never raised
            self._failed(f"{exc.__class__.__name__}: {exc}")
            return
        if status != 200:
            self._failed(f"answered {status}: {str(body)[:200]}")
            return
        with self.lock:
            self.bodies[body] += 1

    def _failed(self, what):
        with self.lock:
            self.failures.append((round(time.monotonic() - self.started, 2), what))

    def _pace(self):
        interval = 1 / self.rate
        next_at = self.started
        while not self.stopping.is_set() and time.monotonic() - self.started < self.limit_seconds:
            self.pool.submit(self._one)
            self.sent += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)

    def __enter__(self):
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        """Stop sending and wait for every request sent to end."""
        self.stopping.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        self.elapsed = time.monotonic() - self.started

    @property
    def answered(self):
        return sum(self.bodies.values())


def check_redeploys_lose_nothing(client, ident, repos, name, greeting, request, timeout=240):
    """Under 50 requests a second through request() -> (status, body): a redeploy to v2 of flask_app, then a
    crashing one, lose no request; the crashing release never receives one. Returns that failed release."""
    live = client.get(f"/api/deployments/{ident}").get_json()["deployment"]["live_release"]
    repos.commit(name, flask_app("v2"))
    with ConstantLoad(request, rate=50) as load:
        assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
        assert wait_for_release(client, ident, live + 1, timeout=timeout)["status"] == "live"
    assert load.failures == [], load.failures[:10]
    assert set(load.bodies) == {f"hello {greeting} from v1", f"hello {greeting} from v2"}, load.bodies
    assert load.answered > 100, load.answered

    repos.commit(name, BROKEN_APP)
    with ConstantLoad(request, rate=50) as load:
        assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
        failed = wait_for_release(client, ident, live + 2, timeout=timeout)
    assert failed["status"] == "failed" and "never received a request" in failed["error_message"], failed
    assert load.failures == [], load.failures[:10]
    assert set(load.bodies) == {f"hello {greeting} from v2"} and load.answered > 50, load.bodies
    return failed
