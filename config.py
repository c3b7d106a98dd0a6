"""Application settings, read from the environment (and a .env file) once at import."""
import os
from pathlib import Path
from urllib.parse import quote

import click
from dotenv import load_dotenv

from backend.proxmox.settings import ProxmoxSettings
from backend.rules import check_hostname

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")

DEFAULT_SECRET_KEY = "dev-insecure-change-me"


def env_bool(name, default=False):
    """Read a boolean variable: 1/true/yes/on (any case) are true."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    """Read an integer variable, failing loudly on garbage rather than guessing."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"{name} must be an integer, got {value!r}") from None


class ConfigurationError(click.ClickException):
    """A setting the platform cannot work with; its message is one line that names the setting.

    A ClickException, so the Flask CLI and manage_db.py print it as `Error: ...` without a traceback.
    """


def postgres_url_from_env():
    """Build a PostgreSQL URL from the docker-compose db service variables."""
    user = quote(os.environ.get("POSTGRES_USER", "paas"), safe="")
    password = quote(os.environ.get("POSTGRES_PASSWORD", ""), safe="")
    host = os.environ.get("POSTGRES_HOST", "localhost")
    port = os.environ.get("POSTGRES_PORT", "5435")
    name = os.environ.get("POSTGRES_DB", "paas")
    auth = f"{user}:{password}" if password else user
    return f"postgresql+psycopg://{auth}@{host}:{port}/{name}"


# The one driver shipped for each server (requirements.txt): psycopg 3, SQLAlchemy's default for
# postgresql://, and PyMySQL, pure Python. Every spelling users bring is mapped onto them.
DRIVER_FOR_SCHEME = {
    "postgres": "postgresql+psycopg",  # Heroku-style; SQLAlchemy no longer accepts it
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",  # the form older docs (ours too) give
    "mysql": "mysql+pymysql",  # SQLAlchemy's default would be mysqlclient, which needs a C toolchain
    "mariadb": "mariadb+pymysql",
}


def normalize_database_url(url):
    """The URL with its scheme mapped onto a driver the platform ships (the rest is left untouched)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return url.strip()
    return f"{DRIVER_FOR_SCHEME.get(scheme.lower(), scheme)}://{rest}"


def check_database_url(url, source="DATABASE_URL"):
    """Raise ConfigurationError, in one line naming source, for a URL SQLAlchemy cannot use.

    Checks the form, the dialect and that its driver imports; reaching the server is the caller's test.
    """
    from sqlalchemy.engine import make_url  # noqa: PLC0415 (config.py is read before anything heavy)
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError  # noqa: PLC0415 - as above

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"{source} is not a database URL (expected e.g. "
                                 "postgresql://user:pass@host:5432/db or sqlite:///paas.db)") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigurationError(f"{source}={shown}: unknown database kind {parsed.drivername!r}; "
                                 "use postgresql://, mysql:// or sqlite://") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigurationError(f"{source}={shown}: its driver is not installed ({exc}); "
                                 "install requirements.txt, or name a driver it has") from None
    return parsed


def unreachable_database(exc, url, source="DATABASE_URL"):
    """The ConfigurationError for a database that refused or did not answer: one line, no password."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - config.py is read before anything heavy

    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    shown = make_url(url).render_as_string(hide_password=True)
    return ConfigurationError(f"cannot use the database at {source}={shown}: "
                              f"{reason[0] if reason else exc.__class__.__name__}")


def database_source():
    """Which setting names the database, for messages."""
    if os.environ.get("DATABASE_URL", "").strip():
        return "DATABASE_URL"
    return "DATABASE_URL (unset; USE_POSTGRES and POSTGRES_*)" if env_bool("USE_POSTGRES") else "DATABASE_URL"


