"""Waiting for a condition in a test, bounded in time."""
import time


def poll(check, timeout=5.0, interval=0.01):
    """Call check() until it returns a truthy value (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
