"""Custom domains: the names besides <name>.<APPS_DOMAIN> that a deployment answers at behind the router."""
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Uuid, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow


class Domain(db.Model):
    """One hostname of one deployment; the unique index makes a name belong to one deployment only."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    deployment_id = mapped_column(Uuid, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False,
                                  index=True)
    hostname: Mapped[str] = mapped_column(String(253), nullable=False, unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @classmethod
    def of_deployment(cls, deployment_id):
        """The custom domains of a deployment, by name."""
        return db.session.scalars(select(cls).where(cls.deployment_id == deployment_id)
                                  .order_by(cls.hostname)).all()

    @classmethod
    def get_by_hostname(cls, hostname):
        return db.session.scalars(select(cls).where(cls.hostname == hostname)).first()
