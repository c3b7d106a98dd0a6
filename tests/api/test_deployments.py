"""POST/GET/PATCH/DELETE /api/deployments: what clients get, on every engine."""
import pytest

from app import db
from backend.models import Deployment, DeploymentStatus
from tests.helpers.api import deployment_payload, error_of

# -- create ----------------------------------------------------------------------


def test_create_answers_201_with_location_and_a_pending_deployment(client):
    response = client.post("/api/deployments", json=deployment_payload(
        branch="release/2.1", tags=["shop", "prod"], resources={"cores": 2}))
    assert response.status_code == 201
    body = response.get_json()
    assert body["success"] is True
    deployment = body["deployment"]
    assert response.headers["Location"].endswith(f"/api/deployments/{deployment['id']}")
    assert deployment["status"] == "pending"
    assert deployment["branch"] == "release/2.1"
    assert deployment["tags"] == ["shop", "prod"]
    assert deployment["resources"] == {"cores": 2, "memory": 512, "disk": 8}
    fetched = client.get(response.headers["Location"]).get_json()["deployment"]
    assert fetched.pop("live") is None  # no guest yet
    assert fetched == deployment


@pytest.mark.parametrize("deployment_type,expected", [
    ("lxc", {"cores": 1, "memory": 512, "disk": 8}),
    ("vm", {"cores": 2, "memory": 2048, "disk": 20}),
])
def test_omitted_resources_get_the_types_defaults(make_deployment, deployment_type, expected):
    assert make_deployment(deployment_type=deployment_type)["resources"] == expected


def test_a_github_url_ending_in_git_is_accepted(make_deployment):
    assert make_deployment(github_url="https://github.com/acme/shop.api.git")["github_url"].endswith(".git")


@pytest.mark.parametrize("field", ["status", "vm_id", "ip_address", "node", "user_id", "id", "deployed_at"])
def test_a_client_can_never_set_server_owned_fields(client, field):
    response = client.post("/api/deployments", json=deployment_payload(**{field: "x"}))
    assert response.status_code == 422
    assert error_of(response)["fields"] == {field: "unknown field"}
    assert Deployment.count_all(include_deleted=True) == 0


