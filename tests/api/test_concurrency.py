"""Races decided by the database, through a real HTTP server on loopback."""
import threading

from backend.models import Deployment
from tests.helpers.accounts import admin_token
from tests.helpers.api import deployment_payload
from tests.helpers.network import call_api, serving

CLIENTS = 20


def test_twenty_concurrent_creates_of_one_name_make_one_row(app):
    start = threading.Barrier(CLIENTS)
    results = []
    token = admin_token(app)
    with serving(app) as base:

        def create(i):
            start.wait(timeout=30)
            body = deployment_payload(name="contested", tags=[f"client-{i}"])
            results.append(call_api(base, "POST", "/deployments", body, token, timeout=30))

        workers = [threading.Thread(target=create, args=(i,)) for i in range(CLIENTS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CLIENTS - 1), results
    assert all(body["error"]["code"] == "name_taken" for status, body in results if status == 409)
    assert Deployment.count_all(include_deleted=True) == 1
