"""A guest reached through the Transport interface, in memory; the factory that opens it; guest hooks that record.

FakeTransport is a backend/deploy/transport.py Transport: it records every command (argv, cwd, env, timeout,
as whom), every upload and every service call, and answers commands from a script:

    transport.script("git", "rev-parse", output=[SHA])       # a rule: the longest matching prefix answers,
                                                             # the latest of rules with the same prefix
    transport.script("python3", "-m", "venv", exit_code=1, output=["no venv module"])
    transport.script("git", "clone", handler=lambda transport, argv: transport.make_dirs(argv[-1]))
    transport.script("npm", error=CommandTimeout(["npm"], 60))

A build command the deployer wraps in its environment loader (sh -c '. "$1" && shift && exec "$@"' paas-build
ENV_FILE ARGV...) is matched on ARGV. Commands no rule answers get the few shell tools the deployer keeps its
releases with (mkdir -p, rm -rf, test -d, test -e, ln -sfn, mv -Tf, readlink, ls -1) done on an in-memory tree of
directories and symlinks; anything else succeeds silently.

The app service runs after a start or restart when app_runs(transport) says so (by default it does);
service_running() reports it, so a health check that gets no answer stops at once when the app "exited".
"""
from dataclasses import dataclass, field

from backend.deploy.transport import TAIL_LINES, CommandResult, ServiceSpec, ServiceState, Transport, TransportError

BUILD_WRAPPER = ("sh", "-c", '. "$1" && shift && exec "$@"', "paas-build")


@dataclass
class Command:
    argv: list
    cwd: str | None
    env: dict | None
    timeout: float
    as_app_user: bool


@dataclass
class Upload:
    path: str
    data: bytes
    mode: int
    as_app_user: bool


@dataclass
class Rule:
    prefix: tuple
    exit_code: int = 0
    output: list = field(default_factory=list)
    error: Exception | None = None
    handler: object = None  # handler(transport, argv) -> None, or (exit code, output lines)


def unwrapped(argv):
    """The command a build wrapper runs, or argv itself."""
    if tuple(argv[:len(BUILD_WRAPPER)]) == BUILD_WRAPPER and len(argv) > len(BUILD_WRAPPER) + 1:
        return list(argv[len(BUILD_WRAPPER) + 1:])
    return list(argv)


