"""GET /api/deployments/<ident>/metrics: the guest's statistics from Proxmox's rrddata (the fake's, over HTTPS)."""
import typing
import uuid

import pytest

from app import db
from backend.models import Deployment
from backend.schemas.metrics import MetricsTimeframe
from backend.services.metrics import TIMEFRAMES
from tests.helpers.accounts import make_user
from tests.helpers.api import create_deployment, error_of
from tests.helpers.apps import app_on_fake_proxmox

MIB = 2**20
POINT_KEYS = {"time", "cpu", "memory", "memory_max", "net_in", "net_out", "disk_read", "disk_write"}
STEPS = {"hour": 60, "day": 1800, "week": 10800}


@pytest.fixture
def mapp(database_url, fake):
    """The API on the fake Proxmox, jobs kept waiting (a test gives a deployment its guest itself)."""
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    yield app
    fake.assert_no_violations()


@pytest.fixture
def mclient(mapp):
    return mapp.test_client()


def give_guest(app, fake, deployment, vmid, status="running", age=3600, node="pve1"):
    """Make the deployment's guest on the fake (made `age` seconds ago) and record it on the deployment's row."""
    kind = "lxc" if deployment["deployment_type"] == "lxc" else "qemu"
    memory = deployment["resources"]["memory"]
    disk = ("rootfs", f"local-lvm:vm-{vmid}-disk-0,size=8G") if kind == "lxc" else \
        ("scsi0", f"local-lvm:vm-{vmid}-disk-0,size=20G")
    config = {"cores": deployment["resources"]["cores"], "memory": memory, disk[0]: disk[1]}
    fake.add_guest(vmid, kind, node, config, status=status, age=age)
    with app.app_context():
        row = db.session.get(Deployment, uuid.UUID(deployment["id"]))
        row.vm_id, row.node = vmid, node
        db.session.commit()
        db.session.remove()


def metrics(client, ident, query="", **options):
    return client.get(f"/api/deployments/{ident}/metrics{query}", **options)


def test_a_running_guest_gives_a_series_of_points_in_the_platforms_units(mapp, mclient, fake):
    deployment = create_deployment(mclient, name="shop-api", resources={"cores": 2, "memory": 1024})
    give_guest(mapp, fake, deployment, vmid=150, age=1800)

    response = metrics(mclient, deployment["id"])
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"success", "timeframe", "points"}
    assert body["success"] is True and body["timeframe"] == "hour"
    points = body["points"]
    assert len(points) == 70 and all(set(point) == POINT_KEYS for point in points)
    times = [point["time"] for point in points]
    assert all(isinstance(t, int) and t % 60 == 0 for t in times)
    assert [later - earlier for earlier, later in zip(times, times[1:], strict=False)] == [60] * 69

    # Made half an hour ago: the older points have a time and nothing else, as Proxmox gives them.
    before = [point for point in points if point["cpu"] is None]
    during = [point for point in points if point["cpu"] is not None]
    assert 28 <= len(during) <= 31 and points[:len(before)] == before
    assert all(value is None for point in before for key, value in point.items() if key != "time")
    for point in during:
        assert 0 < point["cpu"] <= 100
        assert point["memory_max"] == 1024 * MIB and 0 < point["memory"] < point["memory_max"]
        assert all(point[key] > 0 for key in ("net_in", "net_out", "disk_write"))
    assert len({point["cpu"] for point in during}) > 10  # alive, not a constant
    # By name too, and the same figures again (they are Proxmox's record, not a draw).
    again = metrics(mclient, "shop-api").get_json()["points"]
    assert {p["time"]: p for p in again}.keys() & {p["time"]: p for p in points}.keys()
    assert all(p == q for p in again for q in points if p["time"] == q["time"])


@pytest.mark.parametrize("timeframe", ["day", "week"])
def test_the_longer_timeframes_have_70_points_further_apart(mapp, mclient, fake, timeframe):
    deployment = create_deployment(mclient, name="shop-api")
    give_guest(mapp, fake, deployment, vmid=151, age=4 * 86400)
    body = metrics(mclient, deployment["id"], f"?timeframe={timeframe}").get_json()
    assert body["timeframe"] == timeframe
    times = [point["time"] for point in body["points"]]
    assert len(times) == 70 and {b - a for a, b in zip(times, times[1:], strict=False)} == {STEPS[timeframe]}


def test_a_stopped_vm_uses_no_cpu_memory_or_network(mapp, mclient, fake):
    deployment = create_deployment(mclient, name="shop-vm", deployment_type="vm")
    give_guest(mapp, fake, deployment, vmid=152, status="stopped", age=7200)
    points = metrics(mclient, deployment["id"]).get_json()["points"]
    assert len(points) == 70
    for point in points:
        assert (point["cpu"], point["memory"], point["net_in"], point["disk_write"]) == (0, 0, 0, 0)
        assert point["memory_max"] == 2048 * MIB


def test_without_a_guest_it_is_409_no_guest(mclient, fake):
    deployment = create_deployment(mclient, name="shop-api")
    response = metrics(mclient, deployment["id"])
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "no_guest" and "pending" in error["message"]
    assert not any(request.path.endswith("/rrddata") for request in fake.requests)


def test_someone_elses_deployment_is_404(mapp, mclient, fake):
    _, alice = make_user(mapp, "alice")
    _, bob = make_user(mapp, "bob")
    deployment = create_deployment(mclient, token=alice, name="alice-app")
    give_guest(mapp, fake, deployment, vmid=153)
    assert metrics(mclient, deployment["id"], token=alice).status_code == 200
    for ident in (deployment["id"], "alice-app"):
        response = metrics(mclient, ident, token=bob)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert metrics(mclient, deployment["id"], token=None).status_code == 401
    assert metrics(mclient, deployment["id"]).status_code == 200  # an admin sees every deployment


@pytest.mark.parametrize("query, field", [
    ("?timeframe=month", "timeframe"), ("?timeframe=HOUR", "timeframe"), ("?timeframe=", "timeframe"),
    ("?timeframe=hour&cf=MAX", "cf"), ("?since=0", "since"),
])
def test_a_bad_or_unknown_query_parameter_is_refused(mclient, fake, query, field):
    deployment = create_deployment(mclient, name="shop-api")
    response = metrics(mclient, deployment["id"], query)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error" and field in error["fields"]


def test_proxmox_down_is_503_proxmox_unavailable_as_for_the_nodes(app, client):
    # The suite's app: Proxmox configured, its port refusing every connection.
    deployment = create_deployment(client, name="shop-api")
    row = db.session.get(Deployment, uuid.UUID(deployment["id"]))
    row.vm_id, row.node = 154, "pve1"
    db.session.commit()
    response = metrics(client, deployment["id"])
    assert response.status_code == 503
    assert error_of(response) | {"request_id": None} == {
        "code": "proxmox_unavailable", "message": "Proxmox did not answer", "fields": {}, "request_id": None}
    assert error_of(client.get("/api/nodes"))["code"] == "proxmox_unavailable"


def test_the_openapi_document_describes_the_route_and_its_timeframes(client):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/deployments/{ident}/metrics"]["get"]
    assert {"200", "404", "409", "422", "503"} <= set(operation["responses"])
    (timeframe,) = [p for p in operation["parameters"] if p["name"] == "timeframe"]
    assert timeframe["in"] == "query"
    assert set(typing.get_args(MetricsTimeframe)) == set(TIMEFRAMES) == {"hour", "day", "week"}
