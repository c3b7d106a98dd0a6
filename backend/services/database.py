"""Looking after the database itself: bring it to the migration head, rebuild it, seed and count it."""
import logging
from dataclasses import dataclass
from datetime import timedelta

import flask_migrate
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import MetaData, column, inspect, select, table, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from backend.errors import Conflict, InvalidState
from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.services.deployments import resolve_resources

VERSION_TABLE = "alembic_version"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitResult:
    action: str  # "upgraded" (the database was under migrations) or "created" (tables made, head stamped)
    revision_before: str | None
    revision_after: str | None


def head_revision():
    """The revision the committed migrations end at."""
    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(connection=None):
    """The revision the database is stamped with, or None when it is not under migrations."""
    if connection is None:
        with db.engine.connect() as conn:
            return current_revision(conn)
    # Read directly: alembic's MigrationContext would log two INFO lines per call.
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.scalar(select(column("version_num")).select_from(table(VERSION_TABLE)))


def database_label():
    """The database URL with its password hidden, for messages."""
    return db.engine.url.render_as_string(hide_password=True)


def init_database():
    """Create what is missing and stand at the migration head; running it again is harmless."""
    before = current_revision()
    if inspect(db.engine).has_table(VERSION_TABLE):
        flask_migrate.upgrade()
        action = "upgraded"
    else:
        # Tables from create_all match the models, which the migrations' head describes;
        # stamping says so, and a later `flask db upgrade` starts from there.
        db.create_all()
        flask_migrate.stamp()
        action = "created"
    return InitResult(action, before, current_revision())


def ensure_resettable():
    """Refuse to wipe a production database, whatever the caller confirmed."""
    if current_app.config.get("CONFIG_NAME") == "production":
        raise InvalidState("refusing to reset a production database (APP_ENV=production)")


def reset_database():
    """Drop every table (alembic_version included) and rebuild the schema from the migrations."""
    ensure_resettable()
    # A session holding a transaction would make PostgreSQL's DROP TABLE wait forever.
    db.session.remove()
    with db.engine.begin() as conn:
        # Reflect rather than use db.metadata, so tables the models no longer know go too.
        existing = MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)
    flask_migrate.upgrade()
    return current_revision()


# -- sample data ---------------------------------------------------------------


# Ages are in days before now; the service turns them into timestamps at seeding time.
SAMPLE_DEPLOYMENTS = (
    dict(name="shop-api", deployment_type="lxc", framework="flask", github_url="https://github.com/pallets/flask",
         resources={"cores": 2, "memory": 1024, "disk": 10}, tags=["shop", "api"], status=DeploymentStatus.RUNNING,
         node="pve1", vm_id=9101, ip_address="192.0.2.11", age=30),
    dict(name="company-blog", deployment_type="vm", framework="django",
         github_url="https://github.com/django/djangoproject.com", resources={"cores": 4, "memory": 4096, "disk": 40},
         tags=["blog"], status=DeploymentStatus.RUNNING, node="pve2", vm_id=9102, ip_address="10.20.0.12", age=21),
    dict(name="landing-page", deployment_type="lxc", framework="static",
         github_url="https://github.com/h5bp/html5-boilerplate", resources={"cores": 1, "memory": 256, "disk": 5},
         tags=["marketing"], status=DeploymentStatus.RUNNING, node="pve1", vm_id=9103, ip_address="192.0.2.13", age=14),
    dict(name="docs-site", deployment_type="lxc", framework="nextjs", github_url="https://github.com/vercel/next.js",
         branch="canary", resources={"cores": 2, "memory": 2048, "disk": 20}, tags=["docs"],
         status=DeploymentStatus.STOPPED, node="pve2", vm_id=9104, age=12),
    dict(name="metrics-api", deployment_type="vm", framework="fastapi", github_url="https://github.com/fastapi/fastapi",
         resources={"cores": 2, "memory": 2048, "disk": 20}, tags=["metrics", "internal"],
         status=DeploymentStatus.FAILED, node="pve1", vm_id=9105,
         error_message="build failed: `pip install -r requirements.txt` exited with status 1", age=7),
    dict(name="webhooks", deployment_type="lxc", framework="express", github_url="https://github.com/expressjs/express",
         resources={"cores": 1, "memory": 512, "disk": 8}, tags=["integrations"], status=DeploymentStatus.DEPLOYING,
         node="pve2", vm_id=9106, ip_address="10.20.0.16", age=1),
    dict(name="chat-frontend", deployment_type="vm", framework="nextjs", github_url="https://github.com/vercel/ai-chatbot",
         resources={"cores": 2, "memory": 4096, "disk": 30}, tags=["chat"], status=DeploymentStatus.PENDING, age=0),
    # Deleted: the guest is gone, so no node, vm_id or address; the row stays for history.
    dict(name="legacy-portal", deployment_type="vm", framework="django", github_url="https://github.com/django/django",
         branch="stable/4.2.x", resources={"cores": 2, "memory": 2048, "disk": 20}, tags=["legacy"],
         status=DeploymentStatus.DELETED, age=60),
)


def _sample_exists(sample):
    if sample["status"] is DeploymentStatus.DELETED:
        # Deleted rows have no active_name, so get_by_name cannot see them.
        return db.session.scalar(select(Deployment.id).where(Deployment.name == sample["name"]).limit(1)) is not None
    return Deployment.get_by_name(sample["name"]) is not None


def _sample_row(sample, now):
    fields = {k: v for k, v in sample.items() if k != "age"}
    fields["resources"] = resolve_resources(sample["deployment_type"], sample["resources"])
    created = now - timedelta(days=sample["age"], hours=2)
    fields["created_at"] = fields["updated_at"] = created
    if sample["status"] in (DeploymentStatus.RUNNING, DeploymentStatus.STOPPED, DeploymentStatus.DEPLOYING):
        fields["deployed_at"] = created + timedelta(minutes=6)
        fields["updated_at"] = created + timedelta(hours=1)
    if sample["status"] is DeploymentStatus.FAILED:
        fields["updated_at"] = created + timedelta(minutes=4)
    if sample["status"] is DeploymentStatus.DELETED:
        fields["deleted_at"] = fields["updated_at"] = created + timedelta(days=20)
    return Deployment(**fields)


def seed_sample_deployments():
    """Add the sample deployments that are not there yet (keyed on name); returns how many were added."""
    now = utcnow()
    added = [_sample_row(s, now) for s in SAMPLE_DEPLOYMENTS if not _sample_exists(s)]
    db.session.add_all(added)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        vm_ids = sorted(s["vm_id"] for s in SAMPLE_DEPLOYMENTS if s.get("vm_id"))
        raise Conflict(
            f"sample data clashes with existing rows (a sample name, or a vm_id in {vm_ids[0]}-{vm_ids[-1]}, "
            "is taken); nothing was added"
        ) from exc
    return len(added)


def deployment_totals():
    """Counts by status and by type (deleted deployments included) and the grand total."""
    by_status = Deployment.status_breakdown()
    return {
        "by_status": by_status,
        "by_type": Deployment.type_breakdown(include_deleted=True),
        "total": sum(by_status.values()),
    }


def database_is_reachable():
    """True when the database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("database unreachable (%s)", exc.__class__.__name__)
        return False
