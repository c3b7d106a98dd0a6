"""The committed migrations build the schema the models describe, on every engine."""
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from app import db

ROOT = Path(__file__).resolve().parent.parent


def test_models_and_migrations_agree(app):
    """Fails when a model changed without a migration (run `flask db migrate`)."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_database_is_at_the_single_migration_head(app):
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert len(script.get_heads()) == 1
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == script.get_current_head()
    assert current_app.extensions["migrate"].directory == str(ROOT / "migrations")


def test_plain_flask_db_upgrade_works_from_the_project_root(tmp_path):
    """No FLASK_APP, no DATABASE_URL: app.py is found and SQLite lands in the instance folder."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("app.py", "config.py"):
        (project / name).write_bytes((ROOT / name).read_bytes())
    (project / "backend").symlink_to(ROOT / "backend")
    (project / "migrations").symlink_to(ROOT / "migrations")
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (project / "instance" / "deployments.db").exists()
