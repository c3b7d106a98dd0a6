"""manage_db.py on every engine: init, reset, seed, stats, backup and restore, set-password, driven through click."""
import ipaddress
import json
import re
import shutil
import uuid
from datetime import UTC, datetime

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, delete, insert, inspect, select

import manage_db
from app import db
from backend.models import AuditEntry, Deployment, User
from backend.rules import check_branch, check_framework, check_github_url, check_name, check_tags
from backend.services import backup as backup_service
from backend.services.backup import reset_sequence
from backend.services.database import SAMPLE_DEPLOYMENTS, head_revision
from backend.services.deployments import resolve_resources
from manage_db import cli
from tests.helpers.accounts import make_user
from tests.helpers.apps import create_test_app
from tests.helpers.database import ENGINE_URLS, build_schema, drop_everything, empty_tables

SAMPLE_COUNT = len(SAMPLE_DEPLOYMENTS)
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def invoke(app, *args, input=None):
    """Run a manage_db command against app's database, as `python manage_db.py ARGS` would."""
    return CliRunner().invoke(cli, list(args), obj=app, input=input)


def succeeded(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def failed_cleanly(result):
    """A user error: exit status 1 and one 'Error:' line on stderr, no traceback."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def by_key(table, rows):
    """Rows in primary key order as text: MariaDB's native uuid sorts differently from the others."""
    return sorted(rows, key=lambda row: [str(row[c.name]) for c in table.primary_key.columns])


def all_rows(app):
    """Every row of every model table, computed columns included, in an engine-neutral order."""
    with app.app_context(), db.engine.connect() as conn:
        return {table.name: by_key(table, [dict(row) for row in conn.execute(select(table)).mappings()])
                for table in db.metadata.sorted_tables}


def deployments(app):
    return all_rows(app)["deployments"]


def revision_of(app):
    with app.app_context(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_drift(app):
    with app.app_context(), db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)


def insert_tricky_deployment(app):
    """A row with everything a backup must carry exactly: microseconds, a user id, nested JSON, non-ASCII."""
    values = {
        "id": uuid.uuid4(), "name": "x" * 63, "deployment_type": "vm", "framework": "django",
        "github_url": "https://github.com/django/django", "branch": "feature/ünïcode",
        "resources": {"cores": 16, "memory": 32768, "disk": 500, "extra": {"list": [1, 2.5, None, True, "café ☃"]}},
        "tags": ["a", "b+c", "ß"], "status": "failed", "node": "pve-3", "vm_id": 100, "ip_address": "2001:db8::7",
        "error_message": 'line one\nline "two" \\ 😀', "user_id": uuid.uuid4(),
        "created_at": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        "updated_at": datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=UTC),
        "deployed_at": datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC),
        "deleted_at": None, "version": 7,
    }
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(Deployment.__table__), values)
    return values


def delete_all_rows(app):
    with app.app_context(), db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture
