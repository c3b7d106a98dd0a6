"""Environment variables: encrypted at rest with the configured key, masked in every response."""
from sqlalchemy import text

from backend.extensions import db
from tests.helpers.api import deployment_payload
from tests.helpers.apps import create_test_app

SECRET = "postgres://app:hunter2-very-secret@db/app"


def test_values_are_encrypted_at_rest_and_masked(client, app):
    created = client.post("/api/deployments", json=deployment_payload(env={"DATABASE_URL": SECRET, "DEBUG": "0"}))
    assert created.status_code == 201
    body = created.get_json()["deployment"]
    assert body["env"] == {"DATABASE_URL": "********", "DEBUG": "********"}
    stored = db.session.execute(text("SELECT env_encrypted FROM deployments")).scalar_one()
    assert stored.startswith("gAAAA") and "hunter2" not in stored and "DATABASE_URL" not in stored

    got = client.get(f"/api/deployments/{body['id']}/env").get_json()
    assert got["env"] == {"DATABASE_URL": "********", "DEBUG": "********"}
    changed = client.patch(f"/api/deployments/{body['id']}/env", json={"DEBUG": None, "NEW": "x"})
    # Not running: the change waits for the next release.
    assert changed.status_code == 200 and changed.get_json()["release"] is None
    assert changed.get_json()["env"] == {"DATABASE_URL": "********", "NEW": "********"}
    assert "hunter2" not in client.get(f"/api/deployments/{body['id']}/history").get_data(as_text=True)


def test_another_key_cannot_read_them(database_url, client):
    client.post("/api/deployments", json=deployment_payload(env={"TOKEN": SECRET}))
    other = create_test_app(SQLALCHEMY_DATABASE_URI=database_url,
                            ENV_ENCRYPTION_KEY="Tn7pN7cYq8gB0y0mX9v1oQvJ3aP4nqk2kq6bqg0Zb2E=")
    with other.app_context():
        from backend.models import Deployment
        from backend.services import envvars

        deployment = Deployment.get_all()[0]
        assert deployment.masked_env == {}
        try:
            envvars.decrypt(deployment.env_encrypted)
        except envvars.SecretsUnavailable as exc:
            assert "ENV_ENCRYPTION_KEY" in str(exc)
        else:
            raise AssertionError("decrypted with the wrong key")
        db.session.remove()
        db.engine.dispose()


def test_a_generated_key_file_is_private(tmp_path):
    app = create_test_app(ENV_ENCRYPTION_KEY=None)
    app.instance_path = str(tmp_path)
    from backend.services import envvars

    with app.app_context():
        token = envvars.encrypt({"A": "b"})
        assert envvars.decrypt(token) == {"A": "b"}
    assert (tmp_path / "env.key").stat().st_mode & 0o777 == 0o600


def test_bad_bodies(client):
    created = client.post("/api/deployments", json=deployment_payload()).get_json()["deployment"]
    url = f"/api/deployments/{created['id']}/env"
    assert client.patch(url, data="x", content_type="text/plain").status_code == 415
    assert client.patch(url, json=[]).status_code == 422
    assert client.patch(url, json={}).status_code == 422
    assert client.patch(url, json={"A": 1}).status_code == 422
    assert client.patch(url, json={"A": "x" * 40000}).status_code == 422
