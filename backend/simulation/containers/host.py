"""ContainerHost: a bridge with a subnet (10.77.<block>.0/24, the address block the caller claimed), and the
guests on it. A guest (Container) is a network namespace with a veth into the bridge, an overlay mount, a cgroup,
and a systemd-nspawn process booting systemd. close() removes all of it; leftovers() says what would remain."""
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess  # nosec B404 - argument lists only, never a shell with outside input
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.simulation.containers.system import ContainerError, _run, require_capabilities

log = logging.getLogger(__name__)

CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,8}")  # short: "pv<block>-<name>" is an interface name (15 at most)


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

    def create(self, name, *, hostname, address=None, authorized_keys=(), users=None, archive=None):
        """A stopped guest with its disk (an overlay on the image), hostname and keys.

        users: {name: [keys]} of accounts to add with passwordless sudo (a VM's cloud-init user).
        archive: a backup (archive()'s tar, compressed or not) whose files become the guest's disk before it is
        configured; root's keys are then those of the backup, with authorized_keys added.
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
        self.guests[name] = guest
        try:
            if archive is not None:
                _extract(archive, guest.directory / "upper")
            self._mount(guest)
            self._configure(guest, hostname, authorized_keys, restored=archive is not None)
        except BaseException:
            self.destroy(name)
            raise
        return guest

    def _mount(self, guest):
        """Mount the guest's overlay (its upper directory over the image) on its root."""
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={self.image_root},upperdir={guest.directory / 'upper'},workdir={guest.directory / 'work'}",
              str(guest.root)])

    def _unmount(self, guest):
        """Unmount the guest's overlay (lazily when something still holds it)."""
        if os.path.ismount(guest.root):
            if _run(["umount", str(guest.root)], check=False).returncode != 0:
                _run(["umount", "-l", str(guest.root)])

    def _configure(self, guest, hostname, authorized_keys, restored=False):
        root = guest.root
        _trust_local_cas(root)
        (root / "etc" / "hostname").write_text(f"{hostname}\n")
        (root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n{guest.address} {hostname}\n")
        if restored:  # the backup's users and keys are there already; only add the keys given
            if authorized_keys:
                self.authorize(guest.name, "root", authorized_keys, add=True)
            return
        self.authorize(guest.name, "root", authorized_keys)
        for user, keys in guest.users.items():
            _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--", user])
            sudoers = root / "etc" / "sudoers.d" / "90-paas-cloud-init"
            sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
            sudoers.chmod(0o440)
            self.authorize(guest.name, user, keys)

    def authorize(self, name, user, keys, add=False):
        """Write user's authorized_keys in the guest (what Proxmox's ssh-public-keys and cloud-init do); add: keep
        the keys it has and add the others."""
        guest = self.guests[name]
        home = guest.root / ("root" if user == "root" else f"home/{user}")
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh / "authorized_keys"
        lines = [key.strip() for key in keys if key.strip()]
        if add and authorized.exists():
            kept = [line for line in authorized.read_text().splitlines() if line.strip()]
            lines = kept + [line for line in lines if line not in kept]
        authorized.write_text("".join(f"{line}\n" for line in lines))
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
        self._unmount(guest)
        _run(["ip", "link", "del", guest.host_veth], check=False)
        _run(["ip", "netns", "del", guest.netns], check=False)
        for root in CGROUP_ROOTS:
            _remove_cgroup(root / guest.netns)
        shutil.rmtree(guest.directory, ignore_errors=True)
        del self.guests[name]

    # -- snapshots and archives of a guest's disk --------------------------------------------------
    # A guest's disk is its overlay's upper directory (what it changed over the image): a snapshot is a copy of it
    # beside the guest (<guest dir>/snapshots/<name>, gone with the guest), an archive a tar of it.

    def snapshot(self, name, snapname):
        """Copy the guest's disk to <guest dir>/snapshots/<snapname> (cp -a: owners, modes, xattrs, the overlay's
        whiteouts); a running guest is frozen (its cgroup) meanwhile, as Proxmox freezes a container for a
        snapshot, so the copy is of one moment."""
        guest = self.guests[name]
        target = guest.directory / "snapshots" / snapname
        target.parent.mkdir(exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        with self._frozen(guest):
            _run(["cp", "-a", "--", str(guest.directory / "upper"), str(target)], timeout=900)
        return target

    def delete_snapshot(self, name, snapname):
        """Remove a snapshot's copy."""
        shutil.rmtree(self.guests[name].directory / "snapshots" / snapname, ignore_errors=True)

    def rollback(self, name, snapname):
        """Put the guest's disk back as it was at the snapshot: power off, unmount, replace the upper directory with
        a copy of the snapshot (and a fresh work directory), mount again. The guest stays off."""
        guest = self.guests[name]
        source = guest.directory / "snapshots" / snapname
        if not source.is_dir():
            raise ContainerError(f"guest {name} has no snapshot {snapname}")
        self.poweroff(name)
        self._unmount(guest)
        for part in ("upper", "work"):
            shutil.rmtree(guest.directory / part)
        _run(["cp", "-a", "--", str(source), str(guest.directory / "upper")], timeout=900)
        (guest.directory / "work").mkdir()
        self._mount(guest)

    def archive(self, name, path, compress=None, extra=None, stop=False):
        """Write the guest's disk as a tar to path (compress: zst, gz or None), with extra files ({path in the
        archive: text}) after it; returns the file's size. stop: power a running guest off for it, boot it after.

        Written beside path first and renamed when complete. tar's exit status 1 (a file changed while it read
        it, as a running guest's files do) is no failure."""
        guest = self.guests[name]
        tool = COMPRESSORS[compress]
        if tool and shutil.which(tool) is None:
            raise ContainerError(f"vzdump needs the {tool} program to compress with {tool}: apt-get install {tool}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.dat")
        was_running = guest.running
        if stop and was_running:
            self.poweroff(name)
        try:
            with tempfile.TemporaryDirectory(dir=guest.directory) as staging:
                for relative, text in (extra or {}).items():
                    (Path(staging) / relative).parent.mkdir(parents=True, exist_ok=True)
                    (Path(staging) / relative).write_text(text)
                argv = ["tar", "--create", f"--file={partial}", *TAR_OPTIONS, "--sparse"]
                if tool:
                    argv.append(f"--use-compress-program={tool}")
                argv += ["-C", str(guest.directory / "upper"), ".", "-C", staging,
                         *(f"./{relative}" for relative in (extra or {}))]
                result = _run(argv, timeout=1800, check=False)
                if result.returncode not in (0, 1):
                    raise ContainerError(f"tar of guest {name} failed ({result.returncode}): "
                                         f"{(result.stderr or result.stdout).strip()[-300:]}")
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
            if stop and was_running:
                self.boot(name)
        return path.stat().st_size

    @contextlib.contextmanager
    def _frozen(self, guest):
        """Hold a running guest's processes still (the cgroup v2 freezer) while the body runs; nothing when it is
        stopped or the kernel has no freezer there."""
        control = CGROUP_ROOTS[1] / guest.netns / "cgroup.freeze"
        frozen = False
        if guest.running and control.exists():
            with contextlib.suppress(OSError):
                control.write_text("1")
                frozen = True
                deadline = time.monotonic() + 5
                while "frozen 1" not in (control.parent / "cgroup.events").read_text() and time.monotonic() < deadline:
                    time.sleep(0.01)
        try:
            yield
        finally:
            if frozen:
                control.write_text("0")

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
# What tar keeps of a guest's files: numeric owners, modes, ACLs and every xattr (the overlay's own among them).
TAR_OPTIONS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls")
COMPRESSORS = {"zst": "zstd", "gz": "gzip", "lzo": "lzop", None: None}


def _extract(archive, target):
    """Unpack an archive() tar into a guest's (unmounted) upper directory; its vzdump files are left out."""
    archive = Path(archive)
    tool = next((tool for extension, tool in COMPRESSORS.items()
                 if extension and archive.name.endswith(f".{extension}")), None)
    if tool and shutil.which(tool) is None:
        raise ContainerError(f"restoring {archive.name} needs the {tool} program: apt-get install {tool}")
    argv = ["tar", "--extract", f"--file={archive}", "--same-permissions", *TAR_OPTIONS]
    if tool:
        argv.append(f"--use-compress-program={tool}")
    _run([*argv, "-C", str(target)], timeout=1800)
    shutil.rmtree(Path(target) / "etc" / "vzdump", ignore_errors=True)


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
    if bundle.exists() and pem not in bundle.read_text():  # a restored guest has them already
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
