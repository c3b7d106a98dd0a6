"""Outbound notifications: each status change is posted, signed, to the deployment's notification URL.

The row is written in the status change's own commit (an outbox), so a change is never lost nor
announced without having happened; a "notify" job delivers it with retries and backoff.
Targets must be https and, unless an admin allowed it for the owner, resolve to public addresses
only, checked at every delivery against the address actually connected to (no DNS rebinding).
"""
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import urllib3

from backend.errors import InvalidState, ValidationFailed
from backend.extensions import db
from backend.models import Deployment, Notification, User
from backend.models.types import utcnow
from backend.schemas.common import dump
from backend.schemas.webhooks import StatusNotification
from backend.services import envvars
from backend.services.history import page_of
from backend.services.transactions import commit, save_fields

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Paas-Signature-256"
EVENT_HEADER = "X-Paas-Event"
DELIVERY_HEADER = "X-Paas-Delivery"
PENDING_KEY = "paas_notify"


class TargetRefused(ValueError):
    """The URL may not receive notifications (scheme, address); the message says why."""


def _host_addresses(host, port, resolve):
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        return [literal]
    except ValueError:
        pass
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetRefused(f"{host} does not resolve") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _is_public(address):
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif address.sixtofour:  # 2002::/16 carries an IPv4 address, which must be public itself
            return _is_public(address.sixtofour)
        elif address in SITE_LOCAL:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def check_target(url, allow_private=False, resolve=None):
    """(host, port, addresses) of an acceptable target; TargetRefused with the reason otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise TargetRefused("not a URL") from None
    if parts.scheme != "https":
        raise TargetRefused("must be an https:// URL")
    if not parts.hostname:
        raise TargetRefused("has no host")
    if parts.username or parts.password:
        raise TargetRefused("must not carry credentials (the signature authenticates the sender)")
    if any(c in url for c in "\r\n\t\0 "):
        raise TargetRefused("must not contain whitespace or control characters")
    addresses = _host_addresses(parts.hostname, port, resolve or socket.getaddrinfo)
    if not addresses:
        raise TargetRefused(f"{parts.hostname} does not resolve")
    if not allow_private:
        refused = [str(a) for a in addresses if not _is_public(a)]
        if refused:
            # Which internal address a name has is not the caller's business: the log keeps it.
            log.info("notification target %s refused: it resolves to %s", parts.hostname, ", ".join(refused[:3]))
            raise TargetRefused(f"{parts.hostname} is not a public address (loopback, private or reserved); "
                                "an admin can allow such targets for the owner")
    return parts.hostname, port, addresses


def _allow_private(deployment):
    owner = db.session.get(User, deployment.user_id) if deployment.user_id else None
    return owner is not None and (owner.allow_private_targets or owner.is_admin)


def set_target(deployment, url, resolve=None):
    """Point the deployment's notifications at url with a new signing secret; returns the secret (shown once)."""
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment sends no notifications")
    try:
        check_target(url, _allow_private(deployment), resolve)
    except TargetRefused as exc:
        raise ValidationFailed(f"notification URL refused: {exc}", fields={"url": str(exc)}) from None
    secret = secrets.token_hex(32)
    save_fields(deployment, notify_url=url, notify_secret_encrypted=envvars.seal(secret))
    return secret


def clear_target(deployment):
    save_fields(deployment, notify_url=None, notify_secret_encrypted=None)


