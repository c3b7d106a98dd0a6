"""Secrets never leave the platform: not in API responses (bodies or headers), error bodies, exception
messages that reach a client, or log records of any logger at DEBUG level.

Every test plants distinctive canaries in the platform's secrets:

- the Proxmox API token value (and, for password logins, the password) in PROXMOX_SETTINGS, with the fake
  Proxmox set up to accept (or, for the failure cases, to refuse) exactly those credentials;
- the platform's SSH private key at SSH_KEY_PATH in a temporary directory: the whole text, every base64
  line of it past the generic first one, and the ed25519 seed in hex and base64;
- ENV_ENCRYPTION_KEY: a Fernet key generated for the test;
- the webhook secret and the notification signing secret, captured from the one answer that shows them;
- environment variable values set at create and with PATCH /env;
- API tokens: only the answer that created one may show it;
- people's passwords: set with manage_db.py set-password, sent to POST /api/auth/login (right, wrong, in bodies
  the schema refuses); none may appear anywhere, the command's own output included.

Then many routes run, with Proxmox answering, failing (401, 500, dropped connections, failed tasks) and down,
and every response and every log record (its message, formatted exception and stack) is searched for every
canary. Log records are captured from every logger, each set to DEBUG for the test (SQLAlchemy's statement
and row logging included), so a secret that reached the database in the clear would show up too.
"""
import base64
import dataclasses
import http.server
import json
import logging
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import paramiko
import pytest
import trustme
from click.testing import CliRunner
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from app import create_app
from backend.platform import platform_of
from backend.simulation.fake_proxmox import FakeProxmox, Node
from config import BASE_DIR
from manage_db import cli
from tests.helpers.accounts import AuthedClient, admin_token, make_user
from tests.helpers.api import FINAL_STATUSES, create_deployment, deployment_payload, sha256_signature, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, proxmox_settings_for
from tests.helpers.repos import STATIC_SITE, Repos

RUN = secrets.token_hex(5)
PVE_TOKEN = f"canary-pve-token-{RUN}-{secrets.token_hex(8)}"
PVE_PASSWORD = f"canary-pve-password-{RUN}-e92b"
ENV_CREATE = f"canary-env-value-7f3a-{RUN}"
ENV_CREATE_2 = f"canary-env-second-{RUN}"
ENV_VM = f"canary-env-vm-{RUN}"
ENV_PATCH = f"canary-env-patched-{RUN}"
ENV_SIM = f"canary-env-sim-{RUN}"
ENV_SIM_PATCH = f"canary-env-sim-patched-{RUN}"
WAIT = 30.0  # seconds any one deployment may take to settle


# -- capturing everything the platform says ------------------------------------------------------------


def _needles(value, *, hidden_from=0):
    """The strings whose presence means the secret leaked: itself, URL-quoted, and for long secrets
    its first and last 16 characters (a truncated repr still gives those away)."""
    value = value[hidden_from:] if hidden_from else value
    found = {value, quote(value, safe="")}
    if len(value) >= 32:
        found |= {value[:16], value[-16:]}
    return found


class Leaks:
    """Every response (status, headers, body) and log record of a test, searched for every canary."""

    def __init__(self, caplog):
        self.caplog = caplog
        self.responses = []  # (label, text, id of the response object)
        self.canaries = {}  # name -> set of needles
        self.allowed = {}  # name -> ids of the responses that may show it
        self.extra = []  # (label, text) from elsewhere (what a notification target or the fake received)

    def plant(self, name, value, *, hidden_from=0):
        assert value and len(value) >= 16, f"canary {name} is too short to be distinctive"
        self.canaries.setdefault(name, set()).update(_needles(value, hidden_from=hidden_from))

    def plant_needles(self, name, needles):
        for needle in needles:
            assert len(needle) >= 16, f"needle of {name} is too short to be distinctive"
        self.canaries.setdefault(name, set()).update(needles)

    def allow(self, name, response):
        """The one response that may show this canary (the answer that created the secret)."""
        self.allowed.setdefault(name, set()).add(id(response))

    def saw(self, label, response):
        body = response.get_data().decode("utf-8", "replace")
        headers = "".join(f"{key}: {value}\n" for key, value in response.headers.items())
        self.responses.append((f"{label} -> {response.status}", f"{response.status}\n{headers}\n{body}", id(response)))

    def add(self, label, text):
        self.extra.append((label, text))

    def log_texts(self):
        formatter = logging.Formatter()
        for record in self.caplog.records:
            parts = [record.getMessage(), str(record.msg)]
            if record.exc_info:
                parts.append(formatter.formatException(record.exc_info))
            if record.exc_text:
                parts.append(record.exc_text)
            if record.stack_info:
                parts.append(formatter.formatStack(record.stack_info))
            yield f"log record {record.name} {record.levelname} {str(record.msg)[:60]!r}", "\n".join(parts)

    def texts(self):
        for label, text, ident in self.responses:
            yield label, text, ident
        for label, text in self.log_texts():
            yield label, text, None
        for label, text in self.extra:
            yield label, text, None

    def findings(self, include_logs=True):
        found = []
        for label, text, ident in self.texts():
            if not include_logs and label.startswith("log record"):
                continue
            for name, needles in self.canaries.items():
                if ident is not None and ident in self.allowed.get(name, ()):
                    continue
                for needle in needles:
                    at = text.find(needle)
                    if at >= 0:
                        found.append(f"{name} in {label}: ...{text[max(0, at - 80):at + len(needle) + 40]!r}...")
                        break
        return found

    def assert_clean(self, include_logs=True):
        found = self.findings(include_logs)
        shown = {}
        for finding in found:  # a few of each secret's leaks
            shown.setdefault(finding.split(" in ")[0], []).append(finding)
        assert not found, f"{len(found)} leak(s) of {', '.join(shown)}:\n" + "\n".join(
            line for lines in shown.values() for line in lines[:3])

    def assert_shown_once(self, name, value):
        """The secret is in the response that was allowed to show it (so the canary was the real secret)."""
        shown = [label for label, text, ident in self.responses
                 if ident in self.allowed.get(name, ()) and value in text]
        assert len(shown) == 1, f"{name} shown in {shown}"

    def log_count(self):
        return len(self.caplog.records)


