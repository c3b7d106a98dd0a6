"""Real guests: Debian containers booted with systemd as PID 1, each in a network namespace of its own on a
bridge the test makes, reached over SSH with the key given at create, and gone without a trace when removed.

They need root, debootstrap and systemd-nspawn: .ci/run installs them; elsewhere the tests skip unless CI is set.
"""
import os
import subprocess

import paramiko
import pytest

from backend.simulation import containers
from backend.simulation.containers import ContainerError, ContainerHost, GuestImage, require_capabilities
from tests.helpers.database import worker_number

pytestmark = pytest.mark.slow

IMAGE_CACHE = os.environ.get("SIMULATION_IMAGE_CACHE", "/var/cache/paas-simulation/images")
# Address blocks (bridges paasbrN, 10.77.N.0/24) of the real-guest tests, eight test workers each, apart from
# the simulations' (0-127) and the sandbox tests' (128-199): a host started on a block replaces its bridge.
HOST_BLOCKS = range(200, 208)
FIRST_BLOCKS = range(208, 216)
SECOND_BLOCKS = range(216, 224)
CLUSTER_BLOCKS = range(224, 232)  # tests/simulation/test_real_guests.py


def block(blocks):
    """This test worker's block in a range of blocks."""
    return blocks[worker_number() % len(blocks)]


def capable():
    try:
        require_capabilities()
        return True
    except ContainerError:
        return False


@pytest.fixture(scope="module")
def image_root():
    if not capable():
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-guest tests: run as root with debootstrap and systemd-container")
        pytest.skip("real guests need root, debootstrap and systemd-nspawn")
    return GuestImage(IMAGE_CACHE).ensure()


@pytest.fixture
def host(image_root, tmp_path):
    with ContainerHost(tmp_path / "guests", image_root, block(HOST_BLOCKS)) as made:
        yield made
        names = list(made.guests)
    assert made.leftovers(names) == []


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    pair = {}
    for name in ("platform", "stranger"):
        path = tmp_path_factory.mktemp(name) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        pair[name] = paramiko.Ed25519Key.from_private_key_file(str(path))
    return pair


def public(key):
    return f"{key.get_name()} {key.get_base64()} test"


def ssh(address, key, command, user="root"):
    """(exit status, output) of command on the guest, as user with key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # nosec B507 - a guest the test just made
    client.connect(address, username=user, pkey=key, timeout=10, allow_agent=False, look_for_keys=False)
    try:
        _, stdout, _ = client.exec_command(command, timeout=60)  # nosec B601 - the test's own commands
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output
    finally:
        client.close()


def test_a_guest_boots_systemd_and_answers_ssh_only_with_the_key_it_was_given(host, keys):
    guest = host.create("boot", hostname="shop-api", authorized_keys=[public(keys["platform"])])
    host.boot("boot")
    status, output = ssh(guest.address, keys["platform"],
                         "systemctl is-system-running --wait; cat /proc/1/comm; hostname; "
                         "ip route show default | wc -l; wc -c < /etc/resolv.conf")
    state, init, hostname, default_routes, resolv = output.split()
    assert state in ("running", "degraded") and init == "systemd" and hostname == "shop-api"
    assert default_routes == "0" and resolv == "0"  # no way out but a proxy on the bridge
    with pytest.raises(paramiko.AuthenticationException):
        ssh(guest.address, keys["stranger"], "true")


def test_a_cloud_init_user_gets_the_key_and_passwordless_sudo(host, keys):
    guest = host.create("vm", hostname="vm", users={"paas": [public(keys["platform"])]})
    host.boot("vm")
    assert ssh(guest.address, keys["platform"], "sudo -n id -u", user="paas") == (0, "0\n")
    with pytest.raises(paramiko.AuthenticationException):
        ssh(guest.address, keys["platform"], "true")  # root has no key on a VM


def test_the_disk_and_enabled_units_survive_a_power_cycle_and_a_reboot(host, keys):
    guest = host.create("cycle", hostname="cycle", authorized_keys=[public(keys["platform"])])
    host.boot("cycle")
    unit = ("[Unit]\\nDescription=a long-running app\\n[Service]\\nExecStart=/bin/sleep infinity\\n"
            "[Install]\\nWantedBy=multi-user.target\\n")
    status, _ = ssh(guest.address, keys["platform"],
                    f"printf '{unit}' > /etc/systemd/system/paas-app.service && systemctl enable --now paas-app "
                    "&& echo kept > /srv/data")
    assert status == 0
    host.poweroff("cycle")
    assert not guest.running and containers._cgroup_pids(containers.machine_name(host.block, "cycle")) == set()
    host.boot("cycle")
    assert ssh(guest.address, keys["platform"], "cat /srv/data; systemctl is-active paas-app")[1].split() == \
        ["kept", "active"]
    host.reboot("cycle")
    assert ssh(guest.address, keys["platform"], "systemctl is-active paas-app")[1].strip() == "active"


def test_destroy_leaves_no_process_mount_namespace_veth_or_cgroup(host, keys):
    guest = host.create("gone", hostname="gone", authorized_keys=[public(keys["platform"])])
    host.boot("gone")
    assert ssh(guest.address, keys["platform"], "true")[0] == 0
    assert host.leftovers(["gone"])  # it exists: the check sees it
    host.destroy("gone")
    assert host.leftovers(["gone"]) == []
    assert not guest.directory.exists()


def test_two_hosts_side_by_side_keep_their_own_bridges_and_guests(image_root, tmp_path, keys):
    with ContainerHost(tmp_path / "a", image_root, block(FIRST_BLOCKS)) as first:
        with ContainerHost(tmp_path / "b", image_root, block(SECOND_BLOCKS)) as second:
            one = first.create("one", hostname="one", authorized_keys=[public(keys["platform"])])
            two = second.create("two", hostname="two", authorized_keys=[public(keys["platform"])])
            first.boot("one")
            second.boot("two")
            assert one.address != two.address
            assert ssh(one.address, keys["platform"], "hostname")[1].strip() == "one"
        assert second.leftovers(["two"]) == []
        assert ssh(one.address, keys["platform"], "hostname")[1].strip() == "one"


def test_without_root_it_says_so_plainly(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ContainerError, match="real guests need root"):
        require_capabilities()
