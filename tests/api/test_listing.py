"""GET /api/deployments: filters, sorting, page numbers and cursors; GET /api/stats."""
from datetime import timedelta

import pytest

from app import db
from backend.models import Deployment, DeploymentStatus
from backend.models.types import utcnow


def seed(count, **fields):
    """Insert count deployments whose created_at values are distinct and known."""
    start = utcnow() - timedelta(days=1)
    rows = []
    for i in range(count):
        row = Deployment(
            name=fields.get("name_format", "app-{:03d}").format(i),
            deployment_type=fields.get("deployment_type", "lxc" if i % 2 else "vm"),
            framework=fields.get("framework", ["flask", "django", "express"][i % 3]),
            github_url="https://github.com/acme/app",
            resources={"cores": 1, "memory": 512, "disk": 8},
            tags=[],
            status=fields.get("status", DeploymentStatus.PENDING),
            created_at=start + timedelta(seconds=i),
        )
        rows.append(row)
    db.session.add_all(rows)
    db.session.commit()
    return rows


def names(response):
    assert response.status_code == 200, response.get_json()
    return [d["name"] for d in response.get_json()["deployments"]]


def test_the_first_page_has_the_newest_first_and_no_count(client):
    seed(45)
    body = client.get("/api/deployments").get_json()
    assert body["total"] is None and body["pages"] is None and body["page"] == 1 and body["per_page"] == 20
    assert [d["name"] for d in body["deployments"]] == [f"app-{i:03d}" for i in range(44, 24, -1)]
    assert body["next_cursor"]


def test_total_exact_counts_every_match_and_the_pages(client):
    seed(45)
    body = client.get("/api/deployments?total=exact").get_json()
    assert body["total"] == 45 and body["pages"] == 3 and body["page"] == 1 and len(body["deployments"]) == 20
    cursor = body["next_cursor"]
    by_cursor = client.get(f"/api/deployments?total=exact&cursor={cursor}").get_json()
    assert by_cursor["total"] == 45 and by_cursor["pages"] == 3 and by_cursor["page"] is None
    assert client.get(f"/api/deployments?cursor={cursor}").get_json()["total"] is None


def test_total_exact_of_nothing_is_zero(client):
    body = client.get("/api/deployments?total=exact").get_json()
    assert body["total"] == 0 and body["pages"] == 0 and body["deployments"] == []


@pytest.mark.parametrize("value", ["", "estimate", "EXACT", "1"])
def test_total_is_exact_or_absent(client, value):
    response = client.get(f"/api/deployments?total={value}")
    assert response.status_code == 422 and "total" in response.get_json()["error"]["fields"]


def test_the_document_says_the_total_is_only_counted_when_asked(client):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/deployments"]["get"]
    [total] = [p for p in operation["parameters"] if p["name"] == "total"]
    assert "exact" in str(total["schema"]) and "count" in str(total.get("description", total["schema"]))


def test_page_numbers_walk_every_row_once(client):
    seed(45)
    seen = []
    for page in (1, 2, 3):
        seen += names(client.get(f"/api/deployments?page={page}&per_page=20"))
    assert sorted(seen) == sorted(f"app-{i:03d}" for i in range(45))
    assert names(client.get("/api/deployments?page=4")) == []


def test_per_page_is_capped(client):
    seed(105)
    body = client.get("/api/deployments?per_page=5000&total=exact").get_json()
    assert body["per_page"] == 100 and len(body["deployments"]) == 100 and body["pages"] == 2


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "name", "-name", "updated_at", "-updated_at"])
def test_cursors_walk_every_row_once_in_order(client, sort):
    rows = seed(23)
    # Ties on the sort column must not lose or repeat rows: give half the rows one timestamp.
    same = rows[0].created_at
    for row in rows[::2]:
        row.created_at = same
        row.updated_at = same
    db.session.commit()
    seen, cursor = [], None
    while True:
        url = f"/api/deployments?sort={sort}&per_page=4&total=exact" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).get_json()
        assert body["total"] == 23
        seen += [d["id"] for d in body["deployments"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    everything = [d["id"] for d in client.get(f"/api/deployments?sort={sort}&per_page=100").get_json()["deployments"]]
    assert seen == everything
    assert len(set(seen)) == 23


def test_a_cursor_cannot_be_mixed_with_a_page_or_another_sort(client):
    seed(5)
    cursor = client.get("/api/deployments?per_page=2").get_json()["next_cursor"]
    assert client.get(f"/api/deployments?cursor={cursor}&page=2").status_code == 422
    response = client.get(f"/api/deployments?cursor={cursor}&sort=name")
    assert response.status_code == 422
    assert "cursor" in response.get_json()["error"]["fields"]


def forge(data):
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage", "eyJ4IjoxfQ", "%00", "a" * 600,
    forge({"s": "-created_at", "v": "0001-01-01T00:00:00+14:00", "id": "00000000-0000-0000-0000-000000000000"}),
    forge({"s": "-created_at", "v": "2026-01-01T00:00:00", "id": "00000000-0000-0000-0000-000000000000"}),
    forge({"s": "-created_at", "v": "2026-01-01T00:00:00Z", "id": 5}),
    forge({"s": "-created_at", "v": 12, "id": "00000000-0000-0000-0000-000000000000"}),
    forge(["-created_at"]),
])
def test_a_forged_cursor_is_422(client, cursor):
    assert client.get(f"/api/deployments?cursor={cursor}").status_code == 422


