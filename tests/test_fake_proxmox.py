"""The fake Proxmox VE and its schema checker, driven by the real proxmoxer client over HTTPS."""
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from backend.simulation.fake_proxmox import ROUTES
from backend.simulation.pve_schema import SUBSET_PATH, default_schema, validate
from tests.fakes import FakeProxmox
from tests.helpers.waiting import poll

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "pve-api"
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"


# --- fixtures and helpers ------------------------------------------------------------------------

def connect(fake, **kwargs):
    """A proxmoxer client for the fake, verifying its certificate against the fake's CA."""
    options = {"user": "root@pam", "token_name": "paas", "token_value": "secret", "timeout": 5}
    options.update(kwargs)
    return ProxmoxAPI(fake.host, port=fake.port, verify_ssl=fake.ca_bundle_path, **options)


@pytest.fixture
def api(fake):
    """A token-authenticated proxmoxer client."""
    return connect(fake)


def wait_for_task(api, node, upid, timeout=5.0):
    """Poll a task until it stops (a task not visible yet is retried); return its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = api.nodes(node).tasks(upid).status.get()
        except ResourceException as exc:
            if exc.status_code != 400 or "no such task" not in str(exc.errors):
                raise
        else:
            if status["status"] == "stopped":
                return status
        time.sleep(0.01)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def create_container(api, vmid, node="pve1", **extra):
    """Create a container and wait for its task; return the task status."""
    params = {"vmid": vmid, "ostemplate": TEMPLATE, "hostname": f"app-{vmid}", "cores": 1, "memory": 512,
              "swap": 0, "rootfs": "local-lvm:8", "net0": NET0, "unprivileged": 1, "tags": "paas"}
    params.update(extra)
    return wait_for_task(api, node, api.nodes(node).lxc.post(**params))


# --- the schema checker --------------------------------------------------------------------------

LXC_CREATE = {"vmid": "100", "ostemplate": TEMPLATE, "hostname": "app-1", "net0": NET0, "rootfs": "local-lvm:8",
              "memory": "512", "unprivileged": "1", "tags": "paas;deployment-7"}


def test_a_well_formed_container_create_passes_the_schema():
    assert validate("POST", "/nodes/pve1/lxc", LXC_CREATE) == []


def test_an_unknown_parameter_is_an_error():
    errors = validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, "colour": "blue"})
    assert errors == ["colour: property is not defined in schema and the schema does not allow additional "
                      "properties"]


def test_a_missing_required_parameter_is_an_error_but_path_parameters_are_not_asked_for():
    errors = validate("POST", "/nodes/pve1/lxc", {k: v for k, v in LXC_CREATE.items() if k != "ostemplate"})
    assert errors == ["ostemplate: property is missing and it is not optional"]


@pytest.mark.parametrize("net0, problem", [
    ("name=eth0,bridge=vmbr0,colour=red", "invalid key in comma-separated list property: colour"),
    ("bridge=vmbr0,ip=dhcp", "net0.name: property is missing and it is not optional"),
    ("name=eth0,ip=10.0.0.5", "net0.ip: invalid format"),
    ("name=eth0,firewall=maybe", "net0.firewall: type check ('boolean') failed"),
    ("name=eth0,tag=5000", "net0.tag: value must have a maximum value of 4094"),
    ("name=eth0,name=eth1", "duplicate key"),
])
def test_property_strings_are_parsed_and_checked_key_by_key(net0, problem):
    errors = validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, "net0": net0})
    assert len(errors) == 1 and errors[0].startswith("net0: invalid format") and problem in errors[0]


@pytest.mark.parametrize("params", [
    {"rootfs": "local-lvm:8"},
    {"rootfs": "volume=local-lvm:8,size=8G"},
    {"net0": "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,firewall=yes"},
    {"mp0": "local-lvm:4,mp=/srv/data,backup=1"},
])
def test_property_strings_accept_the_default_key_and_boolean_words(params):
    assert validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, **params}) == []


def test_qemu_property_strings_resolve_model_aliases_and_named_formats():
    good = {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "agent": "enabled=1,fstrim_cloned_disks=1",
            "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1", "scsi1": "local-lvm:32,discard=on,ssd=1"}
    assert validate("PUT", "/nodes/pve1/qemu/101/config", good) == []
    errors = validate("PUT", "/nodes/pve1/qemu/101/config", {"ipconfig0": "ip=10.0.0.5,gw=10.0.0",
                                                             "net0": "rtl8139=01:00:00:00:00:01"})
    assert [e.split(":")[0] for e in errors] == ["ipconfig0", "net0"]
    assert "unicast MAC" in errors[1]


def test_top_level_booleans_are_only_0_or_1_as_the_real_server_checks_them():
    assert validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, "unprivileged": "0"}) == []
    for word in ("true", "True", "yes"):
        errors = validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, "unprivileged": word})
        assert errors == [f"unprivileged: type check ('boolean') failed - got '{word}'"]
    assert validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, "unprivileged": True}) == []  # a JSON body


@pytest.mark.parametrize("key, accepted", [("net0", True), ("net31", True), ("net32", False), ("net01", False),
                                           ("mp255", True), ("mp256", False)])
def test_indexed_keys_match_numbers_up_to_their_bound(key, accepted):
    value = NET0 if key.startswith("net") else "local-lvm:4,mp=/srv"
    assert (validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, key: value}) == []) is accepted


@pytest.mark.parametrize("params, problem", [
    ({"hostname": "app_1"}, "hostname: invalid format - value does not look like a valid DNS name"),
    ({"vmid": "99"}, "vmid: invalid format - value does not look like a valid VM ID"),
    ({"vmid": "1e3"}, "vmid: type check ('integer') failed - got '1e3'"),
    ({"tags": "paas;bad tag!"}, "tags: invalid format - invalid characters in tag"),
    ({"memory": "8"}, "memory: value must have a minimum value of 16"),
    ({"storage": "9local"}, "storage: invalid format - storage ID '9local' contains illegal characters"),
    ({"arch": "sparc"}, "arch: value 'sparc' does not have a value in the enumeration"),
    ({"hostname": "a" * 256}, "hostname: value may only be 255 characters long"),
])
def test_named_formats_ranges_enums_and_lengths_are_checked(params, problem):
    errors = validate("POST", "/nodes/pve1/lxc", {**LXC_CREATE, **params})
    assert len(errors) == 1 and errors[0].startswith(problem)


def test_sshkeys_must_be_percent_encoded_for_a_vm():
    assert validate("PUT", "/nodes/pve1/qemu/101/config", {"sshkeys": "ssh-ed25519%20AAAAC3%20me"}) == []
    errors = validate("PUT", "/nodes/pve1/qemu/101/config", {"sshkeys": "ssh-ed25519 AAAAC3 me"})
    assert errors == ["sshkeys: invalid format - invalid urlencoded string: ssh-ed25519 AAAAC3 me"]


def test_patterns_are_matched_against_the_whole_value():
    assert validate("PUT", "/nodes/pve1/qemu/101/resize", {"disk": "scsi0", "size": "+2G"}) == []
    assert validate("PUT", "/nodes/pve1/qemu/101/resize", {"disk": "scsi0", "size": "2GB"}) == [
        "size: value does not match the regex pattern"]


def test_path_placeholders_are_checked_like_parameters():
    assert validate("GET", "/nodes/pve1/qemu/abc/status/current", {}) == [
        "vmid: type check ('integer') failed - got 'abc'"]
    assert validate("GET", "/nodes/pve_1/qemu/100/status/current", {}) == [
        "node: invalid format - value does not look like a valid node name"]
    upid = "UPID:pve1:00001234:00ABCDEF:6700AA00:vzcreate:100:root@pam:"
    assert validate("GET", f"/nodes/pve1/tasks/{upid}/status", {}) == []


def test_a_path_or_method_outside_the_subset_is_an_error():
    assert validate("GET", "/nodes/pve1/qemu/100/migrate", {}) == [
        "_path: no GET /nodes/pve1/qemu/100/migrate in the API (subset)"]
    assert validate("PATCH", "/nodes", {}) != []


def test_the_fake_serves_exactly_the_endpoints_of_the_subset():
    assert set(ROUTES) == {(e.method, e.path) for e in default_schema().endpoints}


@pytest.mark.skipif(not SHARED_SCHEMAS.is_dir(), reason="the official schema dumps are not beside the repository")
def test_the_subset_file_is_what_the_script_derives(tmp_path):
    output = tmp_path / "subset.json"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "derive_pve_schema.py"),
                          "--schema-dir", str(SHARED_SCHEMAS), "--output", str(output)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(output.read_text()) == json.loads(SUBSET_PATH.read_text())


# --- authentication ------------------------------------------------------------------------------

def test_token_auth_works_over_verified_https(api):
    assert api.version.get()["version"] == "9.1.3"


def test_ticket_login_works_for_reads_and_writes(fake):
    api = connect(fake, token_name=None, token_value=None, password="password")
    assert [n["node"] for n in api.nodes.get()] == ["pve1", "pve2"]
    upid = api.nodes("pve1").qemu(9000).clone.post(newid=150, name="via-ticket")
    assert wait_for_task(api, "pve1", upid)["exitstatus"] == "OK"
    assert upid.split(":")[7] == "root@pam"


def test_a_wrong_password_is_refused_with_401(fake):
    with pytest.raises(AuthenticationError, match="code: 401"):
        connect(fake, token_name=None, token_value=None, password="wrong")


def test_a_wrong_token_secret_is_refused_with_401(fake):
    with pytest.raises(ResourceException) as caught:
        connect(fake, token_value="wrong").version.get()
    assert caught.value.status_code == 401


def test_a_ticket_write_without_the_csrf_header_is_refused(fake):
    login = requests.post(f"{fake.url}/access/ticket", data={"username": "root@pam", "password": "password"},
                          verify=fake.ca_bundle_path, timeout=5).json()["data"]
    answer = requests.post(f"{fake.url}/nodes/pve1/qemu/9000/clone", data={"newid": 151},
                           cookies={"PVEAuthCookie": login["ticket"]}, verify=fake.ca_bundle_path, timeout=5)
    assert (answer.status_code, answer.reason) == (401, "Permission denied - invalid csrf token")


def test_a_request_without_credentials_is_refused(fake):
    answer = requests.get(f"{fake.url}/version", verify=fake.ca_bundle_path, timeout=5)
    assert (answer.status_code, answer.reason, answer.json()) == (401, "No ticket", {"data": None,
                                                                                     "message": "No ticket\n"})


# --- guest flows ---------------------------------------------------------------------------------

def test_a_container_is_created_started_reached_stopped_and_deleted(fake, api):
    vmid = int(api.cluster.nextid.get())
    assert vmid == 100
    assert create_container(api, vmid)["exitstatus"] == "OK"
    config = api.nodes("pve1").lxc(vmid).config.get()
    assert config["hostname"] == "app-100" and config["rootfs"] == "local-lvm:vm-100-disk-0,size=8G"
    assert "hwaddr=BC:24:11:" in config["net0"] and config["memory"] == 512
    assert api.nodes("pve1").lxc(vmid).interfaces.get() is None

    wait_for_task(api, "pve1", api.nodes("pve1").lxc(vmid).status.start.post())
    current = api.nodes("pve1").lxc(vmid).status.current.get()
    assert current["status"] == "running" and current["maxmem"] == 512 * 1024 ** 2
    assert current["maxdisk"] == 8 * 1024 ** 3
    eth0 = [i for i in api.nodes("pve1").lxc(vmid).interfaces.get() if i["name"] == "eth0"][0]
    assert eth0["inet"] == "10.10.0.2/24"

    wait_for_task(api, "pve1", api.nodes("pve1").lxc(vmid).status.shutdown.post(timeout=30))
    assert api.nodes("pve1").lxc(vmid).status.current.get()["status"] == "stopped"
    wait_for_task(api, "pve1", api.nodes("pve1").lxc(vmid).delete(purge=1, **{"destroy-unreferenced-disks": 1}))
    assert fake.guest_ids() == []
    with pytest.raises(ResourceException, match="Configuration file 'nodes/pve1/lxc/100.conf' does not exist"):
        api.nodes("pve1").lxc(vmid).config.get()
    fake.assert_no_violations()


def test_a_vm_is_cloned_configured_and_reports_its_address_through_the_agent(fake, api):
    fake.agent_delay = 0.3
    upid = api.nodes("pve1").qemu(9000).clone.post(newid=120, name="app-vm", full=1)
    status = wait_for_task(api, "pve1", upid)
    assert status["type"] == "qmclone" and status["exitstatus"] == "OK"
    vm = api.nodes("pve1").qemu(120)
    vm.config.put(cores=2, memory="4096", ciuser="paas", ipconfig0="ip=dhcp", agent="1",
                  sshkeys="ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAA%20paas", tags="paas;deployment-9")
    wait_for_task(api, "pve1", vm.resize.put(disk="scsi0", size="+10G"))
    config = vm.config.get()
    assert config["scsi0"] == "local-lvm:vm-120-disk-0,size=20G" and config["cores"] == 2
    assert config["net0"].startswith("virtio=BC:24:11:") and "template" not in config

    wait_for_task(api, "pve1", vm.status.start.post())
    with pytest.raises(ResourceException, match="QEMU guest agent is not running"):
        vm.agent("network-get-interfaces").get()
    result = poll(lambda: _agent_ipv4(vm))
    assert result == ("10.10.0.2", 24)
    assert vm.status.current.get()["maxmem"] == 4096 * 1024 ** 2
    fake.assert_no_violations()


def _agent_ipv4(vm):
    """eth0's IPv4 from the guest agent, or None while the agent is not up."""
    try:
        interfaces = vm.agent("network-get-interfaces").get()["result"]
    except ResourceException:
        return None
    for interface in interfaces:
        for address in interface["ip-addresses"]:
            if interface["name"] == "eth0" and address["ip-address-type"] == "ipv4":
                return address["ip-address"], address["prefix"]
    return None


