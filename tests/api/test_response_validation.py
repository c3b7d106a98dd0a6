"""Answers are checked against their schema where VALIDATE_RESPONSES says so: in tests and development,
not in production (where the check costs every request and the tests have checked the shapes)."""
import logging

from backend.api import deployments as deployments_api
from config import DevelopmentConfig, ProductionConfig, TestingConfig


def _a_page_without_its_fields(*args, **kwargs):
    return {"deployments": []}  # no total, pages, page, per_page or next_cursor: breaks DeploymentPage


def test_tests_and_development_check_answers_and_production_does_not():
    assert TestingConfig.VALIDATE_RESPONSES is True
    assert DevelopmentConfig.VALIDATE_RESPONSES is True
    assert ProductionConfig.VALIDATE_RESPONSES is False


def test_an_answer_that_breaks_its_schema_is_a_500_when_checked(app, client, monkeypatch, caplog):
    monkeypatch.setattr(deployments_api.service, "list_deployments", _a_page_without_its_fields)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/deployments")
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    assert any("does not match its schema" in r.getMessage() for r in caplog.records)


def test_unchecked_answers_go_out_as_the_route_made_them(app, client, monkeypatch):
    app.config["VALIDATE_RESPONSES"] = False
    monkeypatch.setattr(deployments_api.service, "list_deployments", _a_page_without_its_fields)
    response = client.get("/api/deployments")
    assert response.status_code == 200 and response.get_json() == {"success": True, "deployments": []}


def test_requests_are_validated_either_way(app, client):
    app.config["VALIDATE_RESPONSES"] = False
    response = client.get("/api/deployments?per_page=0")
    assert response.status_code == 422 and "per_page" in response.get_json()["error"]["fields"]
