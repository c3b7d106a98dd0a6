"""Every `paas` command against a live platform in simulation mode, run as a user runs it."""
import os
import stat
import subprocess
import tomllib
from datetime import UTC, datetime

import pytest

from tests.cli.conftest import PAAS
from tests.helpers.network import fetch

pytestmark = pytest.mark.slow  # a live server, real git, pip and gunicorn processes

SAMPLE = "https://github.com/paas-examples/flask-hello"


def serves(url, text):
    status, body = fetch(url)
    return status == 200 and text in body


def test_login_with_a_token_keeps_it_private_and_contexts_switch(paas, platform):
    result = paas("login", "--url", platform.url, "--token", platform.token)
    assert result.code == 0 and "as admin (admin); context 127.0.0.1:" in result.out, result.err
    path = paas.home / "paas" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and platform.token in path.read_text()

    assert paas("login", "--url", platform.url + "/", "--token", platform.token, "--name", "lab").code == 0
    contexts = paas("context", "list", "--json").json()["contexts"]
    assert [(c["name"], c["current"]) for c in contexts] == [("127.0.0.1:" + platform.url.rsplit(":", 1)[1], False),
                                                              ("lab", True)]
    assert contexts[1]["url"] == platform.url  # the trailing slash is not kept
    assert paas("context", "use", contexts[0]["name"]).code == 0
    assert [c["current"] for c in paas("context", "list", "--json").json()["contexts"]] == [True, False]
    assert paas("--context", "lab", "apps").code == 0
    missing = paas("context", "use", "nowhere")
    assert missing.code == 1 and "no context 'nowhere' (known: 127.0.0.1:" in missing.err

    # PAAS_URL and PAAS_TOKEN override the file; a bad token is the API's words, on stderr, exit 1.
    refused = paas("apps", env={"PAAS_TOKEN": "paas_" + "x" * 43})
    assert refused.code == 1 and refused.out == "" and refused.err.startswith("error: ")
    assert "request id" in refused.err


def test_login_with_a_password_exchanges_it_for_a_named_token(paas, platform):
    if platform.password is None:
        pytest.fail("python app.py --simulate must write instance/simulation/admin-password")
    result = paas("login", "--url", platform.url, "--username", "admin", "--password-stdin",
                  stdin=platform.password + "\n")
    assert result.code == 0, result.err
    config = (paas.home / "paas" / "config.toml").read_text()
    assert platform.password not in config and "token" in config
    names = [t["name"] for t in paas("tokens", "--json").json()["tokens"]]
    assert any(name.startswith("paas-cli@") for name in names)
    wrong = paas("login", "--url", platform.url, "--username", "admin", "--password-stdin", stdin="wrong-password\n")
    assert wrong.code == 1 and "invalid username or password" in wrong.err


