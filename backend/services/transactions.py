"""The unit of work: the one way services and jobs commit.

- A request's service changes rows in the request's session and calls commit(): the database's own
  guards (a unique constraint, a racing update caught by the version counter) become domain errors.
- A job's step runs in transaction(): a fresh look at the rows, one commit or a rollback, and the
  connection handed back at once, so that no session is held while the job waits on Proxmox or a guest.
"""
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from backend.errors import ConcurrentUpdate
from backend.extensions import db


def commit(conflict=None, keep_loaded=False):
    """Commit the session; roll back and raise a domain error when the database refuses.

    conflict(): the error for a unique-constraint violation (None, or no conflict given: the
    IntegrityError itself); a racing update of a versioned row raises ConcurrentUpdate.
    keep_loaded: the session's objects keep their values through the commit instead of being reloaded on
    their next use (rows this request wrote itself, whose values it knows).
    """
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = expire and not keep_loaded
    try:
        session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        error = conflict() if conflict is not None else None
        if error is not None:
            raise error from exc
        raise
    except StaleDataError as exc:
        db.session.rollback()
        raise ConcurrentUpdate("the deployment was changed meanwhile; reload and retry") from exc
    finally:
        session.expire_on_commit = expire


def save_fields(row, attempts=3, **fields):
    """Set fields on a versioned row and commit. A racing write of the row (a job's status change) is read again
    and the fields set once more: a 409 is for a change that touched the same thing, not for any change."""
    for attempt in range(attempts):
        for key, value in fields.items():
            setattr(row, key, value)
        try:
            commit()
            return row
        except ConcurrentUpdate:
            if attempt == attempts - 1:
                raise
            db.session.refresh(row)
    return row


@contextmanager
def transaction():
    """A block of work that commits at its end or rolls back on any exception; the session is released
    afterwards either way (what the block loaded must not be used after it)."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        db.session.remove()


def run_in_transaction(work):
    """work(session) in a transaction(); returns what it returns."""
    with transaction() as session:
        return work(session)
