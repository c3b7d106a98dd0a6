"""Where `paas` keeps its credentials: contexts (a name, a platform's URL and a token) in
$XDG_CONFIG_HOME/paas/config.toml (~/.config/paas/config.toml), the file 0600 in a 0700 directory.

PAAS_URL and PAAS_TOKEN override the current context; --context NAME overrides both. A token is only ever sent to
the URL it was saved (or given) with: PAAS_URL alone never borrows a saved context's token.
"""
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w


class ConfigError(Exception):
    """The configuration cannot be used (worded for the user)."""


@dataclass(frozen=True)
class Context:
    name: str
    url: str
    token: str | None


def config_path():
    base = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec: a relative value is invalid and ignored.
    home = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return home / "paas" / "config.toml"


def check_url(url):
    """A platform's address: http(s), a host, no user or password in it; returned without a final slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not a platform address: give http:// or https:// and a host")
    if parts.username or parts.password:
        raise ConfigError("put no user or password in the URL: log in with --username or --token")
    return url.rstrip("/")


def check_token(token):
    """A token goes into an HTTP header: one line of printable ASCII (never echoed back when it is not)."""
    if not isinstance(token, str) or not token or not all(33 <= ord(c) < 127 for c in token):
        raise ConfigError("the token is not a usable API token (printable ASCII, no spaces or line breaks)")
    return token


def load():
    """{"current": name | None, "contexts": {name: {"url": ..., "token": ...}}}, checked."""
    path = config_path()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {"current": None, "contexts": {}}
    except (OSError, ValueError) as exc:  # tomllib's errors and bad UTF-8 are ValueErrors
        raise ConfigError(f"cannot read {path}: {exc}; fix or remove it, then paas login again") from None
    contexts = data.get("contexts", {})
    current = data.get("current")
    if not isinstance(contexts, dict) or not (current is None or isinstance(current, str)):
        raise ConfigError(f"{path} is not paas's configuration (contexts must be a table, current a name)")
    for name, saved in contexts.items():
        if not isinstance(saved, dict) or not isinstance(saved.get("url"), str) or not (
                saved.get("token") is None or isinstance(saved.get("token"), str)):
            raise ConfigError(f"{path}: the context {name!r} needs a url (and a token) as text")
    return {"current": current, "contexts": contexts}


def save(data):
    """Write the configuration atomically, readable by its owner only (it holds tokens)."""
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        body = {"contexts": data["contexts"]}
        if data.get("current"):
            body = {"current": data["current"], **body}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.toml.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(tomli_w.dumps(body).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


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
    """The context to talk to: the one named; else PAAS_URL (with PAAS_TOKEN, or the token saved for that very
    URL); else the current context of the file, its token replaced by PAAS_TOKEN when that is set."""
    data = load()
    if context_name:
        saved = data["contexts"].get(context_name)
        if saved is None:
            raise ConfigError(f"no context {context_name!r}: paas context list shows them")
        return Context(context_name, check_url(saved["url"]), saved.get("token"))
    env_url, env_token = os.environ.get("PAAS_URL"), os.environ.get("PAAS_TOKEN")
    if env_url:
        url = check_url(env_url)
        if env_token:
            return Context("environment", url, env_token)
        for name, saved in data["contexts"].items():
            if saved["url"].rstrip("/") == url:
                return Context(name, url, saved.get("token"))
        return Context("environment", url, None)
    name = data.get("current")
    saved = data["contexts"].get(name) if name else None
    if saved is None:
        raise ConfigError("not logged in: run paas login --url URL (or set PAAS_URL and PAAS_TOKEN)")
    return Context(name, check_url(saved["url"]), env_token or saved.get("token"))
