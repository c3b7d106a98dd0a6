"""The SSH transport: commands, files and systemd services on a guest, over one paramiko connection.

Security rules this module keeps:

* The guest's host key is pinned. Given `known_host_key` ("type base64"), a server offering any other
  key is refused before we authenticate or run anything. Without one, the first key seen is trusted
  (and handed to `on_new_host_key` for the caller to record) and pinned for the transport's life.
* We authenticate with the platform's key only: no agent, no ~/.ssh keys, no password.
* Commands are argument lists. The remote login shell (a POSIX shell) receives one command line in
  which every word is `shlex.quote`d, so no word is ever interpreted by it:

      printf 'paas-pid:%s\\n' "$$" >&2; exec 2>&1; cd -- '<cwd>' &&
      exec [sudo -n --|runuser -u <app> --] env -- 'K=V' ... '<argv0>' '<argv1>' ...

  `env --` keeps a leading dash of argv[0] from being read as an option; a program name holding
  "=" would be read by env as an assignment, so it is refused.
* Error messages name the program (argv[0]) and the host, never the command line or environment,
  which may hold the platform's settings.

Becoming another account: as root, `runuser -u <app_user> --` (util-linux, needs no sudoers entry
and no PAM session); as a non-root login with sudo, `sudo -n -u <app_user> --`, and `sudo -n --` for
everything else (sudo=None picks sudo exactly when the login is not root).

Output: the command line starts by printing the shell's pid to stderr and then sends stderr to
stdout (`exec 2>&1`), so the command's two streams share one pipe and stay in order; the SSH
stderr stream carries only that pid (and whatever a noisy login script says before it). Output is
read as it arrives, decoded as UTF-8 (bad bytes replaced) and passed on line by line.

Time limits: when a command runs past its limit it is stopped, TERM first and KILL after a grace
period, then its channel is closed (closing alone would not stop a command without a terminal).
Its process group (the pid above: sshd made the shell a session and group leader, and the shell
exec'd the command) is signalled with `kill` over a second channel; the SSH "signal" request is
sent too, but OpenSSH honours it for non-root logins only.

One module over 400 lines on purpose: it is the SSH transport, one class and the helpers only it uses.
"""
import codecs
import logging
import posixpath
import re
import secrets
import select
import shlex
import threading
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE

from backend.deploy.keys import host_key_line, parse_host_key_line
from backend.deploy.transport import (
    APP_SERVICE,
    ENV_KEY,
    PROCESS_PREFIX,
    SERVICE_NAME,
    CommandResult,
    CommandTimeout,
    HostKeyMismatch,
    LineSink,
    ServiceState,
    Transport,
    TransportError,
)
from backend.deploy.units import render_unit

log = logging.getLogger(__name__)

#: programs on the guest; module constants so tests can point them at stubs
SYSTEMCTL = "systemctl"
JOURNALCTL = "journalctl"
SUDO = "sudo"
RUNUSER = "runuser"
UNIT_DIR = "/etc/systemd/system"

#: seconds between the TERM and the KILL sent to a command past its time limit, and after the KILL
KILL_GRACE = 2.0
#: seconds we keep reading after a command's exit status arrived while its output is still open
#: (a background process it left behind may hold the output open for ever)
EXIT_LINGER = 2.0
#: the longest wait between two looks at a running command (bounds every sleep in the read loop)
POLL = 0.2
SERVICE_TIMEOUT = 180
UPLOAD_TIMEOUT = 300
KEEPALIVE = 30
MAX_LOG_LINES = 100_000

_ACCOUNT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


