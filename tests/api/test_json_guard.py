"""One guard for every body: each API route that takes POST, PUT, PATCH or DELETE, found by walking
app.url_map, answers malformed bodies with a 4xx in the error shape and never a 5xx, and changes nothing."""
import uuid

import pytest

from backend.jsonbody import MAX_DEPTH, MalformedJson, parse_json, parse_json_object
from tests.helpers.api import error_of, sha256_signature

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
DEEP = b"[" * 10000 + b"]" * 10000
MALFORMED = {
    "deep-arrays": DEEP,
    "deep-objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "just-too-deep": b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    "duplicate-keys": b'{"name": "one", "name": "two"}',
    "nan": b'{"port": NaN}',
    "infinity": b'{"port": -Infinity}',
    "overflowing-number": b'{"port": 1e999}',
    "invalid-utf8": b'{"name": "\xff\xfe"}',
    "lone-surrogate": b'{"name": "\\ud800"}',
    "utf16": '{"name": "x"}'.encode("utf-16"),
    "truncated": b'{"name": ',
}


def body_routes(app):
    """(method, rule) for every API route a body can be sent to."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and not rule.rule.startswith("/api/docs"):
            routes += [(method, rule) for method in sorted(BODY_METHODS & set(rule.methods))]
    return routes


def url_for_rule(rule, ident):
    values = {"ident": ident, "deployment_id": ident, "action": "start", "version": "1",
              "token_id": str(uuid.uuid4()), "backup_id": str(uuid.uuid4()), "hostname": "www.example.org"}
    return rule.build(values, append_unknown=False)[1]


@pytest.fixture
def target(client, make_deployment):
    """A deployment with push-to-deploy on: (its id, the webhook secret)."""
    ident = make_deployment()["id"]
    response = client.post(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 201, response.get_json()
    return ident, response.get_json()["secret"]


def snapshot(client, ident):
    """What a request could change: the deployment, its env, events, releases and the audit log."""
    deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
    return (deployment, client.get(f"/api/deployments/{ident}/env").get_json(),
            client.get(f"/api/deployments/{ident}/events").get_json(),
            client.get(f"/api/deployments/{ident}/releases").get_json(),
            client.get("/api/audit").get_json())


def send(client, method, path, body, secret=None):
    headers = {"Content-Type": "application/json"}
    if path.startswith("/api/webhooks/github/"):
        headers.update({"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-Hub-Signature-256": sha256_signature(secret, body)})
    return client.open(path, method=method, data=body, headers=headers)


def test_the_walk_finds_every_route_that_takes_a_body(app):
    found = {rule.endpoint for _, rule in body_routes(app)}
    assert {"api.create_deployment", "api.update_deployment", "api.patch_env", "api.github_webhook",
            "api.create_user", "api.update_user", "api.create_token", "api.deployment_action",
            "api.delete_deployment", "api.set_notification_target"} <= found
    assert len(body_routes(app)) >= 16


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_every_body_route_answers_malformed_json_with_400(app, client, target, kind):
    ident, secret = target
    before = snapshot(client, ident)
    for method, rule in body_routes(app):
        response = send(client, method, url_for_rule(rule, ident), MALFORMED[kind], secret)
        assert response.status_code == 400, (method, rule.rule, response.status_code, response.get_json())
        assert error_of(response)["code"] == "malformed_json", (method, rule.rule)
    assert snapshot(client, ident) == before


def test_every_body_route_answers_a_body_over_the_limit_with_413(app, client, target):
    ident, secret = target
    before = snapshot(client, ident)
    for method, rule in body_routes(app):
        limit = app.config["WEBHOOK_MAX_BYTES"] if rule.endpoint == "api.github_webhook" \
            else app.config["MAX_CONTENT_LENGTH"]
        body = b'{"name": "' + b"x" * limit + b'"}'
        response = send(client, method, url_for_rule(rule, ident), body, secret)
        assert response.status_code == 413, (method, rule.rule, response.status_code)
        error_of(response)
    assert snapshot(client, ident) == before


def test_a_body_that_is_not_an_object_is_422_and_one_not_sent_as_json_is_415(app, client, target):
    ident, _ = target
    for method, rule in body_routes(app):
        if rule.endpoint == "api.github_webhook":
            continue
        path = url_for_rule(rule, ident)
        listed = client.open(path, method=method, data=b"[1, 2]", content_type="application/json")
        assert listed.status_code == 422, (method, rule.rule, listed.status_code)
        assert error_of(listed)["fields"] == {"body": "must be a JSON object"}
        form = client.open(path, method=method, data=b"name=x", content_type="application/x-www-form-urlencoded")
        assert form.status_code == 415, (method, rule.rule, form.status_code)
        error_of(form)


def test_an_empty_body_is_never_a_5xx(app, client, target):
    ident, _ = target
    for method, rule in body_routes(app):
        for content_type in ("application/json", None):
            response = client.open(url_for_rule(rule, ident), method=method, data=b"", content_type=content_type)
            assert response.status_code < 500, (method, rule.rule, content_type, response.status_code)
            if response.status_code >= 400:
                error_of(response)


def test_a_route_that_takes_no_body_refuses_one_with_fields(app, client, target):
    ident, _ = target
    declared = {rule.endpoint for _, rule in body_routes(app)
                if spec_declares_body(app, rule.endpoint)} | {"api.patch_env", "api.github_webhook"}
    refused = 0
    for method, rule in body_routes(app):
        if rule.endpoint in declared:
            continue
        response = client.open(url_for_rule(rule, ident), method=method, json={"force": True})
        assert response.status_code == 422, (method, rule.rule, response.status_code)
        assert error_of(response)["fields"] == {"force": "unknown field"}
        refused += 1
    assert refused >= 5
    # An empty object is no body at all.
    assert client.post(f"/api/deployments/{ident}/webhook", json={}).status_code == 201


def spec_declares_body(app, endpoint):
    from backend.api.spec import spec

    metadata = spec.get_function_metadata(app.view_functions[endpoint])
    return metadata is not None and metadata.json is not None


def test_an_unsigned_malformed_webhook_body_learns_nothing_but_401(client, target):
    ident, _ = target
    response = client.post(f"/api/webhooks/github/{ident}", data=DEEP, content_type="application/json",
                           headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
                                    "X-Hub-Signature-256": "sha256=" + "0" * 64}, token=None)
    assert response.status_code == 401
    error_of(response)


def test_routes_without_a_body_still_take_an_empty_one(client, target):
    ident, _ = target
    response = client.delete(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("raw, expected", [
    (b'{"a": [1, {"b": null}], "c": "\xc3\xa9"}', {"a": [1, {"b": None}], "c": "é"}),
    ('{"x": 1.5}', {"x": 1.5}),
    (b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}", None),
])
def test_the_parser_accepts_strict_json(raw, expected):
    document = parse_json_object(raw)
    if expected is not None:
        assert document == expected


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_the_parser_refuses_each_malformed_kind(kind):
    with pytest.raises(MalformedJson):
        parse_json(MALFORMED[kind])
