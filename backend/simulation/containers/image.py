"""GuestImage: a Debian root filesystem made once by debootstrap (and apt for extra packages), cached by its
package list; every guest runs on an overlayfs over it, so a new guest costs a directory, not a copy."""
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from backend.simulation.containers.system import ContainerError, _run, require_capabilities

log = logging.getLogger(__name__)

SUITE = "bookworm"
# What a Proxmox Debian 12 template or cloud image brings: systemd, sshd, sudo for a cloud-init user; no
# python3, git or node (the deployer installs those with apt).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "ca-certificates", "iproute2", "sudo")
# A second image with the runtimes preinstalled keeps a test suite from installing them once per guest.
RUNTIME_PACKAGES = ("python3", "python3-venv", "git", "nodejs", "npm")


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
