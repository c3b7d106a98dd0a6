"""A deployment's history for readers: its events a page at a time, and a readable log."""
from backend.models import DeploymentEvent, LogLine
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
