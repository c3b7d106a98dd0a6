"""ProxmoxGuests: the guest backend that makes the fake Proxmox's guests real containers on a ContainerHost."""
import json
from pathlib import Path
from urllib.parse import unquote

from backend.simulation.containers.system import ContainerError


class ProxmoxGuests:
    """The fake Proxmox's guests made real on a ContainerHost (FakeProxmox(guest_backend=ProxmoxGuests(host))).

    An LXC create makes the container with the request's ssh-public-keys for root; a VM clone makes nothing
    until its first start, when cloud-init would run: then its ciuser gets the sshkeys and sudo, and eth0
    the ipconfig0 address. Power actions and deletes act on the container; the guest agent and the LXC
    interfaces report its real address.

    Snapshots, rollbacks and backups act on the container's disk (ContainerHost.snapshot, rollback, archive): a
    VM that has not booted yet gets its container (cloud-init done) first. Backups are files under storage_dir
    (<storage_dir>/<storage>/dump/<vzdump name>, one directory standing for a storage every node shares;
    default: beside the host's work directory), each a tar of the guest's disk with the guest's config as JSON
    in it (./etc/vzdump/guest.json), and its notes beside it (<archive>.notes). A restore makes a new container
    from the image with the backup's files as its disk, then gives it its hostname, address and any keys asked.
    """

    def __init__(self, host, storage_dir=None):
        self.host = host
        self.storage_dir = Path(storage_dir) if storage_dir else Path(host.workdir).parent / "storage"

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

    def _made(self, guest):
        """The name of the guest's container, made first for a VM that has not booted yet."""
        name = self.name(guest)
        if name not in self.host.guests:
            if guest.kind != "qemu":
                raise ContainerError(f"CT {guest.vmid} has no container")
            self._cloud_init(guest)
        return name

    def power(self, guest, action):
        name = self._made(guest)
        if action == "start":
            self.host.boot(name)
        elif action in ("stop", "shutdown"):
            self.host.poweroff(name)
        elif action == "reboot":
            self.host.reboot(name)

    def destroy(self, guest):
        """Remove the container, its snapshots with it (backups stay on their storage)."""
        if self.name(guest) in self.host.guests:
            self.host.destroy(self.name(guest))

    def address(self, guest):
        made = self.host.guests.get(self.name(guest))
        return (made.address, made.prefix) if made is not None else None

    # -- snapshots ---------------------------------------------------------------------------------

    def snapshot(self, guest, snapname):
        self.host.snapshot(self._made(guest), snapname)

    def delete_snapshot(self, guest, snapname):
        if self.name(guest) in self.host.guests:
            self.host.delete_snapshot(self.name(guest), snapname)

    def rollback(self, guest, snapname, start):
        """Stop the guest, put its disk back as it was at the snapshot, start it again when asked."""
        name = self._made(guest)
        self.host.rollback(name, snapname)
        if start:
            self.host.boot(name)

    # -- backups -----------------------------------------------------------------------------------

    def backup_path(self, storage, filename):
        """Where a backup on a storage is written."""
        return self.storage_dir / storage / "dump" / filename

    def backup(self, guest, backup, mode):
        """Write the guest's backup (a tar of its disk, compressed as its name says) to backup.path; its size.
        mode stop powers a running guest off for it (and boots it again after)."""
        config = json.dumps({"vmid": guest.vmid, "type": guest.kind, "config": backup.config}, indent=1,
                            sort_keys=True, default=str)
        _, _, compress = backup.format.partition(".")
        size = self.host.archive(self._made(guest), backup.path, compress=compress or None,
                                 extra={"etc/vzdump/guest.json": config + "\n"}, stop=mode == "stop")
        if backup.notes:
            Path(f"{backup.path}.notes").write_text(backup.notes + "\n")
        return size

    def remove_backup(self, path):
        """Remove a backup's file and its notes (a file already gone is no error)."""
        for leftover in (Path(path), Path(f"{path}.notes")):
            leftover.unlink(missing_ok=True)

    def restore(self, guest, backup, public_keys):
        """Make the guest's container from a backup: the image with the backup's files as its disk, its hostname
        and address from its (restored) config, and root's keys from the backup plus any given. A backup without
        a file (one the fake only recorded) makes a new container as a create would; a VM's, nothing yet."""
        if backup.path is None:
            if guest.kind == "lxc":
                self.create_lxc(guest, public_keys)
            return
        if not Path(backup.path).is_file():
            raise ContainerError(f"can't find file '{backup.volid}'")
        address = guest.static_ipv4()
        hostname = guest.config.get("hostname" if guest.kind == "lxc" else "name") or f"{guest.label}{guest.vmid}"
        self.host.create(self.name(guest), hostname=str(hostname), address=address[0] if address else None,
                         authorized_keys=[k for k in str(public_keys).splitlines() if k.strip()],
                         archive=backup.path)
