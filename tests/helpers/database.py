"""The database engines the suite runs on, each worker's own databases on them, and their schema.

SQLite always runs. PostgreSQL and MariaDB run when TEST_POSTGRES_URL and TEST_MYSQL_URL are set. Under
pytest-xdist each worker gets databases of its own on those servers (the URL's database name with _gw0,
_gw1, ... appended, created when missing).
"""
import os

from sqlalchemy import MetaData, create_engine, delete, text
from sqlalchemy.engine import make_url

from app import db
from config import normalize_database_url
from tests.helpers.apps import create_test_app

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; "" without


def worker_number():
    """This test worker's number under xdist (0 without)."""
    return int(WORKER[2:]) if WORKER.startswith("gw") else 0


def worker_database_url(url):
    """url with this worker's own database name (unchanged without xdist)."""
    if not url:
        return None
    parsed = make_url(normalize_database_url(url))
    if WORKER:
        parsed = parsed.set(database=f"{parsed.database}_{WORKER}")
    return parsed.render_as_string(hide_password=False)


ENGINE_URLS = {
    "sqlite": None,
    "postgresql": worker_database_url(os.environ.get("TEST_POSTGRES_URL")),
    "mysql": worker_database_url(os.environ.get("TEST_MYSQL_URL")),
}


def ensure_database(url):
    """Create the database url names when the server does not have it yet (a worker's first run)."""
    parsed = make_url(url)
    admin_db = "postgres" if parsed.get_backend_name() == "postgresql" else "mysql"  # the servers' own
    engine = create_engine(parsed.set(database=admin_db), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                     {"name": parsed.database})
                if not exists:
                    conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            else:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"))
    finally:
        engine.dispose()


def drop_everything(url):
    """Drop every table in the database behind url, alembic_version included."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            metadata = MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
    finally:
        engine.dispose()


def empty_tables(url):
    """Delete every row of the model tables behind url, keeping the schema."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(delete(table))
    finally:
        engine.dispose()


def build_schema(url):
    """Run the migrations into an empty database, as `flask db upgrade` would."""
    from flask_migrate import upgrade

    app = create_test_app(SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        db.engine.dispose()
