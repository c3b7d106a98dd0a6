"""A cluster of real guests on this machine: the fake Proxmox, whose guests are containers on a bridge, with
the registry proxy and the git server on the bridge's address. For `python app.py --simulate
--guests=containers` and the tests of the production deploy path (SSH into a Debian guest, apt, systemd).
"""
import os
import secrets
from pathlib import Path

from backend.simulation.containers import (
    RUNTIME_PACKAGES,
    ContainerHost,
    GuestImage,
    ProxmoxGuests,
    require_capabilities,
)
from backend.simulation.fake_proxmox import FakeProxmox, Node
from backend.simulation.gitserver import GitServer
from backend.simulation.proxy import RegistryProxy
from backend.simulation.runtime import TEMPLATE_ID, settings_for

DEFAULT_IMAGE_CACHE = "/var/cache/paas-simulation/images"


def image_cache():
    return Path(os.environ.get("SIMULATION_IMAGE_CACHE") or DEFAULT_IMAGE_CACHE)


class RealGuestCluster:
    """Start with start(), end with close() (or use as a context manager): close() removes every guest.

    runtimes=False gives guests what Proxmox's debian-12-standard template has: no python3, git or node
    until the deployer installs them with apt (through the proxy); True starts from an image that has them.
    """

    def __init__(self, workdir, block, repos_dir, *, runtimes=True, task_seconds=0.05,
                 serves_as="https://github.com/"):
        self.serves_as = serves_as  # the URL prefix the repositories under repos_dir stand for
        self.workdir = Path(workdir)
        self.block = block
        self.repos_dir = Path(repos_dir)
        self.runtimes = runtimes
        self.task_seconds = task_seconds
        self.host = self.proxy = self.git = self.fake = None
        self.settings = None

    def start(self):
        require_capabilities()
        image = GuestImage(image_cache(), extra=RUNTIME_PACKAGES if self.runtimes else ()).ensure()
        try:
            self.host = ContainerHost(self.workdir / "guests", image, self.block).start()
            self.proxy = RegistryProxy(self.host.gateway).start()
            self.git = GitServer(self.repos_dir, self.host.gateway).start()
            token = secrets.token_hex(16)
            self.fake = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], tokens={"root@pam!paas": token},
                                    task_seconds=self.task_seconds,
                                    guest_backend=ProxmoxGuests(self.host, storage_dir=self.workdir / "storage"))
            self.fake.start()
            self.fake.add_template(TEMPLATE_ID, node="pve1")
        except BaseException:
            self.close()
            raise
        network = self.host.network
        self.settings = settings_for(self.fake, token, loopback_guests=False, ip_timeout=60, task_timeout=120,
                                     ip_pool=f"{network.network_address + 10}-{network.network_address + 250}"
                                             f"/{network.prefixlen}")
        return self

    def app_config(self):
        """The platform's settings for these guests: the deploy step over SSH, packages through the proxy."""
        return {"PROXMOX_SETTINGS": self.settings, "SIMULATE": True, "SIMULATION_GUESTS": "containers",
                "GUEST_HTTP_PROXY": self.proxy.url, "GUEST_NO_PROXY": self.host.gateway,
                "GIT_URL_REWRITES": {self.git.url: self.serves_as}, "GIT_ALLOW_PROTOCOL": "https:http"}

    def close(self):
        for part in (self.fake, self.git, self.proxy):
            if part is not None:
                part.stop()
        if self.host is not None:
            self.host.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()