def database_url(instance_path):
    """DATABASE_URL wins; then USE_POSTGRES builds one; else SQLite in the instance folder."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return normalize_database_url(url)
    if env_bool("USE_POSTGRES"):
        return postgres_url_from_env()
    return "sqlite:///" + str(Path(instance_path) / "deployments.db")


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = None  # resolved in create_app, which knows the instance folder
    # No ping before each checkout: it is a round trip per checkout (several per request). A connection the
    # server dropped fails the one request that meets it; SQLAlchemy then discards the pool's older connections.
    # DATABASE_PRE_PING=true brings the ping back (a database behind something that cuts idle connections).
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": env_bool("DATABASE_PRE_PING", False)}
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 64 * 1024)
    PER_PAGE_DEFAULT = env_int("PER_PAGE_DEFAULT", 20)
    PER_PAGE_MAX = env_int("PER_PAGE_MAX", 100)
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    # Check every answer against its documented schema (spectree; a mismatch is logged and answered 500).
    # On in testing and development, where a mismatch is a bug to see; off in production, where it costs
    # milliseconds per request (a list page: validating 50 deployments) and the tests have checked the shapes.
    VALIDATE_RESPONSES = env_bool("VALIDATE_RESPONSES", False)
    # Background jobs: thread (in the API process), celery (when CELERY_BROKER_URL is set) or manual.
    JOBS_BACKEND = os.environ.get("JOBS_BACKEND") or None
    JOB_WORKERS = env_int("JOB_WORKERS", 8)
    JOB_TIME_LIMIT = env_int("JOB_TIME_LIMIT", 1800)
    JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60)
    JOB_HEARTBEAT_SECONDS = 2
    JOB_SWEEP_SECONDS = env_int("JOB_SWEEP_SECONDS", 300)
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or None
    CELERY_QUEUE = os.environ.get("CELERY_QUEUE") or "paas"
    CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
    # Live guest status and metrics in a request (GET /api/deployments/<id>, .../metrics, the dashboard): a short
    # timeout, no retries, so that a slow cluster never holds a request (a field or a 503 says so).
    LIVE_STATUS_TIMEOUT = env_int("LIVE_STATUS_TIMEOUT", 3)
    # Deploying apps: false stops provisioning after the guest is up (no deploy step).
    DEPLOY_APPS = env_bool("DEPLOY_APPS", True)
    # The Fernet key that encrypts environment variables at rest; empty: a key generated
    # on first run into instance/env.key (mode 0600). Never stored in the database.
    ENV_ENCRYPTION_KEY = os.environ.get("ENV_ENCRYPTION_KEY") or None
    # The platform's SSH key pair (generated on first run when absent; the .pub beside it goes into guests).
    SSH_KEY_PATH = os.environ.get("SSH_KEY_PATH") or None  # default: instance/ssh/id_ed25519
    SSH_CONNECT_TIMEOUT = env_int("SSH_CONNECT_TIMEOUT", 15)
    # Time limits: one build or install command, the health check, and the whole of one release.
    DEPLOY_COMMAND_TIMEOUT = env_int("DEPLOY_COMMAND_TIMEOUT", 900)
    HEALTH_CHECK_TIMEOUT = env_int("HEALTH_CHECK_TIMEOUT", 60)
    RELEASES_KEPT = env_int("RELEASES_KEPT", 3)
    # git on the guest: allowed protocols, and url.<base>.insteadOf rewrites {base: prefix} (tests, mirrors).
    GIT_ALLOW_PROTOCOL = os.environ.get("GIT_ALLOW_PROTOCOL") or "https"
    GIT_URL_REWRITES = {}
    # Simulation mode (python app.py --simulate): a fake Proxmox in-process, guests as local sandboxes.
    SIMULATE = env_bool("SIMULATE", False)
    SIMULATION_DIR = os.environ.get("SIMULATION_DIR") or None  # default: instance/simulation
    # What simulated guests are: sandboxes (directories on this machine, the default) or containers (real
    # Debian guests with systemd and sshd, deployed over SSH as in production; needs root).
    SIMULATION_GUESTS = os.environ.get("SIMULATION_GUESTS") or "sandboxes"
    # Guests that reach package registries only through an HTTP(S) proxy: apt, pip, npm and git on the
    # guest use it (hosts in GUEST_NO_PROXY, comma-separated, are reached directly).
    GUEST_HTTP_PROXY = os.environ.get("GUEST_HTTP_PROXY") or None
    GUEST_NO_PROXY = os.environ.get("GUEST_NO_PROXY") or None
    # The edge router: every app at https://<name>.<APPS_DOMAIN> and at its custom domains, releases switched
    # without dropping a request. ROUTER=caddy drives a Caddy through its admin API (CADDY_ADMIN_URL: http:// on
    # loopback of the edge host, or unix//path/to/admin.sock); none: apps answer at http://GUEST-IP:PORT.
    ROUTER = (os.environ.get("ROUTER") or "none").strip().lower()
    CADDY_ADMIN_URL = os.environ.get("CADDY_ADMIN_URL") or "http://127.0.0.1:2019"
    APPS_DOMAIN = (os.environ.get("APPS_DOMAIN") or "").strip().lower().rstrip(".") or None
    # acme: certificates from Let's Encrypt (HTTP-01: the names must resolve to the edge, port 80 reachable);
    # internal: Caddy's own CA (private clusters; clients must trust its root).
    ROUTER_TLS = (os.environ.get("ROUTER_TLS") or "acme").strip().lower()
    ACME_EMAIL = os.environ.get("ACME_EMAIL") or None
    ROUTER_HTTP_PORT = env_int("ROUTER_HTTP_PORT", 80)
    ROUTER_HTTPS_PORT = env_int("ROUTER_HTTPS_PORT", 443)
    ROUTER_BIND = os.environ.get("ROUTER_BIND") or None  # an address of the edge host; empty: all of them
    # Where Caddy writes each app's access log (the platform reads it: the same host, or a shared mount).
    ROUTER_ACCESS_LOG_DIR = os.environ.get("ROUTER_ACCESS_LOG_DIR") or None
    # After the router switched to a new release: how long the old one finishes its requests before it stops.
    ROUTER_DRAIN_SECONDS = env_int("ROUTER_DRAIN_SECONDS", 2)
    # How often a serving process checks that the router holds every route (a Caddy restarted empty).
    ROUTER_SYNC_SECONDS = env_int("ROUTER_SYNC_SECONDS", 15)
    # Proxmox snapshots and backups. A snapshot of the guest before each release (a deployment may say
    # otherwise), the newest SNAPSHOTS_KEPT of them kept; vzdump backups to BACKUP_STORAGE (shared by the nodes,
    # so that one restores anywhere), pruned with Proxmox's own options unless a deployment sets its own.
    SNAPSHOT_BEFORE_RELEASE = env_bool("SNAPSHOT_BEFORE_RELEASE", False)
    SNAPSHOTS_KEPT = env_int("SNAPSHOTS_KEPT", 3)
    BACKUP_STORAGE = os.environ.get("BACKUP_STORAGE") or "local"
    BACKUP_KEEP_LAST = env_int("BACKUP_KEEP_LAST", 3)
    BACKUP_KEEP_DAILY = env_int("BACKUP_KEEP_DAILY", 7)
    BACKUP_KEEP_WEEKLY = env_int("BACKUP_KEEP_WEEKLY", 4)
    BACKUP_TIMEOUT = env_int("BACKUP_TIMEOUT", 3600)  # one vzdump or restore task
    BACKUP_SCHEDULE_SECONDS = env_int("BACKUP_SCHEDULE_SECONDS", 60)  # how often schedules are looked at
    # Server-Sent Events log streams: how long one connection may stay open.
    LOG_STREAM_MAX_SECONDS = env_int("LOG_STREAM_MAX_SECONDS", 1800)
    # Per-user quotas (members; admins have none); an admin overrides them per user (PATCH /api/users/<id>).
    QUOTA_DEPLOYMENTS = env_int("QUOTA_DEPLOYMENTS", 10)
    QUOTA_CORES = env_int("QUOTA_CORES", 16)
    QUOTA_MEMORY = env_int("QUOTA_MEMORY", 32768)
    QUOTA_DISK = env_int("QUOTA_DISK", 500)
    # Rate limits (Flask-Limiter): per user with a token, per address without. Memory by default;
    # a redis:// URI shares the counts between API processes.
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or "memory://"
    RATELIMIT_DEFAULT = os.environ.get("RATELIMIT_DEFAULT") or "300 per minute"
    RATELIMIT_CREATE = os.environ.get("RATELIMIT_CREATE") or "20 per minute"
    RATELIMIT_TOKENS = os.environ.get("RATELIMIT_TOKENS") or "20 per minute"
    RATELIMIT_WEBHOOK = os.environ.get("RATELIMIT_WEBHOOK") or "60 per minute"
    # Logins (POST /api/auth/login), counted per address and per username apart: password guessing is slowed down.
    RATELIMIT_LOGIN = os.environ.get("RATELIMIT_LOGIN") or "5 per minute"
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_STRATEGY = "moving-window"
    # Reverse proxies in front of the API whose X-Forwarded-* headers are trusted (0: none; the peer's
    # address is the client's).
    TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
    # GitHub deliveries may be larger than API bodies (a push of many commits).
    WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 5 * 1024 * 1024)
    # Outbound notifications: time per attempt, attempts, backoff (base * 2^n, capped), CA bundle for targets.
    NOTIFY_TIMEOUT = env_int("NOTIFY_TIMEOUT", 10)
    NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 6)
    NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 10)
    NOTIFY_RETRY_MAX_SECONDS = env_int("NOTIFY_RETRY_MAX_SECONDS", 1800)  # below CELERY_VISIBILITY_TIMEOUT
    NOTIFY_CA_BUNDLE = os.environ.get("NOTIFY_CA_BUNDLE") or None
    # Production refuses PROXMOX_VERIFY_SSL=false unless this says the operator means it.
    PROXMOX_ALLOW_INSECURE = env_bool("PROXMOX_ALLOW_INSECURE", False)
    # The dashboard: its sessions (kept on the server, web_sessions) and their cookie, signed with SECRET_KEY.
    WEB_SESSION_HOURS = env_int("WEB_SESSION_HOURS", 168)
    WEB_SESSION_IDLE_HOURS = env_int("WEB_SESSION_IDLE_HOURS", 24)
    SESSION_COOKIE_NAME = "paas_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    # CSRF (Flask-WTF): checked by the dashboard's blueprint only (the API takes bearer tokens, not cookies);
    # a form's token lives as long as its session.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None
    TESTING = False
    DEBUG = False


class DevelopmentConfig(Config):
    DEBUG = env_bool("FLASK_DEBUG", False)
    VALIDATE_RESPONSES = env_bool("VALIDATE_RESPONSES", True)


class TestingConfig(Config):
    """Independent of the developer's .env: its own database and fixed limits."""

    TESTING = True
    SECRET_KEY = "testing-secret-key"
    VALIDATE_RESPONSES = True  # every answer a test gets has been checked against its schema
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    MAX_CONTENT_LENGTH = 64 * 1024
    PER_PAGE_DEFAULT = 20
    PER_PAGE_MAX = 100
    # Jobs wait until a test runs them; Proxmox only when a test provides one.
    JOBS_BACKEND = "manual"
    CELERY_BROKER_URL = None
    PROXMOX_SETTINGS = None
    JOB_WORKERS = 8
    JOB_TIME_LIMIT = 120
    JOB_LEASE_SECONDS = 60
    JOB_SWEEP_SECONDS = 0  # tests sweep by hand
    ENV_ENCRYPTION_KEY = "2fcIRJ7s1l0EA_lXnNzOlYjcJIzBxMnh9rQ-TZxoZ6w="  # tests only
    SIMULATE = False
    DEPLOY_APPS = False  # the provisioning tests stop at a running guest; the deploy tests turn it on
    HEALTH_CHECK_TIMEOUT = 30
    DEPLOY_COMMAND_TIMEOUT = 300
    # Limits are tested on their own (tests/api/test_ratelimits.py turns them on); quotas at their defaults.
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    QUOTA_DEPLOYMENTS = 10
    QUOTA_CORES = 16
    QUOTA_MEMORY = 32768
    QUOTA_DISK = 500
    NOTIFY_RETRY_BASE_SECONDS = 0.2
    NOTIFY_RETRY_MAX_SECONDS = 2
    NOTIFY_CA_BUNDLE = None
    ROUTER = "none"  # the router's tests turn it on, with a Caddy of their own
    APPS_DOMAIN = None
    ROUTER_SYNC_SECONDS = 0
    ROUTER_DRAIN_SECONDS = 0
    SNAPSHOT_BEFORE_RELEASE = False
    BACKUP_STORAGE = "backup"
    BACKUP_SCHEDULE_SECONDS = 0  # tests run schedules by hand


