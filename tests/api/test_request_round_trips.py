"""What a request asks of the database: an API read on PostgreSQL runs in autocommit (no BEGIN/ROLLBACK
around it) and leaves no autocommit behind."""
from sqlalchemy import event

from app import db


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
