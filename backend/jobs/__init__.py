"""Entry point: background jobs. A job is (kind, deployment id); services do its work.

runner.py runs one job under the deployment's lease; backends.py holds where jobs run (a thread pool,
Celery, or by hand); recovery.py resumes what a dead process left mid-way; outbox.py relays committed
notifications to the notify job; celery_app.py is the Celery worker's entry point.
"""
