"""Run schemathesis against the API: a throwaway SQLite database, a server on loopback, an admin token.

    .venv/bin/python .ci/schemathesis_run.py .venv-security/bin/schemathesis

Checks: no 5xx, and every response (status code, content type, headers, body) matches the OpenAPI
document. Proxmox is the simulation's fake cluster (so /api/nodes and live status answer); jobs are
queued and never run (the testing configuration).
"""
import subprocess  # nosec B404 - runs the schemathesis CLI with an argument list
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade
from werkzeug.serving import make_server

from app import create_app, db
from backend.services import accounts
from backend.simulation.runtime import start_fake

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def main(argv):
    schemathesis = argv[0] if argv else "schemathesis"
    max_examples = argv[1] if len(argv) > 1 else "30"
    fake, settings = start_fake(task_seconds=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/schemathesis.db",
                         PROXMOX_SETTINGS=settings)
        with app.app_context():
            upgrade()
            user = accounts.create_user("schemathesis", "admin")
            token, _ = accounts.issue_token(user, "schemathesis")
            db.session.remove()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            command = [schemathesis, "run", f"http://127.0.0.1:{server.server_port}/api/openapi.json",
                       "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
                       "--max-examples", max_examples, "--request-timeout", "20", "--seed", "20261121",
                       "--continue-on-failure"]
            return subprocess.run(command, timeout=1200, check=False).returncode  # nosec B603
        finally:
            server.shutdown()
            thread.join(timeout=10)
            fake.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
