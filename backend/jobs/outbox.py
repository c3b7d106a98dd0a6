"""The outbox's relay: notifications written in a commit are handed to the notify job after it."""
import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

from backend.platform import platform_of
from backend.services import notifications

log = logging.getLogger(__name__)


def _submit_notifications(session):
    """After a commit that wrote notifications, hand them to the notify job (the outbox's relay)."""
    pending = session.info.pop(notifications.PENDING_KEY, None)
    if not pending:
        return
    try:
        jobs = platform_of().jobs
        for deployment_id in pending:
            jobs.submit("notify", deployment_id)
    except Exception:
        log.warning("could not queue notifications; the sweep will", exc_info=True)


def _forget_notifications(session, *args):
    session.info.pop(notifications.PENDING_KEY, None)


def listen_for_notifications():
    """Relay committed notifications to the notify job (once per process)."""
    if not event.contains(Session, "after_commit", _submit_notifications):
        event.listen(Session, "after_commit", _submit_notifications)
        event.listen(Session, "after_rollback", _forget_notifications)
