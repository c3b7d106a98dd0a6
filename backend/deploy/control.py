"""What a deploy run is handed by its caller to stay within bounds: a cancel check, a clock, a sleep.

The deployer never decides on its own when to stop: the caller's control does (a job's deadline, a
deleted deployment, a lost lease), and raises from checkpoint() or sleep(). An exception that means
"stop now and touch nothing more" derives from Interrupted, so the deployer lets it through instead of
switching releases back; running out of time raises a TimeoutError.
"""
from typing import Protocol


class Interrupted(Exception):
    """The run must stop at once (its deployment was deleted, another run took it over)."""


class RunControl(Protocol):
    time_limit: float

    def checkpoint(self) -> None:
        """Between steps: raise Interrupted or TimeoutError when the run must stop."""

    def sleep(self, seconds: float) -> None:
        """Wait, but raise as checkpoint() does as soon as the run must stop."""

    def seconds_left(self) -> float:
        """Time left before the run's deadline."""

    def extend(self, seconds: float) -> None:
        """Allow at least `seconds` more from now (a switch back to the previous release must not starve)."""
