"""The local transport: a simulated guest is a directory on this machine and an address in 127.0.0.0/8.

Commands run as subprocesses (argument lists, no shell) in their own process group, so a time limit
kills everything they started. The "service" is a supervised process: started in its own session
from the release's start script with the environment file's variables, its pid and output kept in
the sandbox, stopped by signalling its process group. Like the systemd units on a real guest, a
service that exits with a failure is started again after RESTART_SECONDS, at most START_LIMIT_BURST
times within START_LIMIT_SECONDS (then it stays failed until started by hand); one with restart_always
(a worker) is started again whenever it ends, ALWAYS_RESTART_SECONDS later, without a limit.
"""
import json
import logging
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from backend.deploy.transport import (
    SERVICE_NAME,
    CommandResult,
    CommandTimeout,
    LineSink,
    ServiceSpec,
    ServiceState,
    Transport,
    TransportError,
)
from backend.deploy.units import parse_env_file

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10
RESTART_SECONDS = 2  # as RestartSec= of the units on a real guest
ALWAYS_RESTART_SECONDS = 3
START_LIMIT_BURST, START_LIMIT_SECONDS = 5, 60  # as StartLimitBurst= and StartLimitIntervalSec=
# Serialises a service's pid file between its supervisor thread (which restarts a crashed process) and
# start_service/stop_service, so that a stop never races a restart into leaving a process behind.
_SUPERVISION = threading.Lock()
EXIT_GRACE_SECONDS = 2
# What a command sees of this process's environment; the rest (our own secrets among it) stays here.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CACHE_DIR",
              "PIP_FIND_LINKS", "PIP_NO_INDEX", "npm_config_registry", "npm_config_cache", "SSL_CERT_FILE",
              "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def base_environment(home):
    env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    # pip and npm keep their caches in the real home, so that sandboxes share downloads.
    real_home = Path.home()
    env.setdefault("PIP_CACHE_DIR", str(real_home / ".cache" / "pip"))
    env.setdefault("npm_config_cache", str(real_home / ".npm"))
    return env


def _start_time(pid):
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or -1."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[19])


def _kill_group(process, sig):
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


