"""Text the platform writes onto a guest: systemd units and environment files, with their quoting."""
import re

from backend.deploy.transport import ENV_KEY

_ACCOUNT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def _no_control(text, what):
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"control characters are not allowed in {what}")
    return text


def _unit_word(word, dollars=True):
    """One word of a systemd command line or Environment= assignment, double-quoted.

    systemd unquotes these words with C escapes, so backslash and the quote are escaped, and
    expands %-specifiers inside quotes too, so % is doubled. A command line also expands
    $VARIABLES, so $ is doubled there (dollars=True); Environment= gives $ no meaning (and would
    keep a doubled one), so it is left alone there. Control characters never reach here (the API
    refuses them).
    """
    _no_control(word, "a unit")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if dollars:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def _unit_path(path, what):
    """An absolute path as WorkingDirectory= and EnvironmentFile= take it: not quoted, % doubled.

    These settings take the rest of the line as the path (no quotes, no escapes), stripped of
    surrounding blanks; a backslash at the end would continue the line.
    """
    _no_control(path, what)
    if not path.startswith("/") or path != path.strip() or path.endswith("\\"):
        raise ValueError(f"{what} must be an absolute path without surrounding blanks or a final backslash")
    return path.replace("%", "%%")


def _executable(path):
    """The program of ExecStart=: systemd expands %-specifiers in it but not $VARIABLES (a doubled $
    would stay doubled), and refuses a program name holding a quote or a backslash outright
    ("Executable name contains special characters"), so those are refused here, where it is clear.
    """
    _no_control(path, "the program of a unit")
    if any(c in path for c in "'\"\\"):
        raise ValueError("systemd cannot start a program whose path holds a quote or a backslash")
    return _unit_word(path, dollars=False)


def render_unit(spec):
    """The systemd unit for a ServiceSpec: restarted on failure, started at boot, a little confined."""
    # Description= is taken literally (after specifiers); a final backslash would continue the line
    description = _no_control(spec.description, "a description").rstrip(" \\").replace("%", "%%")
    lines = [
        "[Unit]",
        f"Description={description}",
        "After=network-online.target",
        "Wants=network-online.target",
        *(("StartLimitIntervalSec=0",) if spec.restart_always else ("StartLimitIntervalSec=60", "StartLimitBurst=5")),
        "",
        "[Service]",
        "Type=simple",
    ]
    if spec.user:
        if not _ACCOUNT.fullmatch(spec.user):
            raise ValueError(f"bad user name {spec.user!r}")
        lines += [f"User={spec.user}", f"Group={spec.user}"]
    lines += [
        f"WorkingDirectory={_unit_path(spec.working_directory, 'the working directory')}",
        f"EnvironmentFile={_unit_path(spec.environment_file, 'the environment file')}",
    ]
    for key, value in spec.environment:
        lines.append(f"Environment={_unit_word(f'{key}={value}', dollars=False)}")
    lines += [
        "ExecStart=" + " ".join([_executable(spec.exec_start[0])] + [_unit_word(w) for w in spec.exec_start[1:]]),
        "Restart=always" if spec.restart_always else "Restart=on-failure",
        "RestartSec=3" if spec.restart_always else "RestartSec=2",
        "TimeoutStopSec=20",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_env_file(variables):
    """An EnvironmentFile (systemd's format, also read by the local transport): KEY="value" lines."""
    out = ["# Written by the platform; edit with PATCH /api/deployments/<id>/env."]
    for key in sorted(variables):
        value = variables[key]
        if not ENV_KEY.fullmatch(key):
            raise ValueError(f"bad environment key {key!r}")
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"the value of {key} holds a line break or NUL")
        escaped = "".join("\\" + c if c in '\\"$`' else c for c in value)
        out.append(f'{key}="{escaped}"')
    return ("\n".join(out) + "\n").encode()


def parse_env_file(text):
    """The variables of a file render_env_file wrote (the local transport's reader)."""
    variables = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition("=")
        if not (rest.startswith('"') and rest.endswith('"') and len(rest) >= 2):
            raise ValueError(f"unexpected line for {key!r} in an environment file")
        body, value, i = rest[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                value.append(body[i + 1])
                i += 2
            else:
                value.append(body[i])
                i += 1
        variables[key] = "".join(value)
    return variables
