"""People's dashboard sessions, kept on the server so that a logout, a disabled account or a new password ends
them at once (a signed cookie alone cannot be taken back). The cookie carries a random id; only its hash is
stored, as for API tokens."""
import uuid

from sqlalchemy import ForeignKey, Index, String, Uuid, select, update
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow
from backend.models.user import User, hash_token


class WebSession(db.Model):
    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_seen_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    revoked_at = mapped_column(UTCDateTime)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_web_sessions_user", "user_id", "created_at"),)

    @classmethod
    def find_with_user(cls, session_id):
        """(session row, its user) in one query, or None."""
        row = db.session.execute(select(cls, User).join(User, User.id == cls.user_id)
                                 .where(cls.session_hash == hash_token(session_id))).first()
        return tuple(row) if row is not None else None

    @classmethod
    def with_user(cls, row_id):
        """(session row, its user) by the row's id, or None."""
        row = db.session.execute(select(cls, User).join(User, User.id == cls.user_id).where(cls.id == row_id)).first()
        return tuple(row) if row is not None else None

    @classmethod
    def revoke_for_user(cls, user_id, keep=None):
        """Revoke every open session of the user (but keep, the one making the change); not committed."""
        stmt = update(cls).where(cls.user_id == user_id, cls.revoked_at.is_(None))
        if keep is not None:
            stmt = stmt.where(cls.id != keep)
        db.session.execute(stmt.values(revoked_at=utcnow()))

    def usable(self, now=None):
        now = now or utcnow()
        return self.revoked_at is None and self.expires_at > now