BAD_NAMES = ["cc553e06-1234-4abc-8def-0123456789ab", "abcdef0123456789abcdef0123456789", "ab", "a" * 64, "1app",
             "-app", "app-", "App", "my_app", "my app", "café", "app\n", "app\x00x", "ap\u200bp", "", "a..b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_are_not_dns_labels_are_refused(client, name):
    response = client.post("/api/deployments", json=deployment_payload(name=name))
    assert response.status_code == 422
    assert "name" in error_of(response)["fields"]


def test_a_63_character_name_is_accepted(make_deployment):
    assert make_deployment(name="a" + "b" * 61 + "c")["name"] == "a" + "b" * 61 + "c"


BAD_URLS = [
    "http://github.com/acme/shop",
    "https://gitlab.com/acme/shop",
    "https://user:pw@github.com/acme/shop",
    "https://github.com:443/acme/shop",
    "https://github.com/acme/shop?ref=x",
    "https://github.com/acme/shop#main",
    "https://github.com/acme",
    "https://github.com/acme/shop/tree/main",
    "https://github.com/-acme/shop",
    "https://github.com/acme/..",
    "https://github.com.evil.example/acme/shop",
    "git@github.com:acme/shop.git",
    "--upload-pack=touch /tmp/x",
    "https://github.com/acme/shop;id",
    "https://github.com/acme/$(id)",
    "https://github.com/acme/shop\n",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_only_plain_github_repository_urls_are_accepted(client, url):
    response = client.post("/api/deployments", json=deployment_payload(github_url=url))
    assert response.status_code == 422
    assert "github_url" in error_of(response)["fields"]


@pytest.mark.parametrize("branch", ["-x", "--upload-pack=x", "a..b", "a b", "a;b", "$(id)", "`id`", "a/", "a.lock",
                                    "", "a\nb", "HEAD", ".hidden", "a//b", "ü", "a.lock/b"])
def test_branches_that_are_unsafe_or_not_git_names_are_refused(client, branch):
    response = client.post("/api/deployments", json=deployment_payload(branch=branch))
    assert response.status_code == 422
    assert "branch" in error_of(response)["fields"]


@pytest.mark.parametrize("deployment_type,resources,field", [
    ("lxc", {"cores": 9}, "resources.cores"),
    ("lxc", {"memory": 255}, "resources.memory"),
    ("lxc", {"disk": 201}, "resources.disk"),
    ("vm", {"cores": 17}, "resources.cores"),
    ("vm", {"memory": 256}, "resources.memory"),
    ("vm", {"disk": 5}, "resources.disk"),
    ("vm", {"cores": 0}, "resources.cores"),
    ("lxc", {"cores": "2"}, "resources.cores"),
    ("lxc", {"cores": 2.5}, "resources.cores"),
    ("lxc", {"cores": True}, "resources.cores"),
    ("lxc", {"gpus": 1}, "resources.gpus"),
])
def test_resources_outside_the_types_ranges_are_refused_per_field(client, deployment_type, resources, field):
    response = client.post("/api/deployments", json=deployment_payload(
        deployment_type=deployment_type, resources=resources))
    assert response.status_code == 422
    assert field in error_of(response)["fields"]


def test_resources_at_the_edges_of_the_vm_range_are_accepted(make_deployment):
    resources = {"cores": 16, "memory": 32768, "disk": 500}
    assert make_deployment(deployment_type="vm", resources=resources)["resources"] == resources


def test_every_wrong_field_gets_its_own_message(client):
    response = client.post("/api/deployments", json={
        "name": None, "deployment_type": "kvm", "framework": "rails", "github_url": 42, "tags": "web"})
    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {"name", "deployment_type", "framework", "github_url", "tags"}
    assert all(isinstance(message, str) and message for message in fields.values())


def test_missing_fields_are_named(client):
    response = client.post("/api/deployments", json={})
    assert error_of(response)["fields"] == {
        "name": "is required", "deployment_type": "is required", "framework": "is required",
        "github_url": "is required"}


@pytest.mark.parametrize("tags", [["UPPER"], ["with space"], ["-lead"], ["x" * 33], [1], ["t"] * 21])
def test_bad_tags_are_refused(client, tags):
    assert client.post("/api/deployments", json=deployment_payload(tags=tags)).status_code == 422


@pytest.mark.parametrize("body", [
    '{"name": ',
    '{"name": "aaa", "name": "bbb", "deployment_type": "lxc"}',
    '{"name": NaN}',
    '{"name": Infinity}',
    '{"tags": ' + "[" * 20000 + "]" * 20000 + "}",
    b'{"name": "\xff"}',
])
def test_malformed_json_is_400_and_nothing_is_stored(client, body):
    response = client.post("/api/deployments", data=body, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"
    assert Deployment.count_all(include_deleted=True) == 0


def test_a_body_that_is_not_json_is_415(client):
    response = client.post("/api/deployments", data="name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("body", ["[]", "null", "42", '"text"'])
def test_a_json_body_that_is_not_an_object_is_422(client, body):
    response = client.post("/api/deployments", data=body, content_type="application/json")
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"body": "must be a JSON object"}


def test_a_huge_body_is_413_and_nothing_is_stored(client):
    response = client.post("/api/deployments", json=deployment_payload(tags=["x" * 200_000]))
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert Deployment.count_all(include_deleted=True) == 0


def test_a_taken_name_is_409_and_the_first_survives(client, make_deployment):
    first = make_deployment(name="taken")
    response = client.post("/api/deployments", json=deployment_payload(name="taken", framework="django"))
    assert response.status_code == 409
    assert error_of(response)["code"] == "name_taken"
    assert Deployment.get_by_name("taken").framework == first["framework"]


def test_a_deleted_deployments_name_can_be_reused(client, make_deployment, delete_deployment):
    old = make_deployment(name="phoenix")
    delete_deployment(old["id"])
    new = make_deployment(name="phoenix")
    assert new["id"] != old["id"]
    assert client.get("/api/deployments/phoenix").get_json()["deployment"]["id"] == new["id"]


# -- read ------------------------------------------------------------------------


def test_a_deployment_is_found_by_id_or_by_name(client, make_deployment):
    created = make_deployment()
    assert client.get(f"/api/deployments/{created['id']}").get_json()["deployment"]["name"] == "shop-api"
    assert client.get("/api/deployments/shop-api").get_json()["deployment"]["id"] == created["id"]


@pytest.mark.parametrize("ident", ["nope", "00000000-0000-0000-0000-000000000000", "%00", "x" * 300])
def test_an_unknown_deployment_is_404_in_the_error_shape(client, ident):
    response = client.get(f"/api/deployments/{ident}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_an_unknown_route_and_a_wrong_method_use_the_error_shape(client):
    assert error_of(client.get("/api/nothing-here"))["code"] == "not_found"
    response = client.put("/api/deployments")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


# -- change ----------------------------------------------------------------------


def test_patch_changes_tags_and_resources_and_bumps_the_version(client, make_deployment):
    created = make_deployment()
    response = client.patch(f"/api/deployments/{created['id']}", json={"tags": ["a", "b", "a"],
                                                                      "resources": {"memory": 1024}})
    assert response.status_code == 200
    deployment = response.get_json()["deployment"]
    assert deployment["tags"] == ["a", "b"]
    assert deployment["resources"] == {"cores": 1, "memory": 1024, "disk": 8}
    assert deployment["version"] == created["version"] + 1


def test_patch_refuses_fields_that_are_not_editable(client, make_deployment):
    created = make_deployment()
    for body in ({"name": "other"}, {"status": "running"}, {"github_url": "https://github.com/a/b"}, {}):
        response = client.patch(f"/api/deployments/{created['id']}", json=body)
        assert response.status_code == 422, body
    fetched = client.get(f"/api/deployments/{created['id']}").get_json()["deployment"]
    fetched.pop("live")
    assert fetched == created


def test_patch_checks_resources_against_the_deployments_own_type(client, make_deployment):
    created = make_deployment(deployment_type="lxc")
    response = client.patch(f"/api/deployments/{created['id']}", json={"resources": {"cores": 12}})
    assert response.status_code == 422
    assert "resources.cores" in error_of(response)["fields"]


def test_resources_cannot_change_while_running_but_tags_can(client, make_deployment):
    created = make_deployment()
    deployment = Deployment.get_by_id(created["id"])
    deployment.status = DeploymentStatus.RUNNING
    db.session.commit()
    response = client.patch(f"/api/deployments/{created['id']}", json={"resources": {"cores": 2}})
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"
    assert client.patch(f"/api/deployments/{created['id']}", json={"tags": ["live"]}).status_code == 200


def test_a_deleted_deployment_cannot_be_changed(client, make_deployment, delete_deployment):
    created = make_deployment()
    delete_deployment(created["id"])
    assert client.patch(f"/api/deployments/{created['id']}", json={"tags": ["x"]}).status_code == 409


# -- delete ----------------------------------------------------------------------


def test_delete_is_soft_and_idempotent(client, make_deployment, run_jobs):
    created = make_deployment()
    run_jobs()
    first = client.delete(f"/api/deployments/{created['id']}")
    assert first.status_code == 202
    assert first.get_json()["deployment"]["status"] == "deleting"
    again = client.delete(f"/api/deployments/{created['id']}")
    assert again.status_code == 202 and again.get_json()["deployment"]["status"] == "deleting"
    run_jobs()
    deleted = client.get(f"/api/deployments/{created['id']}").get_json()["deployment"]
    assert deleted["status"] == "deleted" and deleted["deleted_at"]
    second = client.delete(f"/api/deployments/{created['id']}")
    assert second.status_code == 200
    assert second.get_json()["deployment"]["deleted_at"] == deleted["deleted_at"]
    assert Deployment.count_all(include_deleted=True) == 1
    assert client.get(f"/api/deployments/{created['id']}").get_json()["deployment"]["status"] == "deleted"
    assert client.get("/api/deployments/shop-api").status_code == 404


# -- cross-cutting ----------------------------------------------------------------


def test_every_response_carries_a_request_id_and_echoes_the_clients(client):
    generated = client.get("/api/deployments").headers["X-Request-ID"]
    assert len(generated) >= 16
    assert client.get("/api/stats", headers={"X-Request-ID": "trace-42"}).headers["X-Request-ID"] == "trace-42"
    response = client.get("/api/deployments/none", headers={"X-Request-ID": "trace-43"})
    assert response.headers["X-Request-ID"] == "trace-43"
    assert error_of(response)["request_id"] == "trace-43"


def test_a_request_id_with_odd_characters_is_replaced(client):
    assert client.get("/health", headers={"X-Request-ID": "a b\tc"}).headers["X-Request-ID"] != "a b\tc"


def test_a_row_that_breaks_the_response_schema_is_a_plain_500(client):
    row = Deployment(name="broken-row", deployment_type="vm", framework="flask",
                     github_url="https://github.com/a/b", resources={}, tags=[])
    db.session.add(row)
    db.session.commit()
    response = client.get("/api/deployments/broken-row")
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "pydantic" not in response.get_data(as_text=True)


def test_a_doubled_slash_is_a_404_in_the_error_shape(client):
    response = client.get("/api//deployments")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_an_unexpected_error_is_500_without_internals(app, client, monkeypatch):
    from backend.services import deployments as service

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(service, "deployment_stats", explode)
    monkeypatch.setattr("backend.api.meta.deployment_stats", explode)
    response = client.get("/api/stats")
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)
    assert error_of(response)["code"] == "internal_error"
