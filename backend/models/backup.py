"""Backups of a deployment's guest (Proxmox vzdump archives on BACKUP_STORAGE), as the platform made or found them."""
import uuid

from sqlalchemy import ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow

BACKUP_STATES = ("running", "ok", "failed")


class Backup(db.Model):
    """One vzdump of one guest: running while its task runs, then ok (with its volume) or failed (with Proxmox's
    words). A volume found on the storage that no row knows (made by Proxmox itself) gets a row when listed."""

    __tablename__ = "backups"

    id: Mapped[uuid.UUID] = mapped_column(db.Uuid, primary_key=True, default=uuid.uuid4)
    deployment_id = mapped_column(db.Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    trigger: Mapped[str] = mapped_column(String(16), nullable=False, default="manual")  # manual | schedule | found
    node: Mapped[str | None] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(64), nullable=False)
    vm_id: Mapped[int | None] = mapped_column(Integer)
    guest_kind: Mapped[str | None] = mapped_column(String(8))
    release_version: Mapped[int | None] = mapped_column(Integer)  # the release that served when it was made
    upid: Mapped[str | None] = mapped_column(String(255))
    volid: Mapped[str | None] = mapped_column(String(512))
    size: Mapped[int | None] = mapped_column(db.BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_backups_deployment", "deployment_id", "created_at"),)

    @classmethod
    def of_deployment(cls, deployment_id):
        """A deployment's backups, newest first."""
        return db.session.scalars(select(cls).where(cls.deployment_id == deployment_id)
                                  .order_by(cls.created_at.desc())).all()