def test_an_app_from_create_to_destroy(logged_in, platform):
    paas = logged_in
    created = paas("create", "cli-hello", "--repo", SAMPLE, "--health-path", "/health", "--env", "GREETING=cli")
    assert created.code == 0, created.err
    assert "==> git clone https://github.com/paas-examples/flask-hello" in created.out
    assert "answered 200" in created.out and "cli-hello is running at http://127.77." in created.out
    url = created.out.rsplit("cli-hello is running at ", 1)[1].split()[0]
    assert serves(url, "cli from Flask")
    assert "\x1b[" not in created.out  # no colour into a pipe

    apps = paas("apps", "--json").json()["deployments"]
    assert [(a["name"], a["status"]) for a in apps] == [("cli-hello", "running")]
    table = paas("apps").out.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "TYPE", "FRAMEWORK", "RELEASE", "URL"]
    assert table[1].split() == ["cli-hello", "running", "lxc", "auto", "1", url]
    info = paas("info", "cli-hello", "--json").json()
    assert info["url"] == url and info["env"] == {"GREETING": "********"}
    assert "url:" in paas("info", "cli-hello").out and "GREETING" in paas("info", "cli-hello").out
    assert paas("open", "cli-hello").out.strip() == url

    deployed = paas("deploy", "cli-hello")
    assert deployed.code == 0 and "Release 2 of cli-hello is live." in deployed.out, deployed.err
    changed = paas("env:set", "cli-hello", "GREETING=again", "EXTRA=1")
    assert changed.code == 0 and "release 3 deploys it" in changed.out
    tailed = paas("logs", "cli-hello", "--tail")
    assert tailed.code == 0 and "-- release 3 live" in tailed.out and "==> health check" in tailed.out
    assert serves(url, "again from Flask")
    assert paas("env", "cli-hello", "--json").json() == {"env": {"EXTRA": "********", "GREETING": "********"}}
    assert paas("env:unset", "cli-hello", "EXTRA").code == 0
    assert paas("logs", "cli-hello", "--tail").code == 0  # release 4 (the unset) followed to its end

    rolled = paas("rollback", "cli-hello", "1")
    assert rolled.code == 0 and "Release 5 of cli-hello is live." in rolled.out
    assert serves(url, "cli from Flask")
    releases = paas("releases", "cli-hello", "--json").json()["releases"]
    assert [(r["version"], r["status"], r["reason"]) for r in releases][:2] == [(5, "live", "rollback"),
                                                                                 (4, "superseded", "env")]
    assert "rollback" in paas("releases", "cli-hello").out
    first = paas("logs", "cli-hello", "--release", "1")
    assert first.code == 0 and "==> release 1:" in first.out
    lines = paas("logs", "cli-hello", "--release", "1", "--json").json()
    assert lines["release"] == 1 and lines["lines"][0]["line"].startswith("==> release 1:")
    assert paas("logs", "cli-hello", "--tail", "--runtime").code == 2
    runtime = paas("logs", "cli-hello", "--runtime", "--lines", "20")
    assert runtime.code == 0 and "Booting worker" in runtime.out
    processes = paas("ps", "cli-hello", "--json").json()["processes"]
    assert [(p["name"], p["state"]) for p in processes] == [("web", "running")]

    stopped = paas("ps:stop", "cli-hello")
    assert stopped.code == 0 and "cli-hello is stopped." in stopped.out
    assert fetch(url)[0] is None
    assert paas("ps:start", "cli-hello").code == 0 and serves(url, "cli from Flask")
    restarted = paas("ps:restart", "cli-hello")
    assert restarted.code == 0 and restarted.out.strip() == "cli-hello is running."
    events = paas("info", "cli-hello", "--json").json()  # the restart's own event was waited for
    assert events["status"] == "running"
    refused = paas("ps:start", "cli-hello")
    assert refused.code == 1 and refused.err.startswith("error: cannot start a deployment that is running")

    refused = paas("destroy", "cli-hello", "--confirm", "cli-hell")
    assert refused.code == 1 and "nothing was destroyed" in refused.err
    assert paas("destroy", "cli-hello").code == 1  # no terminal to ask on: --confirm is needed
    destroyed = paas("destroy", "cli-hello", "--confirm", "cli-hello", "--json")
    assert destroyed.code == 0 and destroyed.json()["status"] == "deleted"
    assert paas("apps", "--json").json()["deployments"] == []


