"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Unlike a bare create_app(), it starts the background jobs: the in-process pool resumes what an
earlier process left unfinished (with Celery, the worker does that and this only sends jobs).
"""
from app import create_app

app = create_app()
app.extensions["jobs"].start()