def test_a_linked_clone_shares_the_template_base_volume(api):
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=121, full=0))
    config = api.nodes("pve1").qemu(121).config.get()
    assert config["scsi0"] == "local-lvm:base-9000-disk-0/vm-121-disk-0,size=10G"
    assert config["name"] == "Copy-of-VM-debian-12-cloud"


def test_a_running_guest_cannot_be_deleted(fake, api):
    create_container(api, 100)
    wait_for_task(api, "pve1", api.nodes("pve1").lxc(100).status.start.post())
    with pytest.raises(ResourceException, match="unable to destroy CT 100 - container is running") as caught:
        api.nodes("pve1").lxc(100).delete()
    assert caught.value.status_code == 500
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=101))
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(101).status.start.post())
    with pytest.raises(ResourceException, match="VM 101 is running - destroy failed"):
        api.nodes("pve1").qemu(101).delete(purge=1)
    assert fake.guest_ids() == [100, 101]


def test_a_guest_is_locked_while_its_create_task_runs(fake, api):
    fake.task_seconds = 0.3
    upid = api.nodes("pve1").lxc.post(vmid=100, ostemplate=TEMPLATE, net0=NET0, rootfs="local-lvm:8")
    assert api.nodes("pve1").lxc(100).status.current.get()["lock"] == "create"
    with pytest.raises(ResourceException, match=r"CT is locked \(create\)"):
        api.nodes("pve1").lxc(100).config.put(cores=2)
    assert int(api.cluster.nextid.get()) == 101
    wait_for_task(api, "pve1", upid)
    assert "lock" not in api.nodes("pve1").lxc(100).status.current.get()


