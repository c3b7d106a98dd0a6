"""Releases (one per deploy of a deployment) and the build/deploy log lines they write."""
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow

# queued: waiting for its job; building: cloned/built/switched/checked right now; live: what serves;
# superseded: was live, a newer release replaced it; failed: never served (or was switched back);
# cancelled: a newer request replaced it before it ran.
RELEASE_STATUSES = ("queued", "building", "live", "superseded", "failed", "cancelled")
RELEASE_REASONS = ("create", "redeploy", "rollback", "env", "retry", "restore")
FINISHED = ("live", "superseded", "failed", "cancelled")


class Release(db.Model):
    __tablename__ = "releases"

    id: Mapped[uuid.UUID] = mapped_column(db.Uuid, primary_key=True, default=uuid.uuid4)
    deployment_id = mapped_column(db.Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    branch: Mapped[str] = mapped_column(String(255), nullable=False)
    # What was asked for (a commit, or None for the branch's head) and what was deployed.
    requested_commit: Mapped[str | None] = mapped_column(String(40))
    commit_sha: Mapped[str | None] = mapped_column(String(40))
    rollback_of: Mapped[int | None] = mapped_column(Integer)
    # framework, build_command, start_command, port, health_check_path as this release used them.
    config: Mapped[dict] = mapped_column(db.JSON, nullable=False, default=dict)
    # The environment as this release had it: Fernet-encrypted JSON, like the deployment's own.
    env_encrypted: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    # The Proxmox snapshot of the guest as this release left it (taken before the next release replaced it).
    snapshot: Mapped[str | None] = mapped_column(String(40))
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at = mapped_column(UTCDateTime)
    finished_at = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("deployment_id", "version", name="uq_releases_deployment_version"),)

    @classmethod
    def for_deployment(cls, deployment_id):
        stmt = select(cls).where(cls.deployment_id == deployment_id).order_by(cls.version.desc())
        return db.session.scalars(stmt).all()

    @classmethod
    def get(cls, deployment_id, version):
        stmt = select(cls).where(cls.deployment_id == deployment_id, cls.version == version)
        return db.session.scalars(stmt).first()

    @classmethod
    def next_version(cls, deployment_id):
        stmt = select(func.max(cls.version)).where(cls.deployment_id == deployment_id)
        return (db.session.scalar(stmt) or 0) + 1

    @property
    def finished(self):
        return self.status in FINISHED


class LogLine(db.Model):
    """One line of a release's build and deploy output; the id orders lines and resumes streams."""

    __tablename__ = "log_lines"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    deployment_id = mapped_column(db.Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False)
    release_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    stream: Mapped[str] = mapped_column(String(8), nullable=False, default="out")  # out | step | error
    line: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_log_lines_deployment", "deployment_id", "id"),)

    @classmethod
    def page(cls, deployment_id, *, after=None, release=None, limit=500):
        stmt = select(cls).where(cls.deployment_id == deployment_id)
        if release is not None:
            stmt = stmt.where(cls.release_version == release)
        if after is not None:
            stmt = stmt.where(cls.id > after)
        return db.session.scalars(stmt.order_by(cls.id).limit(limit)).all()
