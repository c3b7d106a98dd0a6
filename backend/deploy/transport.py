"""How commands reach a guest: one interface, an SSH and a local implementation.

Commands are argument lists, never strings: the local transport hands them to the kernel as they
are, the SSH transport quotes every word with shlex for the remote shell. Environment values given
to run() are the platform's own (paths, the port); the user's variables reach the app only through
the service's environment file, never a command line.
"""
import abc
import re
from collections import deque
from dataclasses import dataclass, field

APP_SERVICE = "paas-app"  # the service (a systemd unit on a real guest) an app's web process runs as
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PROCESS_PREFIX = APP_SERVICE + "-"  # the app's other processes: paas-app-worker, paas-app-clock, ...
# A new release's web process while it starts beside the live one (behind a router): no process name makes it,
# since a name never starts with '-'.
CANDIDATE_SERVICE = PROCESS_PREFIX + "-next"
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
TAIL_LINES = 40


def process_service(name):
    """The service a process of the app runs as: web is APP_SERVICE, a Procfile's worker paas-app-worker."""
    if name == "web":
        return APP_SERVICE
    service = PROCESS_PREFIX + name.replace("_", "-")
    if not SERVICE_NAME.fullmatch(service):
        raise ValueError(f"bad process name {name!r}")
    return service


@dataclass(frozen=True)
class ServiceState:
    """A service as its supervisor sees it: state is running, starting, stopped, failed or unknown; restarts counts
    the automatic restarts after a crash since it was last started by hand."""

    state: str
    restarts: int | None = None
    detail: str | None = None


class TransportError(Exception):
    """The guest could not be reached, or refused us (e.g. a changed host key)."""


class HostKeyMismatch(TransportError):
    """The guest offers another host key than the one recorded: someone else may answer there; never retried."""


class CommandTimeout(TransportError):
    """A command ran past its time limit and was killed."""

    def __init__(self, argv, seconds, tail=()):
        super().__init__(f"{argv[0] if argv else 'command'} ran past its {seconds:g} s limit")
        self.tail = list(tail)


@dataclass
class CommandResult:
    exit_code: int
    tail: list = field(default_factory=list)  # the last lines of output, for error messages

    @property
    def ok(self):
        return self.exit_code == 0


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running app process: a systemd unit on a real guest, a supervised process locally."""

    name: str
    description: str
    working_directory: str
    exec_start: tuple  # argument list
    environment_file: str
    user: str | None = None  # None: the transport's own user (local mode)
    environment: tuple = ()  # (key, value) pairs of the platform's own settings (PORT, HOST)
    # False: restarted after a failure, at most 5 times in 60 s (the web process: a crash loop shows as failed).
    # True: restarted whenever it ends, 3 s later, without a limit (a worker outlives a broker that is down a while).
    restart_always: bool = False

    def __post_init__(self):
        if not SERVICE_NAME.fullmatch(self.name):
            raise ValueError(f"bad service name {self.name!r}")
        if not self.exec_start:
            raise ValueError("a service needs a command")
        for key, _ in self.environment:
            if not ENV_KEY.fullmatch(key):
                raise ValueError(f"bad environment key {key!r}")


class LineSink:
    """Collects a command's output line by line, passing each to a callback and keeping the tail."""

    def __init__(self, on_line=None, keep=TAIL_LINES):
        self.on_line = on_line
        self.tail = deque(maxlen=keep)
        self._partial = ""

    def feed(self, text):
        text = self._partial + text
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))

    def close(self):
        if self._partial:
            self._emit(self._partial.rstrip("\r"))
            self._partial = ""

    def _emit(self, line):
        self.tail.append(line)
        if self.on_line is not None:
            self.on_line(line)


class Transport(abc.ABC):
    """What the deployer needs of a guest.

    `root` is the directory on the guest under which the app's releases, environment file and
    service live. Paths passed to the methods are absolute paths on the guest.
    """

    kind = "abstract"
    root = "/srv/paas"
    #: the address the app binds to on its guest
    # The app must answer on the guest's own address (the guest is the isolation boundary).
    bind_host = "0.0.0.0"  # nosec B104
    #: the unprivileged account the app runs as (None: the transport's own account)
    app_user = None

    @abc.abstractmethod
    def run(self, argv, *, cwd=None, env=None, timeout=600, on_line=None, as_app_user=False):
        """Run argv; stream merged stdout/stderr line by line to on_line; return a CommandResult.

        Raises CommandTimeout when it runs past `timeout` seconds (the command is killed),
        TransportError when the guest cannot be reached.
        """

    @abc.abstractmethod
    def upload(self, path, data, mode=0o600, as_app_user=False):
        """Write bytes to path (atomically: a temporary file renamed into place) with the given mode."""

    @abc.abstractmethod
    def install_service(self, spec):
        """Install (or replace) the service so that it starts at boot; does not start it."""

    @abc.abstractmethod
    def start_service(self, name):
        """Start the service (no-op when it runs)."""

    @abc.abstractmethod
    def stop_service(self, name):
        """Stop the service (no-op when it is stopped)."""

    @abc.abstractmethod
    def restart_service(self, name):
        """Stop, then start the service."""

    @abc.abstractmethod
    def service_log(self, name, lines=200):
        """The service's most recent output lines (the journal on a real guest), as a list of str."""

    def service_running(self, name):
        """True/False when the transport can tell whether the service's process runs, else None."""
        return None

    @abc.abstractmethod
    def service_state(self, name):
        """The service's ServiceState."""

    @abc.abstractmethod
    def services(self):
        """The names of the app's installed services (APP_SERVICE and its processes'), sorted."""

    @abc.abstractmethod
    def remove_service(self, name):
        """Stop the service and remove it, so that it no longer starts at boot (no-op when it is not installed)."""

    def close(self):  # noqa: B027 - optional: transports without a connection have nothing to drop
        """Drop any connection."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
