"""A request that sets a field of a deployment is not refused because a job changed another one meanwhile."""
import uuid

from app import db
from backend.models import Deployment, DeploymentStatus
from backend.services import notifications, webhooks
from backend.services.lifecycle import apply, change_status


def test_enabling_the_webhook_survives_a_racing_status_change(app, make_deployment):
    ident = uuid.UUID(make_deployment(name="racy")["id"])
    deployment = db.session.get(Deployment, ident)
    version = deployment.version

    # A job moves the row on between the request's read and its write.
    apply(ident, lambda row: change_status(row, DeploymentStatus.FAILED, "a job's change"))
    deployment = db.session.get(Deployment, ident) if deployment not in db.session else deployment

    secret = webhooks.enable(deployment)
    apply(ident, lambda row: change_status(row, DeploymentStatus.DELETING, "another job's change"))
    notifications.clear_target(deployment)
    db.session.remove()
    row = db.session.get(Deployment, ident)
    assert row.webhook_enabled and len(secret) == 64 and row.notify_url is None
    assert row.status is DeploymentStatus.DELETING and row.version > version + 2  # the jobs' changes stay
