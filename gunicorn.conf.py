"""gunicorn's settings, read by `gunicorn wsgi:app` from this folder (the compose api service and the Dockerfile).

HOST and PORT say where to listen, as for `python app.py` (127.0.0.1:5000 unless set; the containers set
HOST=0.0.0.0); WEB_CONCURRENCY how many workers (2); from the environment or .env, like every setting.
Each worker, once it is serving, starts the in-process job pool with its recovery and sweeper; several
workers (and hosts) may run recovery at once, as a job acts only under its deployment's lease. With
Celery the worker recovers and sweeps, and the api only sends jobs: nothing is started here.
"""
import os
from pathlib import Path

from dotenv import load_dotenv

from backend.platform import EXTENSION

load_dotenv(Path(__file__).resolve().parent / ".env")

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Live streams (Server-Sent Events) hold a request open: every open dashboard page holds one (its statuses), two
# while a build log follows, and `paas logs -f` one. Threads keep other requests answered meanwhile; an idle
# stream's thread sleeps between its polls, so many are cheap: 32 a worker serve some thirty people at once.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
timeout = 60
graceful_timeout = 30
accesslog = "-"


def _jobs(worker):
    """The job backend of the app this worker serves (None before it is loaded)."""
    app = getattr(worker, "wsgi", None)
    platform = getattr(app, "extensions", {}).get(EXTENSION)
    return platform.jobs if platform is not None else None


def post_worker_init(worker):
    """The serving process starts the background jobs (never an import, never a CLI command)."""
    jobs = _jobs(worker)
    if jobs is not None and jobs.name != "celery":
        jobs.start()


def worker_exit(server, worker):
    """Stop this worker's pool and sweeper, letting running jobs end (their lease hands them on otherwise)."""
    jobs = _jobs(worker)
    if jobs is not None:
        jobs.shutdown(wait=False)
