"""One exception type for everything that goes wrong talking to Proxmox."""


class ProxmoxError(Exception):
    """A Proxmox failure, carrying Proxmox's own words.

    message: the reason phrase (or task exit status); errors: the per-parameter messages of a 400;
    status: the HTTP status (None for connection failures and failed tasks); transient: worth retrying.
    """

    def __init__(self, message, *, status=None, errors=None, transient=False, log_tail=None):
        self.message = message
        self.status = status
        self.errors = dict(errors or {})
        self.transient = transient
        self.log_tail = list(log_tail or [])
        super().__init__(self.describe())

    def describe(self):
        """The message, the parameter errors and the task log tail, as one readable line."""
        text = self.message
        if self.errors:
            text += " (" + "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) + ")"
        if self.log_tail:
            text += " | log: " + " / ".join(self.log_tail)
        return text


class GuestExists(ProxmoxError):
    """The VMID is taken (nextid does not reserve ids, so parallel creates collide)."""


class TaskFailed(ProxmoxError):
    """A task ended with an exit status other than OK or WARNINGS."""


class ProxmoxTimeout(ProxmoxError):
    """Waiting for a task, an IP or a state took longer than allowed."""
