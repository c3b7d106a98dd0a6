"""Units and environment files: their quoting, read back by systemd's rules and by systemd itself."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from backend.deploy.transport import ServiceSpec
from backend.deploy.units import parse_env_file, render_env_file, render_unit

SYSTEMD = "/lib/systemd/systemd"

# Every character that means something to systemd or a shell, in one word.
NASTY = "a b 'single' \"double\" $HOME ${X} $$ %n %% 100% back\\slash `id` $(id) ; & | * ~ é"


def directive(unit, name):
    values = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{name}=")]
    assert len(values) == 1, (name, values)
    return values[0]


# -- systemd's reading rules, written out from its documentation --------------------------------


def unquote_words(text):
    """Split a setting into words as systemd does (EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE).

    Only the escapes the renderer may produce are accepted; anything else fails the test.
    """
    words, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        word, quoted = [], False
        while i < len(text) and (quoted or text[i] != " "):
            c = text[i]
            if c == '"':
                quoted = not quoted
            elif c == "\\":
                i += 1
                assert text[i] in '\\"', f"unexpected escape \\{text[i]} in {text!r}"
                word.append(text[i])
            else:
                word.append(c)
            i += 1
        assert not quoted, f"unterminated quote in {text!r}"
        words.append("".join(word))
    return words


def shell_words(text):
    """Words of a POSIX shell line (how systemd --test shows a command line)."""
    words, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        word, quote = [], None
        while i < len(text) and (quote or text[i] != " "):
            c = text[i]
            if quote == "'":
                if c == "'":
                    quote = None
                else:
                    word.append(c)
            elif c == "\\":
                i += 1
                if quote == '"' and text[i] not in '$`"\\':
                    word.append("\\")
                word.append(text[i])
            elif c in "'\"" and (quote is None or quote == c):
                quote = None if quote else c
            else:
                word.append(c)
            i += 1
        assert quote is None, f"unterminated quote in {text!r}"
        words.append("".join(word))
    return words


def specifiers(text):
    """%% is a percent sign; any other %x would be replaced by systemd, so none may be left."""
    assert not re.search(r"%[^%]", text.replace("%%", "")), f"a live specifier in {text!r}"
    return text.replace("%%", "%")


def exec_variables(word):
    """At exec time systemd turns $$ into $ and replaces $NAME / ${NAME}, so only $$ may be left."""
    assert "$" not in word.replace("$$", ""), f"a live variable in {word!r}"
    return word.replace("$$", "$")


def spec(**overrides):
    values = {"name": "web", "description": "my-app (deployed by the PaaS)", "working_directory": "/srv/paas/src",
              "exec_start": ("/srv/paas/current/start",), "environment_file": "/srv/paas/app.env",
              "user": "paas-app", "environment": ()}
    values.update(overrides)
    return ServiceSpec(**values)


# -- the unit's text --------------------------------------------------------------------------


def test_exec_start_round_trips_through_systemd_quoting():
    program = "/srv/my app/$HOME 100%/start"
    argv = (program, NASTY, "", "-x", "--flag=$PORT", "%i", "\\", '"')
    words = unquote_words(directive(render_unit(spec(exec_start=argv)), "ExecStart"))
    # the program: specifiers only (systemd does not substitute variables in it)
    assert specifiers(words[0]) == program
    # the arguments: specifiers when the unit is read, variables when the command starts
    assert [exec_variables(specifiers(w)) for w in words[1:]] == list(argv[1:])


def test_paths_and_description_are_written_as_systemd_reads_them():
    directory = "/srv/it's a \"dir\" with $VARS, 100% and back\\slashes"
    unit = render_unit(spec(working_directory=directory, environment_file="/srv/a b/50%.env",
                            description="50% of $app \\"))
    # WorkingDirectory= and EnvironmentFile= take the rest of the line: no quotes, specifiers only
    assert specifiers(directive(unit, "WorkingDirectory")) == directory
    assert specifiers(directive(unit, "EnvironmentFile")) == "/srv/a b/50%.env"
    assert specifiers(directive(unit, "Description")) == "50% of $app"  # no line continuation


def test_environment_keeps_dollars_literal():
    unit = render_unit(spec(environment=(("PORT", "8000"), ("WEIRD", NASTY))))
    values = [unquote_words(line.split("=", 1)[1]) for line in unit.splitlines() if line.startswith("Environment=")]
    # Environment= does specifiers only: "$" has no meaning there
    assert [specifiers(w) for (w,) in values] == ["PORT=8000", f"WEIRD={NASTY}"]


def test_what_systemd_cannot_take_is_refused():
    for bad in ({"exec_start": ("/srv/start", "line\nbreak")}, {"exec_start": ("/srv/it's/start",)},
                {"exec_start": ('/srv/"q"/start',)}, {"exec_start": ("/srv/back\\slash",)},
                {"working_directory": "relative/dir"}, {"working_directory": "/srv/dir "},
                {"working_directory": "/srv/new\nline"}, {"working_directory": "/srv/dir\\"},
                {"environment_file": "app.env"}, {"description": "x\n[Service]\nExecStartPre=/bin/sh"},
                {"environment": (("K", "tab\there"),)}, {"user": "root\nExecStartPre=/x"}, {"user": "a b"}):
        with pytest.raises(ValueError):
            render_unit(spec(**bad))


# -- systemd itself ---------------------------------------------------------------------------


@pytest.fixture
def shared_tmp():
    """A temporary directory other accounts can read (pytest's own is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="paas-units-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def hostile_service(base):
    """A unit whose program, directory and arguments hold everything systemd lets a path hold."""
    directory = base / "my app $HOME 100% é"
    directory.mkdir()
    program = directory / "start $(id) %n.sh"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    env_file = base / "app 50%.env"
    env_file.write_bytes(render_env_file({"A": "b"}))
    service = spec(working_directory=str(directory), exec_start=(str(program), "a b", '"q"', "$(id)", "50%", "b\\s"),
                   environment_file=str(env_file), user="root", description="my-app 100% (deployed by the PaaS)",
                   environment=(("PORT", "8000"), ("X", "a $b %c \\ \"q\"")))
    unit_dir = base / "units"
    unit_dir.mkdir()
    (unit_dir / "web.service").write_text(render_unit(service))
    return service, unit_dir / "web.service"


def test_systemd_analyze_verify_accepts_the_unit(shared_tmp):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    _, unit = hostile_service(shared_tmp)
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    # verify checks that the program (after systemd's unquoting) exists and is executable,
    # that the paths are absolute, and every setting parses
    assert result.returncode == 0, output
    assert "web.service" not in output, output


def test_systemd_reads_back_what_was_written(shared_tmp):
    """systemd --test (a dry run of a user manager) dumps each setting as it parsed it."""
    if not (os.access(SYSTEMD, os.X_OK) and shutil.which("runuser") and os.geteuid() == 0):
        pytest.skip("needs systemd's binary, runuser and root (the dry run refuses to run as root)")
    service, unit = hostile_service(shared_tmp)
    runtime = shared_tmp / "runtime"
    runtime.mkdir(mode=0o700)
    shutil.chown(runtime, "nobody")
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", f"SYSTEMD_UNIT_PATH={unit.parent}:", f"XDG_RUNTIME_DIR={runtime}",
         f"HOME={runtime}", "SYSTEMD_LOG_TARGET=console", SYSTEMD, "--test", "--user", "--unit=web.service",
         "--no-pager"],
        capture_output=True, text=True, timeout=60)
    dump = result.stdout.split("-> Unit web.service:", 1)
    if len(dump) != 2:
        pytest.skip(f"systemd --test printed no dump here (exit {result.returncode}): {result.stderr[-500:]}")
    settings = {}
    for line in dump[1].split("\n\t-> Unit ", 1)[0].splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            settings.setdefault(key, []).append(value)
    assert settings["Description"] == [service.description]
    assert settings["WorkingDirectory"] == [service.working_directory]
    assert settings["EnvironmentFile"][0].startswith(service.environment_file)
    assert settings["Environment"] == [f"{k}={v}" for k, v in service.environment]
    shown = shell_words(settings["Command Line"][0])  # shown shell-quoted, before variables
    assert [shown[0]] + [exec_variables(w) for w in shown[1:]] == list(service.exec_start)


