"""backend/schemas/: a leaf package, and the output schemas as the one JSON shape of the platform's rows."""
import pathlib
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from backend.schemas.common import SchemaMismatch, dump
from backend.schemas.events import EventOut
from backend.schemas.releases import LogLineOut
from backend.schemas.users import TokenOut
from backend.schemas.webhooks import DeliveryOut

WHOLE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_schemas_import_no_models_nor_anything_above_them():
    # The models serialise through the schemas, so the schemas must not need the models (nor api/, services/).
    code = ("import pkgutil, importlib, sys, backend.schemas as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module(f'backend.schemas.{m.name}')\n"
            "print(' '.join(sorted(n for n in sys.modules if n.startswith('backend.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=pathlib.Path(__file__).parents[1]).stdout.split()
    assert [name for name in loaded if name.split(".")[1] in ("models", "api", "services", "jobs", "deploy")] == []
    assert "backend.schemas.deployments" in loaded


def test_times_come_out_in_utc_with_z_and_microseconds_only_when_there_are_some():
    line = SimpleNamespace(id=1, release_version=2, created_at=WHOLE, stream="out", line="x")
    assert dump(LogLineOut, line) == {"id": 1, "release": 2, "time": "2026-01-02T03:04:05Z", "stream": "out",
                                      "line": "x"}
    event = SimpleNamespace(id=3, created_at=WHOLE.replace(microsecond=120000), kind="step", from_status=None,
                            to_status=None, message="m", upid=None)
    assert dump(EventOut, event)["time"] == "2026-01-02T03:04:05.120000Z"


def test_ids_read_as_uuids_come_out_as_text():
    token_id = uuid.uuid4()
    token = SimpleNamespace(id=token_id, name="ci", prefix="paas_abc", created_at=WHOLE, expires_at=None,
                            last_used_at=None, revoked_at=None)
    assert dump(TokenOut, token)["id"] == str(token_id)


def test_a_delivery_shows_its_next_attempt_only_while_pending():
    def delivery(state):
        return SimpleNamespace(id=1, event="deployment.status", url="https://example.com/hook", payload={"k": 1},
                               state=state, attempts=1, next_attempt_at=WHOLE, last_status=None, last_error=None,
                               created_at=WHOLE, delivered_at=None)

    assert dump(DeliveryOut, delivery("pending"))["next_attempt_at"] == "2026-01-02T03:04:05Z"
    assert dump(DeliveryOut, delivery("delivered"))["next_attempt_at"] is None
    assert dump(DeliveryOut, delivery("failed"))["next_attempt_at"] is None


def test_a_row_its_schema_refuses_is_the_platforms_error_and_its_message_quotes_no_value():
    token = SimpleNamespace(id=uuid.uuid4(), name=["s3cret"], prefix="paas_abc", created_at=WHOLE, expires_at=None,
                            last_used_at=None, revoked_at=None)
    with pytest.raises(SchemaMismatch) as info:
        dump(TokenOut, token)
    assert "TokenOut" in str(info.value) and "name" in str(info.value)
    assert "s3cret" not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