class FakeTransport(Transport):
    kind = "fake"

    def __init__(self, *, root="/srv/paas", bind_host="0.0.0.0", app_user=None, manages_system=False,  # nosec B104
                 app_runs=None):
        self.root = root
        self.bind_host = bind_host
        self.app_user = app_user
        self.manages_system = manages_system
        self.app_runs = app_runs or (lambda transport: True)
        self.rules = []
        self.commands = []
        self.uploads = []
        self.files = {}  # path -> bytes, the last upload to each path
        self.dirs = set()
        self.links = {}  # path -> target
        self.installed = {}  # name -> ServiceSpec
        self.running = {}  # name -> bool
        self.service_calls = []  # (action, name, where `current` pointed then)
        self.service_output = []  # what service_log answers
        self.closed = 0

    # -- scripting and looking ------------------------------------------------------------------------------

    def script(self, *prefix, exit_code=0, output=(), error=None, handler=None):
        self.rules.append(Rule(tuple(prefix), exit_code, list(output), error, handler))
        return self

    def argvs(self):
        return [command.argv for command in self.commands]

    def ran(self, *prefix):
        """The commands (unwrapped) that start with prefix."""
        return [command for command in self.commands if tuple(unwrapped(command.argv)[:len(prefix)]) == prefix]

    def current(self):
        """Where `current` points (relative, as the deployer links it), or None."""
        return self.links.get(f"{self.root}/current")

    # -- the Transport interface -------------------------------------------------------------------------------

    def run(self, argv, *, cwd=None, env=None, timeout=600, on_line=None, as_app_user=False):
        if not isinstance(argv, list) or not argv or not all(isinstance(word, str) for word in argv):
            raise TypeError(f"a command is a non-empty list of str, not {argv!r}")
        if env is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise TypeError(f"an environment maps str to str, not {env!r}")
        self.commands.append(Command(list(argv), cwd, dict(env) if env is not None else None, timeout, as_app_user))
        command = unwrapped(argv)
        # The longest matching prefix answers; of rules with the same prefix, the latest.
        rule = max((r for r in reversed(self.rules) if tuple(command[:len(r.prefix)]) == r.prefix),
                   key=lambda r: len(r.prefix), default=None)
        if rule is not None:
            if rule.error is not None:
                raise rule.error
            exit_code, output = rule.exit_code, rule.output
            if rule.handler is not None:
                answer = rule.handler(self, command)
                if answer is not None:
                    exit_code, output = answer
        else:
            exit_code, output = self._shell(command)
        for line in output:
            if on_line is not None:
                on_line(line)
        return CommandResult(exit_code, list(output)[-TAIL_LINES:])

    def _shell(self, argv):
        """The tools the deployer keeps its releases with, on the in-memory tree."""
        name, args = argv[0], [a for a in argv[1:] if a != "--"]
        if name == "mkdir" and args[:1] == ["-p"]:
            for path in args[1:]:
                self.make_dirs(path)
            return 0, []
        if name == "rm" and args[:1] == ["-rf"]:
            for path in args[1:]:
                self._remove(path)
            return 0, []
        if name == "test" and args[:1] == ["-d"]:
            return (0 if args[1] in self.dirs else 1), []
        if name == "test" and args[:1] == ["-e"]:
            return (0 if args[1] in self.dirs or args[1] in self.files or args[1] in self.links else 1), []
        if name == "ln" and args[:1] == ["-sfn"]:
            self.links[args[2]] = args[1]
            return 0, []
        if name == "mv" and args[:1] == ["-Tf"]:
            if args[1] not in self.links:
                return 1, [f"mv: cannot stat '{args[1]}': No such file or directory"]
            self.links[args[2]] = self.links.pop(args[1])
            return 0, []
        if name == "readlink":
            target = self.links.get(args[0])
            return (0, [target]) if target is not None else (1, [])
        if name == "ls" and args[:1] == ["-1"]:
            prefix = args[1].rstrip("/") + "/"
            children = sorted({p[len(prefix):].split("/")[0] for p in self.dirs if p.startswith(prefix)})
            return 0, children
        return 0, []

    def make_dirs(self, path):
        """mkdir -p on the in-memory tree (a scripted git clone makes its directory with it)."""
        parts = path.rstrip("/").split("/")
        for end in range(2, len(parts) + 1):
            self.dirs.add("/".join(parts[:end]))

    def _remove(self, path):
        path = path.rstrip("/")

        def inside(p):
            return p == path or p.startswith(path + "/")
        self.dirs = {p for p in self.dirs if not inside(p)}
        self.links = {p: t for p, t in self.links.items() if not inside(p)}
        self.files = {p: d for p, d in self.files.items() if not inside(p)}

    def upload(self, path, data, mode=0o600, as_app_user=False):
        if not path.startswith("/") or not isinstance(data, bytes):
            raise TypeError(f"upload takes an absolute path and bytes, not {path!r} and {type(data).__name__}")
        self.uploads.append(Upload(path, data, mode, as_app_user))
        self.make_dirs(path.rsplit("/", 1)[0])
        self.files[path] = data

    def install_service(self, spec):
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"install_service takes a ServiceSpec, not {spec!r}")
        self.installed[spec.name] = spec
        self.service_calls.append(("install", spec.name, self.current()))

    def _installed(self, name):
        if name not in self.installed:
            raise TransportError(f"Unit {name}.service not found.")

    def start_service(self, name):
        self._installed(name)
        self.service_calls.append(("start", name, self.current()))
        if not self.running.get(name):
            self.running[name] = bool(self.app_runs(self))

    def stop_service(self, name):
        self.service_calls.append(("stop", name, self.current()))
        self.running[name] = False

    def restart_service(self, name):
        self._installed(name)
        self.service_calls.append(("restart", name, self.current()))
        self.running[name] = bool(self.app_runs(self))

    def service_log(self, name, lines=200):
        return list(self.service_output)[-lines:]

    def service_running(self, name):
        return self.running.get(name, False)

    def service_state(self, name):
        if name not in self.installed:
            return ServiceState("unknown", detail="not installed")
        return ServiceState("running" if self.running.get(name) else "stopped", 0)

    def services(self):
        return sorted(self.installed)

    def remove_service(self, name):
        self.service_calls.append(("remove", name, self.current()))
        self.installed.pop(name, None)
        self.running.pop(name, None)

    def close(self):
        self.closed += 1


class FakeTransports:
    """The platform's transport factory: one FakeTransport per guest (a guest keeps its files between runs)."""

    def __init__(self, make=None):
        self.make = make or (lambda name: FakeTransport())
        self.by_name = {}
        self.opened = []  # every GuestTarget open() was given
        self._faults = []

    def guest(self, name):
        """The transport of the guest called name (made now when it was never opened), to script or look at."""
        name = str(name)
        if name not in self.by_name:
            self.by_name[name] = self.make(name)
        return self.by_name[name]

    def fail_next_open(self, error):
        self._faults.append(error)

    def open(self, target):
        self.opened.append(target)
        if self._faults:
            raise self._faults.pop(0)
        if not target.address:
            raise TransportError("the guest has no address")
        return self.guest(target.name)


class RecordingHooks:
    """Guest hooks (backend/deploy/guests.py NoGuestHooks' methods) that record (event, target)."""

    def __init__(self):
        self.events = []

    def _record(self, event, target):
        self.events.append((event, target))

    def started(self, target):
        self._record("started", target)

    def stopped(self, target):
        self._record("stopped", target)

    def restarted(self, target):
        self._record("restarted", target)

    def destroying(self, target):
        self._record("destroying", target)

    def names(self):
        return [event for event, _ in self.events]