# -- environment files ------------------------------------------------------------------------


def systemd_env_file(text):
    """An EnvironmentFile= read by systemd's rules for KEY="value" lines (env-file.c): inside double
    quotes a backslash escapes " \\ ` $ and is kept before anything else; nothing is expanded."""
    variables = {}
    for line in text.splitlines():
        if not line or line[0] in "#;":
            continue
        key, _, rest = line.partition("=")
        assert rest[0] == rest[-1] == '"' and len(rest) >= 2, line
        value, body, i = [], rest[1:-1], 0
        while i < len(body):
            c = body[i]
            assert c != '"', f"an unescaped quote ends the value early in {line!r}"
            if c == "\\":
                i += 1
                value.append(body[i] if body[i] in '"\\`$' else "\\" + body[i])
            else:
                value.append(c)
            i += 1
        variables[key] = "".join(value)
    return variables


HOSTILE_VALUES = {
    "QUOTES": "it's \"quoted\"", "BACKSLASH": "C:\\path\\", "DOUBLE_BACKSLASH": "a\\\\b\\\"c",
    "SUBST": "$(id) `id` ${HOME} $HOME $$", "SPACES": "  leading and trailing  ", "EQUALS": "a=b==c",
    "EMPTY": "", "UNICODE": "héllo wörld ✓ 中文", "HASH": "# not a comment", "SEMI": "a; b && c | d",
    "percent": "100% %n", "_UNDERSCORE1": "x",
}


def test_env_file_round_trips_hostile_values():
    data = render_env_file(HOSTILE_VALUES)
    assert isinstance(data, bytes)
    text = data.decode()
    assert parse_env_file(text) == HOSTILE_VALUES
    assert systemd_env_file(text) == HOSTILE_VALUES
    assert render_env_file({}).decode().strip().startswith("#")
    assert parse_env_file(render_env_file({}).decode()) == {}


def test_env_file_refuses_bad_keys_and_line_breaks():
    for key in ("1ABC", "A-B", "A B", "", "A=B", "Ä", "a\nb", "X" * 129):
        with pytest.raises(ValueError):
            render_env_file({key: "v"})
    for value in ("two\nlines", "carriage\rreturn", "nul\0byte"):
        with pytest.raises(ValueError):
            render_env_file({"KEY": value})


def test_parse_env_file_refuses_what_it_did_not_write():
    with pytest.raises(ValueError):
        parse_env_file("KEY=unquoted\n")
    with pytest.raises(ValueError):
        parse_env_file('KEY="unterminated\n')
