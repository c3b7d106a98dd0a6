"""The Celery worker's entry point: `celery -A backend.jobs.celery_app worker --loglevel=INFO`.

It builds the Flask app from the environment (CELERY_BROKER_URL must be set) and, when the worker
is ready, queues a job for every deployment left mid-way. The API process never imports this module.
"""
import logging

from celery import signals

from app import create_app
from backend.extensions import db
from backend.platform import platform_of

log = logging.getLogger(__name__)


def _worker_app():
    flask_app = create_app(JOBS_BACKEND="celery")
    if not flask_app.config.get("CELERY_BROKER_URL"):
        raise RuntimeError("CELERY_BROKER_URL is not set: the Celery worker needs a broker (e.g. redis://localhost:6379/0)")
    return flask_app


flask_app = _worker_app()
celery = platform_of(flask_app).jobs.celery


@signals.worker_process_init.connect
def _fresh_connections(**kwargs):
    """A forked pool process must not share the parent's database connections."""
    with flask_app.app_context():
        db.engine.dispose(close=False)


@signals.worker_ready.connect
def _recover_on_start(sender=None, **kwargs):
    """Deployments a dead worker left in provisioning or deleting get a job again."""
    queued = platform_of(flask_app).jobs.start()
    log.info("worker ready; recovery queued %d deployment(s)", len(queued))
