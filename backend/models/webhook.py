"""GitHub deliveries already handled, and outbound notifications (an outbox with retries)."""
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, Uuid, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow

NOTIFICATION_STATES = ("pending", "delivered", "failed")


class GithubDelivery(db.Model):
    """One X-GitHub-Delivery id per row: a redelivery finds its id taken and does nothing."""

    __tablename__ = "github_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id = mapped_column(Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    received_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Notification(db.Model):
    """A status change to post to the deployment's notification URL, written in the change's own commit."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    deployment_id = mapped_column(Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    payload: Mapped[dict] = mapped_column(db.JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    delivered_at = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_notifications_deployment", "deployment_id", "id"),
        Index("ix_notifications_due", "state", "next_attempt_at"),
    )

    @classmethod
    def for_deployment(cls, deployment_id, before=None, limit=50):
        stmt = select(cls).where(cls.deployment_id == deployment_id)
        if before is not None:
            stmt = stmt.where(cls.id < before)
        return db.session.scalars(stmt.order_by(cls.id.desc()).limit(limit)).all()

    @classmethod
    def due(cls, deployment_id=None, now=None):
        stmt = select(cls).where(cls.state == "pending", cls.next_attempt_at <= (now or utcnow()))
        if deployment_id is not None:
            stmt = stmt.where(cls.deployment_id == deployment_id)
        return db.session.scalars(stmt.order_by(cls.id)).all()
