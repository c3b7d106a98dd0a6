"""/health, /api/frameworks and the OpenAPI document."""
import importlib
import pkgutil

from pydantic import BaseModel

import backend.schemas
from app import db
from backend.frameworks import FRAMEWORKS
from tests.helpers.apps import create_test_app


def test_health_checks_the_database_and_says_proxmox_is_down(client):
    # The suite's app has Proxmox configured on a port that refuses connections.
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "proxmox": "unreachable"}


def test_health_says_when_proxmox_answers_and_when_none_is_configured(database_url, fake):
    from backend.simulation.runtime import settings_for

    answering = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=settings_for(fake))
    assert answering.test_client().get("/health").get_json()["proxmox"] == "ok"
    missing = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=None)
    assert missing.test_client().get("/health").get_json() == {
        "status": "ok", "database": "ok", "proxmox": "not_configured"}


def get_without_database(path):
    """GET path from an app whose database server does not answer."""
    app = create_test_app(SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:1/none",
                          SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}})
    with app.app_context():
        # The token cannot be checked either: that lookup is what meets the outage.
        response = app.test_client().get(path, token="paas_" + "x" * 43)
        db.engine.dispose()
    return response


def test_health_is_503_when_the_database_is_unreachable():
    response = get_without_database("/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable", "proxmox": "not_configured"}


def test_an_api_call_during_a_database_outage_is_503_in_the_error_shape():
    response = get_without_database("/api/deployments")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"]["code"] == "database_unavailable"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_the_framework_catalogue_lists_what_can_be_deployed(client):
    body = client.get("/api/frameworks").get_json()
    keys = {f["key"] for f in body["frameworks"]}
    assert {"django", "flask", "fastapi", "express", "nextjs", "static"} <= keys
    for framework in body["frameworks"]:
        assert framework["display_name"] and framework["language"] and framework["start_command"]
        assert 1 <= framework["default_port"] <= 65535
    assert keys == set(FRAMEWORKS)


def test_the_openapi_document_describes_every_api_route(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        if (not rule.rule.startswith("/api/") or rule.rule.startswith("/api/docs")
                or rule.endpoint.startswith("openapi")):
            continue
        if rule.rule == "/api/openapi.json":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented
    create = document["paths"]["/api/deployments"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "deployment_type", "framework", "github_url"}


def test_schema_names_are_unique_across_the_schema_modules():
    # The OpenAPI document names a component by the schema's name alone (backend/api/spec.py: component_name).
    modules = [importlib.import_module(f"backend.schemas.{info.name}")
               for info in pkgutil.iter_modules(backend.schemas.__path__)]
    owners = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                owners.setdefault(name, set()).add(module.__name__)
    assert len(owners) > 50
    assert {name: where for name, where in owners.items() if len(where) > 1} == {}


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs/swagger/")
    assert response.status_code == 200
    assert b"openapi.json" in response.data
