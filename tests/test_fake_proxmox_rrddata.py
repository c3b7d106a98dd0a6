"""The fake Proxmox's guest statistics (GET /nodes/{node}/{kind}/{vmid}/rrddata), schema-checked like every
request, and the Proxmox client's rrd_data over them."""
import time

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from backend.proxmox.client import ProxmoxClient
from backend.proxmox.errors import ProxmoxError
from backend.simulation.pve_schema import validate
from tests.helpers.apps import proxmox_settings_for

CT_CONFIG = {"hostname": "app-150", "cores": 2, "memory": 1024, "rootfs": "local-lvm:vm-150-disk-0,size=8G"}
FIGURES = {"cpu", "maxcpu", "mem", "maxmem", "netin", "netout", "diskread", "diskwrite", "disk", "maxdisk"}


@pytest.fixture
def api(fake):
    return ProxmoxAPI(fake.host, port=fake.port, user="root@pam", token_name="paas", token_value="secret",
                      verify_ssl=fake.ca_bundle_path, timeout=5)


@pytest.fixture
def client(fake):
    return ProxmoxClient(proxmox_settings_for(fake))


def test_rrddata_requests_are_checked_against_the_schema():
    assert validate("GET", "/nodes/pve1/lxc/150/rrddata", {"timeframe": "hour", "cf": "AVERAGE"}) == []
    assert validate("GET", "/nodes/pve1/qemu/150/rrddata", {"timeframe": "year"}) == []
    assert [e.split(":")[0] for e in validate("GET", "/nodes/pve1/lxc/150/rrddata", {})] == ["timeframe"]
    assert [e.split(":")[0] for e in validate("GET", "/nodes/pve1/qemu/150/rrddata",
                                              {"timeframe": "minute", "cf": "MIN"})] == ["cf", "timeframe"]
    assert [e.split(":")[0] for e in validate("GET", "/nodes/pve1/lxc/42/rrddata", {"timeframe": "hour"})] == ["vmid"]


def test_an_unknown_rrddata_parameter_is_refused_and_recorded(fake, api):
    fake.add_guest(150, "lxc", config=CT_CONFIG, status="running")
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").lxc(150).rrddata.get(timeframe="hour", ds="cpu")
    assert caught.value.status_code == 400 and set(caught.value.errors) == {"ds"}
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu(9000).rrddata.get(timeframe="decade")
    assert caught.value.status_code == 400 and set(caught.value.errors) == {"timeframe"}
    assert [set(violation.errors) for violation in fake.schema_violations] == [{"ds"}, {"timeframe"}]


@pytest.mark.parametrize("timeframe, step", [("hour", 60), ("day", 1800), ("week", 10800), ("month", 43200),
                                             ("year", 604800)])
def test_each_timeframe_has_70_points_a_step_apart_ending_before_now(fake, api, timeframe, step):
    fake.add_guest(150, "lxc", config=CT_CONFIG, status="running", age=500 * 86400)
    points = api.nodes("pve1").lxc(150).rrddata.get(timeframe=timeframe)
    times = [point["time"] for point in points]
    assert len(times) == 70 and all(t % step == 0 for t in times)
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {step}
    assert times[-1] + step <= time.time() < times[-1] + 2 * step
    assert all(set(point) == FIGURES | {"time"} for point in points)
    fake.assert_no_violations()


def test_a_running_container_has_lively_figures_within_its_resources(fake, api):
    fake.add_guest(150, "lxc", config=CT_CONFIG, status="running", age=7200)
    points = api.nodes("pve1").lxc(150).rrddata.get(timeframe="hour", cf="AVERAGE")
    for point in points:
        assert point["maxcpu"] == 2 and point["maxmem"] == 1024 * 2**20 and point["maxdisk"] == 8 * 2**30
        assert 0 < point["cpu"] <= 1 and 0 < point["mem"] < point["maxmem"] and 0 < point["disk"] < point["maxdisk"]
        assert point["netin"] > 0 and point["netout"] > 0 and point["diskwrite"] > 0
    assert len({point["cpu"] for point in points}) > 30 and len({point["netout"] for point in points}) > 30
    peaks = api.nodes("pve1").lxc(150).rrddata.get(timeframe="hour", cf="MAX")
    by_time = {point["time"]: point for point in points}
    assert all(peak["cpu"] >= by_time[peak["time"]]["cpu"] for peak in peaks if peak["time"] in by_time)


def test_the_figures_follow_the_guests_life(fake, api):
    now = time.time()
    guest = fake.add_guest(151, "qemu", config={"cores": 4, "memory": "2048",
                                                "scsi0": "local-lvm:vm-151-disk-0,size=20G"})
    # Made 50 minutes ago, ran from 40 to 20 minutes ago, stopped since.
    guest.created_at, guest.runs = now - 3000, [[now - 2400, now - 1200]]
    points = api.nodes("pve1").qemu(151).rrddata.get(timeframe="hour")
    before = [p for p in points if p["time"] + 60 <= now - 3000]
    ran = [p for p in points if now - 2400 <= p["time"] and p["time"] + 60 <= now - 1200]
    stopped = [p for p in points if p["time"] >= now - 1200 or (p["time"] + 60 <= now - 2400
                                                                 and p["time"] >= now - 3000)]
    assert before and ran and stopped
    assert all(set(p) == {"time"} for p in before)  # no RRD data before the guest existed
    assert all(p["cpu"] > 0 and p["mem"] > 0 and p["disk"] == 0 for p in ran)  # Proxmox knows no VM's disk use
    assert all((p["cpu"], p["mem"], p["netin"], p["diskread"]) == (0, 0, 0, 0) and p["maxmem"] == 2048 * 2**20
               for p in stopped)


def test_the_same_point_reads_the_same_every_time(fake, api):
    fake.add_guest(150, "lxc", config=CT_CONFIG, status="running", age=86400)
    first = api.nodes("pve1").lxc(150).rrddata.get(timeframe="day")
    second = {point["time"]: point for point in api.nodes("pve1").lxc(150).rrddata.get(timeframe="day")}
    assert all(point == second[point["time"]] for point in first if point["time"] in second)


def test_an_unknown_guest_is_the_servers_does_not_exist(fake, api):
    fake.add_guest(150, "lxc", config=CT_CONFIG)
    for kind, vmid in (("lxc", 999), ("qemu", 150)):
        with pytest.raises(ResourceException) as caught:
            getattr(api.nodes("pve1"), kind)(vmid).rrddata.get(timeframe="hour")
        assert caught.value.status_code == 500 and "does not exist" in caught.value.content
    fake.set_node_offline("pve2")
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").lxc(150).rrddata.get(timeframe="hour")
    assert caught.value.status_code == 595
    fake.assert_no_violations()


def test_the_client_reads_rrddata_and_checks_what_it_sends(fake, client):
    fake.add_guest(150, "lxc", config=CT_CONFIG, status="running", age=600)
    points = client.rrd_data("pve1", 150, "lxc", "hour")
    assert len(points) == 70 and sum(1 for point in points if "cpu" in point) in (9, 10, 11)
    assert fake.requests[-1].params == {"timeframe": "hour", "cf": "AVERAGE"}
    with pytest.raises(ValueError, match="timeframe"):
        client.rrd_data("pve1", 150, "lxc", "minute")
    with pytest.raises(ValueError, match="cf"):
        client.rrd_data("pve1", 150, "lxc", "hour", cf="MIN")
    with pytest.raises(ProxmoxError, match="does not exist"):
        client.rrd_data("pve1", 150, "qemu", "hour")
    fake.assert_no_violations()
