"""ProxmoxGuests: the guest backend that makes the fake Proxmox's guests real containers on a ContainerHost."""
from urllib.parse import unquote

from backend.simulation.containers.system import ContainerError


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
