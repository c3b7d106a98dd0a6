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
"""
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess  # nosec B404 - argument lists only, never a shell with outside input
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SUITE = "bookworm"
# What a Proxmox Debian 12 template or cloud image brings: systemd, sshd, sudo for a cloud-init user; no
# python3, git or node (the deployer installs those with apt).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "ca-certificates", "iproute2", "sudo")
# A second image with the runtimes preinstalled keeps a test suite from installing them once per guest.
RUNTIME_PACKAGES = ("python3", "python3-venv", "git", "nodejs", "npm")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,8}")  # short: "pv<block>-<name>" is an interface name (15 at most)


class ContainerError(RuntimeError):
    """A real guest could not be made, started or removed; the message says what and why."""


def require_capabilities():
    """Refuse plainly when this machine cannot run real guests (not root, or a tool missing)."""
    if os.geteuid() != 0:
        raise ContainerError("real guests need root (network namespaces, overlay mounts, cgroups, systemd-nspawn); "
                             "run as root, or use the sandbox simulation")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "mount", "umount")
               if shutil.which(tool) is None]
    if missing:
        raise ContainerError(f"real guests need {', '.join(missing)}: apt-get install debootstrap systemd-container "
                             "iproute2")


def _run(argv, timeout=120, check=True, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,  # nosec B603
                            **kwargs)
    if check and result.returncode != 0:
        raise ContainerError(f"{' '.join(argv[:3])} failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()[-500:]}")
    return result


def apt_mirror(sources_dir=Path("/etc/apt/sources.list.d"), sources_list=Path("/etc/apt/sources.list")):
    """The Debian mirror this machine's apt uses for the main archive (read at run time, never written here)."""
    candidates = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line.lstrip().startswith("#"))
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            if fields.get("types", "deb").split()[0] == "deb" and SUITE in fields.get("suites", "").split():
                candidates += fields.get("uris", "").split()
    if sources_list.is_file():
        for line in sources_list.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                candidates.append(words[1])
    if not candidates:
        raise ContainerError(f"no apt source for Debian {SUITE} on this machine (/etc/apt/sources.list.d)")
    return candidates[0]


@dataclass(frozen=True)
class GuestImage:
    """A cached root filesystem: debootstrap's minbase with packages, then apt for extra ones."""

    cache_dir: Path
    packages: tuple = BASE_PACKAGES
    extra: tuple = ()

    @property
    def key(self):
        spec = json.dumps({"suite": SUITE, "packages": sorted(self.packages), "extra": sorted(self.extra)})
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    @property
    def root(self):
        return Path(self.cache_dir) / f"{SUITE}-{self.key}"

    def ensure(self):
        """The image's root directory, built first when the cache does not have it (about a minute).

        Processes that ask at once (test workers) build it once: the others wait on the cache's lock.
        """
        if (self.root / ".paas-image").is_file():
            return self.root
        require_capabilities()
        Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(self.cache_dir) / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (self.root / ".paas-image").is_file():
                return self.root
            return self._build()

    def _build(self):
        building = Path(f"{self.root}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        started = time.monotonic()
        try:
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(self.packages)}", SUITE, str(building),
                  apt_mirror()], timeout=1200)
            if self.extra:
                # In the new root with the host's network and resolver, as a throwaway container run.
                shutil.copy("/etc/resolv.conf", building / "etc" / "resolv.conf")
                for command in (["apt-get", "-q", "update"],
                                ["apt-get", "-q", "-y", "install", "--no-install-recommends", *self.extra]):
                    _run(["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--resolv-conf=off",
                          "--timezone=off", "-D", str(building), "--setenv=DEBIAN_FRONTEND=noninteractive",
                          *command], timeout=1200)
                _run(["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--resolv-conf=off", "--timezone=off",
                      "-D", str(building), "apt-get", "clean"], timeout=300)
            _finish_image(building)
            (building / ".paas-image").write_text(json.dumps({"packages": self.packages, "extra": self.extra}))
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.root)
            building.rename(self.root)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        log.info("built guest image %s in %.0f s", self.root.name, time.monotonic() - started)
        return self.root


