"""GitHub push-to-deploy (POST /api/webhooks/github/<id>) and outbound notifications of a deployment."""
from urllib.parse import urlsplit

from flask import current_app, request, url_for
from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action, client_address
from backend.api.deployments import enqueue, find
from backend.api.spec import spec
from backend.platform import platform_of
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.webhooks import (
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    NotificationTargetIn,
    NotificationTargetOut,
    WebhookOut,
    WebhookReceipt,
)
from backend.services import audit, notifications, webhooks

TAGS = ["webhooks"]
GITHUB_EVENTS = ["push"]


def _webhook_out(deployment, secret=None):
    return {"success": True, "enabled": deployment.webhook_enabled,
            "url": url_for("api.github_webhook", deployment_id=str(deployment.id), _external=True),
            "secret": secret, "events": GITHUB_EVENTS}


@api_bp.get("/deployments/<ident>/webhook")
@spec.validate(resp=Response(HTTP_200=WebhookOut, HTTP_404=ErrorResponse), tags=TAGS)
def get_webhook(ident):
    """Whether push-to-deploy is on, and the payload URL to give GitHub (never the secret)."""
    return _webhook_out(find(ident))


@api_bp.post("/deployments/<ident>/webhook")
@spec.validate(resp=Response(HTTP_201=WebhookOut, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def enable_webhook(ident):
    """Turn push-to-deploy on with a new secret, shown in this answer only (an earlier secret stops working).

    In GitHub: Settings > Webhooks > Add webhook, payload URL and secret from here, content type
    application/json, the push event.
    """
    deployment = find(ident)
    secret = webhooks.enable(deployment)
    audit_action("deployment.webhook.enable", deployment)
    return _webhook_out(deployment, secret), 201


@api_bp.delete("/deployments/<ident>/webhook")
@spec.validate(resp=Response(HTTP_200=WebhookOut, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def disable_webhook(ident):
    deployment = find(ident)
    webhooks.disable(deployment)
    audit_action("deployment.webhook.disable", deployment)
    return _webhook_out(deployment)


@api_bp.post("/webhooks/github/<deployment_id>")
@spec.validate(resp=Response(HTTP_200=WebhookReceipt, HTTP_202=WebhookReceipt, HTTP_401=ErrorResponse,
                             HTTP_409=ErrorResponse, HTTP_413=ErrorResponse, HTTP_422=ErrorResponse), tags=TAGS,
               security={})
def github_webhook(deployment_id):
    """GitHub deliveries: authenticated by X-Hub-Signature-256 (HMAC-SHA256 of the body with the secret).

    ping answers pong; a push to the deployment's repository and branch starts a release (202);
    other events and pushes answer 200 and are ignored; a delivery id seen before does nothing.
    """
    request.max_content_length = current_app.config["WEBHOOK_MAX_BYTES"]
    receipt = webhooks.receive(
        deployment_id,
        event=request.headers.get("X-GitHub-Event"),
        delivery=request.headers.get("X-GitHub-Delivery"),
        signature=request.headers.get("X-Hub-Signature-256"),
        body=request.get_data(cache=True),
        content_type=request.content_type or "",
        proxmox=platform_of().proxmox,
    )
    if receipt.status in ("deploying", "ignored") and receipt.deployment is not None:
        audit.record(f"webhook.{receipt.status}", deployment=receipt.deployment, ip_address=client_address(),
                     details={"delivery": request.headers.get("X-GitHub-Delivery"), "commit": receipt.commit,
                              "message": receipt.message})
    if receipt.job:
        enqueue(receipt.job, receipt.deployment)
    body = {"success": True, "status": receipt.status, "message": receipt.message,
            "release": receipt.release.version if receipt.release is not None else None}
    return body, receipt.http_status


# -- outbound -----------------------------------------------------------------------------------------


def _target_out(deployment, secret=None):
    return {"success": True, "url": deployment.notify_url, "secret": secret,
            "signature_header": notifications.SIGNATURE_HEADER}


@api_bp.get("/deployments/<ident>/notifications")
@spec.validate(resp=Response(HTTP_200=NotificationTargetOut, HTTP_404=ErrorResponse), tags=TAGS)
def get_notification_target(ident):
    return _target_out(find(ident))


@api_bp.put("/deployments/<ident>/notifications")
@spec.validate(resp=Response(HTTP_200=NotificationTargetOut, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_422=ErrorResponse), tags=TAGS)
def set_notification_target(ident, json: NotificationTargetIn):
    """Post every status change to this https URL as JSON, signed with HMAC-SHA256 in X-Paas-Signature-256.

    A new signing secret comes with every PUT, in this answer only.
    """
    deployment = find(ident)
    secret = notifications.set_target(deployment, json.url)
    # The host only: some receivers (Slack, Discord) carry their credential in the URL's path.
    audit_action("deployment.notifications.set", deployment, host=urlsplit(json.url).hostname)
    return _target_out(deployment, secret)


@api_bp.delete("/deployments/<ident>/notifications")
@spec.validate(resp=Response(HTTP_200=NotificationTargetOut, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse),
               tags=TAGS)
def clear_notification_target(ident):
    deployment = find(ident)
    notifications.clear_target(deployment)
    audit_action("deployment.notifications.clear", deployment)
    return _target_out(deployment)


@api_bp.get("/deployments/<ident>/deliveries")
@spec.validate(resp=Response(HTTP_200=DeliveryPage, HTTP_404=ErrorResponse), tags=TAGS)
def list_deliveries(ident, query: DeliveryQuery):
    """Outbound notifications, newest first: state, attempts, the last answer or error."""
    deployment = find(ident)
    rows, next_before = notifications.deliveries_page(deployment.id, before=query.before, limit=query.limit)
    return {"success": True, "deliveries": [dump(DeliveryOut, r) for r in rows], "next_before": next_before}
