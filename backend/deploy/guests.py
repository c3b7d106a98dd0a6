"""Reaching a guest: a transport factory for real guests (SSH) and one for simulated ones (sandboxes).

A factory is handed a GuestTarget (an address, the kind of guest, where its host key is kept) and
opens a transport to it; it never looks a deployment up. The composition root picks the factory.
"""
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backend.deploy.keys import load_or_create_keypair, public_key_line
from backend.deploy.local import LocalTransport
from backend.deploy.transport import APP_SERVICE, TransportError


class HostKeyStore(Protocol):
    """Where a guest's SSH host key is kept between connections (pinned on first use)."""

    def known(self) -> str | None:
        """The recorded host key line, or None before the first connection."""

    def remember(self, line: str) -> None:
        """Record the host key a first connection found."""


@dataclass(frozen=True)
class GuestTarget:
    """A guest to reach: a stable name (a simulated guest's directory), its address and its kind."""

    name: str
    address: str | None
    kind: str  # "lxc" or "qemu"
    host_keys: HostKeyStore | None = None


class SSHTransports:
    """Opens SSH transports with the platform's key pair, pinning each guest's host key."""

    def __init__(self, key_path, *, port=22, connect_timeout=15, vm_user="paas"):
        self.key_path = Path(key_path)
        self.port, self.connect_timeout, self.vm_user = port, connect_timeout, vm_user

    def public_key(self):
        """The platform's public key line (the key pair is made on first use)."""
        return public_key_line(self.key_path)

    def open(self, target):
        if not target.address:
            raise TransportError("the guest has no address")
        from backend.deploy.ssh import SSHTransport  # noqa: PLC0415 - paramiko (16 MB) only where a guest is reached

        pkey, _ = load_or_create_keypair(self.key_path)
        keys = target.host_keys
        return SSHTransport(target.address, port=self.port, user="root" if target.kind == "lxc" else self.vm_user,
                            pkey=pkey, known_host_key=keys.known() if keys else None,
                            on_new_host_key=keys.remember if keys else None, connect_timeout=self.connect_timeout)


class SandboxTransports:
    """Simulated guests: one directory per guest on this machine, its app bound to the guest's address."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def sandbox(self, name):
        """A guest's directory, named by its (UUID) name: never by user input."""
        return self.directory / str(uuid.UUID(str(name)))

    def open(self, target):
        if not target.address:
            raise TransportError("the guest has no address")
        return LocalTransport(self.sandbox(target.name), bind_host=target.address)


class NoGuestHooks:
    """Real guests: their apps follow their guest's power state by themselves (systemd)."""

    def stopped(self, target):
        pass

    def started(self, target):
        pass

    restarted = started

    def destroying(self, target):
        pass


class SandboxHooks(NoGuestHooks):
    """Simulation: the app in a sandbox stops, starts and disappears with its simulated guest."""

    def __init__(self, sandboxes):
        self.sandboxes = sandboxes

    def _transport(self, target):
        root = self.sandboxes.sandbox(target.name)
        if not root.exists():
            return None
        return LocalTransport(root, bind_host=target.address or "127.0.0.1")

    def stopped(self, target):
        transport = self._transport(target)
        if transport:
            for service in transport.services():
                transport.stop_service(service)

    def started(self, target):
        # As systemd starts a booting guest's enabled units: every service the app has, the web one first.
        transport = self._transport(target)
        if transport:
            for service in sorted(transport.services(), key=lambda name: name != APP_SERVICE):
                transport.restart_service(service)

    restarted = started

    def destroying(self, target):
        transport = self._transport(target)
        if transport:
            for service in transport.services():
                transport.stop_service(service)
            shutil.rmtree(transport.root, ignore_errors=True)
