"""The Deployment model on every engine: lifecycle, database-enforced uniqueness, queries."""
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app import db
from backend.errors import IllegalTransition
from backend.models import ALLOWED_TRANSITIONS, Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.schemas.deployments import DeploymentRecord


def add(name="web-app", status=DeploymentStatus.PENDING, deployment_type="lxc", **fields):
    deployment = Deployment(
        name=name, deployment_type=deployment_type, framework="flask",
        github_url="https://github.com/acme/web", resources={"cores": 1, "memory": 512, "disk": 8},
        status=status, **{"tags": [], **fields},
    )
    db.session.add(deployment)
    db.session.commit()
    return deployment


def test_every_status_has_a_row_in_the_transition_table():
    assert set(ALLOWED_TRANSITIONS) == set(DeploymentStatus)
    assert ALLOWED_TRANSITIONS[DeploymentStatus.DELETED] == set()


def test_status_values_are_lowercase_words():
    assert [s.value for s in DeploymentStatus] == [
        "pending", "provisioning", "deploying", "running", "stopped", "failed", "deleting", "deleted"]


@pytest.mark.parametrize("current,target", [
    (DeploymentStatus.PENDING, DeploymentStatus.RUNNING), (DeploymentStatus.DELETED, DeploymentStatus.RUNNING),
    (DeploymentStatus.DELETED, DeploymentStatus.PENDING), (DeploymentStatus.RUNNING, DeploymentStatus.PENDING),
    (DeploymentStatus.STOPPED, DeploymentStatus.PROVISIONING), (DeploymentStatus.DELETING, DeploymentStatus.RUNNING),
])
def test_an_illegal_transition_raises_a_domain_error(app, current, target):
    deployment = add(status=current)
    with pytest.raises(IllegalTransition) as info:
        deployment.transition_to(target)
    assert info.value.status == 409
    assert f"{current.value} -> {target.value}" in info.value.fields["status"]


def test_the_happy_path_stamps_deployed_at_and_clears_the_error(app):
    deployment = add(error_message="old failure")
    for target in (DeploymentStatus.PROVISIONING, DeploymentStatus.DEPLOYING, DeploymentStatus.RUNNING):
        deployment.transition_to(target)
    db.session.commit()
    db.session.expire_all()
    assert deployment.status is DeploymentStatus.RUNNING
    assert deployment.deployed_at is not None and deployment.deployed_at.tzinfo == UTC
    assert deployment.error_message is None


def test_failing_records_the_message(app):
    deployment = add()
    deployment.transition_to(DeploymentStatus.FAILED, "provision: storage full")
    db.session.commit()
    assert Deployment.get_by_id(deployment.id).error_message == "provision: storage full"


def test_deleting_keeps_the_row_and_frees_the_name(app):
    first = add(name="reused")
    first.transition_to(DeploymentStatus.DELETING)
    first.transition_to(DeploymentStatus.DELETED)
    db.session.commit()
    assert first.deleted_at is not None
    second = add(name="reused")
    assert Deployment.get_by_name("reused").id == second.id
    assert Deployment.count_all() == 1
    assert Deployment.count_all(include_deleted=True) == 2


def test_the_database_refuses_two_live_deployments_with_one_name(app):
    add(name="twice")
    with pytest.raises(IntegrityError):
        add(name="twice")
    db.session.rollback()


def test_the_database_refuses_a_second_live_guest_with_the_same_vm_id(app):
    add(name="first", vm_id=120)
    with pytest.raises(IntegrityError):
        add(name="second", vm_id=120)
    db.session.rollback()


def test_a_deleted_deployments_vm_id_can_be_handed_out_again(app):
    """Proxmox reuses the VMIDs of destroyed guests."""
    first = add(name="first", vm_id=121)
    first.transition_to(DeploymentStatus.DELETING)
    first.transition_to(DeploymentStatus.DELETED)
    db.session.commit()
    second = add(name="second", vm_id=121)
    assert Deployment.get_by_id(first.id).vm_id == Deployment.get_by_id(second.id).vm_id == 121


def test_a_stale_copy_cannot_overwrite_a_newer_version(app, database_url):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    deployment = add()
    assert deployment.version == 1
    engine = create_engine(database_url)
    try:
        with Session(engine) as other:
            other.get(Deployment, deployment.id).tags = ["from-elsewhere"]
            other.commit()
    finally:
        engine.dispose()
    deployment.tags = ["mine"]
    with pytest.raises(StaleDataError):
        db.session.commit()
    db.session.rollback()
    assert Deployment.get_by_id(deployment.id).tags == ["from-elsewhere"]
    assert Deployment.get_by_id(deployment.id).version == 2


def test_class_method_queries(app):
    running = add(name="run-one", status=DeploymentStatus.RUNNING)
    add(name="run-two", status=DeploymentStatus.RUNNING, deployment_type="vm")
    add(name="waiting")
    gone = add(name="gone", status=DeploymentStatus.DELETED, deleted_at=utcnow())

    assert Deployment.get_by_id(running.id).name == "run-one"
    assert Deployment.get_by_id(str(running.id)).name == "run-one"
    assert Deployment.get_by_id("not-a-uuid") is None
    assert Deployment.get_by_id(uuid.uuid4()) is None
    assert Deployment.get_by_name("gone") is None
    assert Deployment.get_by_id(gone.id).is_deleted
    assert {d.name for d in Deployment.get_all()} == {"run-one", "run-two", "waiting"}
    assert len(Deployment.get_all(include_deleted=True)) == 4
    assert {d.name for d in Deployment.get_by_status("running")} == {"run-one", "run-two"}
    assert Deployment.count_by_status(DeploymentStatus.RUNNING) == 2
    assert Deployment.count_all() == 3
    breakdown = Deployment.status_breakdown()
    assert breakdown == {**{s.value: 0 for s in DeploymentStatus}, "running": 2, "pending": 1, "deleted": 1}
    assert Deployment.type_breakdown() == {"lxc": 2, "vm": 1}


def test_timestamps_keep_microseconds_and_utc(app):
    deployment = add()
    created = deployment.created_at
    db.session.expire_all()
    loaded = Deployment.get_by_id(deployment.id)
    assert loaded.created_at == created
    assert loaded.created_at.tzinfo == UTC


def test_to_dict_has_every_field_of_the_design(app):
    data = add(tags=["web"]).to_dict()
    assert set(data) >= {
        "id", "name", "deployment_type", "framework", "github_url", "branch", "resources", "status",
        "created_at", "updated_at", "deployed_at", "deleted_at", "ip_address", "vm_id", "node",
        "error_message", "user_id", "tags", "version"}
    assert data["status"] == "pending" and data["branch"] == "main"
    assert data["created_at"].endswith("Z")


def test_to_dict_is_the_dump_of_its_output_schema(app):
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = add(created_at=whole, deployed_at=whole.replace(microsecond=7)).to_dict()
    assert list(data) == list(DeploymentRecord.model_fields)
    assert data["created_at"] == "2026-01-02T03:04:05Z"
    assert data["deployed_at"] == "2026-01-02T03:04:05.000007Z"
    assert data["id"] == str(uuid.UUID(data["id"])) and data["user_id"] is None and data["deleted_at"] is None
    assert data["env"] == {} and data["webhook_enabled"] is False and data["notification_url"] is None
