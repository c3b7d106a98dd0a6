"""snapshot_before_release on a guest whose disk is on a storage that cannot snapshot: 409 naming the storage."""
import pytest

from backend.platform import platform_of
from backend.simulation.fake_proxmox import FakeProxmox, Node
from backend.simulation.fake_proxmox.model import Storage
from tests.helpers.api import create_deployment, error_of, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, proxmox_settings_for


@pytest.mark.parametrize("storage_type,refused", [("lvm", True), ("lvmthin", False)])
def test_snapshots_are_refused_where_the_guests_storage_cannot_take_them(database_url, storage_type, refused):
    storages = [Storage("local", type="dir", content="iso,vztmpl,backup"),
                Storage("guests", type=storage_type, content="images,rootdir")]
    with FakeProxmox(nodes=[Node("pve1")], storages=storages, task_seconds=0.02) as fake:
        app = app_on_fake_proxmox(database_url, fake, settings=proxmox_settings_for(fake, storage="guests"))
        client = app.test_client()
        try:
            ident = create_deployment(client, name="thick")["id"]
            assert wait_for_status(client, ident, {"running", "failed"})["status"] == "running"
            answer = client.patch(f"/api/deployments/{ident}", json={"snapshot_before_release": True})
            if refused:
                assert answer.status_code == 409
                error = error_of(answer)
                assert error["code"] == "snapshot_unsupported" and "storage 'guests' (lvm)" in error["message"]
                deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
                assert deployment["snapshot_before_release"] is None  # nothing changed
            else:
                assert answer.status_code == 200
                assert answer.get_json()["deployment"]["snapshot_before_release"] is True
        finally:
            platform_of(app).jobs.wait_idle(30)
            platform_of(app).jobs.shutdown()
        fake.assert_no_violations()
