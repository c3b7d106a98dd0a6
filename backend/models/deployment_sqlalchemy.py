"""The Deployment model: one row per app the platform runs, kept after deletion."""
import uuid

from flask import current_app, has_app_context
from sqlalchemy import (
    CheckConstraint,
    Computed,
    Enum,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models import sealed
from backend.models.types import UTCDateTime, utcnow
from backend.rules import public_url
from backend.schemas.common import dump
from backend.schemas.deployments import DeploymentRecord
from backend.status import DeploymentStatus, check_transition

DEPLOYMENT_TYPES = ("vm", "lxc")


def _parse_uuid(value):
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


class Deployment(db.Model):
    __tablename__ = "deployments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    # The name while the deployment is not deleted, NULL afterwards. A unique index on
    # it gives "unique among live deployments" on every engine: MariaDB has no partial
    # indexes, but all three accept a unique index on a generated column and allow
    # any number of NULLs in it.
    active_name: Mapped[str | None] = mapped_column(
        String(63),
        Computed("CASE WHEN deleted_at IS NULL THEN name ELSE NULL END", persisted=True),
        unique=True,
    )
    deployment_type: Mapped[str] = mapped_column(
        Enum(*DEPLOYMENT_TYPES, name="deployment_type", native_enum=False,
             create_constraint=True, length=8),
        nullable=False,
    )
    framework: Mapped[str] = mapped_column(String(32), nullable=False)
    github_url: Mapped[str] = mapped_column(String(255), nullable=False)
    branch: Mapped[str] = mapped_column(String(255), nullable=False, default="main")
    resources: Mapped[dict] = mapped_column(db.JSON, nullable=False)
    tags: Mapped[list] = mapped_column(db.JSON, nullable=False, default=list)
    status: Mapped[DeploymentStatus] = mapped_column(
        Enum(DeploymentStatus, name="deployment_status", native_enum=False,
             create_constraint=True, length=16, values_callable=lambda e: [m.value for m in e],
             validate_strings=True),
        nullable=False,
        default=DeploymentStatus.PENDING,
    )
    node: Mapped[str | None] = mapped_column(String(64))
    vm_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Proxmox hands a destroyed guest's VMID out again, so the id is unique among live
    # deployments only (the same generated-column device as active_name).
    active_vm_id: Mapped[int | None] = mapped_column(
        Integer,
        Computed("CASE WHEN deleted_at IS NULL THEN vm_id ELSE NULL END", persisted=True),
        unique=True,
    )
    ip_address: Mapped[str | None] = mapped_column(String(45))
    error_message: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    deployed_at = mapped_column(UTCDateTime)
    deleted_at = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # The background job working on the deployment holds a lease, renewed while it runs, so two
    # deliveries of one job never work on the same guest at once, and a killed worker's lease expires.
    job_owner: Mapped[str | None] = mapped_column(String(64))
    job_lease_until = mapped_column(UTCDateTime)
    # How the app is built and run: the framework's recipe, unless these override it.
    build_command: Mapped[str | None] = mapped_column(Text)
    start_command: Mapped[str | None] = mapped_column(Text)
    release_command: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer)
    health_check_path: Mapped[str | None] = mapped_column(String(255))
    # The user's environment variables: Fernet-encrypted JSON; the key lives in configuration only.
    env_encrypted: Mapped[str | None] = mapped_column(Text)
    # The guest's SSH host key, recorded on first contact and enforced afterwards.
    ssh_host_key: Mapped[str | None] = mapped_column(Text)
    # The release that serves (its version) and the port it listens on.
    live_release: Mapped[int | None] = mapped_column(Integer)
    served_port: Mapped[int | None] = mapped_column(Integer)
    # GitHub push-to-deploy: the webhook's HMAC secret, Fernet-encrypted like the environment.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # Outbound status notifications: where they go and the secret that signs them (encrypted).
    notify_url: Mapped[str | None] = mapped_column(String(2048))
    # A Proxmox snapshot of the guest before each release (None: SNAPSHOT_BEFORE_RELEASE decides).
    snapshot_before_release: Mapped[bool | None] = mapped_column(db.Boolean)
    # Backups: a cron schedule (None: none), Proxmox's prune options for retention (None: the platform's
    # defaults), and when the schedule last fired (the scheduler's compare-and-set, across processes).
    backup_schedule: Mapped[str | None] = mapped_column(String(100))
    backup_keep_last: Mapped[int | None] = mapped_column(Integer)
    backup_keep_daily: Mapped[int | None] = mapped_column(Integer)
    backup_keep_weekly: Mapped[int | None] = mapped_column(Integer)
    backup_scheduled_at = mapped_column(UTCDateTime)
    # A restore the restore job carries out: "release:<version>" (back to that release's snapshot).
    pending_restore: Mapped[str | None] = mapped_column(String(64))
    # Made from a backup (its id) instead of a template: provisioning restores it.
    restore_from: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    notify_secret_encrypted: Mapped[str | None] = mapped_column(Text)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # (column, id) pairs serve both ORDER BY column, id and keyset pagination.
        Index("ix_deployments_name", "name", "id"),
        Index("ix_deployments_created_at", "created_at", "id"),
        Index("ix_deployments_updated_at", "updated_at", "id"),
        Index("ix_deployments_status", "status"),
        CheckConstraint("vm_id IS NULL OR vm_id >= 100", name="vm_id_range"),
    )

    # -- lifecycle -----------------------------------------------------------

    def transition_to(self, target, message=None):
        """Move to another status if the lifecycle table allows it, stamping the times."""
        target = DeploymentStatus(target)
        check_transition(self.status, target)
        now = utcnow()
        self.status = target
        if target is DeploymentStatus.RUNNING:
            self.deployed_at = now
            self.error_message = None
        elif target is DeploymentStatus.FAILED:
            self.error_message = message or self.error_message
        elif target is DeploymentStatus.DELETED:
            self.deleted_at = now
        return self

    @property
    def guest_kind(self):
        """Proxmox's word for the guest: lxc or qemu."""
        return "qemu" if self.deployment_type == "vm" else "lxc"

    @property
    def guest_tag(self):
        """The Proxmox tag that ties a guest to this deployment."""
        return f"paas-{self.id}"

    @property
    def masked_env(self):
        """The environment's keys, values masked (an unreadable store shows as empty)."""
        if not self.env_encrypted:
            return {}
        try:
            return sealed.masked(self.env_encrypted)
        except sealed.SecretsUnavailable:
            return {}

    @property
    def webhook_enabled(self):
        """GitHub push-to-deploy is on: the webhook has a secret."""
        return self.webhook_secret_encrypted is not None

    @property
    def url(self):
        """Where the app answers, once a release serves: its https name behind the router when there is one."""
        if self.status is DeploymentStatus.RUNNING and self.ip_address and self.served_port:
            config = current_app.config if has_app_context() else {}
            if config.get("ROUTER", "none") != "none" and config.get("APPS_DOMAIN"):
                return public_url(self.name, config["APPS_DOMAIN"], config.get("ROUTER_HTTPS_PORT", 443))
            host = f"[{self.ip_address}]" if ":" in self.ip_address else self.ip_address
            return f"http://{host}:{self.served_port}"
        return None

    @property
    def is_deleted(self):
        return self.deleted_at is not None

    # -- queries -------------------------------------------------------------

    @classmethod
    def live(cls):
        """A select of the deployments that are not deleted."""
        return select(cls).where(cls.deleted_at.is_(None))

    @classmethod
    def get_all(cls, include_deleted=False):
        stmt = select(cls) if include_deleted else cls.live()
        return db.session.scalars(stmt.order_by(cls.created_at.desc(), cls.id.desc())).all()

    @classmethod
    def get_by_id(cls, deployment_id):
        """The deployment with this id (deleted ones too), or None; a malformed id is None."""
        parsed = _parse_uuid(deployment_id)
        return db.session.get(cls, parsed) if parsed else None

    @classmethod
    def get_by_name(cls, name):
        """The live deployment of this name, or None."""
        return db.session.scalars(cls.live().where(cls.name == name)).first()

    @classmethod
    def get_by_status(cls, status):
        status = DeploymentStatus(status)
        stmt = select(cls).where(cls.status == status)
        return db.session.scalars(stmt.order_by(cls.created_at.desc(), cls.id.desc())).all()

    @classmethod
    def count_all(cls, include_deleted=False):
        stmt = select(func.count()).select_from(cls)
        if not include_deleted:
            stmt = stmt.where(cls.deleted_at.is_(None))
        return db.session.scalar(stmt)

    @classmethod
    def count_by_status(cls, status):
        status = DeploymentStatus(status)
        return db.session.scalar(select(func.count()).select_from(cls).where(cls.status == status))

    @classmethod
    def statuses(cls, owner=None):
        """(id as text, status value) of every live deployment (of one owner's, if given): one narrow query."""
        stmt = select(cls.id, cls.status).where(cls.deleted_at.is_(None))
        if owner is not None:
            stmt = stmt.where(cls.user_id == owner)
        return [(str(ident), DeploymentStatus(status).value) for ident, status in db.session.execute(stmt)]

    @classmethod
    def fingerprint(cls, owner=None):
        """(how many live deployments, the latest updated_at among them) (of one owner's, if given): one aggregate
        that changes whenever a status does, so a poller reads the statuses themselves only then."""
        stmt = select(func.count(), func.max(cls.updated_at)).where(cls.deleted_at.is_(None))
        if owner is not None:
            stmt = stmt.where(cls.user_id == owner)
        return tuple(db.session.execute(stmt).one())

    @classmethod
    def breakdown(cls, owner=None):
        """Counts per (status, type) pair, deleted included, in one GROUP BY query (of one owner's, if given)."""
        stmt = select(cls.status, cls.deployment_type, func.count()).group_by(cls.status, cls.deployment_type)
        if owner is not None:
            stmt = stmt.where(cls.user_id == owner)
        return {(DeploymentStatus(status), dtype): count for status, dtype, count in db.session.execute(stmt)}

    @classmethod
    def status_breakdown(cls, pairs=None):
        """Every status with its count (zeros included); pass breakdown() to reuse it."""
        counts = {s.value: 0 for s in DeploymentStatus}
        for (status, _), count in (cls.breakdown() if pairs is None else pairs).items():
            counts[status.value] += count
        return counts

    @classmethod
    def type_breakdown(cls, pairs=None, include_deleted=False):
        """Count per deployment type (zeros included); pass breakdown() to reuse it."""
        counts = dict.fromkeys(DEPLOYMENT_TYPES, 0)
        for (status, dtype), count in (cls.breakdown() if pairs is None else pairs).items():
            if include_deleted or status is not DeploymentStatus.DELETED:
                counts[dtype] += count
        return counts

    # -- serialisation -------------------------------------------------------

    def to_dict(self):
        """The deployment in the API's JSON shape (backend/schemas/deployments.py)."""
        return dump(DeploymentRecord, self)

    def __repr__(self):
        return f"<Deployment {self.name} {self.status}>"
