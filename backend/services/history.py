"""A deployment's history for readers: its events a page at a time, a readable log, a release's log followed live."""
import time

from backend.extensions import db
from backend.models import DeploymentEvent, LogLine, Release
from backend.proxmox.errors import ProxmoxError
from backend.schemas.common import dump
from backend.schemas.events import EventOut
from backend.services import cluster


def page_of(rows, limit):
    """Rows fetched with limit + 1: (the page, the id of its last row to page on from, or None on the last page)."""
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


def events_page(deployment_id, after=None, limit=200):
    """(events oldest first, the id to pass as after= for the next page or None on the last one)."""
    return page_of(DeploymentEvent.for_deployment(deployment_id, after_id=after, limit=limit + 1), limit)


def latest_events(deployment_id, limit=100):
    """The newest events, newest first (a timeline)."""
    return DeploymentEvent.latest(deployment_id, limit)


def log_page(deployment_id, after=None, release=None, limit=500):
    """(build log lines oldest first, of one release or all, the next after= or None)."""
    return page_of(LogLine.page(deployment_id, after=after, release=release, limit=limit + 1), limit)


def readable_log(deployment_id, proxmox, with_tasks=True):
    """One line per event; under a Proxmox task's line, that task's own log (when Proxmox answers)."""
    lines = []
    for event in DeploymentEvent.for_deployment(deployment_id):
        head = f"{dump(EventOut, event)['time']} [{event.kind}]"
        if event.from_status or event.to_status:
            head += f" {event.from_status or '-'} -> {event.to_status}"
        lines.append(f"{head} {event.message}".rstrip())
        if event.upid and with_tasks:
            lines.append(f"    task {event.upid}")
            try:
                lines.extend(f"    | {line}" for line in cluster.task_log(event.upid, proxmox))
            except ProxmoxError as exc:
                lines.append(f"    (task log unavailable: {cluster.public_message(exc)})")
    return "\n".join(lines) + "\n"


# How often a followed log looks for new lines, and how long it stays quiet before a keep-alive.
FOLLOW_POLL_SECONDS = 0.5
FOLLOW_KEEPALIVE_SECONDS = 15


def follow_release_log(deployment_id, release_id, version, *, after=None, max_seconds=1800, keep_going=None):
    """A release's log lines as they are written, for a live stream: yields ("line", LogLine) for each line after
    `after`, ("keepalive", None) after a quiet spell, then ("end", status) once the release has finished and every
    line has been yielded, or ("timeout", None) after max_seconds. Holds no database session between polls.
    keep_going(), asked before each poll, ends the stream (nothing more is yielded) when it answers false: the
    reader's session ended, say."""
    started = quiet_since = time.monotonic()
    while time.monotonic() - started < max_seconds:
        try:
            if keep_going is not None and not keep_going():
                return
            # Read whether the release finished before reading lines: a line written before it finished is then
            # surely in this page or an earlier one.
            current = db.session.get(Release, release_id)
            finished, status = current.finished, current.status
            lines = LogLine.page(deployment_id, after=after, release=version, limit=500)
        finally:
            db.session.remove()
        for line in lines:
            after = line.id
            yield "line", line
        if lines:
            quiet_since = time.monotonic()
            continue
        if finished:
            yield "end", status
            return
        if time.monotonic() - quiet_since >= FOLLOW_KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield "keepalive", None
        time.sleep(FOLLOW_POLL_SECONDS)
    yield "timeout", None
