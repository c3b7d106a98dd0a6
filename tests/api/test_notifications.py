from app import db
from backend.models import Deployment, DeploymentStatus, Notification

def test_explore(client, make_deployment, run_jobs, app):
    created = make_deployment()
    print(app.extensions["jobs"].queue)
    r = client.put(f"/api/deployments/{created['id']}/notifications", json={"url": "https://localhost:1/hook"})
    print(r.status_code, r.get_json())
    print(run_jobs())
    print(client.get(f"/api/deployments/{created['id']}").get_json()["deployment"]["status"])
    print(client.get(f"/api/deployments/{created['id']}/deliveries").get_json())
    print(app.extensions["jobs"].queue, app.extensions["jobs"].delayed)
    r = client.delete(f"/api/deployments/{created['id']}")
    print(r.status_code, app.extensions["jobs"].queue)
    print(run_jobs())
    print(client.get(f"/api/deployments/{created['id']}/deliveries").get_json())
