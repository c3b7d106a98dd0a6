"""Apps for tests: every app a test builds comes from create_test_app, so its test_client() authenticates."""
from app import create_app
from backend.proxmox.settings import ProxmoxSettings
from tests.helpers.accounts import AuthedClient

PLATFORM_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx paas@platform"


def create_test_app(config_name="testing", **config):
    """create_app(config_name, **config) whose test_client() is an AuthedClient (the suite's admin by default)."""
    app = create_app(config_name, **config)
    app.test_client_class = AuthedClient
    return app


def proxmox_settings_for(fake, **overrides):
    """ProxmoxSettings for the fake Proxmox: token login, its CA, template 9000, short timeouts."""
    values = {"host": fake.host, "port": fake.port, "user": "root@pam", "token_name": "paas",
              "token_value": "secret", "ca_bundle": fake.ca_bundle_path, "timeout": 5, "vm_template_id": 9000,
              "ssh_public_key": PLATFORM_SSH_KEY, "task_timeout": 20, "ip_timeout": 5, "storage": "local-lvm"}
    values.update(overrides)
    return ProxmoxSettings(**values)


def app_on_fake_proxmox(database_url, fake, backend="thread", settings=None, **config):
    """A test app whose jobs (in-process threads unless backend says otherwise) provision on the fake Proxmox."""
    values = {"SQLALCHEMY_DATABASE_URI": database_url, "JOBS_BACKEND": backend, "JOB_WORKERS": 4,
              "JOB_TIME_LIMIT": 60, "JOB_LEASE_SECONDS": 6,
              "PROXMOX_SETTINGS": settings or proxmox_settings_for(fake)}
    values.update(config)
    return create_test_app(**values)


def guests_of(fake):
    """VMIDs of the guests on the fake, templates left out."""
    return sorted(fake.guest_ids())
