"""The read-only cluster views a request uses (nodes, a guest's live status, a task's log), through the quick client."""
import pytest

from backend.extensions import db
from backend.models import Deployment
from backend.proxmox.errors import ProxmoxError
from backend.services import cluster
from backend.services.provisioning import provision


def test_nodes_live_status_and_task_logs_come_from_the_platforms_quick_client(new_deployment, job, platform,
                                                                             proxmox):
    ident = new_deployment(resources={"memory": 1024})
    provision(job(ident))
    deployment = db.session.get(Deployment, ident)

    nodes = {n["node"]: n for n in cluster.nodes(platform.proxmox)}
    assert nodes["pve2"]["free_memory_mb"] == 65536 - 1024 and nodes["pve1"]["free_memory_mb"] == 32768
    live = cluster.live_status(deployment, platform.proxmox)
    assert live["status"] == "running" and live["max_memory_mb"] == 1024
    upid = next(u for kind, _, u in events_with_upids(ident) if kind == "task")  # creating container 100
    assert cluster.task_log(upid, platform.proxmox)[0].startswith("extracting archive")


def events_with_upids(ident):
    from backend.models import DeploymentEvent

    found = [(e.kind, e.message, e.upid) for e in DeploymentEvent.for_deployment(ident)]
    db.session.remove()
    return found


def test_a_cluster_that_does_not_answer_is_said_in_words_a_user_may_read(new_deployment, job, platform, proxmox):
    ident = new_deployment()
    provision(job(ident))
    deployment = db.session.get(Deployment, ident)
    proxmox.fail_next("status", ProxmoxError("cannot reach Proxmox (ConnectTimeout)", transient=True))

    assert cluster.live_status(deployment, platform.proxmox) == {"error": "Proxmox did not answer"}
    proxmox.fail_next("status", ProxmoxError("Configuration file 'nodes/pve2/lxc/100.conf' does not exist",
                                             status=500))
    assert cluster.live_status(deployment, platform.proxmox) == {
        "error": "Configuration file 'nodes/pve2/lxc/100.conf' does not exist"}
    assert cluster.live_status(deployment, platform.proxmox)["status"] == "running"


def test_without_a_cluster_the_live_status_says_proxmox_is_not_configured(new_deployment, job, platform):
    ident = new_deployment()
    provision(job(ident))
    deployment = db.session.get(Deployment, ident)

    assert cluster.live_status(deployment, None) == {"error": cluster.NOT_CONFIGURED}
    with pytest.raises(ProxmoxError) as refused:
        cluster.nodes(None)
    assert cluster.public_message(refused.value) == cluster.NOT_CONFIGURED
