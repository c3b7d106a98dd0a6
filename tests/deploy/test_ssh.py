"""The SSH transport and the platform's key pair, against a real OpenSSH server on 127.0.0.1."""
import base64
import logging
import os
import shlex
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from backend.deploy import ssh
from backend.deploy.keys import host_key_line, load_or_create_keypair, parse_host_key_line
from backend.deploy.ssh import SSHTransport
from backend.deploy.transport import CommandTimeout, ServiceSpec, ServiceState, TransportError
from backend.deploy.units import render_unit
from tests.deploy.sshd import start_sshd

pytestmark = pytest.mark.slow  # real git, pip, npm, gunicorn, sshd or Celery processes

REPO = Path(__file__).resolve().parents[2]
APP_USER = "nobody"  # an account every Debian has, for the as_app_user paths


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform_key(tmp_path_factory):
    return load_or_create_keypair(tmp_path_factory.mktemp("platform") / "keys" / "id_ed25519")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory, platform_key):
    server = start_sshd(tmp_path_factory.mktemp("sshd"), platform_key[1])
    yield server
    server.stop()


@pytest.fixture
def make_transport(sshd, platform_key, tmp_path):
    opened = []

    def make(**overrides):
        values = {"port": sshd.port, "pkey": platform_key[0], "known_host_key": sshd.host_key_line,
                  "connect_timeout": 5, "app_user": APP_USER, "unit_dir": str(tmp_path / "units")}
        values.update(overrides)
        transport = SSHTransport(sshd.host, **values)
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        transport.close()


@pytest.fixture
def t(make_transport):
    return make_transport()


def other_ed25519_line():
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def ecdsa_line():
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def marker():
    """A unique `sleep` argument, so pgrep -f finds exactly the process a test started."""
    return f"29.{uuid.uuid4().int % 10**9:09d}"