def queue_status_change(deployment, before, after, message):
    """Add the notification of a status change to the session (the change's own commit writes it)."""
    if not deployment.notify_url:
        return None
    payload = dump(StatusNotification, {
        "event": "deployment.status",
        "deployment": {"id": deployment.id, "name": deployment.name, "status": after, "previous_status": before,
                       "url": deployment.url, "error_message": deployment.error_message},
        "message": message,
        "time": utcnow(),
    })
    row = Notification(deployment_id=deployment.id, event="deployment.status", url=deployment.notify_url,
                       payload=payload, next_attempt_at=utcnow())
    db.session.add(row)
    db.session.info.setdefault(PENDING_KEY, set()).add(deployment.id)
    return row


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(row, deployment, settings, resolve):
    """POST one notification; the HTTP status it got (TargetRefused or a network error otherwise)."""
    host, port, addresses = check_target(row.url, _allow_private(deployment), resolve)
    secret = envvars.unseal(deployment.notify_secret_encrypted)
    parts = urlsplit(row.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(row.payload, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "proxmox-paas-notifications/1",
        EVENT_HEADER: row.event,
        DELIVERY_HEADER: str(row.id),
        SIGNATURE_HEADER: sign(secret, body),
        "Host": host if port == 443 else f"{host}:{port}",
    }
    # Connect to an address that was checked (each in turn, IPv6 or IPv4), while TLS verifies the URL's name.
    last_error = None
    for address in addresses:
        pool = urllib3.HTTPSConnectionPool(
            str(address), port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED",
            ca_certs=settings.get("ca_bundle"), timeout=urllib3.Timeout(connect=5, read=settings["timeout"]),
            retries=False, maxsize=1)
        try:
            response = pool.urlopen("POST", path, body=body, headers=headers, redirect=False,
                                    preload_content=False, assert_same_host=False)
            status = response.status
            response.release_conn()
            return status
        except urllib3.exceptions.NewConnectionError as exc:
            last_error = exc  # this address does not answer; the next one may
        finally:
            pool.close()
    raise last_error


def deliveries_page(deployment_id, before=None, limit=50):
    """(notifications newest first, the id to pass as before= for the next page or None on the last one)."""
    return page_of(Notification.for_deployment(deployment_id, before=before, limit=limit + 1), limit)


def settings_from(config):
    """Delivery settings from the app's configuration."""
    return {"timeout": config["NOTIFY_TIMEOUT"], "max_attempts": config["NOTIFY_MAX_ATTEMPTS"],
            "retry_base": config["NOTIFY_RETRY_BASE_SECONDS"], "retry_max": config["NOTIFY_RETRY_MAX_SECONDS"],
            "ca_bundle": config.get("NOTIFY_CA_BUNDLE")}


def deliver_due(deployment_id, settings, resolve=None):
    """Try every due notification of the deployment once, oldest first.

    Returns the seconds until the next retry of a row this run attempted is due, or None when it left
    none pending (another run claimed the other rows and schedules their retries; the sweep picks up
    rows whose run died).
    """
    retrying = []  # the rows this run scheduled a retry for
    try:
        for row in Notification.due(deployment_id):
            if not _claim(row, settings):
                continue
            deployment = db.session.get(Deployment, row.deployment_id)
            if deployment is None or not deployment.notify_secret_encrypted or deployment.notify_url != row.url:
                row.state, row.last_error = "failed", "the notification URL was removed or changed"
                commit()
                continue
            owner = db.session.get(User, deployment.user_id) if deployment.user_id else None
            if owner is not None and not owner.is_active:
                row.state, row.last_error = "failed", "the deployment's owner is disabled"
                commit()
                continue
            row.attempts += 1
            try:
                status = _post(row, deployment, settings, resolve)
                error = None if 200 <= status < 300 else f"answered HTTP {status}"
            except TargetRefused as exc:
                status, error = None, f"refused: {exc}"
            except Exception as exc:  # noqa: BLE001 - any network failure is a failed attempt
                status, error = None, _describe(exc)
            row.last_status, row.last_error = status, error
            if error is None:
                row.state, row.delivered_at = "delivered", utcnow()
            elif row.attempts >= settings["max_attempts"]:
                row.state = "failed"
                log.warning("notification %s of %s failed for good after %d attempts: %s", row.id, deployment_id,
                            row.attempts, error)
            else:
                delay = min(settings["retry_base"] * 2 ** (row.attempts - 1), settings["retry_max"])
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                retrying.append(row.id)
            commit()
        if not retrying:
            # Another run holds what else is pending and schedules its retry: one retry chain, not one per
            # run (a row another run claimed meanwhile is pending too, held for that run's attempt).
            return None
        nxt = db.session.scalar(db.select(db.func.min(Notification.next_attempt_at)).where(
            Notification.id.in_(retrying), Notification.state == "pending"))
        return None if nxt is None else max(0.0, (nxt - utcnow()).total_seconds())
    finally:
        db.session.remove()


def _describe(exc):
    """A short reason without internals (no URLs with query strings, no secrets: neither is in these)."""
    reason = getattr(exc, "reason", None) or exc
    return f"{exc.__class__.__name__}: {str(reason)[:200]}"


def pending_deployments(overdue_by=None):
    """Deployments with notifications waiting: all (at start), or those overdue by that many seconds
    (the sweep: their job was lost, while a job waiting for a retry is left alone)."""
    stmt = db.select(Notification.deployment_id).where(Notification.state == "pending")
    if overdue_by is not None:
        stmt = stmt.where(Notification.next_attempt_at < utcnow() - timedelta(seconds=overdue_by))
    return list(db.session.scalars(stmt.distinct()))


def _claim(row, settings):
    """Take the row for one attempt; False when another worker took it first."""
    now = utcnow()
    hold = now + timedelta(seconds=settings["timeout"] + 30)
    taken = db.session.execute(
        db.update(Notification)
        .where(Notification.id == row.id, Notification.state == "pending", Notification.next_attempt_at <= now)
        .values(next_attempt_at=hold))
    commit()
    return taken.rowcount == 1
