"""services/metrics.py on stubs: Proxmox's rrddata points in the platform's names and units, and its refusals."""
from types import SimpleNamespace

import pytest

from backend.errors import DomainError
from backend.models import DeploymentStatus
from backend.proxmox.errors import ProxmoxError
from backend.services.cluster import NOT_CONFIGURED
from backend.services.metrics import guest_metrics, normalised


class StubClients:
    """ProxmoxClients whose quick client answers rrd_data with `answer` (raised when an exception)."""

    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def quick_client(self):
        return self

    def rrd_data(self, node, vmid, kind, timeframe, cf):
        self.asked.append((node, vmid, kind, timeframe, cf))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def deployment(**fields):
    values = {"name": "shop-vm", "vm_id": 120, "node": "pve2", "guest_kind": "qemu",
              "status": DeploymentStatus.RUNNING}
    values.update(fields)
    return SimpleNamespace(**values)


def test_points_come_in_our_names_and_units_oldest_first():
    clients = StubClients([
        {"time": 1200, "cpu": 0.25, "maxcpu": 2, "mem": 1000.6, "maxmem": 2048, "netin": 1.234, "netout": 5,
         "diskread": "7.5", "diskwrite": 0, "disk": 0, "maxdisk": 10},
        {"time": 1140},
    ])
    series = guest_metrics(deployment(), clients, "day")
    assert clients.asked == [("pve2", 120, "qemu", "day", "AVERAGE")]
    assert series == {"timeframe": "day", "points": [
        {"time": 1140, "cpu": None, "memory": None, "memory_max": None, "net_in": None, "net_out": None,
         "disk_read": None, "disk_write": None},
        {"time": 1200, "cpu": 25.0, "memory": 1001, "memory_max": 2048, "net_in": 1.23, "net_out": 5.0,
         "disk_read": 7.5, "disk_write": 0.0},
    ]}


@pytest.mark.parametrize("entry", [None, "x", {}, {"time": "soon"}, {"time": float("nan")}, {"time": True}])
def test_what_is_not_a_point_is_left_out(entry):
    assert normalised(entry) is None


def test_a_figure_that_is_not_a_finite_number_is_none():
    point = normalised({"time": 60, "cpu": float("nan"), "mem": "lots", "maxmem": float("inf"), "netin": None})
    assert point["time"] == 60 and {point[k] for k in ("cpu", "memory", "memory_max", "net_in")} == {None}


@pytest.mark.parametrize("fields", [{"vm_id": None}, {"node": None}, {"status": DeploymentStatus.DELETED}])
def test_no_guest_is_409_no_guest_and_proxmox_is_not_asked(fields):
    clients = StubClients([])
    with pytest.raises(DomainError) as caught:
        guest_metrics(deployment(**fields), clients)
    assert (caught.value.status, caught.value.code) == (409, "no_guest")
    assert clients.asked == []


def test_another_timeframe_is_refused():
    with pytest.raises(DomainError) as caught:
        guest_metrics(deployment(), StubClients([]), "month")
    assert (caught.value.status, caught.value.code, list(caught.value.fields)) == (422, "validation_error",
                                                                                   ["timeframe"])


@pytest.mark.parametrize("failure, message", [
    (ProxmoxError("cannot reach Proxmox (ConnectTimeout)", transient=True), "Proxmox did not answer"),
    (ProxmoxError("authentication failure", status=401), "Proxmox refused the platform's credentials"),
    (ProxmoxError("Configuration file 'nodes/pve2/qemu-server/120.conf' does not exist", status=500),
     "Configuration file 'nodes/pve2/qemu-server/120.conf' does not exist"),
])
def test_a_proxmox_failure_is_503_proxmox_unavailable_with_what_a_user_may_read(failure, message):
    with pytest.raises(DomainError) as caught:
        guest_metrics(deployment(), StubClients(failure))
    assert (caught.value.status, caught.value.code, caught.value.message) == (503, "proxmox_unavailable", message)


def test_no_cluster_configured_is_503_proxmox_unavailable():
    with pytest.raises(DomainError) as caught:
        guest_metrics(deployment(), None)
    assert (caught.value.status, caught.value.code, caught.value.message) == (503, "proxmox_unavailable",
                                                                              NOT_CONFIGURED)
