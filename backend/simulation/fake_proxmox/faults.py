"""Injected failures: errors and dropped connections for matching requests, delays before answering, and
task types whose next tasks fail. FakeProxmox's fail_next, drop_next, delay and fail_task add them."""
import re
from dataclasses import dataclass

MAX_DELAY_SECONDS = 60.0


@dataclass
class Fault:
    """An injected failure (or dropped connection, or delay) for requests matching method and path."""

    method: str | None
    path: re.Pattern
    status: int | None  # None: drop the connection (or, for a delay, answer normally afterwards)
    reason: str
    remaining: int
    seconds: float = 0.0

    def matches(self, method, path):
        """True when the fault applies to this request."""
        return self.remaining > 0 and self.method in (None, method) and bool(self.path.search(path))


class PendingFaults:
    """The injected failures not yet used up. Not locked itself: the cluster lock guards it."""

    def __init__(self):
        """Nothing pending."""
        self.errors = []  # Faults answered with an error, or by dropping the connection
        self.delays = []  # Faults that hold a request for their `seconds`
        self.task_failures = {}  # task type -> [exit status of each of its next tasks]

    def add_error(self, method, path, status, reason, times):
        """Answer the next `times` matching requests with status and reason (status None: drop them)."""
        self.errors.append(Fault(method, re.compile(path), status, reason, times))

    def add_delay(self, seconds, method, path, times):
        """Hold the next `times` matching requests for `seconds` (at most MAX_DELAY_SECONDS)."""
        self.delays.append(Fault(method, re.compile(path), None, "", times,
                                 seconds=min(float(seconds), MAX_DELAY_SECONDS)))

    def add_task_failures(self, task_type, error, times):
        """End the next `times` tasks of a type with `error`."""
        self.task_failures.setdefault(task_type, []).extend([error] * times)

    def take_error(self, method, path):
        """The first error fault matching the request, used once; None when there is none."""
        return self._take(self.errors, method, path)

    def take_delay(self, method, path):
        """The first delay matching the request, used once; None when there is none."""
        return self._take(self.delays, method, path)

    def take_task_failure(self, task_type):
        """The exit status queued for the next task of a type, or None."""
        queued = self.task_failures.get(task_type)
        return queued.pop(0) if queued else None

    def clear(self):
        """Drop everything pending."""
        self.errors.clear()
        self.delays.clear()
        self.task_failures.clear()

    @staticmethod
    def _take(faults, method, path):
        fault = next((f for f in faults if f.matches(method, path)), None)
        if fault:
            fault.remaining -= 1
        return fault
