"""Dashboard sessions: a password login opens one, the cookie carries its random id, and each request finds
the user through it. A session ends at logout, when it expires (WEB_SESSION_HOURS after the login, or
WEB_SESSION_IDLE_HOURS without a request), when its user is disabled, or when their password changes."""
import logging
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from backend.extensions import db
from backend.models import WebSession
from backend.models.types import utcnow
from backend.models.user import hash_token
from backend.services.transactions import commit

log = logging.getLogger(__name__)

# A session's last use is written at most this often: a page view is then usually a read only.
TOUCH_INTERVAL = timedelta(minutes=5)


def open_session(user, *, lifetime_hours, ip_address=None, user_agent=None):
    """A new session for user: (the id for the cookie, its row). Committed."""
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(user_id=user.id, session_hash=hash_token(session_id), created_at=now, last_seen_at=now,
                     expires_at=now + timedelta(hours=lifetime_hours), ip_address=(ip_address or "")[:64] or None,
                     user_agent=(user_agent or "")[:255] or None)
    db.session.add(row)
    commit()
    return session_id, row


def resume(session_id, *, idle_hours):
    """(user, session row) for a cookie's session id, or None: unknown, ended, expired, idle too long, or its
    user disabled."""
    if not isinstance(session_id, str) or not 20 <= len(session_id) <= 128:
        return None
    found = _open(WebSession.find_with_user(session_id), idle_hours)
    if found is None:
        return None
    user, row = found
    now = utcnow()
    if now - row.last_seen_at > TOUCH_INTERVAL:
        try:
            db.session.execute(update(WebSession).where(WebSession.id == row.id).values(last_seen_at=now))
            commit()
        except OperationalError:  # best effort, as for tokens: a busy database must not log anyone out
            db.session.rollback()
            log.warning("could not record the use of a dashboard session")
    return user, row


def viewer(session_row_id, *, idle_hours):
    """(user id, is admin) while the session with this row id is open and its user active, else None: what a
    long-lived stream asks at every poll, so that a logout, a disabled user or a demotion reaches it at once."""
    found = _open(WebSession.with_user(session_row_id), idle_hours)
    return (found[0].id, found[0].is_admin) if found is not None else None


def _open(found, idle_hours):
    """(user, row) of a (row, user) pair while the session is open: not ended, not expired, not idle for longer
    than idle_hours, and its user active; else None."""
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if not row.usable(now) or not user.is_active or now - row.last_seen_at > timedelta(hours=idle_hours):
        return None
    return user, row


def close(row):
    """End one session (logout). Committed; idempotent."""
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        commit()