def running(pattern):
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def wait_until_gone(pattern, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not running(pattern):
            return True
        time.sleep(0.05)
    return False


def accepted_logins(server):
    return server.log().count("Accepted publickey")


def wait_for_log_count(server, count, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and accepted_logins(server) < count:
        time.sleep(0.05)
    return accepted_logins(server)


# -- commands ---------------------------------------------------------------------------------


def test_exit_codes_come_back(t):
    assert t.kind == "ssh"
    assert t.run(["true"]).exit_code == 0
    assert t.run(["true"]).ok
    assert t.run(["false"]).exit_code == 1
    result = t.run(["sh", "-c", "echo bye; exit 7"])
    assert (result.exit_code, result.tail, result.ok) == (7, ["bye"], False)
    missing = t.run(["no-such-program-here"])
    assert missing.exit_code == 127
    assert "no-such-program-here" in missing.tail[-1]


def test_output_reaches_on_line_while_the_command_runs(t):
    seen = []
    result = t.run(["sh", "-c", "echo first; sleep 1; echo second"],
                   on_line=lambda line: seen.append((line, time.monotonic())))
    ended = time.monotonic()
    assert result.exit_code == 0
    assert [line for line, _ in seen] == ["first", "second"]
    (_, first_at), (_, second_at) = seen
    assert ended - first_at > 0.7, "the first line arrived only when the command ended"
    assert second_at - first_at > 0.7


def test_stderr_is_merged_into_the_output_in_order(t):
    script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 4"
    lines = []
    result = t.run(["sh", "-c", script], on_line=lines.append)
    assert result.exit_code == 4
    assert lines == result.tail == ["out1", "err1", "out2", "err2"]
    # a burst: the two streams share one pipe on the guest, so nothing can overtake
    lines.clear()
    burst = 'i=0; while [ $i -lt 500 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'
    assert t.run(["sh", "-c", burst], on_line=lines.append).ok
    assert lines == [f"{stream} {i}" for i in range(500) for stream in ("out", "err")]


def test_output_decoding_keeps_the_last_partial_line_and_replaces_bad_bytes(t):
    lines = []
    result = t.run(["printf", "h\\303\\251llo\\r\\n\\377bad\\nno newline at the end"], on_line=lines.append)
    assert result.ok
    assert lines == ["héllo", "\ufffdbad", "no newline at the end"]


def test_the_tail_keeps_the_last_lines_and_on_line_gets_all(t):
    lines = []
    result = t.run(["seq", "1", "5000"], on_line=lines.append)
    assert lines == [str(n) for n in range(1, 5001)]
    assert result.tail == [str(n) for n in range(4961, 5001)]


def test_a_command_gets_end_of_input_rather_than_waiting_for_it(t):
    started = time.monotonic()
    result = t.run(["cat"], timeout=10)
    assert result.ok and result.tail == []
    assert time.monotonic() - started < 5


def test_a_command_past_its_time_limit_is_killed(t):
    sleep_for = marker()
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        t.run(["sh", "-c", f"echo started; sleep {sleep_for}; echo never"], timeout=1)
    elapsed = time.monotonic() - started
    assert 1 <= elapsed < 4, elapsed
    assert caught.value.tail == ["started"]
    assert "1 s limit" in str(caught.value)
    assert wait_until_gone(f"sleep {sleep_for}"), "the remote command survived its time limit"
    assert t.run(["echo", "still usable"]).tail == ["still usable"]


def test_a_command_ignoring_term_is_killed(t):
    sleep_for = marker()
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        t.run(["sh", "-c", f"trap '' TERM; echo started; sleep {sleep_for}"], timeout=1)
    assert time.monotonic() - started < 1 + 2 * ssh.KILL_GRACE + 2
    assert wait_until_gone(f"sleep {sleep_for}")


def test_a_command_of_the_app_user_past_its_time_limit_is_killed(t):
    sleep_for = marker()
    with pytest.raises(CommandTimeout):
        t.run(["sh", "-c", f"sleep {sleep_for}"], timeout=1, as_app_user=True)
    assert wait_until_gone(f"sleep {sleep_for}")


def test_a_failing_on_line_stops_the_command_and_propagates(t):
    sleep_for = marker()

    def on_line(line):
        raise RuntimeError(f"the log is gone ({line})")

    with pytest.raises(RuntimeError, match=r"the log is gone \(go\)"):
        t.run(["sh", "-c", f"echo go; sleep {sleep_for}"], timeout=60, on_line=on_line)
    assert wait_until_gone(f"sleep {sleep_for}")


def test_a_command_leaving_a_background_process_still_returns(t):
    sleep_for = marker()
    started = time.monotonic()
    result = t.run(["sh", "-c", f"sleep {sleep_for} & echo left it"], timeout=20)
    try:
        assert result.exit_code == 0 and result.tail == ["left it"]
        assert time.monotonic() - started < ssh.EXIT_LINGER + 3
    finally:
        subprocess.run(["pkill", "-f", f"sleep {sleep_for}"])


def test_as_app_user_runs_as_that_account(t):
    assert t.run(["id", "-un"], as_app_user=True).tail == [APP_USER]
    assert t.run(["id", "-un"]).tail == ["root"]


# -- quoting ----------------------------------------------------------------------------------


HOSTILE = [
    "$(touch {d}/dollar)", "`touch {d}/backtick`", "a; touch {d}/semicolon", "a && touch {d}/and",
    "a | tee {d}/pipe", "a > {d}/redirect", "line one\nline two", "it's", 'say "hi"', "-n", "--", "",
    "  spaces  ", "back\\slash", "*", "~", "$HOME", "%s", "{d}/*", "é ü 中",
]


def test_hostile_words_arrive_verbatim_and_nothing_runs(t, tmp_path):
    words = [w.format(d=tmp_path) for w in HOSTILE]
    lines = []
    result = t.run(["printf", "%s\\n", *words], on_line=lines.append)
    assert result.ok
    assert lines == "\n".join(words).split("\n")
    assert sorted(os.listdir(tmp_path)) == []


def test_each_word_is_one_argument(t, tmp_path):
    words = [w.format(d=tmp_path) for w in HOSTILE]
    # one NUL-terminated argument each: the count and bytes prove no word was split or joined
    script = 'for a in "$@"; do printf "%s" "$a" | od -An -tx1 | tr -d " \\n"; echo; done'
    result = t.run(["sh", "-c", script, "sh", *words])
    assert result.ok
    assert result.tail == [w.encode().hex() for w in words]
    assert os.listdir(tmp_path) == []


def test_a_program_name_with_a_leading_dash_is_a_program_not_an_option(t):
    result = t.run(["-i", "true"])
    assert result.exit_code == 127
    assert "-i" in result.tail[-1]


def test_cwd_with_spaces_and_quotes(t, tmp_path):
    directory = tmp_path / "it's a \"dir\" $(touch x) with `spaces`"
    directory.mkdir()
    result = t.run(["pwd"], cwd=str(directory))
    assert result.ok and result.tail == [str(directory)]
    assert sorted(os.listdir(tmp_path)) == [directory.name]
    missing = t.run(["pwd"], cwd=str(tmp_path / "missing"))
    assert missing.exit_code != 0 and "missing" in missing.tail[-1]


def test_env_values_are_quoted(t, tmp_path):
    env = {"PLAIN": "x", "HOSTILE": f"$(touch {tmp_path}/env) `id` ; | & \"q\" 'q' \\ \n second line",
           "EMPTY": "", "WITH_EQUALS": "a=b=c"}
    result = t.run(["sh", "-c", 'printf "%s|" "$PLAIN" "$HOSTILE" "$EMPTY" "$WITH_EQUALS"'], env=env)
    assert result.ok
    assert "\n".join(result.tail) == "|".join(env.values()) + "|"
    assert os.listdir(tmp_path) == []


def test_bad_input_is_refused_before_anything_runs(t, sshd):
    before = sshd.log().count("Starting session")
    with pytest.raises(ValueError):
        t.run(["echo"], env={"BAD KEY": "x"})
    with pytest.raises(ValueError):
        t.run(["echo"], env={"1X": "x"})
    with pytest.raises(ValueError):
        t.run(["echo", "nul\0byte"])
    with pytest.raises(ValueError):
        t.run(["A=B", "true"])  # env would read it as an assignment
    with pytest.raises(ValueError):
        t.run([])
    with pytest.raises(ValueError):
        t.run(["true"], cwd="/tmp/\0")
    assert sshd.log().count("Starting session") == before


def test_the_command_line_quotes_every_word(make_transport):
    root = make_transport()
    assert root.command_line(["echo", "a b"]) == "exec env -- echo 'a b'"
    assert root.command_line(["echo", "x"], cwd="/srv/my app", env={"K": "v w"}) == (
        "cd -- '/srv/my app' && exec env -- 'K=v w' echo x")
    assert root.command_line(["id"], as_app_user=True) == f"exec runuser -u {APP_USER} -- env -- id"
    sudo = make_transport(user="debian")
    assert sudo.sudo is True
    assert sudo.command_line(["id"]) == "exec sudo -n -- env -- id"
    assert sudo.command_line(["id"], as_app_user=True) == f"exec sudo -n -u {APP_USER} -- env -- id"
    plain = make_transport(user="debian", sudo=False)
    assert plain.command_line(["id"]) == "exec env -- id"
    with pytest.raises(TransportError):
        plain.command_line(["id"], as_app_user=True)


# -- uploads ----------------------------------------------------------------------------------


def test_uploads_have_the_mode_and_content_asked_for(t, tmp_path):
    secret = tmp_path / "app.env"
    t.upload(str(secret), b'SECRET="s3cr\\"et"\n', mode=0o600)
    assert secret.read_bytes() == b'SECRET="s3cr\\"et"\n'
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    script = tmp_path / "start"
    t.upload(str(script), b"#!/bin/sh\necho started from the upload\n", mode=0o755)
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert t.run([str(script)]).tail == ["started from the upload"]

    big = os.urandom(3 * 1024 * 1024 + 17)
    t.upload(str(tmp_path / "big"), big, mode=0o644)
    assert (tmp_path / "big").read_bytes() == big
    assert stat.S_IMODE((tmp_path / "big").stat().st_mode) == 0o644

    t.upload(str(tmp_path / "empty"), b"")
    assert (tmp_path / "empty").read_bytes() == b""
    assert sorted(os.listdir(tmp_path)) == ["app.env", "big", "empty", "start"]  # no temporary files


def test_an_upload_replaces_the_file_by_renaming(t, tmp_path):
    target = tmp_path / "config"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    old_inode = target.stat().st_ino
    with open(target, "rb") as reader:  # a reader of the old file keeps seeing the old file
        t.upload(str(target), b"new content", mode=0o640)
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new content"
    assert target.stat().st_ino != old_inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["config"]


def test_an_upload_as_the_app_user_belongs_to_it(t, tmp_path):
    path = tmp_path / "owned"
    t.upload(str(path), b"x", mode=0o600, as_app_user=True)
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (65534, 0o600)


def test_a_failed_upload_leaves_nothing_behind(t, tmp_path):
    with pytest.raises(TransportError, match="cannot write"):
        t.upload(str(tmp_path / "missing-dir" / "file"), b"x")
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(TransportError):
        t.upload(str(tmp_path / "a-dir"), b"x")
    assert os.listdir(tmp_path) == ["a-dir"] and os.listdir(tmp_path / "a-dir") == []
    with pytest.raises(ValueError):
        t.upload("relative/path", b"x")


# -- sudo (through a stand-in sudo: this machine has none) -------------------------------------


@pytest.fixture
def stub_sudo(tmp_path, monkeypatch):
    log = tmp_path / "sudo.log"
    stub = tmp_path / "sudo"
    stub.write_text(f"""#!/bin/sh
for a in "$@"; do printf '[%s]' "$a"; done >> {shlex.quote(str(log))}; echo >> {shlex.quote(str(log))}
[ "$1" = -n ] || {{ echo "stub sudo: -n expected" >&2; exit 90; }}
shift
if [ "$1" = -u ]; then
    user=$2; shift 2
    [ "$1" = -- ] || exit 91
    shift
    exec runuser -u "$user" -- "$@"
fi
[ "$1" = -- ] || {{ echo "stub sudo: -- expected" >&2; exit 92; }}
shift
exec "$@"
""")
    stub.chmod(0o755)
    monkeypatch.setattr(ssh, "SUDO", str(stub))
    return log


def test_with_sudo_commands_go_through_it(make_transport, stub_sudo):
    t = make_transport(sudo=True)
    assert t.run(["id", "-un"]).tail == ["root"]
    assert t.run(["id", "-un"], as_app_user=True).tail == [APP_USER]
    assert stub_sudo.read_text().splitlines() == [
        "[-n][--][env][--][id][-un]",
        f"[-n][-u][{APP_USER}][--][env][--][id][-un]",
    ]


def test_with_sudo_uploads_go_through_it(make_transport, stub_sudo, tmp_path):
    t = make_transport(sudo=True)
    work = tmp_path / "work dir"
    work.mkdir()
    data = os.urandom(200_000) + b"\n$(touch x)\n"
    t.upload(str(work / "it's.bin"), data, mode=0o640)
    t.upload(str(work / "owned"), b"mine", mode=0o600, as_app_user=True)
    assert (work / "it's.bin").read_bytes() == data
    assert stat.S_IMODE((work / "it's.bin").stat().st_mode) == 0o640
    assert (work / "it's.bin").stat().st_uid == 0
    assert ((work / "owned").stat().st_uid, (work / "owned").read_bytes()) == (65534, b"mine")
    assert sorted(os.listdir(work)) == ["it's.bin", "owned"]
    (work / "a-dir").mkdir()
    with pytest.raises(TransportError, match="is a directory"):
        t.upload(str(work / "a-dir"), b"x")
    with pytest.raises(TransportError):
        t.upload(str(work / "missing" / "file"), b"x")
    assert sorted(os.listdir(work)) == ["a-dir", "it's.bin", "owned"] and os.listdir(work / "a-dir") == []
    assert all(line.startswith("[-n][--][sh][-c]") for line in stub_sudo.read_text().splitlines())


def test_with_sudo_a_command_past_its_time_limit_is_killed(make_transport, stub_sudo):
    t = make_transport(sudo=True)
    sleep_for = marker()
    with pytest.raises(CommandTimeout):
        t.run(["sh", "-c", f"sleep {sleep_for}"], timeout=1)
    assert wait_until_gone(f"sleep {sleep_for}")


# -- services ---------------------------------------------------------------------------------


@pytest.fixture
def stub_systemd(tmp_path, monkeypatch):
    """systemctl and journalctl stand-ins that record their arguments (there is no systemd here)."""
    log = tmp_path / "systemd.log"
    q = shlex.quote(str(log))
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"""#!/bin/sh
{{ printf systemctl; for a in "$@"; do printf ' [%s]' "$a"; done; echo; }} >> {q}
if [ "$1" = start ] && [ "$2" = broken ]; then
    echo "Job for broken.service failed because the control process exited with error code." >&2
    exit 1
fi
if [ "$1" = show ]; then
    case "$2" in
        paas-app) printf 'LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\nResult=success\n' ;;
        paas-app-worker) printf 'NRestarts=3\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\n'
                         echo LoadState=loaded ;;
        *) printf 'LoadState=not-found\nActiveState=inactive\nNRestarts=0\n' ;;
    esac
fi
""")
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f"""#!/bin/sh
{{ printf journalctl; for a in "$@"; do printf ' [%s]' "$a"; done; echo; }} >> {q}
[ "$2" = broken ] && {{ echo "No journal files were found." >&2; exit 1; }}
printf 'listening on :8000\\n\\nGET / 200 – ok\\n'
""")
    for stub in (systemctl, journalctl):
        stub.chmod(0o755)
    monkeypatch.setattr(ssh, "SYSTEMCTL", str(systemctl))
    monkeypatch.setattr(ssh, "JOURNALCTL", str(journalctl))
    return log


