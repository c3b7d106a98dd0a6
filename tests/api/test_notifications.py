"""Outbound notifications: the target (PUT/GET/DELETE .../notifications), delivery with retries
(GET .../deliveries), and which targets a member may use, against an HTTPS receiver on loopback."""
import hmac
import json
import socket
import ssl
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from sqlalchemy import func, select

from app import db
from backend.models import Deployment, DeploymentStatus, Notification
from backend.platform import platform_of
from backend.services import lifecycle
from tests.helpers.accounts import make_user
from tests.helpers.api import create_deployment, deployment_payload, error_of, sha256_signature

REBIND_HOST = "hooks.rebind.test"  # a name only this file's fake resolver knows
PUBLIC_ADDRESS = "93.184.216.34"
WAIT_SECONDS = 6.0


# -- the receiver ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold a thread for long

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status = self.server.receiver.record(self.command, self.path, self.headers, body)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver, context):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver, self.context = receiver, context

    def get_request(self):
        sock, address = self.socket.accept()
        # The handshake happens in the connection's thread, not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request, client_address):
        pass


class Receiver:
    """An HTTPS endpoint on 127.0.0.1 recording every POST and answering with the statuses given
    (in order; 200 once they run out)."""

    def __init__(self, ca):
        self.requests = []  # dicts: method, path, headers, body, time (wall clock)
        self.statuses = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1", REBIND_HOST).configure_cert(context)
        self._server = _TLSServer(self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"receiver-{self.port}", daemon=True)
        self._thread.start()

    def url(self, host="localhost", path="/hook"):
        return f"https://{host}:{self.port}{path}"

    def answer(self, *statuses):
        with self._lock:
            self.statuses = list(statuses)

    def record(self, method, path, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": dict(headers.items()),
                                  "body": body, "time": time.time()})
            return self.statuses.pop(0) if self.statuses else 200

    def payloads(self):
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver(app, tmp_path):
    ca = trustme.CA()
    bundle = tmp_path / "notify-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    app.config["NOTIFY_CA_BUNDLE"] = str(bundle)
    server = Receiver(ca)
    try:
        yield server
    finally:
        server.stop()


# -- helpers ------------------------------------------------------------------------------------------------


def verify(secret, body, header):
    """True when header is body's signature with secret."""
    return hmac.compare_digest(sha256_signature(secret, body), header)


def deliveries(client, ident, token="admin"):
    response = client.get(f"/api/deployments/{ident}/deliveries", token=token)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["deliveries"]


def settled(client, ident, run_jobs, count=1, seconds=WAIT_SECONDS, on_pending=None):
    """Run jobs (retries are delayed jobs) until `count` deliveries exist and none is pending; bounded."""
    deadline = time.monotonic() + seconds
    while True:
        run_jobs()
        rows = deliveries(client, ident)
        if on_pending is not None:
            on_pending(rows)
        if len(rows) >= count and all(r["state"] != "pending" for r in rows):
            return rows
        assert time.monotonic() < deadline, f"deliveries still pending after {seconds} s: {rows}"
        time.sleep(0.1)


def ready_deployment(client, run_jobs, token="admin", **overrides):
    """A deployment created through the API whose first (provision) job has run: it is failed, as no Proxmox
    is configured, and no job is left queued."""
    ident = create_deployment(client, token=token, **overrides)["id"]
    run_jobs()
    assert client.get(f"/api/deployments/{ident}", token=token).get_json()["deployment"]["status"] == "failed"
    return ident


def set_target(client, ident, url, token="admin"):
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": url}, token=token)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["secret"]


def change_status(ident, target, message="status changed by the test"):
    """One status change through the lifecycle service, committed: it queues exactly one notification."""
    db.session.rollback()
    deployment = db.session.get(Deployment, uuid.UUID(ident))
    lifecycle.change_status(deployment, DeploymentStatus(target), message)
    db.session.commit()


def notification_count(ident):
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.deployment_id == uuid.UUID(ident)))


def member(app, username):
    """(user id, token) of a new member; the test's session (shared with the requests) then sees them."""
    user_id, token = make_user(app, username, "member")
    db.session.rollback()
    return user_id, token