def make_app():
    """Build extra apps on given URLs; their connection pools are closed after the test."""
    apps = []

    def make(url, config_name="testing", **overrides):
        app = create_test_app(config_name, SQLALCHEMY_DATABASE_URI=url, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def empty_database_url(engine_name, migrated_urls, tmp_path):
    """A database with no tables at all; PostgreSQL and MariaDB get their migrated schema back afterwards."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = migrated_urls(engine_name)
    drop_everything(url)
    try:
        yield url
    finally:
        # Rebuilt by the migrations, as the other tests expect, not by init's create_all.
        drop_everything(url)
        build_schema(url)


# -- init ----------------------------------------------------------------------


def test_init_on_an_empty_database_creates_the_schema_and_stamps_the_head(empty_database_url, make_app):
    app = make_app(empty_database_url)

    result = succeeded(invoke(app, "init"))

    assert "Created the missing tables and stamped the migration head" in result.stdout
    with app.app_context():
        head = head_revision()
        assert set(inspect(db.engine).get_table_names()) >= {"deployments", "alembic_version"}
    assert revision_of(app) == head
    assert schema_drift(app) == []
    # The stamp tells a later `flask db upgrade` that nothing is left to do (else it would re-create tables).
    with app.app_context():
        flask_migrate.upgrade()
    assert revision_of(app) == head


def test_init_twice_is_harmless_and_keeps_the_data(empty_database_url, make_app):
    app = make_app(empty_database_url)
    succeeded(invoke(app, "init"))
    succeeded(invoke(app, "seed"))

    again = succeeded(invoke(app, "init"))

    assert "already at head" in again.stdout
    assert len(deployments(app)) == SAMPLE_COUNT
    assert schema_drift(app) == []


def test_init_on_a_migrated_database_leaves_it_at_head(app):
    result = succeeded(invoke(app, "init"))

    assert "already at head" in result.stdout
    assert revision_of(app) == head_revision()


# -- reset ---------------------------------------------------------------------


def test_reset_is_refused_in_production_even_with_yes(app, database_url, make_app):
    succeeded(invoke(app, "seed"))
    production = make_app(database_url, "production", SECRET_KEY="x" * 32)

    error = failed_cleanly(invoke(production, "reset", "--yes"))

    assert "production" in error
    assert len(deployments(app)) == SAMPLE_COUNT


def test_reset_asks_first_and_answering_no_keeps_the_data(app):
    succeeded(invoke(app, "seed"))

    result = invoke(app, "reset", input="n\n")

    assert result.exit_code == 1
    assert "Drop all tables and data in" in result.output
    assert "Aborted" in result.output
    assert len(deployments(app)) == SAMPLE_COUNT


def test_reset_with_yes_empties_the_database_and_rebuilds_it_from_the_migrations(app):
    succeeded(invoke(app, "seed"))

    result = succeeded(invoke(app, "reset", "--yes"))

    assert "rebuilt the schema" in result.stdout
    assert deployments(app) == []
    assert revision_of(app) == head_revision()
    assert schema_drift(app) == []


def test_reset_answered_yes_at_the_prompt_also_resets(app):
    succeeded(invoke(app, "seed"))

    succeeded(invoke(app, "reset", input="y\n"))

    assert deployments(app) == []


# -- seed ----------------------------------------------------------------------


def test_seed_twice_adds_nothing_the_second_time(app):
    first = succeeded(invoke(app, "seed"))
    second = succeeded(invoke(app, "seed"))

    assert f"Added {SAMPLE_COUNT} sample deployments" in first.stdout
    assert "Added 0 sample deployments" in second.stdout
    # The deleted sample has no live name, so this also shows it is looked up among deleted rows.
    assert len(deployments(app)) == SAMPLE_COUNT


def test_seed_covers_both_types_and_many_statuses_with_valid_values(app):
    succeeded(invoke(app, "seed"))
    rows = deployments(app)

    assert {r["deployment_type"] for r in rows} == {"vm", "lxc"}
    assert {r["status"].value for r in rows} >= {"running", "stopped", "failed", "pending", "deploying", "deleted"}
    assert len({r["framework"] for r in rows}) >= 4
    for row in rows:
        check_name(row["name"])
        check_framework(row["framework"])
        check_github_url(row["github_url"])
        check_branch(row["branch"])
        assert check_tags(row["tags"]) == row["tags"]
        assert resolve_resources(row["deployment_type"], row["resources"]) == row["resources"]
        assert row["created_at"] <= row["updated_at"]
    for row in (r for r in rows if r["status"].value == "running"):
        assert row["node"] and row["vm_id"] >= 9100 and row["deployed_at"]
        address = ipaddress.ip_address(row["ip_address"])
        assert address in ipaddress.ip_network("192.0.2.0/24") or address in ipaddress.ip_network("10.0.0.0/8")
    for row in rows:
        assert (row["error_message"] is not None) == (row["status"].value == "failed")
        assert (row["deleted_at"] is not None) == (row["status"].value == "deleted")
        assert (row["active_name"] is None) == (row["status"].value == "deleted")


# -- stats ---------------------------------------------------------------------


def stats_table(output):
    return {line.rsplit(maxsplit=1)[0]: line.rsplit(maxsplit=1)[1] for line in output.splitlines() if line}


def test_stats_prints_counts_by_status_and_type_and_the_total(app):
    succeeded(invoke(app, "seed"))
    insert_tricky_deployment(app)  # one more vm, failed

    result = succeeded(invoke(app, "stats"))

    table = stats_table(result.stdout)
    assert table["Status"] == table["Type (deleted included)"] == "Count"
    expected = {"pending": 1, "provisioning": 0, "deploying": 1, "running": 3, "stopped": 1, "failed": 2,
                "deleting": 0, "deleted": 1, "vm": 5, "lxc": 4, "Total": SAMPLE_COUNT + 1}
    assert {k: int(v) for k, v in table.items() if k in expected} == expected
    # Aligned: labels padded to one width, counts right-aligned, so every line is as long.
    assert len({len(line) for line in result.stdout.splitlines() if line}) == 1


def test_stats_on_an_empty_database_shows_zeros(app):
    table = stats_table(succeeded(invoke(app, "stats")).stdout)

    assert table["running"] == table["vm"] == table["Total"] == "0"


# -- backup and restore on one engine -------------------------------------------


def test_backup_then_restore_gives_back_every_row_exactly(app, tmp_path):
    succeeded(invoke(app, "seed"))
    tricky = insert_tricky_deployment(app)
    before = all_rows(app)
    path = tmp_path / "backup.json"

    succeeded(invoke(app, "backup", str(path)))
    delete_all_rows(app)
    result = succeeded(invoke(app, "restore", str(path)))

    # The suite's admin and its token are rows too.
    assert f"Restored {SAMPLE_COUNT + 3} rows (" in result.stdout
    counted = f"deployments: {SAMPLE_COUNT + 1}, users: 1, api_tokens: 1, backups: 0, deployment_events: 0, "
    assert counted in result.stdout
    assert all_rows(app) == before
    document = json.loads(path.read_text())
    assert document["format"] == "proxmox-paas-backup" and document["version"] == 1
    assert document["alembic_revision"] == head_revision()
    assert TIMESTAMP_RE.fullmatch(document["created_at"])
    saved = next(r for r in document["tables"]["deployments"] if r["id"] == str(tricky["id"]))
    assert "active_name" not in saved  # generated by the database, not restored
    assert saved["created_at"] == "2024-02-29T23:59:59.999999+00:00"
    assert saved["deployed_at"] == "2024-03-01T12:00:00.000000+00:00"
    assert saved["user_id"] == str(tricky["user_id"])
    assert saved["resources"] == tricky["resources"] and saved["tags"] == tricky["tags"]
    assert saved["error_message"] == tricky["error_message"]


def test_backup_to_dash_writes_the_document_to_stdout(app):
    succeeded(invoke(app, "seed"))

    result = succeeded(invoke(app, "backup", "-"))

    assert len(json.loads(result.stdout)["tables"]["deployments"]) == SAMPLE_COUNT
    assert "Backed up" in result.stderr


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(app, tmp_path):
    succeeded(invoke(app, "seed"))
    path = tmp_path / "backup.json"
    succeeded(invoke(app, "backup", str(path)))
    backed_up = all_rows(app)
    insert_tricky_deployment(app)
    current = all_rows(app)

    error = failed_cleanly(invoke(app, "restore", str(path)))

    assert "not empty" in error and "--force" in error
    assert all_rows(app) == current
    succeeded(invoke(app, "restore", str(path), "--force"))
    assert all_rows(app) == backed_up


def test_restore_refuses_a_backup_made_at_another_revision(app, tmp_path):
    path = tmp_path / "backup.json"
    succeeded(invoke(app, "backup", str(path)))
    document = json.loads(path.read_text())
    document["alembic_revision"] = "0123456789ab"
    path.write_text(json.dumps(document))

    error = failed_cleanly(invoke(app, "restore", str(path)))

    assert "0123456789ab" in error and head_revision() in error


@pytest.mark.parametrize("content,message", [
    (None, "No such file"),
    ("this is not json", "not valid JSON"),
    ('["a list"]', "format"),
    ('{"format": "something-else", "version": 1, "tables": {}}', "format"),
    ('{"format": "proxmox-paas-backup", "version": 2, "tables": {}}', "version 2"),
    ('{"format": "proxmox-paas-backup", "version": 1, "tables": {"deployments": {}}}', "lists of row objects"),
    ('{"format": "proxmox-paas-backup", "version": 1, "tables": {"widgets": []}}', "widgets"),
])
def test_restore_rejects_missing_files_and_files_that_are_not_backups(app, tmp_path, content, message):
    path = tmp_path / "backup.json"
    if content is not None:
        path.write_text(content)

    assert message in failed_cleanly(invoke(app, "restore", str(path)))


@pytest.mark.parametrize("breakage,message", [
    ("duplicate_id", "refused the rows of deployments"),
    ("bad_uuid", "is not a valid value"),
    ("naive_datetime", "cannot be stored"),
    ("missing_column", "missing: ['version']"),
])
def test_a_restore_that_fails_midway_leaves_the_database_as_it_was(app, tmp_path, monkeypatch, breakage, message):
    monkeypatch.setattr(backup_service, "CHUNK_SIZE", 3)  # so some chunks are in before the bad row
    succeeded(invoke(app, "seed"))
    path = tmp_path / "backup.json"
    succeeded(invoke(app, "backup", str(path)))
    document = json.loads(path.read_text())
    rows = document["tables"]["deployments"]
    last = rows[-1]
    if breakage == "duplicate_id":
        last["id"] = rows[0]["id"]
    elif breakage == "bad_uuid":
        last["user_id"] = "not-a-uuid"
    elif breakage == "naive_datetime":
        last["created_at"] = "2024-01-01T00:00:00"
    else:
        del last["version"]
    path.write_text(json.dumps(document))
    insert_tricky_deployment(app)
    before = all_rows(app)

    error = failed_cleanly(invoke(app, "restore", str(path), "--force"))

    assert message in error
    assert all_rows(app) == before  # the forced delete was rolled back with the inserts


def test_restore_into_a_new_sqlite_database_builds_its_schema_first(app, make_app, tmp_path):
    succeeded(invoke(app, "seed"))
    insert_tricky_deployment(app)
    path = tmp_path / "backup.json"
    succeeded(invoke(app, "backup", str(path)))
    fresh = make_app(f"sqlite:///{tmp_path / 'fresh.db'}")

    succeeded(invoke(fresh, "restore", str(path)))

    assert revision_of(fresh) == head_revision()
    assert all_rows(fresh) == all_rows(app)


def test_restore_moves_a_postgresql_sequence_past_the_restored_ids():
    url = ENGINE_URLS["postgresql"]
    if not url:
        pytest.skip("TEST_POSTGRES_URL is not set")
    # No model has an integer key today, so a throwaway table stands in for a future one.
    probe = Table("restore_sequence_probe", MetaData(), Column("id", Integer, primary_key=True), Column("x", String(8)))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            probe.create(conn)
            conn.execute(insert(probe), [{"id": 1, "x": "a"}, {"id": 41, "x": "b"}])
            reset_sequence(conn, probe)
            new_id = conn.execute(insert(probe).values(x="c").returning(probe.c.id)).scalar_one()
        assert new_id == 42
    finally:
        with engine.begin() as conn:
            probe.drop(conn, checkfirst=True)
        engine.dispose()


# -- across engines --------------------------------------------------------------


@pytest.fixture
def server_databases(migrated_urls):
    """The PostgreSQL and MariaDB test databases, migrated, emptied again after the test."""
    missing = [name for name in ("postgresql", "mysql") if not ENGINE_URLS[name]]
    if missing:
        pytest.skip(f"needs TEST_POSTGRES_URL and TEST_MYSQL_URL ({', '.join(missing)} not set)")
    urls = {name: migrated_urls(name) for name in ("postgresql", "mysql")}
    yield urls
    for url in urls.values():  # as the database_url fixture does after each test
        empty_tables(url)


def test_a_backup_travels_from_sqlite_through_postgresql_and_mariadb_back_to_sqlite_unchanged(
        server_databases, migrated_urls, make_app, tmp_path):
    template = migrated_urls("sqlite").removeprefix("sqlite:///")
    shutil.copy(template, tmp_path / "source.db")
    source = make_app(f"sqlite:///{tmp_path / 'source.db'}")
    succeeded(invoke(source, "seed"))
    insert_tricky_deployment(source)
    original = all_rows(source)
    assert len(original["deployments"]) == SAMPLE_COUNT + 1

    hops = [source, make_app(server_databases["postgresql"]), make_app(server_databases["mysql"]),
            make_app(f"sqlite:///{tmp_path / 'destination.db'}")]
    documents = []
    for number, (here, there) in enumerate(zip(hops, hops[1:], strict=False)):
        path = tmp_path / f"hop{number}.json"
        succeeded(invoke(here, "backup", str(path)))
        documents.append(json.loads(path.read_text()))
        succeeded(invoke(there, "restore", str(path)))
        assert all_rows(there) == original, f"rows changed on the way into {there.config['SQLALCHEMY_DATABASE_URI']}"

    succeeded(invoke(hops[-1], "backup", str(tmp_path / "last.json")))
    documents.append(json.loads((tmp_path / "last.json").read_text()))
    # Every engine wrote the very same rows, value for value (in its own key order).
    tables = [{name: by_key(db.metadata.tables[name], rows) for name, rows in d["tables"].items()} for d in documents]
    assert all(t == tables[0] for t in tables)


# -- set-password ------------------------------------------------------------------------------------------

PASSWORD = "a passphrase of several words"


def password_hash_of(app, username):
    with app.app_context():
        value = User.get_by_username(username).password_hash
        db.session.remove()
    return value


def logs_in(app, username, password):
    response = app.test_client().post("/api/auth/login", token=None, json={
        "username": username, "password": password, "token_name": "cli"})
    return response.status_code == 201


def test_set_password_reads_the_first_line_of_stdin_and_the_user_logs_in_with_it(app):
    make_user(app, "alice")

    result = succeeded(invoke(app, "set-password", "alice", "--password-stdin", input=f"{PASSWORD}\r\nmore\n"))

    assert "Set the password of alice" in result.stderr
    assert PASSWORD not in result.output
    assert password_hash_of(app, "alice").startswith("$argon2id$")
    assert logs_in(app, "alice", PASSWORD)
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_set")).one()
        assert entry.target == "user alice" and entry.details == {"via": "manage_db.py"}
        db.session.remove()


def test_set_password_asks_twice_on_a_terminal_without_echoing(app, monkeypatch):
    make_user(app, "alice")
    monkeypatch.setattr(manage_db, "_stdin_is_a_terminal", lambda: True)

    result = succeeded(invoke(app, "set-password", "alice", input=f"{PASSWORD}\n{PASSWORD}\n"))

    assert "New password for alice" in result.output and "Repeat it" in result.output
    assert PASSWORD not in result.output
    assert logs_in(app, "alice", PASSWORD)


def test_set_password_keeps_asking_while_the_two_answers_differ(app, monkeypatch):
    make_user(app, "alice")
    monkeypatch.setattr(manage_db, "_stdin_is_a_terminal", lambda: True)

    result = invoke(app, "set-password", "alice", input=f"{PASSWORD}\nanother passphrase\n")

    assert result.exit_code == 1 and "do not match" in result.output  # then stdin ended: aborted
    assert password_hash_of(app, "alice") is None


def test_set_password_without_a_terminal_asks_for_password_stdin(app):
    make_user(app, "alice")

    error = failed_cleanly(invoke(app, "set-password", "alice", input=f"{PASSWORD}\n"))

    assert "--password-stdin" in error
    assert password_hash_of(app, "alice") is None


@pytest.mark.parametrize("line,reason", [
    ("too short", "needs at least 12"),
    ("", "empty or only whitespace"),
    (" " * 20, "empty or only whitespace"),
    ("x" * 1025, "more than 1024"),
])
def test_set_password_refuses_a_weak_password_saying_why(app, line, reason):
    make_user(app, "alice", password=PASSWORD)

    error = failed_cleanly(invoke(app, "set-password", "alice", "--password-stdin", input=f"{line}\n"))

    assert reason in error
    if line.strip():
        assert line not in error
    assert logs_in(app, "alice", PASSWORD)  # the old password still holds


def test_set_password_of_an_unknown_user_fails_before_reading_a_password(app):
    error = failed_cleanly(invoke(app, "set-password", "ghost", "--password-stdin", input=f"{PASSWORD}\n"))

    assert "no user 'ghost'" in error
