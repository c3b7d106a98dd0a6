"""`paas` for names, snapshots and backups, against a live platform in simulation mode (sandbox guests; the fake
Proxmox keeps snapshots and archives as records, and ROUTER=none)."""
import pytest

from tests.cli.test_cli import SAMPLE
from tests.helpers.simulation_server import running_simulation

pytestmark = pytest.mark.slow  # a live server, real git, pip and gunicorn processes


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """As conftest's, with a short health check: a sandbox guest restored from a backup has no app files, and its
    restore fails once the check gives up."""
    with running_simulation(tmp_path_factory.mktemp("simulation"), RATELIMIT_LOGIN="60 per minute",
                            HEALTH_CHECK_TIMEOUT="10") as platform:
        yield platform


def test_no_router_is_the_apis_409(logged_in):
    paas = logged_in
    assert paas("create", "cli-names", "--repo", SAMPLE, "--no-follow").code == 0
    for args in (("domains", "cli-names"), ("domains:add", "cli-names", "www.example.org"),
                 ("access-log", "cli-names", "--lines", "5"), ("domains", "cli-names", "--json")):
        refused = paas(*args)
        assert refused.code == 1 and refused.out == "", (args, refused.out)
        assert refused.err.startswith("error: no router is configured (ROUTER=none)") and "request id" in refused.err
    assert paas("access-log", "cli-names", "--lines", "0").code == 2
    assert paas("destroy", "cli-names", "--confirm", "cli-names").code == 0


def test_snapshots_backups_and_restores(logged_in):
    paas = logged_in
    assert paas("create", "cli-saved", "--repo", SAMPLE, "--health-path", "/health").code == 0

    # A backup, waited for; then listed as a table and as the API's JSON.
    made = paas("backups:create", "cli-saved", "--wait")
    assert made.code == 0 and made.out.startswith("Backup ") and " is done: " in made.out
    assert ":backup/vzdump-lxc-" in made.out
    listed = paas("backups", "cli-saved", "--json").json()
    assert listed["storage_checked"] is True
    [backup] = listed["backups"]
    assert backup["state"] == "ok" and backup["release_version"] == 1 and backup["volid"] in made.out
    assert set(backup) >= {"id", "volid", "size", "created_at", "finished_at", "state", "error", "trigger"}
    table = paas("backups", "cli-saved").out.splitlines()
    assert table[0].split() == ["ID", "STATE", "SIZE", "CREATED", "RELEASE", "VOLID", "/", "ERROR"]
    assert table[1].split()[:2] == [backup["id"][:8], "ok"] and table[1].split()[-1] == backup["volid"]

    # Snapshots on: release 2 snapshots the guest as release 1 left it; restore goes back to it.
    assert paas("releases", "cli-saved").out.split("\n")[0].split() == [
        "VERSION", "STATUS", "REASON", "BRANCH", "COMMIT", "CREATED", "ERROR"]  # no snapshot yet, no column
    assert "as the platform's default" in paas("snapshots", "cli-saved").out
    assert paas("snapshots", "cli-saved", "on").out.strip() == "cli-saved: snapshots on (before each release)."
    info = paas("info", "cli-saved").out
    assert "snapshots: " in info and "on (before each release)" in info and "no schedule" in info
    assert paas("backups:schedule", "cli-saved", "0 3 * * *", "--keep-last", "5").out.strip() == \
        "cli-saved: backups at 0 3 * * * (cron, UTC); keep last 5."
    settings = paas("info", "cli-saved", "--json").json()
    assert (settings["snapshot_before_release"], settings["backup_schedule"], settings["backup_keep_last"]) == \
        (True, "0 3 * * *", 5)
    assert "no schedule" in paas("backups:schedule", "cli-saved", "off").out
    bad_cron = paas("backups:schedule", "cli-saved", "every day")
    assert bad_cron.code == 1 and "backup_schedule:" in bad_cron.err

    assert paas("deploy", "cli-saved").code == 0
    releases = {r["version"]: r["snapshot"] for r in paas("releases", "cli-saved", "--json").json()["releases"]}
    assert releases == {2: None, 1: "paas_release_1"}
    table = paas("releases", "cli-saved").out.splitlines()
    assert "SNAPSHOT" in table[0].split() and "paas_release_1" in table[2].split()

    restored = paas("restore", "cli-saved", "1")
    assert restored.code == 0, restored.err
    assert "cli-saved is running release 1 again, restored from paas_release_1." in restored.out
    after = paas("info", "cli-saved", "--json").json()
    assert after["status"] == "running" and after["live_release"] == 1
    no_snapshot = paas("restore", "cli-saved", "2")
    assert no_snapshot.code == 1 and no_snapshot.err.startswith("error: release 2 has no snapshot")

    # Into a new deployment, on the node that holds the archive (the simulation's BACKUP_STORAGE is each node's
    # own "local"): a sandbox guest restored by the fake has no app files, so its app never answers.
    short = backup["id"][:8]
    copy = paas("backups:restore", "cli-saved", short, "--name", "cli-saved-copy", "--node", after["node"])
    assert copy.code == 1, copy.err
    assert f"Restoring backup {short} of cli-saved into cli-saved-copy on {after['node']}" in copy.out
    assert copy.err.startswith("cli-saved-copy is failed: ") and "the restored app did not answer" in copy.err
    assert paas("info", "cli-saved-copy", "--json").json()["status"] == "failed"

    assert paas("backups:delete", "cli-saved", short).out.strip() == f"Deleted backup {short} of cli-saved."
    assert paas("backups", "cli-saved", "--json").json()["backups"] == []
    assert paas("backups", "cli-saved").out.strip() == "no backups yet: paas backups:create cli-saved"

    # Bad input: the API's words (or click's usage error), never a traceback.
    unknown = paas("backups", "nope")
    assert unknown.code == 1 and unknown.err.startswith("error: no deployment 'nope'")
    assert paas("backups:create", "nope", "--wait").code == 1
    gone = paas("backups:delete", "cli-saved", short)
    assert gone.code == 1 and gone.err.startswith(f"error: cli-saved has no backup '{short}'")
    assert paas("backups:restore", "cli-saved", "zz", "--name", "x-copy").err.startswith(
        "error: cli-saved has no backup 'zz'")
    missing = paas("backups:restore", "cli-saved", short)
    assert missing.code == 2 and "Missing option '--name'" in missing.err
    assert paas("restore", "cli-saved", "0").code == 2
    assert paas("restore", "nope", "1").err.startswith("error: no deployment 'nope'")
    for app in ("cli-saved-copy", "cli-saved"):
        assert paas("destroy", app, "--confirm", app).code == 0
    for command in ("domains", "domains:add", "domains:remove", "access-log", "snapshots", "restore", "backups",
                    "backups:create", "backups:delete", "backups:restore", "backups:schedule"):
        assert paas(command, "--help").code == 0, command