def test_cluster_resources_and_node_lists_show_guests_and_capacity(fake, api):
    create_container(api, 100, tags="paas;deployment-3")
    wait_for_task(api, "pve1", api.nodes("pve1").lxc(100).status.start.post())
    vms = {r["vmid"]: r for r in api.cluster.resources.get(type="vm")}
    assert (vms[100]["tags"], vms[100]["type"], vms[100]["status"]) == ("paas;deployment-3", "lxc", "running")
    assert vms[9000]["template"] == 1 and vms[9000]["node"] == "pve1"
    nodes = {n["node"]: n for n in api.nodes.get()}
    assert nodes["pve1"]["mem"] - nodes["pve2"]["mem"] == 512 * 1024 ** 2
    assert {n["status"] for n in nodes.values()} == {"online"}
    assert [s["storage"] for s in api.nodes("pve1").storage.get(content="rootdir")] == ["local-lvm"]


def test_a_resize_grows_a_disk_and_a_shrink_fails_its_task(api):
    create_container(api, 100)
    wait_for_task(api, "pve1", api.nodes("pve1").lxc(100).resize.put(disk="rootfs", size="12G"))
    assert api.nodes("pve1").lxc(100).config.get()["rootfs"].endswith("size=12G")
    status = wait_for_task(api, "pve1", api.nodes("pve1").lxc(100).resize.put(disk="rootfs", size="4G"))
    assert status["exitstatus"] == "shrinking disks is not supported"