def calls(log):
    return log.read_text().splitlines()


def test_install_service_writes_the_unit_and_enables_it(t, stub_systemd, tmp_path):
    (tmp_path / "units").mkdir()
    spec = ServiceSpec(name="paas-app", description="my-app (deployed by the PaaS)",
                       working_directory="/srv/paas/current/src", exec_start=("/srv/paas/current/start",),
                       environment_file="/srv/paas/current/app.env", user="paas-app",
                       environment=(("PORT", "8000"),))
    t.install_service(spec)
    unit = tmp_path / "units" / "paas-app.service"
    assert unit.read_text() == render_unit(spec)
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert calls(stub_systemd) == ["systemctl [daemon-reload]", "systemctl [enable] [paas-app]"]
    assert os.listdir(tmp_path / "units") == ["paas-app.service"]


def test_start_stop_restart_and_log(t, stub_systemd):
    t.start_service("web")
    t.stop_service("web")
    t.restart_service("web")
    assert t.service_log("web", lines=50) == ["listening on :8000", "", "GET / 200 – ok"]
    assert calls(stub_systemd) == [
        "systemctl [start] [web]", "systemctl [stop] [web]", "systemctl [restart] [web]",
        "journalctl [-u] [web] [-n] [50] [--no-pager] [-o] [cat]",
    ]


