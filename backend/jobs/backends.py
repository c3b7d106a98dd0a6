"""Where jobs run: one interface (submit, start, shutdown), three backends running execute().

- thread (the default): a bounded pool of worker threads inside the API process;
- celery: when CELERY_BROKER_URL is set; `celery -A backend.jobs.celery_app worker` runs them;
- manual: jobs wait in a list until run_pending() (tests, and scripts that want control).
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from backend.jobs.recovery import recover_when_ready, start_sweeper
from backend.jobs.runner import JOB_KINDS, MAX_RESCHEDULES, Retry, execute

log = logging.getLogger(__name__)


class ThreadJobs:
    """A bounded pool of threads in this process."""

    name = "thread"

    def __init__(self, app, workers):
        self.app = app
        self.workers = workers
        self._executor = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._sweeper = None
        self.recovery_timer = None  # set while recovery waits for the database
        self.stopped = False

    def _pool(self):
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="paas-job")
            return self._executor

    def submit(self, kind, deployment_id, delay=0.0, _attempt=0):
        with self._lock:
            self._pending += 1
        if delay > 0:
            timer = threading.Timer(delay, self._enqueue, args=(kind, deployment_id, _attempt))
            timer.daemon = True
            timer.start()
        else:
            self._enqueue(kind, deployment_id, _attempt)

    def _enqueue(self, kind, deployment_id, attempt):
        try:
            self._pool().submit(self._run, kind, deployment_id, attempt)
        except RuntimeError:  # the pool was shut down
            self._done()

    def _run(self, kind, deployment_id, attempt):
        try:
            execute(self.app, kind, deployment_id)
        except Retry as retry:
            if attempt < MAX_RESCHEDULES:
                self.submit(kind, deployment_id, delay=retry.seconds, _attempt=attempt + 1)
            else:
                log.error("%s of %s gave up waiting for the lease", kind, deployment_id)
        except Exception:
            log.exception("%s of %s crashed", kind, deployment_id)
        finally:
            self._done()

    def _done(self):
        with self._lock:
            self._pending -= 1
            self._idle.notify_all()

    def start(self):
        """Start the pool, resume what an earlier process left unfinished, and sweep from now on."""
        self._pool()
        queued = recover_when_ready(self.app, self)
        if self._sweeper is None:
            self._sweeper = start_sweeper(self.app, self)
        return queued

    def wait_idle(self, timeout):
        """Block until no job is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)


class ManualJobs:
    """Jobs wait until run_pending(); nothing runs behind the caller's back."""

    name = "manual"

    def __init__(self, app):
        self.app = app
        self.queue = []
        self.delayed = []  # (due on the monotonic clock, kind, deployment id)
        self.recovery_timer = None
        self.stopped = False

    def submit(self, kind, deployment_id, delay=0.0):
        if delay and delay > 0:
            self.delayed.append((time.monotonic() + delay, kind, deployment_id))
        else:
            self.queue.append((kind, deployment_id))

    def _due(self):
        now = time.monotonic()
        due = [job for job in self.delayed if job[0] <= now]
        self.delayed = [job for job in self.delayed if job[0] > now]
        self.queue.extend((kind, deployment_id) for _, kind, deployment_id in sorted(due, key=lambda j: j[0]))

    def run_pending(self):
        """Run queued jobs (and those they queue) in order; returns their final statuses.

        Delayed jobs run once their time has come; those still waiting stay queued.
        """
        results = []
        self._due()
        while self.queue:
            kind, deployment_id = self.queue.pop(0)
            result = execute(self.app, kind, deployment_id)
            if kind != "notify":
                results.append(result)
            self._due()
        return results

    def start(self):
        return recover_when_ready(self.app, self)

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()
        self.queue.clear()


class CeleryJobs:
    """Jobs go to Celery through the broker; workers run execute()."""

    name = "celery"

    def __init__(self, app, celery):
        self.app = app
        self.celery = celery
        self.recovery_timer = None
        self.stopped = False

    def submit(self, kind, deployment_id, delay=0.0):
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        self.celery.send_task("paas.run_job", args=[kind, str(deployment_id)],
                              countdown=delay or None, queue=self.app.config["CELERY_QUEUE"])

    def start(self):
        """In a worker: resume what was left mid-way, and sweep from now on."""
        queued = recover_when_ready(self.app, self)
        start_sweeper(self.app, self)
        return queued

    def shutdown(self, wait=True):
        self.stopped = True
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()


def build_jobs(app):
    """The backend the configuration asks for: celery when a broker is set, else JOBS_BACKEND."""
    backend = app.config.get("JOBS_BACKEND") or ("celery" if app.config.get("CELERY_BROKER_URL") else "thread")
    if backend == "celery":
        from backend.jobs.celery_support import make_celery  # noqa: PLC0415 - Celery only where it is used

        return CeleryJobs(app, make_celery(app))
    if backend == "manual":
        return ManualJobs(app)
    if backend == "thread":
        return ThreadJobs(app, app.config["JOB_WORKERS"])
    raise ValueError(f"JOBS_BACKEND must be thread, celery or manual, not {backend!r}")
