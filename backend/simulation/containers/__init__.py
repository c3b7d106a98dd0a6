"""Real Linux guests for simulation and tests: Debian bookworm containers, each booted with systemd as PID 1,
in a network namespace of its own with its own address on a bridge this module owns, running sshd.

What a Proxmox guest gives the platform, on one machine that has no Proxmox: the deploy step reaches them over
SSH, exactly as in production. It needs root (namespaces, mounts, cgroups), debootstrap and systemd-nspawn
(Debian's packages debootstrap and systemd-container).

- GuestImage: a root filesystem made once by debootstrap (and apt for extra packages), cached by its package
  list; every guest runs on an overlayfs over it, so a new guest costs a directory, not a copy.
- ContainerHost: a bridge with a subnet (10.77.<block>.0/24, the address block the caller claimed), and the
  guests on it. A guest is a network namespace with a veth into the bridge, an overlay mount, a cgroup, and a
  systemd-nspawn process. close() removes all of it; leftovers() says what would remain.

Guests have no default route and an empty resolv.conf: nothing leaves the bridge unless the caller runs a proxy
on the bridge's address. Every command here is an argument list; names and paths are the module's own.

The modules: system.py (the capability check, running a command, ContainerError), image.py (GuestImage),
host.py (ContainerHost, Container), proxmox_guests.py (ProxmoxGuests, the fake Proxmox's guest backend).
"""
from backend.simulation.containers.host import (
    CGROUP_ROOTS,
    LOCAL_CAS,
    NAME_RE,
    Container,
    ContainerHost,
    _answers,  # bench/bench_real_guests.py waits for SSH with it
    _cgroup_pids,  # tests/simulation/test_containers.py checks a powered-off guest's cgroups with it
    machine_name,
)
from backend.simulation.containers.image import (
    BASE_PACKAGES,
    RUNTIME_PACKAGES,
    SUITE,
    GuestImage,
    apt_mirror,
)
from backend.simulation.containers.proxmox_guests import ProxmoxGuests
from backend.simulation.containers.system import ContainerError, require_capabilities

__all__ = [
    "BASE_PACKAGES", "CGROUP_ROOTS", "LOCAL_CAS", "NAME_RE", "RUNTIME_PACKAGES", "SUITE", "Container",
    "ContainerError", "ContainerHost", "GuestImage", "ProxmoxGuests", "_answers", "_cgroup_pids", "apt_mirror",
    "machine_name", "require_capabilities",
]