def test_services_are_listed_stated_and_removed(t, stub_systemd, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    for name in ("paas-app.service", "paas-app-worker.service", "ssh.service", "paas-app-clock.service.d"):
        (units / name).write_text("")
    assert t.services() == ["paas-app", "paas-app-worker"]

    assert t.service_state("paas-app") == ServiceState("running", 0, "running")
    assert t.service_state("paas-app-worker") == ServiceState("starting", 3, "auto-restart, last result exit-code")
    assert t.service_state("paas-app-gone").state == "unknown"

    open(stub_systemd, "w").close()
    t.remove_service("paas-app-worker")
    assert not (units / "paas-app-worker.service").exists() and (units / "paas-app.service").exists()
    assert calls(stub_systemd) == ["systemctl [disable] [--now] [paas-app-worker]", "systemctl [daemon-reload]",
                                   "systemctl [reset-failed] [paas-app-worker]"]
    with pytest.raises(ValueError):
        t.remove_service("paas-app; reboot")


def test_a_failing_systemctl_raises_with_its_output(t, stub_systemd):
    with pytest.raises(TransportError, match="systemctl start broken failed .*exit 1.*control process exited"):
        t.start_service("broken")
    with pytest.raises(TransportError, match="No journal files"):
        t.service_log("broken")
    with pytest.raises(ValueError):
        t.start_service("web; reboot")
    with pytest.raises(ValueError):
        t.service_log("web", lines=0)


# -- the connection and host keys -------------------------------------------------------------


def test_the_first_connection_records_the_host_key_and_later_ones_check_it(make_transport, sshd):
    recorded = []
    first = make_transport(known_host_key=None, on_new_host_key=recorded.append)
    assert first.known_host_key is None
    assert first.run(["true"]).ok
    assert recorded == [sshd.host_key_line]
    assert first.known_host_key == sshd.host_key_line
    first.close()
    assert first.run(["true"]).ok  # reconnects, checking the key it pinned
    assert recorded == [sshd.host_key_line]

    second = make_transport(known_host_key=recorded[0], on_new_host_key=recorded.append)
    assert second.run(["echo", "pinned"]).tail == ["pinned"]
    assert recorded == [sshd.host_key_line]


def test_a_changed_host_key_is_refused_and_nothing_runs(make_transport, sshd, tmp_path):
    recorded = []
    before = sshd.log().count("Starting session")
    for wrong in (other_ed25519_line(), ecdsa_line()):
        t = make_transport(known_host_key=wrong, on_new_host_key=recorded.append)
        with pytest.raises(TransportError, match=r"host key of 127\.0\.0\.1:\d+ changed.*refused"):
            t.run(["touch", str(tmp_path / "pwned")])
        with pytest.raises(TransportError, match="changed"):
            t.upload(str(tmp_path / "pwned2"), b"x")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert recorded == []
    assert sshd.log().count("Starting session") == before



def test_an_unreadable_recorded_key_is_refused(make_transport):
    for bad in ("ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-ed25519 " + base64.b64encode(b"junk").decode(),
                "no-such-type AAAA"):
        with pytest.raises(TransportError, match="recorded host key"):
            make_transport(known_host_key=bad)


def test_a_key_the_guest_does_not_know_is_refused(make_transport, tmp_path):
    stranger, _ = load_or_create_keypair(tmp_path / "stranger")
    with pytest.raises(TransportError, match="refused the platform's SSH key"):
        make_transport(pkey=stranger).run(["true"])


def test_an_unreachable_guest_is_a_transport_error(make_transport):
    with socket.socket() as bound_but_not_listening:
        bound_but_not_listening.bind(("127.0.0.1", 0))
        port = bound_but_not_listening.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot connect"):
            make_transport(port=port).run(["true"])
        assert time.monotonic() - started < 5


def test_a_silent_guest_times_out(make_transport):
    with socket.socket() as silent:  # accepts connections (the backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot connect"):
            make_transport(port=silent.getsockname()[1], connect_timeout=1).run(["true"])
        assert time.monotonic() - started < 4


def test_one_lazy_connection_serves_every_call(make_transport, sshd, tmp_path):
    before = accepted_logins(sshd)
    t = make_transport()
    time.sleep(0.2)
    assert accepted_logins(sshd) == before  # constructing does not connect

    results = []

    def work(n):
        results.append(t.run(["echo", str(n)]).tail)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    t.upload(str(tmp_path / "f"), b"x")
    assert sorted(results) == [[str(n)] for n in range(6)]
    assert wait_for_log_count(sshd, before + 1) == before + 1
    time.sleep(0.2)
    assert accepted_logins(sshd) == before + 1


# -- the platform's key pair ------------------------------------------------------------------


def test_the_key_pair_is_created_private_and_then_reused(tmp_path):
    path = tmp_path / "secrets" / "id_ed25519"
    pkey, public = load_or_create_keypair(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public.startswith("ssh-ed25519 AAAA") and public.endswith(" paas-platform")
    assert (tmp_path / "secrets" / "id_ed25519.pub").read_text() == public + "\n"
    assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert host_key_line(pkey) == " ".join(public.split()[:2])
    assert parse_host_key_line(public) == pkey
    again, public_again = load_or_create_keypair(path)
    assert public_again == public and again == pkey
    assert sorted(os.listdir(path.parent)) == ["id_ed25519", "id_ed25519.pub"]


def test_a_key_readable_by_others_is_narrowed(tmp_path, caplog):
    path = tmp_path / "id"
    _, public = load_or_create_keypair(path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="backend.deploy.keys"):
        _, again = load_or_create_keypair(path)
    assert again == public
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("readable by others" in r.getMessage() for r in caplog.records)


def test_a_missing_public_file_is_written_again(tmp_path):
    path = tmp_path / "id"
    _, public = load_or_create_keypair(path)
    (tmp_path / "id.pub").unlink()
    assert load_or_create_keypair(path)[1] == public
    assert (tmp_path / "id.pub").read_text() == public + "\n"


def test_a_broken_key_file_is_an_error_not_a_new_key(tmp_path):
    path = tmp_path / "id"
    path.write_text("not a key")
    with pytest.raises(ValueError, match="not an unencrypted private key"):
        load_or_create_keypair(path)
    assert path.read_text() == "not a key"


def test_processes_racing_to_create_the_key_all_get_the_same_one(tmp_path):
    path = tmp_path / "race" / "id_ed25519"
    code = ("import sys, time; from backend.deploy.keys import load_or_create_keypair as f\n"
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
            "print(f(sys.argv[1])[1])\n")
    start_at = time.time() + 3
    processes = [subprocess.Popen([sys.executable, "-c", code, str(path), str(start_at)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, [err for _, err in outputs]
    publics = {out.strip() for out, _ in outputs}
    assert len(publics) == 1
    assert publics == {load_or_create_keypair(path)[1]}
    assert sorted(os.listdir(path.parent)) == ["id_ed25519", "id_ed25519.pub"]


def test_threads_racing_to_create_the_key_all_get_the_same_one(tmp_path):
    path = tmp_path / "id"
    barrier = threading.Barrier(8)
    publics = []

    def create():
        barrier.wait(10)
        publics.append(load_or_create_keypair(path)[1])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(publics) == 8 and len(set(publics)) == 1
