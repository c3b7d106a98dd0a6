"""Races decided by the database, through a real HTTP server on loopback."""
import json
import threading
import urllib.error
import urllib.request

from werkzeug.serving import make_server

from backend.models import Deployment
from tests.helpers.accounts import admin_token
from tests.helpers.api import deployment_payload

CLIENTS = 20


def post_json(url, body, token):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_twenty_concurrent_creates_of_one_name_make_one_row(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/deployments"
    start = threading.Barrier(CLIENTS)
    results = []
    token = admin_token(app)

    def create(i):
        start.wait(timeout=30)
        results.append(post_json(url, deployment_payload(name="contested", tags=[f"client-{i}"]), token))

    workers = [threading.Thread(target=create, args=(i,)) for i in range(CLIENTS)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        server.shutdown()
        thread.join(timeout=10)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CLIENTS - 1), results
    assert all(body["error"]["code"] == "name_taken" for status, body in results if status == 409)
    assert Deployment.count_all(include_deleted=True) == 1