@pytest.fixture
def fake_dns(monkeypatch):
    """socket.getaddrinfo answering REBIND_HOST with an address the test chooses; other names as usual.

    The notifications module looks getaddrinfo up at each call, so this reaches both the check when the
    target is set and the one at delivery. Returns the calls made for REBIND_HOST and a setter.
    """
    real = socket.getaddrinfo
    state = {"address": PUBLIC_ADDRESS, "calls": []}

    def getaddrinfo(host, port, *args, **kwargs):
        if host == REBIND_HOST:
            state["calls"].append(state["address"])
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (state["address"], port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return state


# -- delivery ------------------------------------------------------------------------------------------------


def test_a_status_change_is_posted_signed_to_the_target(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    secret = set_target(client, ident, receiver.url())
    assert client.delete(f"/api/deployments/{ident}").status_code == 202
    rows = settled(client, ident, run_jobs, count=2)
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    for request in receiver.requests:
        assert request["method"] == "POST" and request["path"] == "/hook"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["X-Paas-Event"] == "deployment.status"
        assert request["headers"]["Host"] == f"localhost:{receiver.port}"
        assert verify(secret, request["body"], request["headers"]["X-Paas-Signature-256"])
    payload = json.loads(first["body"])
    assert payload["event"] == "deployment.status"
    assert payload["deployment"]["id"] == ident
    assert payload["deployment"]["name"] == "shop-api"
    assert payload["deployment"]["status"] == "deleting"
    assert payload["deployment"]["previous_status"] == "failed"
    assert payload["message"] == "delete requested"
    assert datetime.fromisoformat(payload["time"].replace("Z", "+00:00"))
    later = json.loads(second["body"])
    assert later["deployment"]["id"] == ident
    assert (later["deployment"]["status"], later["deployment"]["previous_status"]) == ("deleted", "deleting")
    # Newest first; each delivered at the first attempt with the receiver's answer.
    assert [r["payload"]["deployment"]["status"] for r in rows] == ["deleted", "deleting"]
    for row in rows:
        assert row["state"] == "delivered"
        assert row["attempts"] == 1
        assert row["last_status"] == 200
        assert row["last_error"] is None
        assert row["delivered_at"] and row["next_attempt_at"] is None
        assert row["url"] == receiver.url()
        assert row["event"] == "deployment.status"
    assert first["headers"]["X-Paas-Delivery"] == str(rows[1]["id"])
    assert second["headers"]["X-Paas-Delivery"] == str(rows[0]["id"])


def test_a_signature_made_with_another_secret_does_not_verify(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    old = set_target(client, ident, receiver.url())
    new = set_target(client, ident, receiver.url())
    assert new != old
    change_status(ident, "pending")
    settled(client, ident, run_jobs)
    [request] = receiver.requests
    assert verify(new, request["body"], request["headers"]["X-Paas-Signature-256"])
    assert not verify(old, request["body"], request["headers"]["X-Paas-Signature-256"])
    assert not verify(new, request["body"] + b" ", request["headers"]["X-Paas-Signature-256"])


def test_the_secret_is_in_the_put_answer_only(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": receiver.url()})
    body = response.get_json()
    assert body["url"] == receiver.url()
    assert body["signature_header"] == "X-Paas-Signature-256"
    secret = body["secret"]
    assert len(secret) == 64
    shown = client.get(f"/api/deployments/{ident}/notifications")
    assert shown.status_code == 200
    assert shown.get_json() == {"success": True, "url": receiver.url(), "secret": None,
                                "signature_header": "X-Paas-Signature-256"}
    deployment = client.get(f"/api/deployments/{ident}")
    assert deployment.get_json()["deployment"]["notification_url"] == receiver.url()
    change_status(ident, "pending")
    settled(client, ident, run_jobs)
    for path in ("", "/notifications", "/deliveries", "/events"):
        assert secret not in client.get(f"/api/deployments/{ident}{path}").get_data(as_text=True)
    db.session.rollback()
    assert secret not in (db.session.get(Deployment, uuid.UUID(ident)).notify_secret_encrypted or "")


def test_a_target_answering_500_twice_gets_it_on_the_third_attempt_with_growing_delays(
        app, client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    secret = set_target(client, ident, receiver.url())
    receiver.answer(500, 500, 200)
    change_status(ident, "pending")
    seen = {}  # attempts -> next_attempt_at while pending

    def note(rows):
        for row in rows:
            if row["state"] == "pending" and row["attempts"]:
                seen.setdefault(row["attempts"], datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00")))

    started = time.monotonic()
    [row] = settled(client, ident, run_jobs, on_pending=note)
    assert time.monotonic() - started < WAIT_SECONDS
    assert row["state"] == "delivered"
    assert row["attempts"] == 3
    assert row["last_status"] == 200 and row["last_error"] is None
    assert len(receiver.requests) == 3
    assert all(verify(secret, r["body"], r["headers"]["X-Paas-Signature-256"]) for r in receiver.requests)
    assert len({r["body"] for r in receiver.requests}) == 1  # the same notification each time
    assert {r["headers"]["X-Paas-Delivery"] for r in receiver.requests} == {str(row["id"])}
    # Backoff: base 0.2 s, doubled per attempt.
    base = app.config["NOTIFY_RETRY_BASE_SECONDS"]
    assert sorted(seen) == [1, 2]
    assert seen[2] > seen[1]
    times = [r["time"] for r in receiver.requests]
    first_wait = seen[1].timestamp() - times[0]
    second_wait = seen[2].timestamp() - times[1]
    assert first_wait >= base and second_wait >= 2 * base
    assert second_wait > first_wait
    assert times[1] - times[0] >= base
    assert times[2] - times[1] >= 2 * base


def test_a_target_that_always_fails_is_given_up_after_the_maximum_attempts(app, client, run_jobs, receiver):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 3
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    receiver.answer(*[500] * 10)
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "failed"
    assert row["attempts"] == 3
    assert row["last_status"] == 500
    assert row["last_error"] == "answered HTTP 500"
    assert row["delivered_at"] is None and row["next_attempt_at"] is None
    assert len(receiver.requests) == 3
    # Nothing is left to retry: later job runs post nothing more.
    time.sleep(0.3)
    run_jobs()
    assert len(receiver.requests) == 3
    assert platform_of(app).jobs.delayed == []


def test_a_redirect_is_not_followed_and_counts_as_a_failure(app, client, run_jobs, receiver):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 1
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    receiver.answer(302)
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "failed" and row["last_status"] == 302
    assert len(receiver.requests) == 1


def test_a_target_whose_certificate_is_not_trusted_fails(app, client, run_jobs, receiver):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 1
    app.config["NOTIFY_CA_BUNDLE"] = None  # the system's CAs do not know the receiver's
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "failed"
    assert row["last_status"] is None
    assert "certificate" in row["last_error"].lower() or "ssl" in row["last_error"].lower()
    assert receiver.requests == []


def test_without_a_target_a_status_change_queues_nothing(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    change_status(ident, "pending")
    run_jobs()
    assert deliveries(client, ident) == []
    assert notification_count(ident) == 0
    assert receiver.requests == []


def test_deleting_the_target_stops_further_notifications(app, client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    change_status(ident, "pending")
    settled(client, ident, run_jobs)
    assert len(receiver.requests) == 1
    response = client.delete(f"/api/deployments/{ident}/notifications")
    assert response.status_code == 200
    assert response.get_json()["url"] is None and response.get_json()["secret"] is None
    assert client.get(f"/api/deployments/{ident}/notifications").get_json()["url"] is None
    assert client.get(f"/api/deployments/{ident}").get_json()["deployment"]["notification_url"] is None
    change_status(ident, "failed", "later change")
    assert client.delete(f"/api/deployments/{ident}").status_code == 202
    run_jobs()
    assert len(receiver.requests) == 1
    assert notification_count(ident) == 1


def test_a_notification_queued_before_the_target_was_removed_is_not_sent(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    change_status(ident, "pending")  # queued, not yet delivered
    assert client.delete(f"/api/deployments/{ident}/notifications").status_code == 200
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "failed"
    assert row["attempts"] == 0
    assert "removed or changed" in row["last_error"]
    assert receiver.requests == []


def test_a_notification_queued_for_an_old_url_is_not_sent_to_the_new_one(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url(path="/old"))
    change_status(ident, "pending")
    set_target(client, ident, receiver.url(path="/new"))
    change_status(ident, "failed", "second change")
    rows = settled(client, ident, run_jobs, count=2)
    assert [(r["url"], r["state"]) for r in rows] == [(receiver.url(path="/new"), "delivered"),
                                                      (receiver.url(path="/old"), "failed")]
    assert [r["path"] for r in receiver.requests] == ["/new"]


def test_deliveries_are_paged_newest_first(client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    for target in ("pending", "failed", "pending"):
        change_status(ident, target)
    settled(client, ident, run_jobs, count=3)
    page = client.get(f"/api/deployments/{ident}/deliveries", query_string={"limit": 2}).get_json()
    assert [r["payload"]["deployment"]["status"] for r in page["deliveries"]] == ["pending", "failed"]
    assert page["next_before"] == page["deliveries"][-1]["id"]
    rest = client.get(f"/api/deployments/{ident}/deliveries",
                      query_string={"limit": 2, "before": page["next_before"]}).get_json()
    assert [r["payload"]["deployment"]["previous_status"] for r in rest["deliveries"]] == ["failed"]
    assert rest["next_before"] is None


# -- which targets are accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("url,reason", [
    ("http://hooks.example.com/paas", "https"),
    ("ftp://hooks.example.com/paas", "https"),
    ("https://user:pass@hooks.example.com/paas", "credentials"),
    ("https://token@hooks.example.com/paas", "credentials"),
    ("https:///paas", "no host"),
    ("https://hooks.example.com/pa th", "whitespace"),
    ("not a url", "https"),
])
def test_a_url_that_is_not_a_plain_https_url_is_422(client, run_jobs, url, reason):
    ident = ready_deployment(client, run_jobs)
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": url})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert reason in error["fields"]["url"]
    assert reason in error["message"]
    assert client.get(f"/api/deployments/{ident}/notifications").get_json()["url"] is None


def test_a_body_with_other_fields_or_no_url_is_422(client, run_jobs):
    ident = ready_deployment(client, run_jobs)
    assert client.put(f"/api/deployments/{ident}/notifications", json={}).status_code == 422
    assert client.put(f"/api/deployments/{ident}/notifications",
                      json={"url": "https://localhost/x", "secret": "mine"}).status_code == 422
    assert client.put(f"/api/deployments/{ident}/notifications",
                      json={"url": "https://localhost/" + "a" * 2048}).status_code == 422


@pytest.mark.parametrize("url,address", [
    ("https://127.0.0.1/hook", "127.0.0.1"),
    ("https://127.8.9.10:8443/hook", "127.8.9.10"),
    ("https://10.1.2.3/hook", "10.1.2.3"),
    ("https://192.168.1.20/hook", "192.168.1.20"),
    ("https://172.16.0.1/hook", "172.16.0.1"),
    ("https://[::1]/hook", "::1"),
    ("https://[::ffff:127.0.0.1]/hook", "::ffff:"),
    ("https://[fd00::1]/hook", "fd00::1"),
    ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
    ("https://0.0.0.0/hook", "0.0.0.0"),
    ("https://100.64.0.1/hook", "100.64.0.1"),
    ("https://localhost/hook", "localhost"),
])
def test_a_member_cannot_target_loopback_private_or_reserved_addresses(app, client, url, address):
    _, token = member(app, "mia")
    created = client.post("/api/deployments", json=deployment_payload(), token=token)
    assert created.status_code == 201
    ident = created.get_json()["deployment"]["id"]
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": url}, token=token)
    assert response.status_code == 422
    error = error_of(response)
    assert "loopback, private or reserved" in error["message"]
    assert address in error["message"]
    assert "loopback, private or reserved" in error["fields"]["url"]
    assert client.get(f"/api/deployments/{ident}/notifications", token=token).get_json()["url"] is None


def test_a_member_may_target_a_public_address(app, client, fake_dns):
    _, token = member(app, "mia")
    ident = client.post("/api/deployments", json=deployment_payload(), token=token).get_json()["deployment"]["id"]
    for url in (f"https://{PUBLIC_ADDRESS}/hook", f"https://{REBIND_HOST}/hook"):
        response = client.put(f"/api/deployments/{ident}/notifications", json={"url": url}, token=token)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["url"] == url


def test_an_admin_can_allow_private_targets_for_a_member(app, client, run_jobs, receiver):
    member_id, token = member(app, "mia")
    ident = ready_deployment(client, run_jobs, token=token)
    url = receiver.url()
    refused = client.put(f"/api/deployments/{ident}/notifications", json={"url": url}, token=token)
    assert refused.status_code == 422
    assert "an admin can allow" in error_of(refused)["message"]
    # Only an admin may change it.
    assert client.patch(f"/api/users/{member_id}", json={"allow_private_targets": True},
                        token=token).status_code == 403
    allowed = client.patch(f"/api/users/{member_id}", json={"allow_private_targets": True})
    assert allowed.status_code == 200
    assert allowed.get_json()["user"]["allow_private_targets"] is True
    set_target(client, ident, url, token=token)
    for other in ("https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://[::1]/hook"):
        assert client.put(f"/api/deployments/{ident}/notifications", json={"url": other},
                          token=token).status_code == 200
    secret = set_target(client, ident, url, token=token)
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "delivered"
    [request] = receiver.requests
    assert verify(secret, request["body"], request["headers"]["X-Paas-Signature-256"])
    # Taking the permission back stops deliveries to the private target, checked at every delivery.
    app.config["NOTIFY_MAX_ATTEMPTS"] = 1
    assert client.patch(f"/api/users/{member_id}", json={"allow_private_targets": False}).status_code == 200
    change_status(ident, "failed", "after the permission was taken back")
    rows = settled(client, ident, run_jobs, count=2)
    assert rows[0]["state"] == "failed"
    assert rows[0]["last_error"].startswith("refused:")
    assert len(receiver.requests) == 1


def test_a_name_that_resolves_elsewhere_at_delivery_is_refused_without_connecting(
        app, client, run_jobs, receiver, fake_dns):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 1
    _, token = member(app, "mia")
    ident = ready_deployment(client, run_jobs, token=token)
    url = receiver.url(host=REBIND_HOST)
    fake_dns["address"] = PUBLIC_ADDRESS
    set_target(client, ident, url, token=token)
    assert fake_dns["calls"] == [PUBLIC_ADDRESS]
    fake_dns["address"] = "127.0.0.1"  # the name now points at the loopback, where the receiver listens
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "failed"
    assert row["attempts"] == 1
    assert row["last_status"] is None
    assert row["last_error"].startswith("refused:")
    assert "not a public address" in row["last_error"] and "127.0.0.1" not in row["last_error"]
    assert fake_dns["calls"] == [PUBLIC_ADDRESS, "127.0.0.1"]  # looked up again at delivery
    assert receiver.requests == []


def test_the_same_rebinding_name_is_delivered_for_an_owner_allowed_private_targets(
        client, run_jobs, receiver, fake_dns):
    """The control for the test above: the receiver does answer for that name when the owner may use it."""
    ident = ready_deployment(client, run_jobs)  # the suite's admin owns it
    url = receiver.url(host=REBIND_HOST)
    fake_dns["address"] = "127.0.0.1"
    secret = set_target(client, ident, url)
    change_status(ident, "pending")
    [row] = settled(client, ident, run_jobs)
    assert row["state"] == "delivered" and row["last_status"] == 200
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"{REBIND_HOST}:{receiver.port}"
    assert verify(secret, request["body"], request["headers"]["X-Paas-Signature-256"])


def test_a_name_that_does_not_resolve_is_refused(app, client, monkeypatch):
    real = socket.getaddrinfo

    def unresolvable(host, *args, **kwargs):
        if host == "nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # the database connections resolve as usual

    _, token = member(app, "mia")
    ident = client.post("/api/deployments", json=deployment_payload(), token=token).get_json()["deployment"]["id"]
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": "https://nowhere.invalid/x"},
                          token=token)
    assert response.status_code == 422
    assert "does not resolve" in error_of(response)["message"]


# -- who may see and change the target ------------------------------------------------------------------------


def test_a_member_cannot_see_or_change_another_users_notifications(app, client, run_jobs, receiver):
    ident = ready_deployment(client, run_jobs)
    set_target(client, ident, receiver.url())
    change_status(ident, "pending")
    settled(client, ident, run_jobs)
    _, token = member(app, "mallory")
    assert client.get(f"/api/deployments/{ident}/deliveries", token=token).status_code == 404
    assert error_of(client.get(f"/api/deployments/{ident}/deliveries", token=token))["code"] == "not_found"
    assert client.get(f"/api/deployments/{ident}/notifications", token=token).status_code == 404
    assert client.put(f"/api/deployments/{ident}/notifications", json={"url": f"https://{PUBLIC_ADDRESS}/x"},
                      token=token).status_code == 404
    assert client.delete(f"/api/deployments/{ident}/notifications", token=token).status_code == 404
    assert client.get(f"/api/deployments/{ident}/notifications").get_json()["url"] == receiver.url()
    assert client.get(f"/api/deployments/{ident}/deliveries", token=None).status_code == 401


def test_a_member_sees_the_deliveries_of_their_own_deployment(app, client, run_jobs, receiver):
    member_id, token = member(app, "mia")
    assert client.patch(f"/api/users/{member_id}", json={"allow_private_targets": True}).status_code == 200
    ident = ready_deployment(client, run_jobs, token=token)
    set_target(client, ident, receiver.url(), token=token)
    change_status(ident, "pending")
    settled(client, ident, run_jobs)
    [row] = deliveries(client, ident, token=token)
    assert row["state"] == "delivered"


def test_a_deleted_deployment_cannot_get_a_notification_target(client, run_jobs, delete_deployment):
    ident = ready_deployment(client, run_jobs)
    delete_deployment(ident)
    response = client.put(f"/api/deployments/{ident}/notifications", json={"url": "https://localhost/hook"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"