class _PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Used only when no key is pinned: trust on first use, remembering the key offered."""

    def __init__(self):
        self.seen = None

    def missing_host_key(self, client, hostname, key):
        self.seen = key


class _SFTPClient(paramiko.SFTPClient):
    def create_private(self, path):
        """Create a new file (O_EXCL) with mode 0600 from the start, so its bytes are never exposed.

        paramiko's open() creates files with the server's default mode (0666 less the umask) and
        would leave a window where another local account can open the file before our chmod.
        """
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = 0o600
        kind, msg = self._request(CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attrs)
        if kind != CMD_HANDLE:
            raise paramiko.SFTPError("expected a file handle")
        return paramiko.SFTPFile(self, msg.get_binary(), "wb")


def _quote_all(words):
    return " ".join(shlex.quote(w) for w in words)


def _check_word(word, what):
    if not isinstance(word, str):
        raise TypeError(f"{what} must be a str, not {type(word).__name__}")
    if "\0" in word:
        raise ValueError(f"{what} holds a NUL character")
    return word


#: The first thing every remote command line does: tell us the shell's pid on stderr (sshd made
#: that shell a session and process group leader, and it exec's the command, so the pid is the
#: command's process group), then send stderr to stdout, one pipe, so the two stay in order.
_PID_LINE = "printf 'paas-pid:%s\\n' \"$$\" >&2; exec 2>&1; "
_PID = re.compile(r"^paas-pid:(\d+)$")


class _Command:
    """One command's channel and the reading of its output."""

    def __init__(self, channel, on_line):
        self.channel = channel
        self.on_line = on_line
        self.callback_failed = False
        self.sink = LineSink(self._line)
        self.pid = None
        self._out = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._err = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._err_partial = ""

    def _line(self, line):
        if self.on_line is not None:
            try:
                self.on_line(line)
            except BaseException:
                self.callback_failed = True
                raise

    @property
    def eof(self):
        channel = self.channel
        return (channel.eof_received or channel.closed) and not (
            channel.recv_ready() or channel.recv_stderr_ready())

    def wait(self, seconds):
        """Until something arrives, the command ends, or `seconds` pass."""
        if self.eof:  # the pipe behind select stays readable after EOF: wait for the status instead
            self.channel.status_event.wait(seconds)
        else:
            select.select([self.channel], [], [], seconds)

    def drain(self):
        channel = self.channel
        while channel.recv_stderr_ready():
            data = channel.recv_stderr(65536)
            if not data:
                break
            self._stderr(self._err.decode(data))
        while channel.recv_ready():
            data = channel.recv(65536)
            if not data:
                break
            self.sink.feed(self._out.decode(data))

    def _stderr(self, text):
        # Only the pid line, or what the login shell says before it (a noisy .bashrc), comes here.
        *lines, self._err_partial = (self._err_partial + text).split("\n")
        for line in lines:
            match = _PID.fullmatch(line.rstrip("\r"))
            if match and self.pid is None:
                self.pid = int(match.group(1))
            else:
                self.sink.feed(line + "\n")

    def finish(self):
        self.drain()
        rest = self._err.decode(b"", final=True)
        if rest or self._err_partial:
            self._stderr(rest + "\n")
        self.sink.feed(self._out.decode(b"", final=True))
        self.sink.close()