def test_a_json_body_is_accepted_like_a_form(fake):
    answer = requests.post(f"{fake.url}/nodes/pve1/qemu/9000/clone", json={"newid": 130, "full": True},
                           headers={"Authorization": "PVEAPIToken=root@pam!paas=secret"},
                           verify=fake.ca_bundle_path, timeout=5)
    assert answer.status_code == 200 and answer.json()["data"].startswith("UPID:pve1:")
    fake.assert_no_violations()


# --- tasks ---------------------------------------------------------------------------------------

def test_a_upid_has_nine_fields_and_a_trailing_colon(api):
    upid = api.nodes("pve1").qemu(9000).clone.post(newid=101)
    fields = upid.split(":")
    assert len(fields) == 9 and fields[-1] == ""  # UPID and seven values, each ended by a colon
    assert fields[0] == "UPID" and fields[1] == "pve1" and fields[5:8] == ["qmclone", "9000", "root@pam!paas"]
    assert all(len(f) == 8 and int(f, 16) >= 0 for f in fields[2:5])


def test_a_task_log_pages_and_ends_with_the_task_line(api):
    upid = api.nodes("pve1").lxc.post(vmid=100, ostemplate=TEMPLATE, net0=NET0, rootfs="local-lvm:8")
    wait_for_task(api, "pve1", upid)
    log = api.nodes("pve1").tasks(upid).log.get()
    assert log[0] == {"n": 1, "t": f"extracting archive '{TEMPLATE}'"} and log[-1]["t"] == "TASK OK"
    assert api.nodes("pve1").tasks(upid).log.get(start=1, limit=2) == log[1:3]