def _finish_image(root):
    """What every guest shares: no DNS (no route out), keys only for SSH, a machine id made at each boot."""
    resolv = root / "etc" / "resolv.conf"
    with contextlib.suppress(FileNotFoundError):
        resolv.unlink()
    resolv.write_text("")
    (root / "etc" / "machine-id").write_text("")
    sshd = root / "etc" / "ssh" / "sshd_config.d"
    sshd.mkdir(parents=True, exist_ok=True)
    (sshd / "paas.conf").write_text("PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                                    "PermitRootLogin prohibit-password\nUseDNS no\n")
    # Host keys are made per guest at its first boot (a copy of the image must not share them).
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    units = root / "etc" / "systemd" / "system"
    (units / "paas-ssh-host-keys.service").write_text(
        "[Unit]\nDescription=SSH host keys of this guest\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n[Install]\nWantedBy=multi-user.target\n")
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (wants / "paas-ssh-host-keys.service").symlink_to("../paas-ssh-host-keys.service")
    # Boot needs none of these in a container; they only slow it down or wait on the network.
    for unit in ("systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer"):
        with contextlib.suppress(FileExistsError):
            (units / unit).symlink_to("/dev/null")


@dataclass
class Container:
    """One guest: where its files are, its network namespace and address, its systemd-nspawn process."""

    name: str
    address: str
    prefix: int
    directory: Path
    block: int
    process: object = None
    users: dict = field(default_factory=dict)

    @property
    def root(self):
        return self.directory / "root"

    @property
    def netns(self):
        """Also the name of its cgroups: machine-wide names, so they carry the host's block."""
        return machine_name(self.block, self.name)

    @property
    def host_veth(self):
        return f"pv{self.block}-{self.name}"

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None


class ContainerHost:
    """A bridge with its subnet and the guests on it. Use as a context manager, or call close()."""

    def __init__(self, workdir, image_root, block):
        if not 0 <= block <= 255:
            raise ValueError(f"address block {block} is not in 0..255")
        self.workdir = Path(workdir)
        self.image_root = Path(image_root)
        self.block = block
        self.bridge = f"paasbr{block}"
        self.network = ipaddress.ip_network(f"10.77.{block}.0/24")
        self.gateway = str(self.network.network_address + 1)
        self.guests = {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    # -- the bridge --------------------------------------------------------------------------------

    def start(self):
        """Create the bridge (replacing one an earlier run of this block left behind)."""
        require_capabilities()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._sweep_stale()
        _run(["ip", "link", "del", self.bridge], check=False)
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        return self

    def _sweep_stale(self):
        """Remove what an earlier run in this work directory left (one killed before it could close)."""
        for directory in sorted(p for p in self.workdir.iterdir() if p.is_dir()):
            if NAME_RE.fullmatch(directory.name):
                self.guests[directory.name] = Container(directory.name, "", 0, directory, self.block)
                with contextlib.suppress(ContainerError, OSError, subprocess.SubprocessError):
                    self.destroy(directory.name)
                self.guests.pop(directory.name, None)

    def close(self):
        """Remove every guest, then the bridge and the work directory."""
        for name in list(self.guests):
            with contextlib.suppress(ContainerError, OSError, subprocess.SubprocessError):
                self.destroy(name)
        _run(["ip", "link", "del", self.bridge], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def free_address(self):
        """The lowest address of the subnet no guest holds (.10 to .250)."""
        taken = {guest.address for guest in self.guests.values()}
        for host in range(10, 251):
            address = str(self.network.network_address + host)
            if address not in taken:
                return address
        raise ContainerError(f"no free address left in {self.network}")

    # -- guests ------------------------------------------------------------------------------------

    def create(self, name, *, hostname, address=None, authorized_keys=(), users=None):
        """A stopped guest with its disk (an overlay on the image), hostname and keys.

        users: {name: [keys]} of accounts to add with passwordless sudo (a VM's cloud-init user).
        """
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"a guest name is {NAME_RE.pattern}, not {name!r}")
        if name in self.guests:
            raise ContainerError(f"guest {name} exists already")
        address = address or self.free_address()
        if ipaddress.ip_address(address) not in self.network:
            raise ContainerError(f"{address} is not on {self.bridge} ({self.network})")
        holder = next((g.name for g in self.guests.values() if g.address == address), None)
        if holder is not None:
            raise ContainerError(f"{address} is in use by guest {holder}")
        guest = Container(name, address, self.network.prefixlen, self.workdir / name, self.block,
                          users=dict(users or {}))
        for part in ("upper", "work", "root"):
            (guest.directory / part).mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={self.image_root},upperdir={guest.directory / 'upper'},workdir={guest.directory / 'work'}",
              str(guest.root)])
        self.guests[name] = guest
        try:
            self._configure(guest, hostname, authorized_keys)
        except BaseException:
            self.destroy(name)
            raise
        return guest

    def _configure(self, guest, hostname, authorized_keys):
        root = guest.root
        _trust_local_cas(root)
        (root / "etc" / "hostname").write_text(f"{hostname}\n")
        (root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n{guest.address} {hostname}\n")
        self.authorize(guest.name, "root", authorized_keys)
        for user, keys in guest.users.items():
            _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--", user])
            sudoers = root / "etc" / "sudoers.d" / "90-paas-cloud-init"
            sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
            sudoers.chmod(0o440)
            self.authorize(guest.name, user, keys)

    def authorize(self, name, user, keys):
        """Write user's authorized_keys in the guest (what Proxmox's ssh-public-keys and cloud-init do)."""
        guest = self.guests[name]
        home = guest.root / ("root" if user == "root" else f"home/{user}")
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh / "authorized_keys"
        authorized.write_text("".join(f"{key.strip()}\n" for key in keys if key.strip()))
        authorized.chmod(0o600)
        if user != "root":
            uid = _run(["chroot", str(guest.root), "id", "-u", user]).stdout.strip()
            gid = _run(["chroot", str(guest.root), "id", "-g", user]).stdout.strip()
            for path in (ssh, authorized):
                os.chown(path, int(uid), int(gid))

    def boot(self, name, timeout=60):
        """Start the guest's systemd in its namespace; returns once its sshd answers on port 22."""
        guest = self.guests[name]
        if guest.running:
            return guest
        self._network_up(guest)
        cgroups = [root / guest.netns for root in CGROUP_ROOTS if root.is_dir()]
        for cgroup in cgroups:
            cgroup.mkdir(exist_ok=True)
        # Into a cgroup of its own before exec (systemd-nspawn asks for that without a machine manager),
        # then systemd-nspawn with systemd as PID 1, the namespace made above, and no resolver or timezone.
        enter = "".join(f'echo $$ > "${i + 1}/cgroup.procs"; ' for i in range(len(cgroups)))
        argv = ["sh", "-c", enter + f'shift {len(cgroups)}; exec "$@"', "paas-guest",
                *[str(c) for c in cgroups],
                "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
                f"--network-namespace-path=/run/netns/{guest.netns}", "--resolv-conf=off", "--timezone=off",
                "--console=passive", f"--machine={guest.netns}", "-D", str(guest.root)]
        output = open(guest.directory / "console.log", "ab")  # the child holds its own copy
        try:
            guest.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,  # nosec B603
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            output.close()
        deadline = time.monotonic() + timeout
        while not _answers(guest.address, 22):
            if not guest.running:
                raise ContainerError(f"guest {name} stopped while booting: {self.console_tail(name)}")
            if time.monotonic() > deadline:
                raise ContainerError(f"guest {name} did not answer SSH within {timeout} s")
            time.sleep(0.1)
        return guest

    def _network_up(self, guest):
        """The guest's namespace, with eth0 (its address, no default route) on a veth into the bridge."""
        if not Path(f"/run/netns/{guest.netns}").exists():
            _run(["ip", "netns", "add", guest.netns])
        _run(["ip", "link", "del", guest.host_veth], check=False)
        _run(["ip", "-n", guest.netns, "link", "del", "eth0"], check=False)
        _run(["ip", "link", "add", guest.host_veth, "type", "veth", "peer", "name", "eth0", "netns", guest.netns])
        _run(["ip", "link", "set", guest.host_veth, "master", self.bridge, "up"])
        _run(["ip", "-n", guest.netns, "addr", "add", f"{guest.address}/{guest.prefix}", "dev", "eth0"])
        _run(["ip", "-n", guest.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", guest.netns, "link", "set", "lo", "up"])

    def poweroff(self, name, timeout=30):
        """An orderly shutdown (systemd-nspawn passes SIGTERM on as the halt signal), forced at timeout."""
        guest = self.guests[name]
        if guest.running:
            guest.process.send_signal(signal.SIGTERM)
            try:
                guest.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("guest %s did not power off in %d s; killing it", name, timeout)
                self._kill_cgroups(name)
                guest.process.kill()
                guest.process.wait(10)
        self._kill_cgroups(name)
        guest.process = None

    def reboot(self, name, timeout=60):
        self.poweroff(name)
        return self.boot(name, timeout=timeout)

    def destroy(self, name):
        """Power off and remove everything the guest had: processes, mount, files, namespace, veth, cgroups."""
        guest = self.guests[name]
        self.poweroff(name)
        if os.path.ismount(guest.root):
            if _run(["umount", str(guest.root)], check=False).returncode != 0:
                _run(["umount", "-l", str(guest.root)])
        _run(["ip", "link", "del", guest.host_veth], check=False)
        _run(["ip", "netns", "del", guest.netns], check=False)
        for root in CGROUP_ROOTS:
            _remove_cgroup(root / guest.netns)
        shutil.rmtree(guest.directory, ignore_errors=True)
        del self.guests[name]

    def _kill_cgroups(self, name):
        """SIGKILL whatever still runs in the guest's cgroups, and wait (bounded) until they are empty."""
        deadline = time.monotonic() + 10
        while True:
            pids = _cgroup_pids(machine_name(self.block, name))
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise ContainerError(f"processes of guest {name} would not die: {sorted(pids)[:10]}")
            time.sleep(0.05)

    def console_tail(self, name, lines=20):
        path = self.guests[name].directory / "console.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def leftovers(self, names=None):
        """What remains on this machine of the named guests (all this host ever made): [descriptions]."""
        names = list(names) if names is not None else [p.name for p in self.workdir.iterdir()] \
            if self.workdir.exists() else []
        found = []
        mounts = Path("/proc/self/mounts").read_text()
        for name in names:
            machine = machine_name(self.block, name)
            if _cgroup_pids(machine):
                found.append(f"processes of {name}")
            if str(self.workdir / name) in mounts:
                found.append(f"a mount of {name}")
            if Path(f"/run/netns/{machine}").exists():
                found.append(f"the network namespace of {name}")
            if _run(["ip", "link", "show", f"pv{self.block}-{name}"], check=False).returncode == 0:
                found.append(f"the veth of {name}")
            for root in CGROUP_ROOTS:
                if (root / machine).exists():
                    found.append(f"the cgroup {root / machine}")
        return found


LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def _trust_local_cas(root):
    """Give the guest the certificate authorities this machine added to its own trust (a site whose egress
    inspects TLS has one; its Proxmox templates carry it too), for apt, git, pip and npm alike.

    Done per guest, not in the cached image: such a CA may change between runs.
    """
    extra = sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []
    if not extra:
        return
    target = root / "usr" / "local" / "share" / "ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    pem = ""
    for certificate in extra:
        shutil.copy(certificate, target / certificate.name)
        pem += certificate.read_text().strip() + "\n"
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    if bundle.exists():
        bundle.write_text(bundle.read_text() + pem)
    # pip (its own certifi bundle) and npm (node's built-in roots) read the system bundle only when told so.
    (root / "etc" / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    (root / "etc" / "npmrc").write_text("cafile=/etc/ssl/certs/ca-certificates.crt\n")


def machine_name(block, name):
    """The machine-wide name of a guest's network namespace and cgroups: hosts of other blocks have theirs."""
    return f"paas{block}-{name}"


def _cgroup_pids(machine):
    pids = set()
    for root in CGROUP_ROOTS:
        base = root / machine
        if base.is_dir():
            for procs in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids |= {int(line) for line in procs.read_text().split()}
    return pids


def _remove_cgroup(path):
    """rmdir a cgroup and its children, deepest first (a cgroup is removed with rmdir, never rm)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def _answers(address, port):
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


class ProxmoxGuests:
    """The fake Proxmox's guests made real on a ContainerHost (FakeProxmox(guest_backend=ProxmoxGuests(host))).

    An LXC create makes the container with the request's ssh-public-keys for root; a VM clone makes nothing
    until its first start, when cloud-init would run: then its ciuser gets the sshkeys and sudo, and eth0
    the ipconfig0 address. Power actions and deletes act on the container; the guest agent and the LXC
    interfaces report its real address.
    """

    def __init__(self, host):
        self.host = host

    @staticmethod
    def name(guest):
        return f"g{guest.vmid}"

    def create_lxc(self, guest, public_keys):
        address = guest.static_ipv4()
        self.host.create(self.name(guest), hostname=str(guest.config.get("hostname") or f"ct{guest.vmid}"),
                         address=address[0] if address else None,
                         authorized_keys=[k for k in str(public_keys).splitlines() if k.strip()])

    def _cloud_init(self, guest):
        from urllib.parse import unquote  # noqa: PLC0415 - only a VM's first start needs it

        config = guest.config
        keys = [k for k in unquote(str(config.get("sshkeys") or "")).splitlines() if k.strip()]
        address = guest.static_ipv4()
        self.host.create(self.name(guest), hostname=str(config.get("name") or f"vm{guest.vmid}"),
                         address=address[0] if address else None,
                         users={str(config.get("ciuser") or "debian"): keys})

    def power(self, guest, action):
        name = self.name(guest)
        if name not in self.host.guests:
            if guest.kind != "qemu":
                raise ContainerError(f"CT {guest.vmid} has no container")
            self._cloud_init(guest)
        if action == "start":
            self.host.boot(name)
        elif action in ("stop", "shutdown"):
            self.host.poweroff(name)
        elif action == "reboot":
            self.host.reboot(name)

    def destroy(self, guest):
        if self.name(guest) in self.host.guests:
            self.host.destroy(self.name(guest))

    def address(self, guest):
        made = self.host.guests.get(self.name(guest))
        return (made.address, made.prefix) if made is not None else None