class SSHTransport(Transport):
    """Commands, files and services on one guest over SSH (see the module's docstring).

    Connects on first use and keeps one connection for every call (threads may share it; a dropped
    connection is made again on the next call, checking the same host key). `on_new_host_key(line)`
    is called once, after the first successful login to a guest with no recorded key, with the key
    as "type base64"; it runs while the transport connects and must not use the transport. An
    exception from it aborts the connection. `unit_dir` is where install_service writes units.
    """

    kind = "ssh"
    #: the deployer may install packages and chown files: the guest is the platform's to manage
    manages_system = True

    def __init__(self, host, *, port=22, user="root", pkey, known_host_key=None, on_new_host_key=None,
                 connect_timeout=15, root="/srv/paas", app_user="paas-app", sudo=None, unit_dir=UNIT_DIR):
        if not host or not isinstance(host, str):
            raise ValueError("a host is needed")
        if not _ACCOUNT.fullmatch(user):
            raise ValueError(f"bad login name {user!r}")
        if app_user is not None and not _ACCOUNT.fullmatch(app_user):
            raise ValueError(f"bad account name {app_user!r}")
        if pkey is None:
            raise ValueError("the platform's key is needed")
        self.host = host
        self.port = int(port)
        self.user = user
        self.pkey = pkey
        self.on_new_host_key = on_new_host_key
        self.connect_timeout = connect_timeout
        self.root = root
        self.app_user = app_user
        self.sudo = (user != "root") if sudo is None else bool(sudo)
        self.unit_dir = unit_dir
        self._pinned = None
        if known_host_key is not None:
            try:
                self._pinned = parse_host_key_line(known_host_key)
            except ValueError as exc:
                raise HostKeyMismatch(f"the recorded host key of {host} is unusable ({exc}); refused") from None
        self._client = None
        self._lock = threading.Lock()

    # -- the connection ------------------------------------------------------------------------

    @property
    def known_host_key(self):
        """The pinned host key as "type base64" (None until the first connection when none was given)."""
        return host_key_line(self._pinned) if self._pinned is not None else None

    def _where(self):
        if self.port == 22:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _transport(self):
        """The live paramiko Transport, connecting (or reconnecting after a drop) when needed."""
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return transport
                self._client.close()
                self._client = None
            self._client = self._connect()
            return self._client.get_transport()

    def _connect(self):
        client = paramiko.SSHClient()
        policy = None
        if self._pinned is not None:
            # paramiko compares the offered key with this entry (and asks for its type first);
            # any other key raises BadHostKeyException.
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            client.get_host_keys().add(name, self._pinned.get_name(), self._pinned)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            policy = _PinnedKeyPolicy()
            client.set_missing_host_key_policy(policy)
        timeout = self.connect_timeout
        try:
            client.connect(
                self.host, port=self.port, username=self.user, pkey=self.pkey,
                allow_agent=False, look_for_keys=False, password=None, key_filename=None,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            offered = exc.key
            raise HostKeyMismatch(
                f"host key of {self._where()} changed (it now offers {offered.get_name()} "
                f"{offered.fingerprint}, not the recorded key); connection refused"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise TransportError(f"{self.user}@{self._where()} refused the platform's SSH key") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise TransportError(f"cannot connect to {self._where()}: {_reason(exc)}") from None
        except BaseException:
            client.close()
            raise
        if policy is not None:
            if policy.seen is None:  # paramiko always consults the policy when nothing is pinned
                client.close()
                raise TransportError(f"{self._where()} offered no host key; refused")
            line = host_key_line(policy.seen)
            log.info("first connection to %s: trusting its host key %s %s",
                     self._where(), policy.seen.get_name(), policy.seen.fingerprint)
            if self.on_new_host_key is not None:
                try:
                    self.on_new_host_key(line)
                except BaseException:
                    client.close()
                    raise
            self._pinned = policy.seen
        client.get_transport().set_keepalive(KEEPALIVE)
        return client

    def close(self):
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _open_channel(self):
        transport = self._transport()
        try:
            return transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TransportError(f"cannot open a session on {self._where()}: {_reason(exc)}") from None

    # -- commands ------------------------------------------------------------------------------

    def _prefix(self, as_app_user):
        """The words that give a command the right account (see the module's docstring)."""
        if as_app_user and self.app_user and self.app_user != self.user:
            if self.sudo:
                return [SUDO, "-n", "-u", self.app_user, "--"]
            if self.user == "root":
                return [RUNUSER, "-u", self.app_user, "--"]
            raise TransportError(f"{self.user}@{self._where()} cannot act as {self.app_user} without sudo")
        return [SUDO, "-n", "--"] if self.sudo else []

    def command_line(self, argv, *, cwd=None, env=None, as_app_user=False):
        """The one line the remote shell gets for argv (every word quoted)."""
        argv = [_check_word(w, "a command word") for w in argv]
        if not argv:
            raise ValueError("an empty command")
        if "=" in argv[0]:
            raise ValueError("a program name must not contain '='")
        words = self._prefix(as_app_user) + ["env", "--"]
        for key, value in (env or {}).items():
            if not isinstance(key, str) or not ENV_KEY.fullmatch(key):
                raise ValueError(f"bad environment key {key!r}")
            words.append(f"{key}={_check_word(value, f'the value of {key}')}")
        line = "exec " + _quote_all(words + argv)
        if cwd is not None:
            line = f"cd -- {shlex.quote(_check_word(cwd, 'the directory'))} && {line}"
        return line

    def run(self, argv, *, cwd=None, env=None, timeout=600, on_line=None, as_app_user=False):
        argv = list(argv)
        line = self.command_line(argv, cwd=cwd, env=env, as_app_user=as_app_user)
        return self._execute(line, argv, timeout=timeout, on_line=on_line)

    def _execute(self, line, argv, *, timeout, on_line=None, stdin=None):
        """Run one remote command line, streaming its output; see the module's docstring."""
        name = argv[0] if argv else "command"
        deadline = time.monotonic() + timeout
        channel = self._open_channel()
        command = _Command(channel, on_line)
        started = finished = False
        try:
            try:
                # line is built by command_line(): every word shlex-quoted, cwd checked and quoted.
                channel.exec_command(_PID_LINE + line)  # nosec B601
                started = True
                if stdin:
                    channel.settimeout(max(1.0, deadline - time.monotonic()))
                    channel.sendall(stdin)
                    channel.settimeout(None)
                channel.shutdown_write()  # the command reads EOF rather than waiting for input
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransportError(f"cannot run {name} on {self._where()}: {_reason(exc)}") from None

            linger_until = None
            while True:
                now = time.monotonic()
                if now >= deadline:
                    self._terminate(command)
                    finished = True
                    command.finish()
                    raise CommandTimeout(argv, timeout, command.sink.tail)
                command.wait(min(POLL, deadline - now))
                command.drain()
                if channel.exit_status_ready():
                    if command.eof:
                        break
                    # the command has exited but something it left behind holds the output open
                    if linger_until is None:
                        linger_until = now + EXIT_LINGER
                    elif now >= linger_until:
                        break
            finished = True
            command.finish()
            transport = channel.get_transport()
            if not channel.status_event.is_set() and not (transport and transport.is_active()):
                self.close()
                raise TransportError(f"lost the connection to {self._where()} while {name} ran")
            # -1: no exit status, e.g. the command died of a signal (paramiko ignores "exit-signal")
            return CommandResult(channel.exit_status, list(command.sink.tail))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if command.callback_failed:
                raise  # the caller's on_line failed: its own error, not the connection's
            self.close()
            raise TransportError(f"lost the connection to {self._where()} while {name} ran: "
                                 f"{_reason(exc)}") from None
        finally:
            if started and not finished:
                # something failed (on_line, the connection) while the command may still run
                command.on_line = None
                self._terminate(command)
            channel.close()

    def _terminate(self, command):
        """Stop a running command: TERM to its process group, KILL after KILL_GRACE, then give up.

        Two ways, as either may fail: the SSH "signal" request (sshd honours it for non-root logins
        only) and `kill -s SIG -- -<pgid>` over a second channel (the pgid is the session's shell,
        which sshd made a session and process group leader and which exec'd the command).
        """
        channel = command.channel
        for signal_name in ("TERM", "KILL"):
            if channel.exit_status_ready():
                return
            if self.user != "root":  # sshd refuses the request for root logins (and logs an error)
                _send_signal(channel, signal_name)
            if command.pid is not None:
                self._kill_group(command.pid, signal_name)
            until = time.monotonic() + KILL_GRACE
            while not channel.exit_status_ready():
                left = until - time.monotonic()
                if left <= 0:
                    break
                command.wait(min(POLL, left))
                command.drain()
        if not channel.exit_status_ready():
            log.warning("a command on %s outlived TERM and KILL (pid %s); its channel is closed",
                        self._where(), command.pid)

    def _kill_group(self, pid, signal_name):
        """Signal a process group over a channel of its own; best effort, bounded by KILL_GRACE."""
        argv = self._prefix(False) + ["sh", "-c", 'kill -s "$1" -- "-$2"', "sh", signal_name, str(pid)]
        try:
            channel = self._transport().open_session(timeout=KILL_GRACE)
        except Exception as exc:  # noqa: BLE001 - TransportError, SSHException...: the connection is gone
            log.warning("cannot signal a command on %s: %s", self._where(), exc)
            return
        try:
            # Every word is shlex-quoted.
            channel.exec_command("exec " + _quote_all(argv))  # nosec
            channel.shutdown_write()
            channel.status_event.wait(KILL_GRACE)
        except Exception as exc:  # noqa: BLE001 - best effort, bounded; the caller kills the channel next
            log.warning("cannot signal a command on %s: %s", self._where(), exc)
        finally:
            channel.close()

    # -- files ---------------------------------------------------------------------------------

    def upload(self, path, data, mode=0o600, as_app_user=False):
        path = _check_word(path, "the path")
        if not posixpath.isabs(path) or path.endswith("/"):
            raise ValueError(f"an upload needs an absolute file path, not {path!r}")
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"bad file mode {mode!r}")
        data = bytes(data)
        tmp = f"{path}.tmp-{secrets.token_hex(8)}"
        if self.sudo:
            self._upload_via_sudo(path, tmp, data, mode, as_app_user)
        else:
            self._upload_via_sftp(path, tmp, data, mode, as_app_user)

    def _upload_via_sftp(self, path, tmp, data, mode, as_app_user):
        transport = self._transport()
        try:
            sftp = _SFTPClient.from_transport(transport)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"cannot open SFTP on {self._where()}: {_reason(exc)}") from None
        if sftp is None:
            raise TransportError(f"cannot open SFTP on {self._where()}")
        created = False
        try:
            try:
                with sftp.create_private(tmp) as f:
                    created = True
                    f.write(data)
                sftp.chmod(tmp, mode)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise TransportError(f"cannot write {path} on {self._where()}: {_reason(exc)}") from None
            if as_app_user and self.app_user and self.app_user != self.user:
                result = self.run(["chown", "--", f"{self.app_user}:", tmp], timeout=60)
                if not result.ok:
                    raise TransportError(f"cannot give {path} to {self.app_user} on {self._where()}: "
                                         + _last(result.tail))
            try:
                sftp.posix_rename(tmp, path)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise TransportError(f"cannot move {path} into place on {self._where()}: {_reason(exc)}") from None
            created = False
        finally:
            if created:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001 - best effort: the connection may be what failed
                    pass
            sftp.close()

    # The sudo way: one root shell reads the bytes from stdin into a 0600 temporary file, sets its
    # mode (and owner), and renames it into place; the trap removes the temporary file on failure.
    _UPLOAD_SCRIPT = (
        'set -e; umask 077; trap \'rm -f -- "$2"\' EXIT; '
        'cat > "$2"; chmod -- "$3" "$2"; '
        'if [ -n "$4" ]; then chown -- "$4:" "$2"; fi; '
        'if [ -d "$1" ]; then echo "$1 is a directory" >&2; exit 1; fi; '
        'mv -f -- "$2" "$1"'
    )

    def _upload_via_sudo(self, path, tmp, data, mode, as_app_user):
        owner = self.app_user if (as_app_user and self.app_user and self.app_user != self.user) else ""
        argv = ["sh", "-c", self._UPLOAD_SCRIPT, "sh", path, tmp, f"{mode:o}", owner]
        line = "exec " + _quote_all(self._prefix(False) + argv)
        result = self._execute(line, argv, timeout=UPLOAD_TIMEOUT, stdin=data)
        if not result.ok:
            raise TransportError(f"cannot write {path} on {self._where()}: {_last(result.tail)}")

    # -- services ------------------------------------------------------------------------------

    def install_service(self, spec):
        unit = render_unit(spec).encode()
        self.upload(posixpath.join(self.unit_dir, f"{spec.name}.service"), unit, mode=0o644)
        self._systemctl("daemon-reload")
        self._systemctl("enable", spec.name)

    def start_service(self, name):
        self._systemctl("start", _service(name))

    def stop_service(self, name):
        self._systemctl("stop", _service(name))

    def restart_service(self, name):
        self._systemctl("restart", _service(name))

    def services(self):
        out = []
        self.run(["ls", "-1", "--", self.unit_dir], timeout=SERVICE_TIMEOUT, on_line=out.append)
        names = {line.strip()[:-len(".service")] for line in out if line.strip().endswith(".service")}
        return sorted(name for name in names if SERVICE_NAME.fullmatch(name)
                      and (name == APP_SERVICE or name.startswith(PROCESS_PREFIX)))

    def remove_service(self, name):
        name = _service(name)
        self.run([SYSTEMCTL, "disable", "--now", name], timeout=SERVICE_TIMEOUT)  # fails when not installed
        self.run(["rm", "-f", "--", posixpath.join(self.unit_dir, f"{name}.service")], timeout=SERVICE_TIMEOUT)
        self._systemctl("daemon-reload")
        self.run([SYSTEMCTL, "reset-failed", name], timeout=SERVICE_TIMEOUT)  # forgets a failed state, if any

    # systemd's ActiveState as the platform words it (activating covers the wait before an automatic restart)
    STATES = {"active": "running", "reloading": "running", "activating": "starting", "deactivating": "stopped",
              "inactive": "stopped", "failed": "failed"}

    def service_state(self, name):
        out = []
        result = self.run([SYSTEMCTL, "show", _service(name), "-p", "LoadState", "-p", "ActiveState", "-p",
                           "SubState", "-p", "NRestarts", "-p", "Result"], timeout=SERVICE_TIMEOUT, on_line=out.append)
        if not result.ok:
            raise TransportError(f"systemctl show {name} failed on {self._where()} (exit {result.exit_code})")
        props = dict(line.partition("=")[::2] for line in out if "=" in line)
        if props.get("LoadState") != "loaded":
            return ServiceState("unknown", detail="not installed")
        restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else None
        detail = props.get("SubState")
        if props.get("Result") not in (None, "", "success"):
            detail = f"{detail}, last result {props['Result']}"
        return ServiceState(self.STATES.get(props.get("ActiveState"), "unknown"), restarts, detail)

    def service_log(self, name, lines=200):
        lines = int(lines)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise ValueError(f"lines must be between 1 and {MAX_LOG_LINES}")
        out = []
        argv = [JOURNALCTL, "-u", _service(name), "-n", str(lines), "--no-pager", "-o", "cat"]
        result = self.run(argv, timeout=SERVICE_TIMEOUT, on_line=out.append)
        if not result.ok:
            raise TransportError(f"journalctl -u {name} failed on {self._where()} "
                                 f"(exit {result.exit_code}): {_last(result.tail)}")
        return out

    def _systemctl(self, *args):
        result = self.run([SYSTEMCTL, *args], timeout=SERVICE_TIMEOUT)
        if not result.ok:
            tail = "\n".join(result.tail[-10:])
            raise TransportError(f"systemctl {' '.join(args)} failed on {self._where()} "
                                 f"(exit {result.exit_code}): {tail}")
        return result


def _service(name):
    if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
        raise ValueError(f"bad service name {name!r}")
    return name


def _send_signal(channel, name):
    """RFC 4254 6.9 "signal" request (paramiko has no method for it); ignored by servers without it."""
    try:
        m = paramiko.Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(channel.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        channel.transport._send_user_message(m)
    except Exception as exc:  # noqa: BLE001 - the channel or connection may already be gone
        log.debug("could not send %s to a command: %s", name, exc)


def _reason(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _last(tail):
    return tail[-1] if tail else "no output"
