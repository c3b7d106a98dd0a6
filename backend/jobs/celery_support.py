"""Celery for the jobs: the app, its configuration and the one task that runs them.

Messages are acknowledged late, after the job ended: a worker killed mid-job leaves its message
unacknowledged, and the broker hands it out again (immediately when only a pool process died,
after CELERY_VISIBILITY_TIMEOUT seconds when the whole worker did). The job's lease and its
find-the-guest-by-tag start make that second run safe.
"""
import logging

from celery import Celery

from backend.jobs.runner import MAX_RESCHEDULES, Retry, execute

log = logging.getLogger(__name__)


def make_celery(app):
    """A Celery app for the Flask app's configuration, with the one task that runs jobs."""
    celery = Celery("paas", broker=app.config["CELERY_BROKER_URL"], set_as_current=False)
    limit = app.config["JOB_TIME_LIMIT"]
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=app.config["CELERY_QUEUE"],
        # The job stops itself at its limit; the hard limit is the backstop for a stuck call.
        # Margins above the cleanup budget a failing job gives itself (provisioning.CLEANUP_SECONDS).
        task_soft_time_limit=limit + 240,
        task_time_limit=limit + 300,
        broker_transport_options={"visibility_timeout": app.config["CELERY_VISIBILITY_TIMEOUT"]},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @celery.task(name="paas.run_job", bind=True, max_retries=None)
    def run_job(task, kind, deployment_id):
        try:
            status = execute(app, kind, deployment_id)
            return status.value if status is not None else None
        except Retry as retry:
            if task.request.retries >= MAX_RESCHEDULES:
                log.error("%s of %s gave up waiting for the lease", kind, deployment_id)
                return None
            raise task.retry(countdown=retry.seconds) from None

    celery.flask_app = app
    return celery


