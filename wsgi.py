"""The WSGI entry point: `gunicorn wsgi:app` (settings in gunicorn.conf.py beside it).

Importing it only builds the app: the Flask CLI finds this file too (`flask db upgrade` must work on an
empty database), so nothing here starts background work. gunicorn starts the jobs in each worker once
it is serving (gunicorn.conf.py's post_worker_init); with Celery, the worker runs them.
"""
from app import create_app

app = create_app()
