"""Rules for user-given values (names, repository URLs, branches, tags).

They live outside the API so that every sink (the Proxmox client, the deploy step) can
re-check a value it is about to use, not only the HTTP edge.
"""
import re
import uuid
from datetime import UTC, datetime

from croniter import croniter

from backend.frameworks import FRAMEWORKS

NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,61}[a-z0-9]")
# Owner: GitHub's user/org rule (alphanumerics and single inner hyphens, max 39).
# Repo: GitHub's character set; "." and ".." are not repositories.
GITHUB_URL_RE = re.compile(
    r"https://github\.com/(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})"
    r"/(?P<repo>[A-Za-z0-9._-]{1,100}?)(?:\.git)?"
)
BRANCH_CHARS_RE = re.compile(r"[A-Za-z0-9._/-]{1,255}")
TAG_RE = re.compile(r"[a-z0-9_][a-z0-9_.+-]{0,31}")

MAX_TAGS = 20


def check_name(value):
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "must be 3-63 characters of a-z, 0-9 and '-', start with a letter and not end with '-'"
        )
    if _reads_as_uuid(value):
        # Deployments are addressed by id or name; a name that reads as an id would shadow one.
        raise ValueError("must not look like a deployment id (a UUID)")
    return value


def _reads_as_uuid(value):
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def check_github_url(value):
    match = GITHUB_URL_RE.fullmatch(value)
    if not match or match.group("repo") in (".", ".."):
        raise ValueError("must be https://github.com/OWNER/REPO (optionally ending in .git)")
    return value


def check_branch(value):
    """A conservative subset of git check-ref-format: safe on a command line and in a ref."""
    if (
        not BRANCH_CHARS_RE.fullmatch(value)
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or ".lock/" in value
        or ".." in value
        or "//" in value
        or "/." in value
        or value == "HEAD"
    ):
        raise ValueError(
            "must be a git branch name: letters, digits, '.', '_', '-', '/'; "
            "not starting with '-', '/' or '.', no '..' or '//'"
        )
    return value


def check_tags(values):
    seen = []
    for tag in values:
        if not TAG_RE.fullmatch(tag):
            raise ValueError(
                f"tag {tag!r} must be 1-32 of a-z, 0-9, '_', '.', '+', '-', not starting with '.', '+' or '-'"
            )
        if tag not in seen:
            seen.append(tag)
    return seen


def check_framework(value):
    if value not in FRAMEWORKS and value != "auto":
        raise ValueError(f"must be auto or one of: {', '.join(sorted(FRAMEWORKS))}")
    return value


MAX_COMMAND = 1000
HEALTH_PATH_RE = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,254}")


def check_command(value):
    """A build, start or release command: one shell command line (run by sh on the app's guest, as the app's
    user), without control characters, so that it stays one line in the logs and the unit files."""
    if len(value) > MAX_COMMAND:
        raise ValueError(f"must be at most {MAX_COMMAND} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be one line without control characters")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def check_health_path(value):
    """An absolute path (with an optional query) of URL characters, for GET on the app."""
    if not HEALTH_PATH_RE.fullmatch(value) or value.startswith("//"):
        raise ValueError("must be a URL path starting with '/', of URL characters, at most 255")
    return value


COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")


def check_commit(value):
    """A commit id: 7 to 40 lowercase hex digits (never an option or a ref expression)."""
    if not COMMIT_RE.fullmatch(value):
        raise ValueError("must be a commit id: 7 to 40 hexadecimal digits (a-f, 0-9)")
    return value


def plain_number(text, max_digits):
    """The int that text spells in 1 to max_digits ASCII digits, else None. str.isdigit() is no such test: it
    accepts digits int() refuses ('²') and other scripts' digits, which a URL or a header can carry."""
    if isinstance(text, str) and 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


# A DNS label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'.
LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_hostname(value):
    """A fully qualified domain name as a router serves it: lowercase labels, at least two, no trailing dot,
    the last one not all digits (an IP address is not a name), 253 characters at most."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a domain name such as app.example.com")
    if len(value) > 253:
        raise ValueError("must be at most 253 characters")
    labels = value.split(".")
    if len(labels) < 2 or not all(LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError("must be a fully qualified domain name of lowercase labels (a-z, 0-9 and '-', "
                         "1-63 each, not starting or ending with '-'), such as app.example.com")
    if labels[-1].isdigit():
        raise ValueError("must be a name, not an address")
    return value


def app_hostname(name, apps_domain):
    """The name a deployment answers at under the platform's domain."""
    return f"{name}.{apps_domain}"


def public_url(name, apps_domain, https_port):
    """The https address of a deployment behind the router."""
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{app_hostname(name, apps_domain)}{port}"


def check_cron(value):
    """A backup schedule: five cron fields, firing at most once an hour."""
    fields = value.split()
    if len(fields) != 5 or not croniter.is_valid(value):
        raise ValueError("must be a cron expression of five fields (minute hour day month weekday), "
                         "e.g. '0 3 * * *' for 03:00 every day")
    # Every gap between firings over more than a week (a list like "0,1 0 * * *" is close only once a day).
    runs = croniter(value, datetime(2026, 1, 1, tzinfo=UTC))
    last = runs.get_next(datetime)
    for _ in range(200):
        following = runs.get_next(datetime)
        if (following - last).total_seconds() < 3600:
            raise ValueError("may fire at most once an hour (a backup copies the whole guest)")
        last = following
    return value