class LocalTransport(Transport):
    kind = "local"

    def __init__(self, root, bind_host="127.0.0.1"):
        self.root = str(Path(root).resolve())
        self.bind_host = bind_host
        Path(self.root).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._services = Path(self.root) / ".services"

    # -- commands --------------------------------------------------------------------------------

    def run(self, argv, *, cwd=None, env=None, timeout=600, on_line=None, as_app_user=False):
        argv = [str(a) for a in argv]
        full_env = base_environment(self.root)
        full_env.update(env or {})
        sink = LineSink(on_line)
        try:
            process = subprocess.Popen(argv, cwd=cwd or self.root, env=full_env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]}: {exc.strerror}") from None
        # Read on this thread (the callback writes to the database in the caller's context), with
        # deadlines: the command's time limit, and a short grace once it has exited, in case something
        # outside its process group (a setsid daemon) keeps the pipe open.
        deadline = time.monotonic() + timeout
        exited_at = None
        timed_out = False
        fd = process.stdout.fileno()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
                while True:
                    now = time.monotonic()
                    if exited_at is None and process.poll() is not None:
                        exited_at = now
                    if exited_at is not None and now - exited_at > EXIT_GRACE_SECONDS:
                        break
                    if exited_at is None and now >= deadline:
                        timed_out = True
                        _kill_group(process, signal.SIGKILL)
                        process.wait()
                        exited_at = time.monotonic()
                        continue
                    if not selector.select(timeout=0.1):
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    sink.feed(chunk.decode("utf-8", errors="replace"))
            if not timed_out and process.poll() is None:
                # Its output ended before it did: it still has until its time limit to finish.
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            # Whatever the command left behind in its group goes with it.
            _kill_group(process, signal.SIGKILL)
            process.wait()
            process.stdout.close()
        sink.close()
        if timed_out:
            raise CommandTimeout(argv, timeout, sink.tail)
        return CommandResult(process.returncode, list(sink.tail))

    def upload(self, path, data, mode=0o600, as_app_user=False):
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- the app's service -----------------------------------------------------------------------

    def _files(self, name):
        base = self._services / name
        return base.with_suffix(".json"), base.with_suffix(".pid"), base.with_suffix(".log")

    def _state_file(self, name):
        return (self._services / name).with_suffix(".state")

    def install_service(self, spec):
        self._services.mkdir(mode=0o700, exist_ok=True)
        unit, _, _ = self._files(spec.name)
        body = {"name": spec.name, "description": spec.description, "working_directory": spec.working_directory,
                "exec_start": list(spec.exec_start), "environment_file": spec.environment_file,
                "environment": [list(pair) for pair in spec.environment], "restart_always": spec.restart_always}
        self.upload(str(unit), json.dumps(body).encode(), mode=0o600)

    def services(self):
        if not self._services.is_dir():
            return []
        return sorted(path.stem for path in self._services.glob("*.json") if SERVICE_NAME.fullmatch(path.stem))

    def remove_service(self, name):
        self.stop_service(name)
        unit, pidfile, _ = self._files(name)
        for path in (unit, pidfile, self._state_file(name)):
            path.unlink(missing_ok=True)

    def _spec(self, name):
        unit, _, _ = self._files(name)
        try:
            body = json.loads(unit.read_text())
        except FileNotFoundError:
            raise TransportError(f"service {name} is not installed") from None
        return ServiceSpec(name=body["name"], description=body["description"],
                           working_directory=body["working_directory"], exec_start=tuple(body["exec_start"]),
                           environment_file=body["environment_file"],
                           environment=tuple(tuple(p) for p in body["environment"]),
                           restart_always=bool(body.get("restart_always")))

    def _recorded(self, name):
        """(pid, start time) the pid file names, or None."""
        _, pidfile, _ = self._files(name)
        try:
            pid, started = (int(part) for part in pidfile.read_text().split())
        except (FileNotFoundError, ValueError):
            return None
        return pid, started

    @staticmethod
    def _alive(pid, started):
        # A pid from an earlier boot or run may belong to someone else now: it must be the same process.
        if _start_time(pid) != started:
            return False
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def service_pid(self, name):
        """The pid of the service's process group leader while it runs, else None."""
        recorded = self._recorded(name)
        return recorded[0] if recorded and self._alive(*recorded) else None

    def service_running(self, name):
        return self.service_pid(name) is not None

    def service_state(self, name):
        if not self._files(name)[0].exists():
            return ServiceState("unknown", detail="not installed")
        try:
            state = json.loads(self._state_file(name).read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        restarts = int(state.get("restarts", 0))
        if self.service_pid(name):
            return ServiceState("running", restarts)
        if state.get("failed"):
            return ServiceState("failed", restarts, state.get("detail"))
        if self._recorded(name):
            return ServiceState("starting", restarts, state.get("detail"))  # its supervisor restarts it
        return ServiceState("stopped", restarts)

    def _write_state(self, name, **state):
        self._state_file(name).write_text(json.dumps(state))

    def start_service(self, name):
        with _SUPERVISION:
            if self.service_pid(name):
                return
            self._write_state(name, restarts=0)
            self._spawn(name, [])

    def _spawn(self, name, recent):
        """Start the service's process and its supervisor; recent: when its recent automatic restarts happened."""
        spec = self._spec(name)
        _, pidfile, logfile = self._files(name)
        env = base_environment(self.root)
        try:
            env.update(parse_env_file(Path(spec.environment_file).read_text()))
        except FileNotFoundError:
            pass
        env.update(dict(spec.environment))
        with open(logfile, "ab") as out:
            try:
                process = subprocess.Popen(list(spec.exec_start), cwd=spec.working_directory, env=env,
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            except OSError as exc:
                raise TransportError(f"cannot start {name}: {exc.strerror}") from None
        recorded = (process.pid, _start_time(process.pid))
        pidfile.write_text(f"{recorded[0]} {recorded[1]}")
        # Reap it when it exits (a crashed app must not linger as a zombie of this process), and restart it
        # as systemd's Restart= does.
        threading.Thread(target=self._supervise, args=(name, process, recorded, recent, spec.restart_always),
                         name=f"supervise-{name}", daemon=True).start()

    def _restart_count(self, name):
        try:
            return int(json.loads(self._state_file(name).read_text()).get("restarts", 0))
        except (FileNotFoundError, ValueError, AttributeError):
            return 0

    def _supervise(self, name, process, recorded, recent, always):
        """recent: the monotonic times of this service's automatic restarts within START_LIMIT_SECONDS."""
        code = process.wait()
        detail = f"exited with status {code}" if code >= 0 else f"killed by signal {-code}"
        if code == 0 and not always:
            with _SUPERVISION:
                if self._recorded(name) == recorded:  # it ended by itself: stopped, as systemd would say
                    self._files(name)[1].unlink(missing_ok=True)
                    self._write_state(name, restarts=self._restart_count(name), detail=detail)
            return
        time.sleep(ALWAYS_RESTART_SECONDS if always else RESTART_SECONDS)
        with _SUPERVISION:
            if self._recorded(name) != recorded:
                return  # stopped, or started again, by hand meanwhile
            now = time.monotonic()
            recent = [t for t in recent if now - t < START_LIMIT_SECONDS]
            count = self._restart_count(name)
            if not always and len(recent) >= START_LIMIT_BURST:
                log.warning("service %s in %s keeps failing (%s): not restarted again", name, self.root, detail)
                self._write_state(name, restarts=count, failed=True,
                                  detail=f"{detail}; restarted {len(recent)} times within {START_LIMIT_SECONDS} s")
                self._files(name)[1].unlink(missing_ok=True)
                return
            self._write_state(name, restarts=count + 1, detail=detail)
            try:
                self._spawn(name, [*recent, now])
            except TransportError as exc:
                self._write_state(name, restarts=count + 1, failed=True, detail=str(exc))
                self._files(name)[1].unlink(missing_ok=True)

    def stop_service(self, name):
        with _SUPERVISION:
            recorded = self._recorded(name)
            # Gone from the pid file first: its supervisor then knows the exit that follows is wanted.
            self._files(name)[1].unlink(missing_ok=True)
        if recorded and self._alive(*recorded):
            pid = recorded[0]
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self._wait_gone(recorded):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                # Gone for sure before a successor starts: a dying server still holding the port would
                # make the new one fail to bind, and could answer the new release's health check itself.
                self._wait_gone(recorded)

    def _wait_gone(self, recorded):
        """Wait up to STOP_GRACE_SECONDS for the process to end; True when it has."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._alive(*recorded) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._alive(*recorded)

    def restart_service(self, name):
        self.stop_service(name)
        self.start_service(name)

    def service_log(self, name, lines=200):
        _, _, logfile = self._files(name)
        try:
            with open(logfile, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 256 * 1024))
                text = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]
