"""Users of the platform and their API tokens (stored as hashes only)."""
import hashlib
import uuid

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, func, select
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.types import UTCDateTime, utcnow

ROLES = ("admin", "member")
QUOTA_KEYS = ("deployments", "cores", "memory", "disk")


def hash_token(token):
    """The stored form of a token: SHA-256 suffices for 256 random bits (no dictionary to try)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    disabled_at = mapped_column(UTCDateTime)
    # Per-user limits; NULL takes the configured default (QUOTA_*).
    max_deployments: Mapped[int | None] = mapped_column(Integer)
    max_cores: Mapped[int | None] = mapped_column(Integer)
    max_memory: Mapped[int | None] = mapped_column(Integer)
    max_disk: Mapped[int | None] = mapped_column(Integer)
    # Outbound notifications may target loopback and private addresses (an admin's decision).
    allow_private_targets: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The argon2id hash of the user's password (backend/services/passwords.py); NULL: no password, tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(255))

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def is_active(self):
        return self.disabled_at is None

    @property
    def quota_overrides(self):
        return {key: getattr(self, f"max_{key}") for key in QUOTA_KEYS}

    @classmethod
    def get_by_id(cls, user_id):
        try:
            parsed = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
        except (ValueError, TypeError, AttributeError):
            return None
        return db.session.get(cls, parsed)

    @classmethod
    def get_by_username(cls, username):
        return db.session.scalars(select(cls).where(cls.username == username)).first()

    @classmethod
    def count_admins(cls):
        return db.session.scalar(select(func.count()).select_from(cls).where(
            cls.role == "admin", cls.disabled_at.is_(None)))


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    # The first characters of the token, to recognise it in a list; the rest is only in the hash.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = mapped_column(UTCDateTime)
    last_used_at = mapped_column(UTCDateTime)
    revoked_at = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_tokens_user", "user_id", "created_at"),)

    @classmethod
    def find(cls, token):
        return db.session.scalars(select(cls).where(cls.token_hash == hash_token(token))).first()

    @classmethod
    def find_with_user(cls, token):
        """(token row, its user) in one query, or None: every authenticated request asks this."""
        row = db.session.execute(select(cls, User).join(User, User.id == cls.user_id)
                                 .where(cls.token_hash == hash_token(token))).first()
        return tuple(row) if row is not None else None

    @classmethod
    def for_user(cls, user_id):
        return db.session.scalars(select(cls).where(cls.user_id == user_id)
                                  .order_by(cls.created_at.desc(), cls.id)).all()

    def usable(self, now=None):
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