def test_a_task_is_not_visible_right_after_creation_when_so_configured(fake, api):
    fake.task_visibility_delay = 0.2
    upid = api.nodes("pve1").qemu(9000).clone.post(newid=101)
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").tasks(upid).status.get()
    assert caught.value.status_code == 400 and caught.value.errors == {"upid": "no such task"}
    assert wait_for_task(api, "pve1", upid)["exitstatus"] == "OK"


# --- schema enforcement over HTTP ----------------------------------------------------------------

def test_a_request_with_an_unknown_parameter_is_rejected_and_recorded(fake, api):
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").lxc.post(vmid=100, ostemplate=TEMPLATE, colour="blue")
    assert caught.value.status_code == 400
    assert (caught.value.status_message, caught.value.content) == ("Bad Request", "Parameter verification failed.")
    assert set(caught.value.errors) == {"colour"}
    assert [v.errors for v in fake.schema_violations] == [{"colour": caught.value.errors["colour"]}]
    assert fake.guest_ids() == []
    with pytest.raises(AssertionError, match="colour"):
        fake.assert_no_violations()


def test_a_python_boolean_sent_as_a_form_value_is_a_violation(fake, api):
    with pytest.raises(ResourceException, match="type check"):
        api.nodes("pve1").qemu(9000).clone.post(newid=101, full=True)  # requests sends "True"
    assert len(fake.schema_violations) == 1


def test_a_bad_vmid_in_the_path_is_rejected(fake, api):
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu("abc").status.current.get()
    assert caught.value.status_code == 400 and "vmid" in caught.value.errors
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu(42).config.get()
    assert caught.value.errors == {"vmid": "invalid format - value does not look like a valid VM ID"}
    assert len(fake.schema_violations) == 2


def test_an_unknown_path_is_501_and_recorded(fake, api):
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu(9000).migrate.get()
    assert caught.value.status_code == 501
    assert len(fake.schema_violations) == 1


# --- vmid allocation -----------------------------------------------------------------------------

def test_nextid_is_the_lowest_free_id_and_does_not_reserve_it(fake, api):
    assert api.cluster.nextid.get() == "100"
    assert api.cluster.nextid.get() == "100"
    create_container(api, 100)
    create_container(api, 102)
    assert api.cluster.nextid.get() == "101"
    with pytest.raises(ResourceException) as caught:
        api.cluster.nextid.get(vmid=102)
    assert caught.value.errors == {"vmid": "VM 102 already exists"}


def test_a_fixed_nextid_makes_the_second_create_collide(fake, api):
    fake.nextid_fixed = 100
    create_container(api, int(api.cluster.nextid.get()))
    vmid = int(api.cluster.nextid.get())
    assert vmid == 100
    with pytest.raises(ResourceException, match="CT 100 already exists on node 'pve1'") as caught:
        api.nodes("pve1").lxc.post(vmid=vmid, ostemplate=TEMPLATE)
    assert caught.value.status_code == 500
    with pytest.raises(ResourceException, match="unable to create VM 100: config file already exists"):
        api.nodes("pve1").qemu(9000).clone.post(newid=vmid)
    fake.conflict_as_400 = True
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").lxc.post(vmid=vmid, ostemplate=TEMPLATE)
    assert caught.value.status_code == 400 and caught.value.errors == {"vmid": "VM 100 already exists"}
    fake.assert_no_violations()