@pytest.fixture
def leaks(caplog):
    """Leaks of this test, with every logger at DEBUG (and none disabled) while it runs."""
    caplog.set_level(logging.DEBUG)
    saved = {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved[name] = (logger.level, logger.disabled)
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            if not logger.propagate:
                logger.addHandler(caplog.handler)
    yield Leaks(caplog)
    for name, (level, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.disabled = disabled
        if caplog.handler in logger.handlers:
            logger.removeHandler(caplog.handler)


class RecordingClient(AuthedClient):
    """The suite's test client, handing every response to a Leaks."""

    leaks = None

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if self.leaks is not None:
            path = args[0] if args and isinstance(args[0], str) else "?"
            self.leaks.saw(f"{kwargs.get('method', 'GET')} {path}", response)
        return response


def recording_client(app, leaks):
    client = RecordingClient(app, app.response_class, use_cookies=True)
    client.leaks = leaks
    return client


# -- the secrets --------------------------------------------------------------------------------------


@pytest.fixture
def fernet_key():
    """A fresh ENV_ENCRYPTION_KEY for this test."""
    return Fernet.generate_key().decode()


def plant_ssh_key(leaks, path):
    """Canaries from the private key at path: the text, its base64 lines past the first (which is the same
    for every ed25519 key and holds only the format and the public key), and the raw seed."""
    text = Path(path).read_text()
    assert text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    seed = serialization.load_ssh_private_key(text.encode(), password=None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    needles = {text.strip(), seed.hex(), base64.b64encode(seed).decode()[:40]}
    needles |= {line for line in lines[1:] if len(line) >= 40}
    leaks.plant_needles("the SSH private key", needles)
    return text


def plant_platform_secrets(leaks, fernet_key, ssh_key_path):
    leaks.plant("the Proxmox token", PVE_TOKEN)
    leaks.plant("the Proxmox password", PVE_PASSWORD)
    leaks.plant("ENV_ENCRYPTION_KEY", fernet_key)
    for name, value in (("env at create", ENV_CREATE), ("env at create (2)", ENV_CREATE_2), ("env of the VM", ENV_VM),
                        ("env from PATCH", ENV_PATCH), ("env (simulation)", ENV_SIM),
                        ("env from PATCH (simulation)", ENV_SIM_PATCH)):
        leaks.plant(name, value)
    if ssh_key_path is not None:
        plant_ssh_key(leaks, ssh_key_path)


def plant_suite_tokens(leaks, app):
    """The suite admin's token never passed through a response: it may appear in none."""
    leaks.plant("the suite admin's API token", admin_token(app), hidden_from=12)


@contextmanager
def canary_fake(tokens=None, users=None):
    """A fake Proxmox that accepts the canary token (and the canary password) unless told otherwise."""
    server = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=0.02,
                         tokens=tokens if tokens is not None else {"root@pam!paas": PVE_TOKEN},
                         users=users if users is not None else {"root@pam": PVE_PASSWORD})
    with server:
        server.add_template(9000, node="pve1")
        yield server


def canary_settings(fake, **overrides):
    """The fake's settings with the canary token, no SSH public key and one retry."""
    return proxmox_settings_for(fake, **{"token_value": PVE_TOKEN, "ssh_public_key": None, "retries": 1, **overrides})


def secret_app(database_url, fake, tmp_path, fernet_key, *, settings=None, **config):
    """The app on the fake Proxmox with thread jobs, the canary secrets and every log at DEBUG.

    The fake's CA certificate is copied: stopping the fake (Proxmox down) removes its own copy.
    """
    settings = settings or canary_settings(fake)
    if settings.ca_bundle == fake.ca_bundle_path:
        ca_bundle = tmp_path / "pve-ca.pem"
        ca_bundle.write_bytes(Path(fake.ca_bundle_path).read_bytes())
        settings = dataclasses.replace(settings, ca_bundle=str(ca_bundle))
    values = {"LOG_LEVEL": "DEBUG", "ENV_ENCRYPTION_KEY": fernet_key,
              "SSH_KEY_PATH": str(tmp_path / "ssh" / "id_ed25519"), "LOG_STREAM_MAX_SECONDS": 1}
    values.update(config)
    return app_on_fake_proxmox(database_url, fake, settings=settings, **values)


def stop_jobs(app):
    jobs = platform_of(app).jobs
    idle = jobs.wait_idle(WAIT)
    jobs.shutdown()
    return idle


def fake_received(leaks, fake):
    """What the fake Proxmox was sent (parameters only: its credentials arrive in headers) is searched too:
    no secret but the Proxmox credentials has any business there."""
    text = "\n".join(f"{r.method} {r.path} {json.dumps(r.params, sort_keys=True)}" for r in fake.requests)
    leaks.add("parameters sent to Proxmox", text)


# -- helpers for the routes ----------------------------------------------------------------------------


def wait_settled(app, client, ident, statuses=FINAL_STATUSES):
    """The deployment reached one of statuses and no job is left running."""
    deployment = wait_for_status(client, ident, statuses, timeout=WAIT)
    assert platform_of(app).jobs.wait_idle(WAIT), (
        deployment, client.get(f"/api/deployments/{ident}/deliveries").get_json(),
        client.get(f"/api/deployments/{ident}/events").get_json()["events"][-5:])
    return client.get(f"/api/deployments/{ident}").get_json()["deployment"]


SUB_RESOURCES = ("events", "history", "history?tasks=false", "logs", "logs/text", "env", "releases", "webhook",
                 "notifications", "deliveries")


def read_everything(client, ident):
    """GET the deployment and every sub-resource; all answer 200 (the runtime log may say why it cannot)."""
    got = client.get(f"/api/deployments/{ident}")
    assert got.status_code == 200
    for sub in SUB_RESOURCES:
        response = client.get(f"/api/deployments/{ident}/{sub}")
        assert response.status_code == 200, (sub, response.get_data(as_text=True))
    assert client.get(f"/api/deployments/{ident}/logs/runtime").status_code in (200, 409, 502)
    releases = client.get(f"/api/deployments/{ident}/releases").get_json()["releases"]
    for release in releases:
        assert client.get(f"/api/deployments/{ident}/releases/{release['version']}").status_code == 200
    if releases:
        stream = client.get(f"/api/deployments/{ident}/logs/stream")
        assert stream.status_code == 200 and stream.get_data(as_text=True).startswith("retry:")
    return got.get_json()["deployment"]


def read_the_lists(client, proxmox_up=True):
    for path in ("/api/deployments", "/api/deployments?status=running", "/api/deployments?status=failed",
                 "/api/stats", "/api/audit", "/api/audit?action=deployment.", "/api/audit?action=token.",
                 "/api/me", "/api/tokens", "/api/users", "/api/frameworks"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
    nodes = client.get("/api/nodes")
    assert nodes.status_code == (200 if proxmox_up else 503), nodes.get_data(as_text=True)
    assert client.get("/health").status_code == 200


def bad_requests(client, ident):
    """Invalid bodies, unknown routes and wrong methods, several carrying a canary: none may echo it."""
    cases = [
        # an invalid field next to a secret value
        (client.post("/api/deployments", json=deployment_payload(name="Not A Name", env={"API_KEY": ENV_CREATE})), 422),
        # a secret value under a name that is not a variable name, and one with a line break
        (client.post("/api/deployments", json=deployment_payload(name="bad-env-one",
                                                                 env={"not a name": ENV_CREATE})), 422),
        (client.post("/api/deployments", json=deployment_payload(name="bad-env-two",
                                                                 env={"API_KEY": ENV_CREATE + "\nX=1"})), 422),
        (client.post("/api/deployments", json=deployment_payload(name="bad-env-three",
                                                                 env={"API_KEY": 12345678901234567})), 422),
        # an unknown field holding a secret
        (client.post("/api/deployments", json=deployment_payload(name="bad-field", secret_thing=ENV_CREATE)), 422),
        (client.patch(f"/api/deployments/{ident}/env", json={"PORT": ENV_PATCH}), 422),
        (client.patch(f"/api/deployments/{ident}/env", json={"API_KEY": ENV_PATCH + "\r"}), 422),
        (client.patch(f"/api/deployments/{ident}/env", json={"API_KEY": ["not", ENV_PATCH]}), 422),
        (client.patch(f"/api/deployments/{ident}/env", json=[ENV_PATCH]), 422),
        (client.patch(f"/api/deployments/{ident}", json={"tags": [ENV_PATCH.upper() + " !"]}), 422),
        (client.put(f"/api/deployments/{ident}/notifications", json={"url": f"http://example.com/{ENV_PATCH}"}), 422),
        # malformed JSON, duplicate keys, not JSON at all, too large
        (client.post("/api/deployments", data='{"env": {"API_KEY": "' + ENV_CREATE + '"',
                     content_type="application/json"), 400),
        (client.post("/api/deployments", data='{"env": {"A": "' + ENV_CREATE + '", "A": "x"}}',
                     content_type="application/json"), 400),
        (client.patch(f"/api/deployments/{ident}/env", data=f"API_KEY={ENV_PATCH}", content_type="text/plain"), 415),
        (client.post("/api/deployments", json=deployment_payload(env={"BIG": ENV_CREATE * 4000})), 413),
        # unknown routes, actions and methods
        (client.get("/api/nope"), 404),
        (client.get(f"/api/deployments/{ident}/nope"), 404),
        (client.get(f"/api/deployments/{uuid.uuid4()}"), 404),
        (client.post(f"/api/deployments/{ident}/actions/explode"), 404),
        (client.get(f"/api/deployments/{ident}/releases/99999"), 404),
        (client.get(f"/api/deployments/{ident}/releases/\u00b2"), 404),  # a digit to isdigit(), not to int()
        (client.post(f"/api/deployments/{ident}/releases/\u0661/rollback"), 404),  # an Arabic-Indic one
        (client.delete("/api/stats"), 405),
        (client.get("/api/deployments", token=None), 401),
        (client.get("/api/deployments", token="paas_" + "x" * 43), 401),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.status_code, response.get_data(as_text=True))
        if response.is_json:
            body = response.get_json()
            assert body["success"] is False and body["error"]["code"]


# -- an HTTPS notification target ------------------------------------------------------------------------


class Receiver:
    """An HTTPS server on 127.0.0.1 that records every notification it is sent and answers 204."""

    def __init__(self, directory):
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_path = str(Path(directory) / "notify-ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/paas-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver(tmp_path):
    server = Receiver(tmp_path)
    yield server
    server.close()


def wait_deliveries(client, ident, timeout=WAIT):
    """The deployment's notifications once none is pending."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = client.get(f"/api/deployments/{ident}/deliveries").get_json()["deliveries"]
        if deliveries and all(d["state"] != "pending" for d in deliveries):
            return deliveries
        if time.monotonic() > deadline:
            raise AssertionError(f"notifications still pending after {timeout} s: {deliveries}")
        time.sleep(0.1)


def github_delivery(client, ident, secret, event, payload):
    body = json.dumps(payload).encode()
    return client.post(f"/api/webhooks/github/{ident}", data=body, token=None,
                       headers={"Content-Type": "application/json", "X-GitHub-Event": event,
                                "X-GitHub-Delivery": str(uuid.uuid4()),
                                "X-Hub-Signature-256": sha256_signature(secret, body)})


# -- Proxmox answering: every route -----------------------------------------------------------------------


def test_no_secret_leaks_while_proxmox_answers(database_url, tmp_path, leaks, fernet_key, receiver):
    from backend.deploy.keys import load_or_create_keypair

    key_path = tmp_path / "ssh" / "id_ed25519"
    load_or_create_keypair(key_path)  # planted; this app does not deploy (the SSH test below uses it)
    plant_platform_secrets(leaks, fernet_key, key_path)
    with canary_fake() as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key, NOTIFY_CA_BUNDLE=receiver.ca_path)
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            read_the_lists(client)
            lxc = create_deployment(client, name="shop-lxc", env={"API_KEY": ENV_CREATE, "DB_PASSWORD": ENV_CREATE_2})
            vm = create_deployment(client, name="shop-vm", deployment_type="vm", github_url="https://github.com/acme/shop-vm",
                                   env={"API_KEY": ENV_VM})
            assert lxc["env"] == {"API_KEY": "********", "DB_PASSWORD": "********"}
            assert wait_settled(app, client, lxc["id"])["status"] == "running"
            assert wait_settled(app, client, vm["id"])["status"] == "running"

            # Outbound notifications: the secret is in the PUT's answer and nowhere else.
            put = client.put(f"/api/deployments/{lxc['id']}/notifications", json={"url": receiver.url})
            assert put.status_code == 200
            notify_secret = put.get_json()["secret"]
            leaks.plant("the notification secret", notify_secret)
            leaks.allow("the notification secret", put)
            assert client.get(f"/api/deployments/{lxc['id']}/notifications").get_json()["secret"] is None

            # Push-to-deploy: the secret is in the POST's answer and nowhere else.
            enabled = client.post(f"/api/deployments/{lxc['id']}/webhook")
            assert enabled.status_code == 201
            webhook_secret = enabled.get_json()["secret"]
            leaks.plant("the webhook secret", webhook_secret)
            leaks.allow("the webhook secret", enabled)
            assert client.get(f"/api/deployments/{lxc['id']}/webhook").get_json()["secret"] is None
            assert github_delivery(client, lxc["id"], webhook_secret, "ping", {"zen": "hi"}).status_code == 200
            push = {"ref": "refs/heads/main", "after": "a" * 40,
                    "repository": {"full_name": "acme/shop-api", "html_url": "https://github.com/acme/shop-api"}}
            assert github_delivery(client, lxc["id"], webhook_secret, "push", push).status_code == 202
            assert github_delivery(client, lxc["id"], "not-the-secret", "push", push).status_code == 401
            assert wait_settled(app, client, lxc["id"])["status"] == "running"

            # Environment changes (this app does not deploy, so they wait for the next release).
            patched = client.patch(f"/api/deployments/{lxc['id']}/env",
                                   json={"API_KEY": ENV_PATCH, "DB_PASSWORD": None})
            assert patched.status_code == 200 and patched.get_json()["env"] == {"API_KEY": "********"}
            assert client.post(f"/api/deployments/{lxc['id']}/actions/redeploy", json={}).status_code == 202
            assert wait_settled(app, client, lxc["id"])["status"] == "running"
            assert client.post(f"/api/deployments/{lxc['id']}/releases/1/rollback").status_code == 409

            # Power actions and a resize on the VM.
            assert client.post(f"/api/deployments/{vm['id']}/actions/stop").status_code == 202
            assert wait_settled(app, client, vm["id"], {"stopped"})["status"] == "stopped"
            assert client.patch(f"/api/deployments/{vm['id']}",
                                json={"resources": {"cores": 2, "memory": 2048, "disk": 20}}).status_code == 200
            assert platform_of(app).jobs.wait_idle(WAIT)
            assert client.patch(f"/api/deployments/{vm['id']}/env", json={"API_KEY": ENV_PATCH}).status_code == 200
            assert client.post(f"/api/deployments/{vm['id']}/actions/start").status_code == 202
            assert wait_settled(app, client, vm["id"], {"running"})["status"] == "running"
            assert client.post(f"/api/deployments/{vm['id']}/actions/restart").status_code == 202
            assert wait_settled(app, client, vm["id"], {"running"})["status"] == "running"

            for ident in (lxc["id"], vm["id"]):
                read_everything(client, ident)
            read_the_lists(client)
            bad_requests(client, lxc["id"])

            for ident in (lxc["id"], vm["id"]):
                assert client.delete(f"/api/deployments/{ident}").status_code == 202
                assert wait_settled(app, client, ident)["status"] == "deleted"
                read_everything(client, ident)
            deliveries = wait_deliveries(client, lxc["id"])
            assert {d["state"] for d in deliveries} == {"delivered"} and len(deliveries) >= 6
        finally:
            assert stop_jobs(app)
        fake_received(leaks, fake)
        fake.assert_no_violations()
    # The notifications went out signed with the secret shown once, and carry no secret.
    assert len(receiver.received) == len(deliveries)
    for headers, body in receiver.received:
        assert headers["X-Paas-Signature-256"] == sha256_signature(notify_secret, body)
        leaks.add("a notification as received", json.dumps(headers) + "\n" + body.decode())
    leaks.assert_shown_once("the notification secret", notify_secret)
    leaks.assert_shown_once("the webhook secret", webhook_secret)
    # The capture works: requests, jobs (in their own threads), Proxmox calls and SQL were all logged.
    records = leaks.caplog.records
    assert {"proxmoxer.core", "urllib3.connectionpool", "sqlalchemy.engine.Engine"} <= {r.name for r in records}
    assert any(r.threadName.startswith("paas-job") and r.name == "proxmoxer.core" for r in records)
    leaks.assert_clean()


# -- Proxmox failing ------------------------------------------------------------------------------------


FAILURES = [
    # (name, type, what goes wrong, words expected in the error)
    ("auth-401", "lxc", lambda fake: fake.fail_next("GET", r"^/nodes$", status=401, reason="invalid token value!"),
     "invalid token value"),
    ("clone-500", "vm", lambda fake: fake.fail_next("POST", r"/clone$", status=500, reason="Internal Server Error",
                                                     times=5), "Internal Server Error"),
    ("create-500-permanent", "lxc", lambda fake: fake.fail_next("POST", r"/lxc$", status=500,
                                                                 reason="permission denied - invalid storage"),
     "permission denied"),
    ("create-task", "lxc", lambda fake: fake.fail_task("vzcreate", "unable to create CT - disk full"), "disk full"),
    ("clone-task", "vm", lambda fake: fake.fail_task("qmclone", "clone failed: storage error"), "storage error"),
    ("start-task", "vm", lambda fake: fake.fail_task("qmstart", "start failed: QEMU exited with code 1"), "QEMU"),
    ("dropped", "lxc", lambda fake: fake.drop_next("POST", r"/lxc$", times=3), "cannot reach Proxmox"),
]


def test_no_secret_leaks_when_proxmox_fails(database_url, tmp_path, leaks, fernet_key, receiver):
    plant_platform_secrets(leaks, fernet_key, None)
    with canary_fake() as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key, NOTIFY_CA_BUNDLE=receiver.ca_path)
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            for name, kind, inject, words in FAILURES:
                inject(fake)
                deployment = create_deployment(client, name=f"fail-{name}", deployment_type=kind,
                                               github_url=f"https://github.com/acme/fail-{name}",
                                               env={"API_KEY": ENV_CREATE})
                final = wait_settled(app, client, deployment["id"])
                fake.reset_faults()
                assert final["status"] == "failed", (name, final)
                assert words in final["error_message"], (name, final["error_message"])
                read_everything(client, deployment["id"])

            # A running deployment whose actions and delete go wrong.
            running = create_deployment(client, name="flaky", env={"API_KEY": ENV_CREATE, "DB_PASSWORD": ENV_CREATE_2})
            assert wait_settled(app, client, running["id"])["status"] == "running"
            fake.fail_task("vzshutdown", "command 'lxc-stop --timeout 60' failed: exit code 1")
            fake.fail_task("vzstop", "command 'lxc-stop' failed: exit code 1")
            assert client.post(f"/api/deployments/{running['id']}/actions/stop").status_code == 202
            assert platform_of(app).jobs.wait_idle(WAIT)
            after = client.get(f"/api/deployments/{running['id']}").get_json()["deployment"]
            assert after["status"] == "running" and "lxc-stop" in after["error_message"]
            fake.fail_next(None, r"/status/current$", status=401, reason="permission denied - invalid PVE ticket")
            live = client.get(f"/api/deployments/{running['id']}").get_json()["deployment"]["live"]
            assert live == {"error": "Proxmox refused the platform's credentials"}
            read_everything(client, running["id"])

            # A delete that Proxmox refuses: the status change (to failed, with Proxmox's words) is notified.
            doomed = create_deployment(client, name="doomed", env={"API_KEY": ENV_VM})
            assert wait_settled(app, client, doomed["id"])["status"] == "running"
            notify = client.put(f"/api/deployments/{doomed['id']}/notifications", json={"url": receiver.url})
            notify_secret = notify.get_json()["secret"]
            leaks.plant("the notification secret", notify_secret)
            leaks.allow("the notification secret", notify)
            vmid = client.get(f"/api/deployments/{doomed['id']}").get_json()["deployment"]["vm_id"]
            fake.fail_next("DELETE", rf"/lxc/{vmid}$", status=500, reason="can't lock file '/var/lock/qemu-server/"
                           f"lock-{vmid}.conf' - got timeout", times=10)
            assert client.delete(f"/api/deployments/{doomed['id']}").status_code == 202
            assert platform_of(app).jobs.wait_idle(WAIT)
            fake.reset_faults()
            failed = read_everything(client, doomed["id"])
            assert failed["status"] == "failed" and "got timeout" in failed["error_message"]
            assert {d["state"] for d in wait_deliveries(client, doomed["id"])} == {"delivered"}
            assert any(json.loads(body)["deployment"]["status"] == "failed" for _, body in receiver.received)

            # Proxmox down: reads answer without it, the nodes say 503, an action fails with a reason.
            fake.stop()
            down = client.get(f"/api/deployments/{running['id']}")
            assert down.status_code == 200, down.get_data(as_text=True)
            assert down.get_json()["deployment"]["live"] == {"error": "Proxmox did not answer"}
            assert client.get("/api/nodes").get_json()["error"]["code"] == "proxmox_unavailable"
            read_the_lists(client, proxmox_up=False)
            read_everything(client, running["id"])
            assert client.post(f"/api/deployments/{running['id']}/actions/restart").status_code == 202
            assert platform_of(app).jobs.wait_idle(WAIT)
            after = client.get(f"/api/deployments/{running['id']}").get_json()["deployment"]
            assert "cannot reach Proxmox" in after["error_message"]
            read_everything(client, running["id"])
            bad_requests(client, running["id"])
        finally:
            assert stop_jobs(app)
        fake_received(leaks, fake)
    for headers, body in receiver.received:
        assert headers["X-Paas-Signature-256"] == sha256_signature(notify_secret, body)
        leaks.add("a notification as received", json.dumps(headers) + "\n" + body.decode())
    leaks.assert_shown_once("the notification secret", notify_secret)
    assert leaks.log_count() > 100
    leaks.assert_clean()


# -- Proxmox credentials that do not work -----------------------------------------------------------------


CREDENTIALS = {
    # name: (what the fake accepts, what the platform sends, the status the first deployment reaches,
    #        words of its error)
    "token refused": ({"tokens": {"root@pam!paas": "another-token-value"}}, {}, "failed", "invalid token value"),
    # http.client refuses such a header with a ValueError quoting it, token and all
    "token with a line break": ({}, {"token_value": PVE_TOKEN + "\n"}, "failed", "could not be made (ValueError)"),
    "token with a carriage return": ({}, {"token_value": PVE_TOKEN[:22] + "\r" + PVE_TOKEN[22:]}, "failed",
                                     "could not be made (ValueError)"),
    "CA bundle missing": ({}, {"ca_bundle": "/nonexistent/pve-root-ca.pem"}, "failed", "could not be made (OSError)"),
    "password accepted": ({}, {"token_name": None, "token_value": None, "password": PVE_PASSWORD}, "running", None),
    "password refused": ({"users": {"root@pam": "another-password"}},
                         {"token_name": None, "token_value": None, "password": PVE_PASSWORD}, "failed",
                         "Proxmox refused the credentials of root@pam"),
}


@pytest.mark.parametrize("case", list(CREDENTIALS))
def test_proxmox_credentials_never_leak(case, database_url, tmp_path, leaks, fernet_key):
    fake_side, platform_side, expected, words = CREDENTIALS[case]
    plant_platform_secrets(leaks, fernet_key, None)
    if "\r" in (platform_side.get("token_value") or ""):
        leaks.plant("the token's halves", PVE_TOKEN[:22])
        leaks.plant("the token's halves", PVE_TOKEN[22:])
    with canary_fake(**fake_side) as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key, settings=canary_settings(fake, **platform_side))
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            deployment = create_deployment(client, name="creds", env={"API_KEY": ENV_CREATE})
            final = wait_settled(app, client, deployment["id"])
            assert final["status"] == expected, final
            if expected == "failed":
                assert final["error_message"].startswith("placement failed: ") and words in final["error_message"]
                assert client.get("/api/nodes").status_code == 503
                # The live status of a guest on record fails alike, as a note in the answer.
                from backend.extensions import db
                from backend.models import Deployment

                with app.app_context():
                    row = db.session.get(Deployment, uuid.UUID(deployment["id"]))
                    row.vm_id, row.node = 4242, "pve1"
                    db.session.commit()
                    db.session.remove()
                live = client.get(f"/api/deployments/{deployment['id']}").get_json()["deployment"]["live"]
                assert set(live) == {"error"}
            read_everything(client, deployment["id"])
            read_the_lists(client, proxmox_up=expected == "running")
            assert client.delete(f"/api/deployments/{deployment['id']}").status_code in (200, 202)
            assert platform_of(app).jobs.wait_idle(WAIT)
            read_everything(client, deployment["id"])
        finally:
            assert stop_jobs(app)
    assert leaks.log_count() > 50
    leaks.assert_clean()


# -- the platform's SSH key at work --------------------------------------------------------------------------


class _GuestServer(paramiko.ServerInterface):
    def __init__(self, guests):
        self.guests = guests

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        accepted = self.guests.accept_key and key.get_base64() == self.guests.allowed
        self.guests.logins.append((username, key.get_base64() == self.guests.allowed))
        return paramiko.AUTH_SUCCESSFUL if accepted else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.guests.commands.append(command.decode("utf-8", "replace"))
        threading.Thread(target=self.guests.answer, args=(channel,), daemon=True).start()
        return True


class SSHGuests:
    """An SSH server on loopback addresses standing in for the guests: it lets in the platform's public key
    (while accept_key holds) and answers every command with exit status 100."""

    def __init__(self, addresses, public_line):
        self.allowed = public_line.split()[1]
        self.accept_key = True
        self.host_key = paramiko.ECDSAKey.generate()
        self.logins, self.commands, self.transports = [], [], []
        self.stopping = threading.Event()
        self.listeners = []
        port = 0
        for address in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            port = sock.getsockname()[1]
            sock.listen(8)
            sock.settimeout(0.1)
            self.listeners.append(sock)
        self.port = port
        self.threads = [threading.Thread(target=self._serve, args=(sock,), daemon=True) for sock in self.listeners]
        for thread in self.threads:
            thread.start()

    def _serve(self, sock):
        while not self.stopping.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_GuestServer(self))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    @staticmethod
    def answer(channel):
        time.sleep(0.2)  # after the exec request's answer has gone out
        try:
            channel.sendall(b"E: this test guest runs nothing\n")
            channel.send_exit_status(100)
        finally:
            channel.close()

    def close(self):
        self.stopping.set()
        for sock in self.listeners:
            sock.close()
        for thread in self.threads:
            thread.join(5)
        for transport in self.transports:
            transport.close()


@pytest.mark.slow
def test_the_platform_ssh_key_never_leaks_from_a_deploy(database_url, tmp_path, leaks, fernet_key, monkeypatch):
    from backend.deploy import deployer

    monkeypatch.setattr(deployer, "REACHABLE_SECONDS", 1)  # a guest that refuses the key fails at once
    key_path = tmp_path / "ssh" / "id_ed25519"
    with canary_fake() as fake:
        settings = canary_settings(fake, ip_pool="127.0.0.10-127.0.0.11/8", loopback_guests=True)
        app = secret_app(database_url, fake, tmp_path, fernet_key, settings=settings, DEPLOY_APPS=True,
                         SSH_CONNECT_TIMEOUT=5)
        # The platform made its key pair on start: private, and the public half goes into the guests.
        assert key_path.stat().st_mode & 0o777 == 0o600
        public = (tmp_path / "ssh" / "id_ed25519.pub").read_text().strip()
        assert platform_of(app).proxmox_settings.ssh_public_key == public
        plant_platform_secrets(leaks, fernet_key, key_path)
        plant_suite_tokens(leaks, app)
        guests = SSHGuests(["127.0.0.10", "127.0.0.11"], public)
        platform_of(app).transports.port = guests.port  # the guests listen once the key is known
        client = recording_client(app, leaks)
        try:
            lxc = create_deployment(client, name="ssh-lxc", env={"API_KEY": ENV_CREATE})
            vm = create_deployment(client, name="ssh-vm", deployment_type="vm", github_url="https://github.com/acme/ssh-vm",
                                   env={"API_KEY": ENV_VM})
            for ident in (lxc["id"], vm["id"]):
                failed = wait_settled(app, client, ident)
                assert failed["status"] == "failed"
                assert "apt-get update exited with status 100" in failed["error_message"], failed["error_message"]
                assert "this test guest runs nothing" in client.get(f"/api/deployments/{ident}/logs/text").get_data(
                    as_text=True)
                read_everything(client, ident)
            # Both guests let the platform in with its key: root on the container, the cloud-init user on the VM.
            assert {login for login in guests.logins if login[1]} == {("root", True), ("paas", True)}
            assert all(ok for _, ok in guests.logins)
            assert any(cmd.endswith(" apt-get -q -o DPkg::Lock::Timeout=300 update") for cmd in guests.commands)

            # A guest that refuses the key: the failure names the login, not the key.
            guests.accept_key = False
            refused = create_deployment(client, name="ssh-refused", env={"API_KEY": ENV_CREATE_2})
            final = wait_settled(app, client, refused["id"])
            assert final["status"] == "failed" and "refused the platform's SSH key" in final["error_message"]
            read_everything(client, refused["id"])
            read_the_lists(client)
        finally:
            assert stop_jobs(app)
            guests.close()
        # The public key went to Proxmox for the guests; nothing secret did.
        sent = [r.params for r in fake.requests if r.method == "POST" and r.path.endswith(("/lxc", "/config"))]
        assert any(public in p.get("ssh-public-keys", "") for p in sent)
        assert any(quote(public, safe="") in p.get("sshkeys", "") for p in sent)
        fake_received(leaks, fake)
    leaks.add("commands the guests were sent", "\n".join(guests.commands))
    names = {record.name for record in leaks.caplog.records}
    assert {"paramiko.transport", "backend.services.teardown"} <= names
    leaks.assert_clean()


# -- a real (simulated) deploy: values a build prints are masked ------------------------------------------------


@pytest.mark.slow
def test_env_values_an_app_prints_are_masked(database_url, tmp_path, leaks, fernet_key):
    from backend.deploy.local import LocalTransport
    from backend.simulation.runtime import settings_for
    from tests.conftest import TEST_ADDRESS_POOL

    repos = Repos(tmp_path / "github")
    repos.make("site", STATIC_SITE)
    plant_platform_secrets(leaks, fernet_key, None)
    with canary_fake() as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key,
                         settings=settings_for(fake, token=PVE_TOKEN, timeout=5, task_timeout=20, ip_timeout=5,
                                               ip_pool=TEST_ADDRESS_POOL),
                         SIMULATE=True, DEPLOY_APPS=True, SIMULATION_DIR=str(tmp_path / "simulation"),
                         GIT_URL_REWRITES={f"file://{repos.base}/": "https://github.com/"},
                         GIT_ALLOW_PROTOCOL="https:file", JOB_TIME_LIMIT=120, HEALTH_CHECK_TIMEOUT=20,
                         DEPLOY_COMMAND_TIMEOUT=60)
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            site = create_deployment(client, name="site", framework="static", github_url=Repos.url("site"),
                                     build_command="printenv APP_SECRET",
                                     start_command="sh -c 'echo booting with $APP_SECRET; exec python3 -m http.server "
                                                   "$PORT --bind $HOST --directory public'",
                                     env={"APP_SECRET": ENV_SIM, "OTHER": ENV_CREATE})
            ident = site["id"]
            assert wait_settled(app, client, ident)["status"] == "running"

            def build_log(version):
                return client.get(f"/api/deployments/{ident}/logs/text?release={version}").get_data(as_text=True)

            # The build printed the value: the log holds the mask in its place.
            assert "==> build command\n[1] ********\n" in build_log(1)

            # A new value: a release of its own, printed and masked too.
            patched = client.patch(f"/api/deployments/{ident}/env", json={"APP_SECRET": ENV_SIM_PATCH})
            assert patched.status_code == 202
            running = wait_settled(app, client, ident)
            assert running["status"] == "running" and running["live_release"] == 2
            assert "==> build command\n[2] ********\n" in build_log(2)

            # The app's own output, read back from its guest.
            runtime = client.get(f"/api/deployments/{ident}/logs/runtime")
            assert runtime.status_code == 200 and "booting with ********" in runtime.get_data(as_text=True)

            # A failing build that echoes the value: the error and its tail of output are masked.
            assert client.patch(f"/api/deployments/{ident}",
                                json={"build_command": "sh -c 'echo leaking $APP_SECRET; exit 3'"}).status_code == 200
            assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
            settled = wait_settled(app, client, ident)
            assert settled["status"] == "running" and settled["live_release"] == 2  # release 2 still serves
            release = client.get(f"/api/deployments/{ident}/releases/3").get_json()["release"]
            assert release["status"] == "failed"
            assert "exited with status 3; last lines:\nleaking ********" in release["error_message"]

            read_everything(client, ident)
            read_the_lists(client)
            assert client.delete(f"/api/deployments/{ident}").status_code == 202
            assert wait_settled(app, client, ident)["status"] == "deleted"
        finally:
            assert stop_jobs(app)
            for sandbox in (tmp_path / "simulation" / "guests").glob("*"):
                sandbox_guest = LocalTransport(sandbox)
                for service in sandbox_guest.services():
                    sandbox_guest.stop_service(service)
        fake_received(leaks, fake)
    leaks.assert_clean()


# -- unexpected errors ------------------------------------------------------------------------------------------


def test_an_unexpected_error_answers_500_without_its_message(database_url, tmp_path, leaks, fernet_key, monkeypatch):
    """A bug whose exception message holds secrets: the client gets the plain 500 shape.

    The log keeps the traceback, message included (that is how the bug gets found): the platform logs
    unexpected exceptions verbatim, so what must hold is that no secret reaches an exception message.
    Nothing else may carry them, and the job's failure names the error's class only.
    """
    from backend.api import meta
    from backend.services import provisioning, teardown

    plant_platform_secrets(leaks, fernet_key, None)
    message = f"bug holding {PVE_TOKEN} and {fernet_key} and {ENV_CREATE}"

    def explode(*args, **kwargs):
        raise RuntimeError(message)

    with canary_fake() as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key)
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            healthy = create_deployment(client, name="healthy", env={"API_KEY": ENV_CREATE})
            assert wait_settled(app, client, healthy["id"])["status"] == "running"

            # In a job: the deployment fails naming the error's class, and so does its cleanup.
            choose_node = provisioning._choose_node
            monkeypatch.setattr(provisioning, "_choose_node", explode)
            broken = create_deployment(client, name="broken", env={"API_KEY": ENV_CREATE})
            failed = wait_settled(app, client, broken["id"])
            assert failed["status"] == "failed"
            assert failed["error_message"] == "placement failed: internal error (RuntimeError)"
            read_everything(client, broken["id"])

            # Failing before any guest was asked for, a broken cleanup has nothing to speak of.
            hook = teardown.tell_guest_hooks
            monkeypatch.setattr(teardown, "tell_guest_hooks", lambda ctx, event, deployment: explode()
                                if event == "destroying" else hook(ctx, event, deployment))
            no_guest = create_deployment(client, name="no-guest", env={"API_KEY": ENV_CREATE})
            failed = wait_settled(app, client, no_guest["id"])
            assert failed["error_message"] == "placement failed: internal error (RuntimeError)"
            read_everything(client, no_guest["id"])

            # Failing once the guest exists, the broken cleanup is named by its class too.
            monkeypatch.setattr(provisioning, "_choose_node", choose_node)
            monkeypatch.setattr(provisioning, "_start", explode)
            no_cleanup = create_deployment(client, name="no-cleanup", env={"API_KEY": ENV_CREATE})
            failed = wait_settled(app, client, no_cleanup["id"])
            assert failed["error_message"] == ("start failed: internal error (RuntimeError); the guest could not "
                                               "be removed (internal error (RuntimeError)), reconcile will report it")
            read_everything(client, no_cleanup["id"])

            # In a route: the plain 500.
            monkeypatch.setattr(meta, "deployment_stats", explode)
            monkeypatch.setattr("backend.api.releases.envvars.masked", explode)
            for path in ("/api/stats", f"/api/deployments/{healthy['id']}/env"):
                response = client.get(path)
                assert response.status_code == 500
                assert response.get_json()["error"] == {"code": "internal_error", "message": "internal server error",
                                                        "fields": {}, "request_id": response.headers["X-Request-ID"]}
        finally:
            assert stop_jobs(app)

    leaks.assert_clean(include_logs=False)
    logged = [r for r in leaks.caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert {r.getMessage().split(":")[0] for r in logged} == {"unhandled error", f"deployment {broken['id']}",
                                                              f"deployment {no_guest['id']}",
                                                              f"deployment {no_cleanup['id']}"}
    # Only those tracebacks carry the message: no other record repeats it.
    others = [r for r in leaks.caplog.records if r not in logged]
    assert not [r for r in others if any(canary in r.getMessage() for canary in (ENV_CREATE, PVE_TOKEN, fernet_key))]


def test_a_response_that_breaks_its_schema_logs_no_secret(database_url, tmp_path, leaks, fernet_key, monkeypatch):
    """The answer that shows the webhook secret fails its own schema (a bug): 500, and the log says where the
    answer broke without quoting it."""
    from backend.api import webhooks as webhooks_api
    from backend.services import webhooks

    plant_platform_secrets(leaks, fernet_key, None)
    shown = []
    enable, out = webhooks.enable, webhooks_api._webhook_out

    def enable_and_remember(deployment):
        shown.append(enable(deployment))
        return shown[-1]

    def out_without_events(deployment, secret=None):
        body = out(deployment, secret)
        del body["events"]
        return body

    with canary_fake() as fake:
        app = secret_app(database_url, fake, tmp_path, fernet_key)
        plant_suite_tokens(leaks, app)
        client = recording_client(app, leaks)
        try:
            deployment = create_deployment(client, name="hooked", env={"API_KEY": ENV_CREATE})
            assert wait_settled(app, client, deployment["id"])["status"] == "running"
            monkeypatch.setattr(webhooks_api.webhooks, "enable", enable_and_remember)
            monkeypatch.setattr(webhooks_api, "_webhook_out", out_without_events)
            response = client.post(f"/api/deployments/{deployment['id']}/webhook")
            assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
        finally:
            assert stop_jobs(app)
    [secret] = shown
    leaks.plant("the webhook secret", secret)
    [record] = [r for r in leaks.caplog.records if "does not match its schema" in r.getMessage()]
    assert record.getMessage().endswith("does not match its schema: events: Field required")
    leaks.assert_clean()


# -- API tokens ------------------------------------------------------------------------------------------------


def test_an_api_token_is_shown_only_by_the_answer_that_made_it(app, leaks):
    member_id, member_token = make_user(app, "token-owner")
    client = recording_client(app, leaks)
    plant_suite_tokens(leaks, app)
    leaks.plant("a token made outside the API", member_token, hidden_from=12)
    leaks.plant("ENV value", ENV_CREATE)

    made = client.post("/api/tokens", json={"name": "ci", "expires_in_days": 30}, token=member_token)
    assert made.status_code == 201
    token, info = made.get_json()["token"], made.get_json()["token_info"]
    assert token.startswith(info["prefix"]) and len(token) > len(info["prefix"]) + 30
    leaks.plant("a token from POST /api/tokens", token, hidden_from=len(info["prefix"]))
    leaks.allow("a token from POST /api/tokens", made)

    user = client.post("/api/users", json={"username": "newcomer"})
    assert user.status_code == 201
    first = user.get_json()["token"]
    leaks.plant("a token from POST /api/users", first, hidden_from=12)
    leaks.allow("a token from POST /api/users", user)

    # The new tokens work, and nothing they reach shows them.
    assert client.get("/api/me", token=token).get_json()["user"]["username"] == "token-owner"
    assert client.get("/api/me", token=first).get_json()["user"]["username"] == "newcomer"
    created = client.post("/api/deployments", json=deployment_payload(env={"API_KEY": ENV_CREATE}), token=token)
    assert created.status_code == 201
    listed = client.get("/api/tokens", token=token).get_json()["tokens"]
    assert {t["prefix"] for t in listed} == {info["prefix"], member_token[:12]}
    assert client.get("/api/tokens", token=first).status_code == 200
    assert client.get("/api/users").status_code == 200
    assert client.get(f"/api/users/{member_id}").status_code == 200
    assert client.patch(f"/api/users/{member_id}", json={"allow_private_targets": True}).status_code == 200
    assert client.get("/api/deployments", token=token).get_json()["deployments"][0]["env"] == {"API_KEY": "********"}

    # Revoked: it stops working, and the refusal does not repeat it.
    assert client.delete(f"/api/tokens/{info['id']}", token=member_token).status_code == 200
    refused = client.get("/api/me", token=token)
    assert refused.status_code == 401
    audit = client.get("/api/audit?action=token.").get_json()["entries"]
    assert [e["action"] for e in audit] == ["token.revoke", "token.create"]
    assert client.get("/api/audit").status_code == 200
    assert client.get(f"/api/audit?user={member_id}").status_code == 200

    leaks.assert_shown_once("a token from POST /api/tokens", token)
    leaks.assert_shown_once("a token from POST /api/users", first)
    assert {r.name for r in leaks.caplog.records} >= {"sqlalchemy.engine.Engine"}  # statements were logged
    leaks.assert_clean()


# -- people's passwords ----------------------------------------------------------------------------------------


USER_PASSWORD = f"canary-user-password-{RUN}-4c1d"
WRONG_PASSWORD = f"canary-wrong-password-{RUN}-77b0"


def test_a_password_never_leaks_from_set_password_logins_or_refusals(app, leaks):
    make_user(app, "walker")
    disabled_id, _ = make_user(app, "gone", password=USER_PASSWORD)
    client = recording_client(app, leaks)
    plant_suite_tokens(leaks, app)
    leaks.plant("the user's password", USER_PASSWORD)
    leaks.plant("a wrong password", WRONG_PASSWORD)

    def run(*args, stdin):
        result = CliRunner().invoke(cli, list(args), obj=app, input=stdin)
        leaks.add(f"manage_db.py {' '.join(args)}", result.output)
        return result

    assert run("set-password", "walker", "--password-stdin", stdin=USER_PASSWORD + "\n").exit_code == 0
    assert run("set-password", "walker", "--password-stdin", stdin=WRONG_PASSWORD * 30 + "\n").exit_code == 1
    assert client.patch(f"/api/users/{disabled_id}", json={"disabled": True}).status_code == 200

    def attempt(username, password, status, **extra):
        body = {"username": username, "password": password, "token_name": "laptop", **extra}
        response = client.post("/api/auth/login", json=body, token=None)
        assert response.status_code == status, response.get_json()
        return response

    made = attempt("walker", USER_PASSWORD, 201)
    token = made.get_json()["token"]
    leaks.plant("a token from POST /api/auth/login", token, hidden_from=12)
    leaks.allow("a token from POST /api/auth/login", made)
    attempt("walker", WRONG_PASSWORD, 401)
    attempt("nobody", USER_PASSWORD, 401)
    attempt("gone", USER_PASSWORD, 401)
    attempt("walker", USER_PASSWORD, 422, remember_me=True)
    attempt("walker", USER_PASSWORD, 422, token_name="no/slash")
    attempt("walker", USER_PASSWORD, 422, expires_in_days="soon")
    attempt("walker", WRONG_PASSWORD * 30, 422)
    attempt("walker", [USER_PASSWORD], 422)
    assert client.get("/api/me", token=token).status_code == 200
    for path in ("/api/audit", "/api/audit?action=auth.", "/api/users", "/api/tokens"):
        assert client.get(path).status_code == 200

    leaks.assert_shown_once("a token from POST /api/auth/login", token)
    assert {r.name for r in leaks.caplog.records} >= {"sqlalchemy.engine.Engine"}  # statements were logged
    leaks.assert_clean()


# -- production start checks ------------------------------------------------------------------------------------


@pytest.fixture
def production_env(monkeypatch):
    """No Proxmox or database settings from the developer's environment."""
    for name in ("PROXMOX_HOST", "PROXMOX_VERIFY_SSL", "PROXMOX_ALLOW_INSECURE", "DATABASE_URL", "USE_POSTGRES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("key", ["", None])
def test_production_refuses_an_empty_secret_key(production_env, key):
    # (The default key's refusal is tests/test_config.py::test_production_refuses_the_default_secret_key.)
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY=key)


def test_production_refuses_proxmox_without_certificate_checks(production_env):
    good_key = secrets.token_hex(32)
    production_env.setenv("PROXMOX_VERIFY_SSL", "false")
    with pytest.raises(RuntimeError, match="PROXMOX_VERIFY_SSL is off") as refused:
        create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY=good_key)
    assert "PROXMOX_ALLOW_INSECURE=true" in str(refused.value) and good_key not in str(refused.value)

    # The operator said so: it starts.
    app = create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY=good_key,
                     PROXMOX_ALLOW_INSECURE=True)
    assert app.config["CONFIG_NAME"] == "production"

    # Certificate checks on (or not said at all): it starts without the override.
    for value in ("true", None):
        if value is None:
            production_env.delenv("PROXMOX_VERIFY_SSL")
        else:
            production_env.setenv("PROXMOX_VERIFY_SSL", value)
        assert create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY=good_key).config[
            "PROXMOX_ALLOW_INSECURE"] is False


def _start_production(tmp_path, **env):
    """create_app("production") in a fresh interpreter, its settings from the environment only."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PROXMOX_", "SECRET_KEY", "DATABASE_URL", "USE_POSTGRES", "APP_ENV"))}
    clean.update({"PYTHONPATH": str(BASE_DIR), "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}"}, **env)
    code = "from app import create_app; create_app('production'); print('started')"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean, capture_output=True, text=True,
                          timeout=60)


def test_production_start_checks_read_the_environment(tmp_path):
    key = f"canary-secret-key-{secrets.token_hex(16)}"
    refused = _start_production(tmp_path)
    assert refused.returncode != 0 and "SECRET_KEY is not set" in refused.stderr

    insecure = _start_production(tmp_path, SECRET_KEY=key, PROXMOX_VERIFY_SSL="false")
    assert insecure.returncode != 0 and "PROXMOX_VERIFY_SSL is off" in insecure.stderr
    assert key not in insecure.stderr + insecure.stdout

    allowed = _start_production(tmp_path, SECRET_KEY=key, PROXMOX_VERIFY_SSL="false", PROXMOX_ALLOW_INSECURE="true")
    assert allowed.returncode == 0 and allowed.stdout.strip() == "started", allowed.stderr
    assert key not in allowed.stderr + allowed.stdout