def test_logs_tail_receives_lines_while_the_release_builds(logged_in, platform):
    paas = logged_in
    assert paas("create", "cli-live", "--repo", SAMPLE, "--no-follow").code == 0
    tail = subprocess.Popen([str(PAAS), "logs", "cli-live", "--tail"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CONFIG_HOME": str(paas.home)})
    try:
        first = tail.stdout.readline()
        first_seen = datetime.now(UTC)
        rest = tail.communicate(timeout=300)[0]
    finally:
        tail.kill()
    assert first.startswith("==> release 1:")
    assert tail.returncode == 0 and rest.rstrip().endswith("-- release 1 live")
    # The first line arrived while release 1 was still being built.
    [release] = paas("releases", "cli-live", "--json").json()["releases"]
    assert first_seen < datetime.fromisoformat(release["finished_at"]), (first_seen, release["finished_at"])
    assert paas("destroy", "cli-live", "--confirm", "cli-live").code == 0


def test_a_release_that_fails_exits_1_and_the_previous_one_serves(logged_in, platform):
    paas = logged_in
    created = paas("create", "cli-guarded", "--repo", SAMPLE, "--release-command", 'test "$BREAK" != yes')
    assert created.code == 0, created.err
    url = paas("info", "cli-guarded", "--json").json()["url"]
    assert paas("env:set", "cli-guarded", "BREAK=yes").code == 0
    tailed = paas("logs", "cli-guarded", "--tail")
    assert tailed.code == 0 and "-- release 2 failed" in tailed.out
    failed = paas("deploy", "cli-guarded")
    assert failed.code == 1 and failed.err.startswith("Release 3 of cli-guarded failed: release command exited")
    assert "(release 1 still serves)" in failed.err and fetch(url)[0] == 200
    assert paas("info", "cli-guarded", "--json").json()["status"] == "running"

    missing = paas("create", "cli-missing", "--repo", "https://github.com/paas-examples/no-such-repo")
    assert missing.code == 1 and "cli-missing is failed: deploy failed: git clone" in missing.err
    for app in ("cli-missing", "cli-guarded"):
        assert paas("destroy", app, "--confirm", app).code == 0


def test_errors_are_the_apis_words_on_stderr_without_a_traceback(logged_in, paas, platform, tmp_path):
    unknown = logged_in("info", "nope")
    assert unknown.code == 1 and unknown.err.startswith("error: no deployment 'nope'") and "request id" in unknown.err
    invalid = logged_in("create", "Bad_Name", "--repo", "https://example.org/x", "--no-follow")
    assert invalid.code == 1 and "name:" in invalid.err and "github_url:" in invalid.err
    usage = logged_in("create", "x")
    assert usage.code == 2 and "Missing option '--repo'" in usage.err

    # A member whose quota allows no deployment.
    member = logged_in("users", "create", "cli-member", "--json").json()
    assert "cli-member" in [u["username"] for u in logged_in("users", "--json").json()["users"]]
    assert logged_in("users", "quota", "cli-member", "--deployments", "0").code == 0
    over = paas("create", "quota-app", "--repo", SAMPLE, "--no-follow",
                env={"PAAS_URL": platform.url, "PAAS_TOKEN": member["token"]})
    assert over.code == 1 and over.err.startswith("error: ") and "quota" in over.err
    assert logged_in("users", "promote", "cli-member", "--json").json()["user"]["role"] == "admin"
    assert logged_in("users", "demote", "cli-member", "--json").json()["user"]["role"] == "member"
    assert logged_in("users", "disable", "cli-member").code == 0
    disabled = paas("apps", env={"PAAS_URL": platform.url, "PAAS_TOKEN": member["token"]})
    assert disabled.code == 1 and disabled.err.startswith("error: ")

    down = paas("apps", env={"PAAS_URL": "http://127.0.0.1:9", "PAAS_TOKEN": "t"})
    assert down.code == 1 and down.err.startswith("error: cannot reach http://127.0.0.1:9")
    nothing = paas("apps", env={"XDG_CONFIG_HOME": str(tmp_path / "nobody")})
    assert nothing.code == 1 and "not logged in: run paas login" in nothing.err


def test_tls_failure_and_a_trusted_ca(paas, tls_server):
    refused = paas("apps", env={"PAAS_URL": tls_server.url, "PAAS_TOKEN": "t"})
    assert refused.code == 1 and refused.err.startswith(f"error: TLS verification failed for {tls_server.url}")
    trusted = paas("--ca-bundle", str(tls_server.ca), "apps", "--json",
                   env={"PAAS_URL": tls_server.url, "PAAS_TOKEN": "t"})
    assert trusted.code == 0 and trusted.json() == {"deployments": []}


def test_tokens_users_nodes_webhook_json_and_completion(logged_in, platform):
    paas = logged_in
    nodes = paas("nodes", "--json").json()["nodes"]
    assert {n["node"] for n in nodes} >= {"pve1"} and "MEMORY FREE" in paas("nodes").out
    token = paas("tokens", "create", "ci-bot").out.strip()
    assert token.startswith("paas_")
    listed = paas("tokens", "--json").json()["tokens"]
    prefix = next(t["prefix"] for t in listed if t["name"] == "ci-bot")
    assert paas("apps", env={"PAAS_TOKEN": token}).code == 0
    assert paas("tokens", "revoke", prefix).code == 0
    assert paas("apps", env={"PAAS_TOKEN": token}).code == 1
    assert paas("tokens", "revoke", "paas_zzzz").code == 1

    assert paas("create", "cli-hook", "--repo", SAMPLE, "--no-follow").code == 0
    on = paas("webhook", "cli-hook", "on")
    assert on.code == 0 and "payload URL:" in on.out and "secret:" in on.out and "not shown again" in on.out
    assert paas("webhook", "cli-hook", "--json").json()["enabled"] is True
    assert "off" in paas("webhook", "cli-hook", "off").out
    assert paas("destroy", "cli-hook", "--confirm", "cli-hook").code == 0

    for shell in ("bash", "zsh", "fish"):
        script = paas("completion", shell)
        assert script.code == 0 and "_PAAS_COMPLETE" in script.out
    completed = paas(env={"_PAAS_COMPLETE": "bash_complete", "COMP_WORDS": "paas env", "COMP_CWORD": "1"})
    assert "env:set" in completed.out and "env:unset" in completed.out
    for command in ("create", "logs", "users", "tokens", "context", "env:set", "ps:stop"):
        assert paas(command, "--help").code == 0


def test_no_colour_with_no_color_set_even_on_a_terminal(logged_in):
    # FORCE_COLOR makes rich treat the pipe as a terminal: colour, unless NO_COLOR says no.
    assert "\x1b[" in logged_in("nodes", env={"FORCE_COLOR": "1"}).out
    assert "\x1b[" not in logged_in("nodes", env={"NO_COLOR": "1", "FORCE_COLOR": "1"}).out


def test_a_token_goes_only_where_it_was_given_and_a_broken_config_is_a_message(logged_in, platform, tls_server):
    paas = logged_in
    # PAAS_URL alone, to another address: the current context's token is not sent there.
    other = paas("apps", env={"PAAS_URL": tls_server.url})
    assert other.code == 1 and f"no token for {tls_server.url}" in other.err
    assert paas("apps", env={"PAAS_URL": platform.url}).code == 0  # the token saved for that very URL
    assert paas("apps", env={"PAAS_URL": "ftp://127.0.0.1"}).err.startswith("error: 'ftp://127.0.0.1' is not")
    bad_token = paas("apps", env={"PAAS_TOKEN": "paas_secret\nX-Injected: 1"})
    assert bad_token.code == 1 and "paas_secret" not in bad_token.err and "not a usable API token" in bad_token.err

    path = paas.home / "paas" / "config.toml"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text("current = [\n")
    for args in (("apps",), ("context", "list"), ("login", "--url", platform.url, "--token", platform.token)):
        broken = paas(*args)
        assert broken.code == 1 and broken.err.startswith(f"error: cannot read {path}"), (args, broken.err)
    path.write_bytes(b"\xff\xfe")
    assert paas("apps").err.startswith(f"error: cannot read {path}")
    path.write_text('[contexts.lab]\nurl = 5\n')
    assert "the context 'lab' needs a url" in paas("apps").err
    path.unlink()

    insecure = paas("login", "--url", "http://paas.example.org", "--username", "admin", "--password-stdin",
                    stdin="x\n")
    assert insecure.code == 1 and "refusing to send a password over plain http" in insecure.err
    assert paas("login", "--url", "https://u:p@paas.example.org", "--token", "t").code == 2


def test_password_change_and_a_new_login_retires_the_token_paas_made_before(paas, platform):
    assert paas("login", "--url", platform.url, "--username", "admin", "--password-stdin",
                stdin=platform.password + "\n").code == 0
    config_file = paas.home / "paas" / "config.toml"
    [first] = [c["token"] for c in tomllib.loads(config_file.read_text())["contexts"].values()]
    new = "a new passphrase for the admin"
    changed = paas("password", "--password-stdin", stdin=f"{platform.password}\n{new}\n")
    assert changed.code == 0 and changed.out.strip() == "Password changed."
    wrong = paas("password", "--password-stdin", stdin=f"not it\n{new} again\n")
    assert wrong.code == 1 and "current password does not match" in wrong.err

    again = paas("login", "--url", platform.url, "--username", "admin", "--password-stdin", stdin=new + "\n")
    assert again.code == 0 and "Revoked this context's previous token" in again.err
    [retired] = [t for t in paas("tokens", "--json").json()["tokens"] if first.startswith(t["prefix"])]
    assert retired["revoked_at"] and retired["name"].startswith("paas-cli@")
    assert paas("apps", env={"PAAS_URL": platform.url, "PAAS_TOKEN": first}).code == 1
    # Put the simulation's admin password back for the other tests of this module.
    assert paas("password", "--password-stdin", stdin=f"{new}\n{platform.password}\n").code == 0
