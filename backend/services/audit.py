"""Writing and reading the audit log."""
import logging

from backend.extensions import db
from backend.models import AuditEntry
from backend.services import transactions
from backend.services.history import page_of

log = logging.getLogger(__name__)


def record(action, *, user=None, deployment=None, target=None, ip_address=None, request_id=None, details=None,
           commit=True):
    """Append one entry and commit it; an audit write that fails is logged, never hides the action's result.

    commit=False: the entry joins the caller's transaction instead, and is written with the action or not at all.
    """
    entry = AuditEntry(
        action=action,
        user_id=user.id if user is not None else None,
        username=user.username if user is not None else None,
        deployment_id=deployment.id if deployment is not None else None,
        target=(target or (deployment.name if deployment is not None else None)),
        ip_address=(ip_address or "")[:45] or None,
        request_id=request_id,
        details=details or {},
    )
    if not commit:
        db.session.add(entry)
        return entry
    try:
        db.session.add(entry)
        transactions.commit()
    except Exception:
        db.session.rollback()
        log.error("could not write the audit entry for %s", action, exc_info=True)
    return entry


def entries(filters, limit):
    """A page of entries, newest first, with the id to pass as `before` for the next page."""
    return page_of(AuditEntry.page(limit=limit + 1, **filters), limit)
