"""Where `paas` keeps its credentials: contexts (a name, a platform's URL and a token) in
$XDG_CONFIG_HOME/paas/config.toml (~/.config/paas/config.toml), mode 0600; PAAS_URL and PAAS_TOKEN override it."""
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w


class ConfigError(Exception):
    """The configuration cannot be used (worded for the user)."""


@dataclass(frozen=True)
class Context:
    name: str
    url: str
    token: str | None


def config_path():
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paas" / "config.toml"


def load():
    """{"current": name | None, "contexts": {name: {"url": ..., "token": ...}}}"""
    path = config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {"current": None, "contexts": {}}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    contexts = data.get("contexts") if isinstance(data.get("contexts"), dict) else {}
    return {"current": data.get("current"), "contexts": contexts}


def save(data):
    """Write the configuration atomically, readable by its owner only (it holds tokens)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"contexts": data["contexts"]}
    if data.get("current"):
        body = {"current": data["current"], **body}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.toml.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(tomli_w.dumps(body).encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remember(name, url, token):
    data = load()
    data["contexts"][name] = {"url": url, "token": token}
    data["current"] = name
    save(data)


def use(name):
    data = load()
    if name not in data["contexts"]:
        known = ", ".join(sorted(data["contexts"])) or "none yet: paas login"
        raise ConfigError(f"no context {name!r} (known: {known})")
    data["current"] = name
    save(data)


def current(context_name=None):
    """The context to talk to: PAAS_URL/PAAS_TOKEN over the named (or current) context of the file."""
    data = load()
    name = context_name or data.get("current")
    saved = data["contexts"].get(name, {}) if name else {}
    if context_name and not saved:
        raise ConfigError(f"no context {context_name!r}: paas context list shows them")
    url = os.environ.get("PAAS_URL") or saved.get("url")
    token = os.environ.get("PAAS_TOKEN") or saved.get("token")
    if not url:
        raise ConfigError("not logged in: run paas login --url URL (or set PAAS_URL and PAAS_TOKEN)")
    return Context(name or "environment", url.rstrip("/"), token)