@pytest.mark.parametrize("value", ["a\x00", "A B", 7])
def test_a_forged_name_cursor_is_422(client, value):
    cursor = forge({"s": "name", "v": value, "id": "00000000-0000-0000-0000-000000000000"})
    assert client.get(f"/api/deployments?sort=name&cursor={cursor}").status_code == 422


def test_filters_combine(client):
    seed(12)
    seed(3, name_format="web-{}", status=DeploymentStatus.RUNNING, framework="fastapi", deployment_type="vm")
    assert set(names(client.get("/api/deployments?status=running"))) == {"web-0", "web-1", "web-2"}
    assert len(names(client.get("/api/deployments?deployment_type=vm&framework=flask"))) == 2
    assert set(names(client.get("/api/deployments?name=eb-"))) == {"web-0", "web-1", "web-2"}
    assert client.get("/api/deployments?framework=fastapi&per_page=1&total=exact").get_json()["total"] == 3


@pytest.mark.parametrize("value", ["%25", "_", "%00", "A", "a%20b"])
def test_a_name_filter_refuses_wildcards_and_characters_no_name_has(client, value):
    seed(3)
    response = client.get(f"/api/deployments?name={value}")
    assert response.status_code == 422
    assert "name" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("query", ["framework=%00", "framework=rails", "status=%00"])
def test_filters_with_values_outside_their_sets_are_422(client, query):
    assert client.get(f"/api/deployments?{query}").status_code == 422


def test_deleted_deployments_are_hidden_unless_asked_for(client, delete_deployment):
    rows = seed(3)
    delete_deployment(rows[0].id)
    assert len(names(client.get("/api/deployments"))) == 2
    assert len(names(client.get("/api/deployments?include_deleted=true"))) == 3
    assert names(client.get("/api/deployments?status=deleted")) == []
    assert names(client.get("/api/deployments?status=deleted&include_deleted=true")) == ["app-000"]


@pytest.mark.parametrize("query", ["status=done", "deployment_type=kvm", "sort=id", "page=0", "per_page=0",
                                   "page=x", "unknown=1", "include_deleted=maybe"])
def test_bad_query_parameters_are_422(client, query):
    response = client.get(f"/api/deployments?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]


def test_stats_give_totals_by_status_and_type_and_the_success_rate(client, delete_deployment):
    seed(3, status=DeploymentStatus.RUNNING, name_format="run-{}", deployment_type="vm")
    seed(1, status=DeploymentStatus.STOPPED, name_format="stop-{}", deployment_type="lxc")
    seed(1, status=DeploymentStatus.FAILED, name_format="fail-{}", deployment_type="lxc")
    seed(2, status=DeploymentStatus.PENDING, name_format="wait-{}", deployment_type="lxc")
    gone = seed(1, name_format="gone-{}", deployment_type="lxc")[0]
    delete_deployment(gone.id)
    body = client.get("/api/stats").get_json()
    assert body["total"] == 7
    assert body["by_status"]["running"] == 3 and body["by_status"]["deleted"] == 1
    assert body["by_status"]["provisioning"] == 0
    assert body["by_type"] == {"vm": 3, "lxc": 4}
    assert body["success_rate"] == 0.8


def test_stats_of_an_empty_platform_have_no_success_rate(client):
    body = client.get("/api/stats").get_json()
    assert body["total"] == 0 and body["success_rate"] is None
