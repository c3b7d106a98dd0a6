"""GitHub push-to-deploy: a per-deployment secret, signature checks, deduplicated deliveries."""
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from sqlalchemy.exc import IntegrityError

from backend.errors import Conflict, InvalidState, Unauthorized, ValidationFailed
from backend.extensions import db
from backend.jsonbody import MalformedJson, parse_json_object
from backend.models import Deployment, GithubDelivery, Release, User
from backend.rules import GITHUB_URL_RE, check_commit
from backend.services import envvars, releases, transactions

DELIVERY_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
EVENT_RE = re.compile(r"[a-z_]{1,64}")
BAD_SIGNATURE = "the X-Hub-Signature-256 signature is missing or does not match"


@dataclass
class Receipt:
    status: str          # pong, duplicate, ignored, deploying
    message: str
    http_status: int = 200
    release: object = None
    job: str | None = None
    commit: str | None = None
    deployment: Deployment | None = None


def enable(deployment):
    """Turn push-to-deploy on with a new secret (an old one stops working); returns the secret, shown once."""
    if deployment.is_deleted:
        raise InvalidState("a deleted deployment has no webhook")
    secret = secrets.token_hex(32)
    transactions.save_fields(deployment, webhook_secret_encrypted=envvars.seal(secret))
    return secret


def disable(deployment):
    transactions.save_fields(deployment, webhook_secret_encrypted=None)


def _repository_of(url):
    match = GITHUB_URL_RE.fullmatch(url or "")
    return f"{match.group('owner')}/{match.group('repo')}".lower() if match else None


def _verified_deployment(deployment_id, signature, body):
    """The deployment whose secret signed body; Unauthorized, with the same words, for every other case
    (unknown id, deleted, webhook off, bad signature), so ids cannot be probed."""
    deployment = Deployment.get_by_id(deployment_id)
    if deployment is None or deployment.is_deleted or not deployment.webhook_secret_encrypted:
        raise Unauthorized(BAD_SIGNATURE)
    owner = db.session.get(User, deployment.user_id) if deployment.user_id else None
    if owner is not None and not owner.is_active:
        raise Unauthorized(BAD_SIGNATURE)  # a disabled user's deployments take no pushes
    try:
        secret = envvars.unseal(deployment.webhook_secret_encrypted).encode()
    except envvars.SecretsUnavailable:
        raise Unauthorized(BAD_SIGNATURE) from None  # the same answer: nothing about the deployment leaks
    expected = ("sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()).encode()
    if not hmac.compare_digest(expected, (signature or "").encode("utf-8", "replace")):
        raise Unauthorized(BAD_SIGNATURE)
    return deployment


def _payload(body, content_type):
    """The delivery's JSON object, read by the same strict parser as every API body (400 when malformed)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            body = parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0]
        except (ValueError, KeyError, IndexError):
            raise MalformedJson("the form-encoded delivery has no payload field") from None
    return parse_json_object(body)


def receive(deployment_id, *, event, delivery, signature, body, content_type, proxmox):
    """Handle one GitHub delivery (the signature is checked before anything else is looked at)."""
    deployment = _verified_deployment(deployment_id, signature, body)
    if not DELIVERY_RE.fullmatch(delivery or ""):
        raise ValidationFailed("X-GitHub-Delivery is missing or malformed", fields={"X-GitHub-Delivery": "required"})
    if not EVENT_RE.fullmatch(event or ""):
        raise ValidationFailed("X-GitHub-Event is missing or malformed", fields={"X-GitHub-Event": "required"})
    record = GithubDelivery(delivery_id=delivery, deployment_id=deployment.id, event=event)
    db.session.add(record)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return Receipt("duplicate", f"delivery {delivery} was handled already")
    receipt = _decide(deployment, event, body, content_type)
    record.outcome = f"{receipt.status}: {receipt.message}"[:255]
    receipt.deployment = deployment
    if receipt.status == "deploying":
        record.outcome = f"deploying: commit {receipt.commit}"
        # request_redeploy commits the release together with the delivery's record.
        try:
            receipt.release, receipt.job = releases.request_redeploy(deployment, commit=receipt.commit, proxmox=proxmox)
        except InvalidState as exc:
            # Busy (deploying, provisioning) or stopped: a passing state. Nothing is recorded, so the
            # delivery can be redelivered from GitHub once the deployment is running again.
            db.session.rollback()
            raise Conflict(f"not deployed now: {exc.message}; redeliver the push once it is running",
                           code="deployment_busy") from None
        receipt.message = f"release {receipt.release.version} of {deployment.name} queued"
        receipt.http_status = 202
        return receipt
    transactions.commit()
    return receipt


def _decide(deployment, event, body, content_type):
    if event == "ping":
        return Receipt("pong", "webhook reached the platform")
    if event != "push":
        return Receipt("ignored", f"{event} events are not used")
    payload = _payload(body, content_type)
    repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    pushed = {_repository_of(repository.get(key)) for key in ("html_url", "clone_url", "url")}
    if isinstance(repository.get("full_name"), str):
        pushed.add(repository["full_name"].lower())
    if _repository_of(deployment.github_url) not in pushed:
        return Receipt("ignored", "the push is to another repository")
    if payload.get("ref") != f"refs/heads/{deployment.branch}":
        return Receipt("ignored", f"the push is not to branch {deployment.branch}")
    if payload.get("deleted"):
        return Receipt("ignored", "the branch was deleted")
    after = payload.get("after")
    try:
        commit = check_commit(after) if isinstance(after, str) else None
    except ValueError:
        commit = None
    if commit is None or set(commit) == {"0"}:
        return Receipt("ignored", "the push names no commit")
    if _already_deploying(deployment, commit):
        # The signature covers the body only: a replayed body with a new delivery id must not rebuild.
        return Receipt("ignored", f"commit {commit[:12]} is already queued, building or live")
    return Receipt("deploying", "", commit=commit)


def _already_deploying(deployment, commit):
    latest = next(iter(Release.for_deployment(deployment.id)), None)
    return latest is not None and latest.status in ("queued", "building", "live") and commit in (
        latest.requested_commit, latest.commit_sha)
