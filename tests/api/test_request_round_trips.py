"""What a request asks of the database: a create commits once (row, event and audit entry together); an API
read on PostgreSQL runs in autocommit (no BEGIN/ROLLBACK around it) and leaves no autocommit behind."""
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app import db
from backend.models import AuditEntry, Deployment, DeploymentEvent
from tests.helpers.api import deployment_payload


def test_a_create_commits_once_with_its_event_and_audit_entry(app, client):
    client.get("/api/deployments")  # the token's first use is recorded (its own commit) before we count
    commits = []

    def count(session):
        commits.append(session)

    event.listen(Session, "after_commit", count)
    try:
        response = client.post("/api/deployments", json=deployment_payload(name="once"))
    finally:
        event.remove(Session, "after_commit", count)
    assert response.status_code == 201
    assert len(commits) == 1
    deployment_id = Deployment.get_by_name("once").id
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.deployment_id == deployment_id)).all()
    assert entry.action == "deployment.create" and entry.details["framework"] == "flask"
    assert db.session.scalars(select(DeploymentEvent).where(DeploymentEvent.deployment_id == deployment_id)).all()


def test_a_refused_create_writes_no_audit_entry(app, client, make_deployment):
    make_deployment(name="taken")
    assert client.post("/api/deployments", json=deployment_payload(name="taken")).status_code == 409
    assert len(db.session.scalars(select(AuditEntry).where(AuditEntry.target == "taken")).all()) == 1


def _autocommit_of_each_statement(app):
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0], conn.connection.dbapi_connection.autocommit
                     if app.extensions["sqlalchemy"].engine.dialect.name == "postgresql" else None))

    return seen, record


def test_reads_run_in_autocommit_on_postgresql_only(app, client, make_deployment, engine_name):
    deployment = make_deployment(name="read-me")
    db.session.commit()  # the test's own transaction ends: the request opens its own
    seen, record = _autocommit_of_each_statement(app)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get(f"/api/deployments/{deployment['id']}").status_code == 200
        assert client.get("/api/deployments").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert seen and all(kind == "SELECT" for kind, _ in seen)
    expected = True if engine_name == "postgresql" else None
    assert {autocommit for _, autocommit in seen} == {expected}


def test_a_write_after_a_read_is_in_a_transaction_again(app, client, make_deployment, engine_name):
    deployment = make_deployment(name="then-write")
    db.session.commit()
    assert client.get(f"/api/deployments/{deployment['id']}").status_code == 200
    seen, record = _autocommit_of_each_statement(app)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.patch(f"/api/deployments/{deployment['id']}", json={"tags": ["x"]}).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert seen and all(autocommit in (False, None) for _, autocommit in seen)
