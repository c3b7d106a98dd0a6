"""The audit log: who did what to which deployment, when and from where."""
from sqlalchemy import BigInteger, Index, Integer, String, Uuid, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # No foreign keys: the log outlives what it names. The username is kept as it was then.
    user_id = mapped_column(Uuid)
    username: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    deployment_id = mapped_column(Uuid)
    target: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict] = mapped_column(db.JSON, nullable=False, default=dict)

    __table_args__ = (
        Index("ix_audit_log_created", "created_at", "id"),
        Index("ix_audit_log_deployment", "deployment_id", "id"),
        Index("ix_audit_log_user", "user_id", "id"),
    )

    @classmethod
    def page(cls, *, user_id=None, deployment_id=None, action=None, since=None, until=None, before=None, limit=100):
        """Newest first; `before` is the last id of the previous page."""
        stmt = select(cls)
        if user_id is not None:
            stmt = stmt.where(cls.user_id == user_id)
        if deployment_id is not None:
            stmt = stmt.where(cls.deployment_id == deployment_id)
        if action:
            stmt = stmt.where(cls.action.startswith(action, autoescape=True))
        if since is not None:
            stmt = stmt.where(cls.created_at >= since)
        if until is not None:
            stmt = stmt.where(cls.created_at < until)
        if before is not None:
            stmt = stmt.where(cls.id < before)
        return db.session.scalars(stmt.order_by(cls.id.desc()).limit(limit)).all()