# --- fault injection -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, reason", [(500, "got timeout"), (503, "Service Unavailable")])
def test_fail_next_answers_matching_requests_once(fake, api, status, reason):
    fake.fail_next("GET", r"^/cluster/nextid$", status=status, reason=reason)
    with pytest.raises(ResourceException) as caught:
        api.cluster.nextid.get()
    assert (caught.value.status_code, caught.value.content) == (status, reason)
    assert api.cluster.nextid.get() == "100"


def test_fail_task_ends_the_next_task_of_that_type_with_the_error_and_removes_the_guest(fake, api):
    fake.fail_task("vzcreate", error="unable to create CT 100 - no space left on device")
    status = create_container(api, 100)
    assert status["exitstatus"] == "unable to create CT 100 - no space left on device"
    log = api.nodes("pve1").tasks(status["upid"]).log.get()
    assert log[-1]["t"] == "TASK ERROR: unable to create CT 100 - no space left on device"
    assert fake.guest_ids() == []
    assert create_container(api, 100)["exitstatus"] == "OK"


def test_fail_task_on_start_leaves_the_guest_stopped(fake, api):
    create_container(api, 100)
    fake.fail_task("vzstart", error="startup for container '100' failed")
    status = wait_for_task(api, "pve1", api.nodes("pve1").lxc(100).status.start.post())
    assert status["exitstatus"] == "startup for container '100' failed"
    assert api.nodes("pve1").lxc(100).status.current.get()["status"] == "stopped"


def test_a_warnings_exit_status_counts_as_success(fake, api):
    fake.fail_task("qmclone", error="WARNINGS: 1")
    status = wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=101))
    assert status["exitstatus"] == "WARNINGS: 1" and fake.guest(101).lock is None


def test_lock_timeouts_fail_the_next_config_writes(fake, api):
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=101))
    fake.lock_timeouts = 2
    for _ in range(2):
        with pytest.raises(ResourceException,
                           match=r"can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"):
            api.nodes("pve1").qemu(101).config.put(cores=2)
    api.nodes("pve1").qemu(101).config.put(cores=2)
    assert api.nodes("pve1").qemu(101).config.get()["cores"] == 2


def test_an_offline_node_is_listed_offline_and_cannot_be_reached(fake, api):
    fake.set_node_offline("pve2")
    nodes = {n["node"]: n for n in api.nodes.get()}
    assert nodes["pve2"]["status"] == "offline" and "maxmem" not in nodes["pve2"]
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").status.get()
    assert caught.value.status_code == 595
    fake.set_node_online("pve2")
    assert api.nodes("pve2").status.get()["memory"]["total"] == 64 * 1024 ** 3


def test_a_guest_agent_that_never_answers(fake, api):
    fake.agent_never_answers = True
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=101))
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(101).status.start.post())
    time.sleep(0.05)
    with pytest.raises(ResourceException, match="QEMU guest agent is not running") as caught:
        api.nodes("pve1").qemu(101).agent("network-get-interfaces").get()
    assert caught.value.status_code == 500


def test_an_agent_without_an_ipv4_yet_reports_only_link_local(fake, api):
    fake.agent_ip_delay = 5
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=101))
    wait_for_task(api, "pve1", api.nodes("pve1").qemu(101).status.start.post())
    assert _agent_ipv4(api.nodes("pve1").qemu(101)) is None


def test_a_delay_makes_the_client_time_out(fake):
    fake.delay(2.0, method="GET", path="^/version$")
    impatient = connect(fake, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.version.get()
    assert time.monotonic() - started < 1.5
    assert impatient.version.get()["version"] == "9.1.3"


def test_a_dropped_connection_is_a_connection_error(fake, api):
    fake.drop_next("GET", "^/nodes$")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.nodes.get()
    assert len(api.nodes.get()) == 2


# --- lifecycle -----------------------------------------------------------------------------------

def test_stopping_releases_the_port_and_every_thread():
    before = threading.active_count()
    fake = FakeProxmox(task_seconds=0.01).start()
    port = fake.port
    api = connect(fake)
    for _ in range(3):
        api.version.get()
    fake.delay(30, path="^/nodes$")
    hung = threading.Thread(target=lambda: _ignore_errors(api.nodes.get))
    hung.start()
    time.sleep(0.1)
    fake.stop()
    hung.join(timeout=5)
    assert not hung.is_alive()
    assert poll(lambda: threading.active_count() <= before, timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _ignore_errors(call):
    """Run call, swallowing the error a closed server causes."""
    try:
        call()
    except Exception:  # noqa: BLE001 - the server went away on purpose
        pass
