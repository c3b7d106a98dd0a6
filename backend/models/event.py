"""The history of a deployment: status changes, job steps and the Proxmox tasks they started."""
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow

EVENT_KINDS = ("status", "step", "task", "error", "action")


class DeploymentEvent(db.Model):
    __tablename__ = "deployment_events"

    # BigInteger on the server, plain INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    deployment_id = mapped_column(db.Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # The Proxmox task a step started (UPIDs are at most ~120 characters).
    upid: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_deployment_events_deployment", "deployment_id", "id"),)

    @classmethod
    def latest(cls, deployment_id, limit):
        """The newest `limit` events, newest first."""
        return db.session.scalars(select(cls).where(cls.deployment_id == deployment_id)
                                  .order_by(cls.id.desc()).limit(limit)).all()

    @classmethod
    def for_deployment(cls, deployment_id, after_id=None, limit=None):
        stmt = select(cls).where(cls.deployment_id == deployment_id)
        if after_id is not None:
            stmt = stmt.where(cls.id > after_id)
        stmt = stmt.order_by(cls.id)
        if limit:
            stmt = stmt.limit(limit)
        return db.session.scalars(stmt).all()


class IpReservation(db.Model):
    """An address of PROXMOX_IP_POOL held by a deployment: the primary key makes each one taken once."""

    __tablename__ = "ip_reservations"

    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    deployment_id = mapped_column(db.Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False,
                                  unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