class ProductionConfig(Config):
    # Browsers send a Secure cookie over HTTPS only (and to http://localhost): serve the dashboard behind TLS, or
    # set SESSION_COOKIE_SECURE=false for plain HTTP on a network you trust.
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)

    @classmethod
    def validate(cls, app_config):
        """Refuse settings that are unsafe in production."""
        check_common(app_config)
        if app_config.get("SECRET_KEY") in (None, "", DEFAULT_SECRET_KEY):
            raise RuntimeError(
                "SECRET_KEY is not set: production refuses to start with the default key. "
                "Generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        if not env_bool("PROXMOX_VERIFY_SSL", True) and not app_config.get("PROXMOX_ALLOW_INSECURE"):
            raise RuntimeError(
                "PROXMOX_VERIFY_SSL is off: production refuses to talk to Proxmox without checking its "
                "certificate. Point PROXMOX_CA_BUNDLE at the cluster's CA (/etc/pve/pve-root-ca.pem), or set "
                "PROXMOX_ALLOW_INSECURE=true to accept the risk explicitly."
            )


def proxmox_settings_from_env():
    """The cluster's settings from the PROXMOX_* variables (None without PROXMOX_HOST): read here, once."""
    try:
        return ProxmoxSettings.from_env(os.environ)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def check_common(app_config):
    """Settings every configuration must get right; ConfigurationError names the one that is wrong."""
    if app_config.get("SIMULATION_GUESTS") not in ("sandboxes", "containers"):
        raise ConfigurationError("SIMULATION_GUESTS is sandboxes or containers, "
                                 f"not {app_config['SIMULATION_GUESTS']!r}")
    proxy = app_config.get("GUEST_HTTP_PROXY")
    if proxy and (not proxy.startswith(("http://", "https://")) or any(c.isspace() for c in proxy)):
        raise ConfigurationError("GUEST_HTTP_PROXY is an http:// or https:// URL, e.g. http://10.0.0.1:3128")
    check_router(app_config)


def check_router(app_config):
    """The edge router's settings, when one is configured."""
    router = app_config.get("ROUTER")
    if router not in ("caddy", "none"):
        raise ConfigurationError(f"ROUTER is caddy or none, not {router!r}")
    if router == "none":
        return
    domain = app_config.get("APPS_DOMAIN")
    try:
        check_hostname(domain or "")
    except ValueError as exc:
        raise ConfigurationError(f"ROUTER=caddy needs APPS_DOMAIN, the domain apps are named under "
                                 f"(e.g. apps.example.com): {exc}") from None
    if app_config.get("ROUTER_TLS") not in ("acme", "internal"):
        raise ConfigurationError(f"ROUTER_TLS is acme or internal, not {app_config.get('ROUTER_TLS')!r}")
    admin = app_config.get("CADDY_ADMIN_URL") or ""
    if not admin.startswith(("http://", "unix/")):
        raise ConfigurationError("CADDY_ADMIN_URL is http://HOST:PORT (loopback of the edge host) or "
                                 "unix//path/to/admin.sock")
    for name in ("ROUTER_HTTP_PORT", "ROUTER_HTTPS_PORT"):
        if not 1 <= int(app_config.get(name) or 0) <= 65535:
            raise ConfigurationError(f"{name} is a port, 1-65535")
    if app_config["ROUTER_HTTP_PORT"] == app_config["ROUTER_HTTPS_PORT"]:
        raise ConfigurationError("ROUTER_HTTP_PORT and ROUTER_HTTPS_PORT must differ")


config_by_name = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
