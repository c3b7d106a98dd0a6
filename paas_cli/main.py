"""The `paas` commands, Heroku-style, each a call or two of the public REST API.

Exit codes: 0 done; 1 the platform refused or the thing failed (a release that did not go live); 2 a usage
error (click's); 130 interrupted.
"""
import ipaddress
import os
import socket
import sys
import time
import webbrowser
from urllib.parse import quote, urlsplit

import click

from paas_cli import config, output
from paas_cli.client import ApiError, Client

FINAL_STATUSES = {"running", "failed", "stopped", "deleted"}
WAIT_SECONDS = 1800  # the longest `paas` follows a deployment or a release before it gives up
SHELLS = ("bash", "zsh", "fish")


class Fail(click.ClickException):
    """A clear message on stderr and exit status 1 (never a traceback)."""

    def show(self, file=None):
        output.err.print(f"error: {self.message}", markup=False, style=None if output.plain() else "red")


class State:
    def __init__(self, context_name, ca_bundle):
        self.context_name, self.ca_bundle = context_name, ca_bundle
        self._client = None

    def verify(self):
        return self.ca_bundle or os.environ.get("PAAS_CA_BUNDLE") or True

    def client(self):
        if self._client is None:
            try:
                context = config.current(self.context_name)
            except config.ConfigError as exc:
                raise Fail(str(exc)) from None
            if not context.token:
                raise Fail(f"no token for {context.url}: run paas login (or set PAAS_TOKEN)")
            try:
                self._client = Client(context.url, context.token, verify=self.verify())
            except config.ConfigError as exc:
                raise Fail(str(exc)) from None
        return self._client


pass_state = click.make_pass_decorator(State)


def app_path(app, rest=""):
    return f"/deployments/{quote(app, safe='')}{rest}"


def json_option(function):
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of text.")(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--context", "context_name", metavar="NAME", help="Use this context instead of the current one.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), envvar="PAAS_CA_BUNDLE",
              help="A CA certificate file to trust for the platform's TLS (PAAS_CA_BUNDLE).")
@click.version_option(package_name="proxmox-paas", prog_name="paas")
@click.pass_context
def cli(ctx, context_name, ca_bundle):
    """paas: deploy and run apps on your Proxmox cluster, from the terminal.

    Log in once (paas login --url URL), then: paas create APP --repo URL, paas logs APP --tail,
    paas deploy APP, paas rollback APP VERSION. Every command takes --help.
    """
    ctx.obj = State(context_name, ca_bundle)


# -- login and contexts ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--url", help="The platform's address, e.g. https://paas.example.org (default: the context's).")
@click.option("--token", help="An API token to use (else PAAS_TOKEN, else --username).")
@click.option("--username", help="Log in with a username; the password is asked (or read with --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="With --username: read the password from standard input.")
@click.option("--name", "context_name", help="The context's name (default: --context's, else the URL's host).")
@json_option
@pass_state
def login(state, url, token, username, password_stdin, context_name, as_json):
    """Log in to a platform and make it the current context.

    With --username, the password is exchanged for a named API token (paas-cli@HOST); the password itself is
    never stored, and is sent over https only (or to this machine). The token goes to
    ~/.config/paas/config.toml (mode 0600).
    """
    if token and username:
        raise click.UsageError("give --token or --username, not both")
    if password_stdin and not username:
        raise click.UsageError("--password-stdin goes with --username")
    context_name = context_name or state.context_name
    if not url:
        try:
            url = config.current(state.context_name).url
        except config.ConfigError as exc:
            raise click.UsageError(f"give --url (the platform's address): {exc}") from None
    try:
        url = config.check_url(url)
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    host = urlsplit(url).hostname
    if username and url.startswith("http://") and not is_loopback(host):
        raise Fail(f"refusing to send a password over plain http to {host}: use the platform's https address "
                   "(or log in with --token)")
    token = token or (None if username else os.environ.get("PAAS_TOKEN"))
    try:
        if username:
            if password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = click.prompt("Password", hide_input=True, err=True)
            answer = Client(url, verify=state.verify()).request("POST", "/auth/login", json_body={
                "username": username, "password": password,
                "token_name": f"paas-cli@{socket.gethostname()}"[:64]})
            token = answer["token"]
        elif not token:
            token = click.prompt("API token", hide_input=True, err=True)
        me = Client(url, token, verify=state.verify()).get("/me")
        name = context_name or urlsplit(url).netloc
        previous = config.load()["contexts"].get(name)
        config.remember(name, url, token)
        if previous and previous.get("token") not in (None, token) and previous.get("url") == url:
            retire(previous["token"], url, state.verify())
    except ApiError as exc:
        raise api_failure(exc) from None
    except config.ConfigError as exc:
        raise Fail(str(exc)) from None
    finish(as_json, {"context": name, "url": url, "user": me["user"]},
           f"Logged in to {url} as {me['user']['username']} ({me['user']['role']}); context {name}.")


def retire(old_token, url, verify):
    """Revoke the token a context held before this login, when paas made it (named paas-cli@...); best effort:
    a token the user gave with --token, or one already gone, is left as it is."""
    try:
        client = Client(url, old_token, verify=verify)
        mine = [t for t in client.get("/tokens")["tokens"] if old_token.startswith(t["prefix"])
                and t["name"].startswith("paas-cli@") and not t["revoked_at"]]
        if len(mine) == 1:
            client.delete(f"/tokens/{mine[0]['id']}")
            output.err.print(f"Revoked this context's previous token ({mine[0]['prefix']}).", markup=False)
    except (ApiError, config.ConfigError, KeyError):
        pass


@cli.command()
@click.option("--password-stdin", is_flag=True, help="Read the current password, then the new one, a line each.")
@pass_state
def password(state, password_stdin):
    """Change your password (the one paas login --username and the dashboard take). Tokens stay valid."""
    if password_stdin:
        current, new = sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
    else:
        current = click.prompt("Current password (empty if you have none)", hide_input=True, default="",
                               show_default=False, err=True)
        new = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    body = {"new_password": new, **({"current_password": current} if current else {})}
    call(state.client().put, "/me/password", body)
    output.line("Password changed.")


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@cli.group()
def context():
    """The platforms you have logged in to."""


@context.command("list")
@json_option
def context_list(as_json):
    """List the contexts (* marks the current one)."""
    try:
        data = config.load()
    except config.ConfigError as exc:
        raise Fail(str(exc)) from None
    rows = [{"name": name, "url": saved.get("url"), "current": name == data.get("current")}
            for name, saved in sorted(data["contexts"].items())]
    if as_json:
        output.emit_json({"contexts": rows})
        return
    output.table(["", "NAME", "URL"], [("*" if r["current"] else "", r["name"], r["url"]) for r in rows],
                 empty="no contexts yet: paas login --url URL")


@context.command("use")
@click.argument("name")
def context_use(name):
    """Make NAME the current context."""
    try:
        config.use(name)
    except config.ConfigError as exc:
        raise Fail(str(exc)) from None
    output.line(f"Using context {name}.")


# -- apps ------------------------------------------------------------------------------------------------------


@cli.command()
@json_option
@pass_state
def apps(state, as_json):
    """List your deployments (every deployment, for an admin)."""
    client, found, cursor = state.client(), [], None
    while True:
        page = call(client.get, "/deployments", per_page=100, cursor=cursor)
        found += page["deployments"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if as_json:
        output.emit_json({"deployments": found})
        return
    output.table(["NAME", "STATUS", "TYPE", "FRAMEWORK", "RELEASE", "URL"],
                 [(d["name"], d["status"], d["deployment_type"], d["framework"], d["live_release"], d["url"])
                  for d in found], empty="no apps yet: paas create APP --repo URL")


@cli.command()
@click.argument("app")
@json_option
@pass_state
def info(state, app, as_json):
    """Show an app: status, url, guest, settings and its guest's live figures."""
    deployment = call(state.client().get, app_path(app))["deployment"]
    if as_json:
        output.emit_json(deployment)
        return
    resources = deployment["resources"]
    live = deployment.get("live") or {}
    pairs = [("name", deployment["name"]), ("status", deployment["status"]), ("url", deployment["url"]),
             ("repository", f"{deployment['github_url']} ({deployment['branch']})"),
             ("framework", deployment["framework"]), ("type", deployment["deployment_type"]),
             ("resources", f"{resources['cores']} cores, {resources['memory']} MB, {resources['disk']} GB"),
             ("guest", f"{deployment['vm_id']} on {deployment['node']}" if deployment["vm_id"] else None),
             ("address", deployment["ip_address"]), ("release", deployment["live_release"]),
             ("env", ", ".join(sorted(deployment["env"])) or None)]
    for key in ("build_command", "start_command", "release_command", "port", "health_check_path"):
        if deployment.get(key) is not None:
            pairs.append((key.replace("_", " "), deployment[key]))
    pairs += [("snapshots", snapshot_words(deployment.get("snapshot_before_release"))),
              ("backups", backup_words(deployment))]
    if live.get("status"):
        pairs.append(("guest now", f"{live['status']}, cpu {live.get('cpu') or 0:.2f}, "
                                    f"memory {live.get('memory_mb')}/{live.get('max_memory_mb')} MB"))
    if deployment.get("error_message"):
        pairs.append(("error", deployment["error_message"]))
    output.fields(pairs)


@cli.command("open")
@click.argument("app")
@pass_state
def open_app(state, app):
    """Open the app's url in a browser (or print it when there is no browser)."""
    url = call(state.client().get, app_path(app))["deployment"]["url"]
    if not url:
        raise Fail(f"{app} has no url while it is not running")
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        browser = None
    if browser is None or not browser.open(url):
        output.line(url)


def parse_pairs(pairs, what):
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        variables[key] = value
    return variables


@cli.command()
@click.argument("app")
@click.option("--repo", required=True, help="https://github.com/OWNER/REPO")
@click.option("--branch", default="main", show_default=True)
@click.option("--framework", default="auto", show_default=True, help="auto, or a key of the platform's frameworks.")
@click.option("--type", "deployment_type", type=click.Choice(["lxc", "vm"]), default="lxc", show_default=True)
@click.option("--cores", type=int)
@click.option("--memory", type=int, help="MB")
@click.option("--disk", type=int, help="GB")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="An environment variable (repeatable).")
@click.option("--health-path", help="GET here must answer 2xx/3xx (default /).")
@click.option("--release-command", help="Run after each build, before the switch (migrations).")
@click.option("--no-follow", is_flag=True, help="Return at once instead of following the build until running.")
@json_option
@pass_state
def create(state, app, repo, branch, framework, deployment_type, cores, memory, disk, env_pairs, health_path,
           release_command, no_follow, as_json):
    """Create APP from a GitHub repository and follow its build until it runs (exit 1 if it fails)."""
    body = {"name": app, "deployment_type": deployment_type, "framework": framework, "github_url": repo,
            "branch": branch, "env": parse_pairs(env_pairs, "--env")}
    resources = {k: v for k, v in (("cores", cores), ("memory", memory), ("disk", disk)) if v is not None}
    if resources:
        body["resources"] = resources
    if health_path:
        body["health_check_path"] = health_path
    if release_command:
        body["release_command"] = release_command
    client = state.client()
    deployment = call(client.post, "/deployments", body)["deployment"]
    if no_follow:
        finish(as_json, deployment, f"Created {app} ({deployment['status']}).")
        return
    if not as_json:
        output.line(f"Creating {app}: a guest, then release 1 of {repo} ({branch}).", "bold")
    version = wait_for_release(client, app)
    if version is not None:
        follow_log(client, app, version, quiet=as_json)
    deployment = wait_for_status(client, deployment["id"], FINAL_STATUSES)
    report(as_json, deployment, deployment["status"] == "running",
           f"{app} is running at {deployment['url']}", ended(app, deployment))


def ended(app, deployment):
    """How a deployment that is not running ended, in words."""
    error = deployment.get("error_message")
    return f"{app} is {deployment['status']}" + (f": {error}" if error else "")


def wait_for_release(client, app):
    """The first release's version once the platform has made it; None when the deployment ends before."""
    deadline = time.monotonic() + WAIT_SECONDS
    with output.waiting(f"waiting for {app}'s guest") as spinner:
        while time.monotonic() < deadline:
            releases = call(client.get, app_path(app, "/releases"))["releases"]
            if releases:
                return releases[-1]["version"] if releases[-1]["version"] == 1 else releases[0]["version"]
            deployment = call(client.get, app_path(app))["deployment"]
            if deployment["status"] in FINAL_STATUSES:
                return None
            if spinner is not None:
                spinner.update(f"{app}: {deployment['status']}")
            time.sleep(1)
    raise Fail(f"{app} made no release within {WAIT_SECONDS} s")


def wait_for_status(client, app, statuses):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        deployment = call(client.get, app_path(app))["deployment"]
        if deployment["status"] in statuses:
            return deployment
        time.sleep(0.5)
    raise Fail(f"{app} did not settle within {WAIT_SECONDS} s")


def follow_log(client, app, version, quiet=False):
    """Print a release's log as it is written (resuming after a dropped connection); its final status."""
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        for event in client.events(app_path(app, "/logs/stream"), {"release": version}):
            if event.name == "line" and not quiet:
                show_line(event.json())
            elif event.name == "end":
                return event.json().get("status")
            if time.monotonic() > deadline:
                raise Fail(f"release {version} of {app} did not finish within {WAIT_SECONDS} s")
    except ApiError as exc:
        raise api_failure(exc) from None
    return None


def show_line(line):
    style = {"step": "bold", "error": "red", "app": "dim"}.get(line.get("stream"))
    output.line(line.get("line", ""), style)
    sys.stdout.flush()  # live into a pipe too (paas logs APP --tail | grep ...)


def finish(as_json, data, text):
    if as_json:
        output.emit_json(data)
    else:
        output.line(text)


def report(as_json, data, ok, good, bad):
    if as_json:
        output.emit_json(data)
    elif ok:
        output.line(good, "green")
    else:
        output.err.print(bad, markup=False, style=None if output.plain() else "red")
    if not ok:
        sys.exit(1)


# -- releases --------------------------------------------------------------------------------------------------


def run_release(state, app, call_api, path, body, no_follow, as_json):
    client = state.client()
    answer = call(call_api, path, body) if body is not None else call(call_api, path)
    release = answer["release"]
    if no_follow:
        finish(as_json, release, f"Release {release['version']} of {app} queued.")
        return
    if not as_json:
        output.line(f"Release {release['version']} of {app}:", "bold")
    follow_log(client, app, release["version"], quiet=as_json)
    release = call(client.get, app_path(app, f"/releases/{release['version']}"))["release"]
    report(as_json, release, release["status"] == "live", f"Release {release['version']} of {app} is live.",
           f"Release {release['version']} of {app} {release['status']}"
           + (f": {release['error_message']}" if release.get("error_message") else ""))


@cli.command()
@click.argument("app")
@click.option("--branch", help="Deploy this branch (and make it the app's).")
@click.option("--commit", help="Deploy this commit instead of the branch's head.")
@click.option("--no-follow", is_flag=True, help="Return at once instead of following the release.")
@json_option
@pass_state
def deploy(state, app, branch, commit, no_follow, as_json):
    """Build and switch in a new release; exit 0 when it goes live, 1 when it fails (the previous one stays)."""
    body = {k: v for k, v in (("branch", branch), ("commit", commit)) if v}
    run_release(state, app, state.client().post, app_path(app, "/actions/redeploy"), body, no_follow, as_json)


@cli.command()
@click.argument("app")
@click.argument("version", type=click.IntRange(1))
@click.option("--no-follow", is_flag=True, help="Return at once instead of following the release.")
@json_option
@pass_state
def rollback(state, app, version, no_follow, as_json):
    """A new release with VERSION's code, settings and environment; follows it like deploy."""
    run_release(state, app, state.client().post, app_path(app, f"/releases/{version}/rollback"), {}, no_follow,
                as_json)


@cli.command()
@click.argument("app")
@json_option
@pass_state
def releases(state, app, as_json):
    """List APP's releases, newest first."""
    found = call(state.client().get, app_path(app, "/releases"))["releases"]
    if as_json:
        output.emit_json({"releases": found})
        return
    # A SNAPSHOT column once a release has one (paas restore APP VERSION goes back to it).
    snapshots = any(r.get("snapshot") for r in found)
    output.table(["VERSION", "STATUS", "REASON", "BRANCH", "COMMIT", "CREATED", *(["SNAPSHOT"] * snapshots), "ERROR"],
                 [(r["version"], r["status"], r["reason"], r["branch"], (r["commit_sha"] or "")[:12],
                   r["created_at"][:19].replace("T", " "), *([r.get("snapshot")] * snapshots),
                   (r["error_message"] or "").split("\n")[0][:80])
                  for r in found], empty="no releases yet")


@cli.command()
@click.argument("app")
@click.option("--tail", is_flag=True, help="Follow the build log live (resumes after a dropped connection).")
@click.option("--release", "version", type=click.IntRange(1), help="One release's log (default: the newest).")
@click.option("--runtime", is_flag=True, help="The app's own output on its guest instead of the build log.")
@click.option("--process", default="web", show_default=True, help="With --runtime: web or a Procfile process.")
@click.option("--lines", type=click.IntRange(1, 5000), default=200, show_default=True, help="With --runtime.")
@click.option("--json", "as_json", is_flag=True, help="The lines as JSON (not with --tail).")
@pass_state
def logs(state, app, tail, version, runtime, process, lines, as_json):
    """The build and deploy log of a release, or with --runtime the app's own recent output."""
    client = state.client()
    if tail and (runtime or as_json):
        raise click.UsageError("--tail follows the build log as text; leave out --runtime and --json")
    if runtime:
        text = call(client.text, app_path(app, "/logs/runtime"), {"lines": lines, "process": process})
        if as_json:
            output.emit_json({"process": process, "lines": text.splitlines()})
        else:
            sys.stdout.write(text)
        return
    if version is None:
        found = call(client.get, app_path(app, "/releases"))["releases"]
        if found:
            version = found[0]["version"]
        elif tail:  # a new app's guest is still being made: its first release comes
            version = wait_for_release(client, app)
        if version is None:
            raise Fail(f"{app} has no release yet")
    if tail:
        status = follow_log(client, app, version)
        if status:
            output.line(f"-- release {version} {status}", "bold")
        return
    after, found = None, []
    while True:
        page = call(client.get, app_path(app, "/logs"), release=version, after=after)
        for line in page["lines"]:
            if as_json:
                found.append(line)
            else:
                show_line(line)
        after = page.get("next_after")
        if not after or not page["lines"]:
            break
    if as_json:
        output.emit_json({"release": version, "lines": found})


# -- environment -----------------------------------------------------------------------------------------------


@cli.command("env")
@click.argument("app")
@json_option
@pass_state
def env_show(state, app, as_json):
    """APP's environment variables (values are never shown again once set)."""
    variables = call(state.client().get, app_path(app, "/env"))["env"]
    if as_json:
        output.emit_json({"env": variables})
        return
    output.table(["KEY", "VALUE"], sorted(variables.items()), empty="no environment variables")


def change_env(state, app, changes, as_json):
    answer = call(state.client().patch, app_path(app, "/env"), changes)
    release = answer.get("release")
    text = f"{app}: {', '.join(sorted(changes))} changed" + (
        f"; release {release['version']} deploys it (paas logs {app} --tail)" if release else
        "; the next release uses it")
    finish(as_json, answer, text)


@cli.command("env:set")
@click.argument("app")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@pass_state
def env_set(state, app, pairs, as_json):
    """Set environment variables; a running app gets a release with them."""
    change_env(state, app, parse_pairs(pairs, "KEY=VALUE"), as_json)


@cli.command("env:unset")
@click.argument("app")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@json_option
@pass_state
def env_unset(state, app, keys, as_json):
    """Remove environment variables; a running app gets a release without them."""
    change_env(state, app, dict.fromkeys(keys), as_json)


# -- processes and power ---------------------------------------------------------------------------------------


@cli.command("ps")
@click.argument("app")
@json_option
@pass_state
def ps(state, app, as_json):
    """APP's processes (web and its Procfile's others) and their state on the guest now."""
    answer = call(state.client().get, app_path(app, "/processes"))
    if as_json:
        output.emit_json(answer)
        return
    output.table(["PROCESS", "STATE", "RESTARTS", "COMMAND"],
                 [(p["name"], p["state"], p["restarts"], p["command"]) for p in answer["processes"]])


def last_event(client, ident):
    """The id of the deployment's newest event (pages through its history, bounded)."""
    after = None
    for _ in range(1000):
        page = call(client.get, app_path(ident, "/events"), after=after, limit=1000)
        if not page["events"]:
            return after
        after = page["events"][-1]["id"]
        if not page.get("next_after"):
            return after
    return after


def wait_for_action(client, ident, action, settled, since):
    """Follow the deployment's events after `since` until the action ended: its own event, a status change to
    `settled`, an error, or a skip. Returns (done, the deployment)."""
    deadline = time.monotonic() + WAIT_SECONDS
    after = since
    while time.monotonic() < deadline:
        page = call(client.get, app_path(ident, "/events"), after=after, limit=1000)
        for event in page["events"]:
            after = event["id"]
            if event["kind"] == "error" or (event["kind"] == "action" and " skipped: " in event["message"]):
                return False, call(client.get, app_path(ident))["deployment"]
            if (event["kind"] == "status" and event["to_status"] in (settled, "failed", "deleting", "deleted")) or \
                    (event["kind"] == "action" and event["message"].startswith(f"{action}ed ")):
                deployment = call(client.get, app_path(ident))["deployment"]
                return deployment["status"] == settled, deployment
        time.sleep(0.5)
    raise Fail(f"the {action} did not end within {WAIT_SECONDS} s")


def power(action, settled):
    @click.argument("app")
    @click.option("--no-wait", is_flag=True, help="Return once the platform has taken the request.")
    @json_option
    @pass_state
    def command(state, app, no_wait, as_json):
        client = state.client()
        ident = call(client.get, app_path(app))["deployment"]["id"]
        since = last_event(client, ident)
        deployment = call(client.post, app_path(ident, f"/actions/{action}"))["deployment"]
        done = True
        if not no_wait:
            with output.waiting(f"{action} {app}"):
                done, deployment = wait_for_action(client, ident, action, settled, since)
        report(as_json, deployment, done, f"{app} is {deployment['status']}.",
               f"{action} of {app} did not happen: " + (deployment.get("error_message") or
                                                         f"it is {deployment['status']}"))
    command.__doc__ = f"{action.capitalize()} APP's guest (and its app) and wait until it is {settled}."
    return command


cli.command("ps:start")(power("start", "running"))
cli.command("ps:stop")(power("stop", "stopped"))
cli.command("ps:restart")(power("restart", "running"))


@cli.command()
@click.argument("app")
@click.option("--confirm", metavar="APP", help="The app's name again: destroying it cannot be undone.")
@json_option
@pass_state
def destroy(state, app, confirm, as_json):
    """Delete APP and its guest (asks for the name unless --confirm APP is given)."""
    if confirm is None:
        if not sys.stdin.isatty():
            raise Fail(f"give --confirm {app} to destroy it")
        confirm = click.prompt(f"Type {app} to destroy it and its guest", err=True)
    if confirm != app:
        raise Fail(f"{confirm!r} is not {app!r}: nothing was destroyed")
    client = state.client()
    ident = call(client.get, app_path(app))["deployment"]["id"]  # a deleted one is found by its id only
    call(client.delete, app_path(ident))
    with output.waiting(f"destroying {app}"):
        deployment = wait_for_status(client, ident, {"deleted", "failed"})
    report(as_json, deployment, deployment["status"] == "deleted", f"{app} is destroyed.", ended(app, deployment))


# -- names, the access log, snapshots and backups --------------------------------------------------------------


@cli.command()
@click.argument("app")
@json_option
@pass_state
def domains(state, app, as_json):
    """APP's names behind the edge router: its own under the platform's domain, its url, its custom domains."""
    answer = call(state.client().get, app_path(app, "/domains"))
    if as_json:
        output.emit_json(answer)
        return
    output.fields([("default", answer["default"]), ("url", answer["url"] or "(none while no release serves)")])
    output.table(["CUSTOM DOMAIN", "ADDED"], [(d["hostname"], stamp(d["created_at"])) for d in answer["domains"]],
                 empty=f"no custom domains: paas domains:add {app} HOSTNAME")


@cli.command("domains:add")
@click.argument("app")
@click.argument("hostname")
@json_option
@pass_state
def domains_add(state, app, hostname, as_json):
    """Serve APP at HOSTNAME too (point its DNS at the router first)."""
    answer = call(state.client().post, app_path(app, "/domains"), {"hostname": hostname})
    name = answer["domain"]["hostname"]
    finish(as_json, answer, f"{app} answers at {name} now." if answer["routed"] else
           f"{name} is {app}'s; the router did not answer, so it serves the name once it is back.")


@cli.command("domains:remove")
@click.argument("app")
@click.argument("hostname")
@pass_state
def domains_remove(state, app, hostname):
    """Stop serving APP at HOSTNAME (the name is free for others again)."""
    call(state.client().delete, app_path(app, f"/domains/{quote(hostname, safe='')}"))
    output.line(f"{app} no longer answers at {hostname.lower().rstrip('.')}.")


@cli.command("access-log")
@click.argument("app")
@click.option("--lines", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="How many of the most recent requests.")
@json_option
@pass_state
def access_log(state, app, lines, as_json):
    """The requests the router served for APP, oldest first: time, client, method, host, path, status, duration."""
    entries = call(state.client().get, app_path(app, "/logs/access"), lines=lines)["entries"]
    if as_json:
        output.emit_json({"entries": entries})
        return
    if not entries:
        output.line(f"no requests to {app} yet")
    for entry in entries:
        duration = entry.get("duration_ms")
        took = "-" if duration is None else f"{duration:.{0 if duration >= 10 else 1}f}ms"
        output.line(" ".join(str(part) for part in (
            stamp(entry["ts"]), entry.get("remote_ip") or "-", entry.get("method") or "-", entry.get("host") or "-",
            entry.get("uri") or "-", entry.get("status") or "-", took)))


def snapshot_words(setting):
    return {True: "on (before each release)", False: "off",
            None: "as the platform's default (SNAPSHOT_BEFORE_RELEASE)"}[setting]


def backup_words(deployment):
    """A deployment's backup schedule and retention, in words."""
    keep = [f"{label} {deployment[key]}" for label, key in (("last", "backup_keep_last"),
                                                             ("daily", "backup_keep_daily"),
                                                             ("weekly", "backup_keep_weekly"))
            if deployment.get(key) is not None]
    schedule = f"at {deployment['backup_schedule']} (cron, UTC)" if deployment.get("backup_schedule") else \
        "no schedule"
    return f"{schedule}; keep {', '.join(keep) if keep else 'as the platform does'}"


@cli.command()
@click.argument("app")
@click.argument("setting", metavar="[on|off|default]", type=click.Choice(["on", "off", "default"]), required=False)
@json_option
@pass_state
def snapshots(state, app, setting, as_json):
    """Show, or turn on or off, a Proxmox snapshot of APP's guest before each release (default: the platform's).

    paas releases APP shows the snapshots; paas restore APP VERSION rolls the guest back to one.
    """
    client = state.client()
    if setting is None:
        deployment = call(client.get, app_path(app))["deployment"]
    else:
        value = {"on": True, "off": False, "default": None}[setting]
        deployment = call(client.patch, app_path(app), {"snapshot_before_release": value})["deployment"]
    finish(as_json, deployment,
           f"{app}: snapshots {snapshot_words(deployment['snapshot_before_release'])}.")


@cli.command()
@click.argument("app")
@click.argument("version", type=click.IntRange(1))
@click.option("--no-wait", is_flag=True, help="Return once the platform has taken the request.")
@json_option
@pass_state
def restore(state, app, version, no_wait, as_json):
    """Roll APP's guest back to release VERSION's snapshot (code, OS packages and data) and make it live again.

    Exit 0 once the app answers on release VERSION; 1 when the restore was refused or the app did not answer.
    """
    client = state.client()
    ident = call(client.get, app_path(app))["deployment"]["id"]
    since = last_event(client, ident)
    answer = call(client.post, app_path(ident, f"/releases/{version}/restore"))
    snapshot = answer["release"]["snapshot"]
    if no_wait:
        finish(as_json, answer["deployment"], f"Restoring {app} to release {version}'s snapshot {snapshot}.")
        return
    if not as_json:
        output.line(f"Restoring {app} to release {version}'s snapshot {snapshot}: the guest stops and starts.",
                    "bold")
    with output.waiting(f"restoring {app}"):
        done, deployment, reason = wait_for_restore(client, ident, version, since)
    report(as_json, deployment, done, f"{app} is running release {version} again, restored from {snapshot}.",
           f"the restore of {app} to release {version} failed: {reason}")


def wait_for_restore(client, ident, version, since):
    """Follow the deployment's events after `since` until the restore ended: running on `version` (done), failed,
    or refused or skipped (an error event, the status as it was). Returns (done, the deployment, why not)."""
    deadline = time.monotonic() + WAIT_SECONDS
    after = since
    while time.monotonic() < deadline:
        page = call(client.get, app_path(ident, "/events"), after=after, limit=1000)
        for event in page["events"]:
            after = event["id"]
            kind, message = event["kind"], event["message"]
            if kind == "error" or (kind == "action" and message.startswith("restore") and
                                   (" skipped: " in message or " stopped: " in message)):
                return False, call(client.get, app_path(ident))["deployment"], message
            if kind == "status" and event["to_status"] in ("running", "stopped", "failed", "deleting", "deleted"):
                deployment = call(client.get, app_path(ident))["deployment"]
                if deployment["status"] == "running" and deployment["live_release"] == version:
                    return True, deployment, None
                return False, deployment, deployment.get("error_message") or (
                    f"it is {deployment['status']}, release {deployment['live_release']} live")
        time.sleep(0.5)
    raise Fail(f"the restore did not end within {WAIT_SECONDS} s")


def human_size(size):
    if size is None:
        return None
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None


def short(ident):
    return ident[:8]


@cli.command()
@click.argument("app")
@json_option
@pass_state
def backups(state, app, as_json):
    """APP's backups, newest first (the id's first characters name one in the other backups: commands)."""
    answer = call(state.client().get, app_path(app, "/backups"))
    if as_json:
        output.emit_json(answer)
        return
    output.table(["ID", "STATE", "SIZE", "CREATED", "RELEASE", "VOLID / ERROR"],
                 [(short(b["id"]), b["state"], human_size(b["size"]), stamp(b["created_at"]), b["release_version"],
                   (b["error"] or "").split("\n")[0][:120] if b["state"] == "failed" else b["volid"])
                  for b in answer["backups"]], empty=f"no backups yet: paas backups:create {app}")
    if not answer["storage_checked"]:
        output.err.print("(Proxmox did not answer: this is the platform's own record, the storage was not read)",
                         markup=False)


def backup_id(client, app, given):
    """The full id of APP's backup whose id starts with `given`; `given` itself when none does (the API then
    says it has no such backup)."""
    found = call(client.get, app_path(app, "/backups"))["backups"]
    matches = [b["id"] for b in found if b["id"] == given.lower()] or \
        [b["id"] for b in found if b["id"].startswith(given.lower())]
    if len(matches) > 1:
        raise Fail(f"{len(matches)} backups of {app} start with {given!r}: give more of the id")
    return matches[0] if matches else given


@cli.command("backups:create")
@click.argument("app")
@click.option("--wait", is_flag=True, help="Wait until the backup is done: exit 0 when ok, 1 when it failed.")
@json_option
@pass_state
def backups_create(state, app, wait, as_json):
    """Back APP's guest up now (a vzdump to the platform's backup storage, then its retention)."""
    client = state.client()
    backup = call(client.post, app_path(app, "/backups"))["backup"]
    if not wait:
        finish(as_json, backup, f"Backup {short(backup['id'])} of {app} started (paas backups {app}).")
        return
    deadline = time.monotonic() + WAIT_SECONDS
    with output.waiting(f"backing {app} up"):
        while backup["state"] == "running":
            if time.monotonic() > deadline:
                raise Fail(f"backup {short(backup['id'])} of {app} did not end within {WAIT_SECONDS} s")
            time.sleep(1)
            found = [b for b in call(client.get, app_path(app, "/backups"))["backups"] if b["id"] == backup["id"]]
            if not found:
                raise Fail(f"backup {short(backup['id'])} of {app} is gone")
            backup = found[0]
    report(as_json, backup, backup["state"] == "ok",
           f"Backup {short(backup['id'])} of {app} is done: {backup['volid']} ({human_size(backup['size'])}).",
           f"Backup {short(backup['id'])} of {app} failed: {backup['error']}")


@cli.command("backups:delete")
@click.argument("app")
@click.argument("backup", metavar="BACKUP_ID")
@pass_state
def backups_delete(state, app, backup):
    """Remove a backup's archive from the storage, and the backup (BACKUP_ID: as paas backups shows it)."""
    client = state.client()
    ident = backup_id(client, app, backup)
    call(client.delete, app_path(app, f"/backups/{quote(ident, safe='')}"))
    output.line(f"Deleted backup {short(ident)} of {app}.")


@cli.command("backups:restore")
@click.argument("app")
@click.argument("backup", metavar="BACKUP_ID")
@click.option("--name", required=True, help="The new deployment's name.")
@click.option("--node", help="The node to restore on (default: the online node with the most room).")
@click.option("--no-follow", is_flag=True, help="Return at once instead of following until it runs.")
@json_option
@pass_state
def backups_restore(state, app, backup, name, node, no_follow, as_json):
    """Restore a backup of APP into a new deployment NAME and follow it until it runs (exit 1 if it fails).

    The new deployment has its own guest, name, address and releases, and APP's settings and environment.
    """
    client = state.client()
    ident = backup_id(client, app, backup)
    body = {"name": name, **({"node": node} if node else {})}
    deployment = call(client.post, app_path(app, f"/backups/{quote(ident, safe='')}/restore"), body)["deployment"]
    if no_follow:
        finish(as_json, deployment, f"Restoring backup {short(ident)} of {app} into {name} ({deployment['status']}).")
        return
    if not as_json:
        output.line(f"Restoring backup {short(ident)} of {app} into {name}"
                    f"{f' on {node}' if node else ''}: a new guest, then a check that the app answers.", "bold")
    with output.waiting(f"restoring into {name}"):
        deployment = wait_for_status(client, deployment["id"], FINAL_STATUSES)
    report(as_json, deployment, deployment["status"] == "running",
           f"{name} is running at {deployment['url']}", ended(name, deployment))


@cli.command("backups:schedule")
@click.argument("app")
@click.argument("schedule", metavar="[CRON|off]", required=False)
@click.option("--keep-last", type=click.IntRange(0, 1000), help="Keep the newest N backups.")
@click.option("--keep-daily", type=click.IntRange(0, 1000), help="Keep the newest of each of the last N days.")
@click.option("--keep-weekly", type=click.IntRange(0, 1000), help="Keep the newest of each of the last N weeks.")
@json_option
@pass_state
def backups_schedule(state, app, schedule, keep_last, keep_daily, keep_weekly, as_json):
    """Show or set APP's scheduled backups: a cron expression (five fields, UTC, at most hourly), e.g.
    "0 3 * * *", or off; and their retention.
    """
    client = state.client()
    changes = {key: value for key, value in (("backup_keep_last", keep_last), ("backup_keep_daily", keep_daily),
                                             ("backup_keep_weekly", keep_weekly)) if value is not None}
    if schedule is not None:
        changes["backup_schedule"] = None if schedule.strip().lower() in ("off", "none", "") else schedule
    if changes:
        deployment = call(client.patch, app_path(app), changes)["deployment"]
    else:
        deployment = call(client.get, app_path(app))["deployment"]
    finish(as_json, deployment, f"{app}: backups {backup_words(deployment)}.")


# -- the platform ----------------------------------------------------------------------------------------------


@cli.command()
@json_option
@pass_state
def nodes(state, as_json):
    """The cluster's nodes with their free CPU, memory and disk."""
    found = call(state.client().get, "/nodes")["nodes"]
    if as_json:
        output.emit_json({"nodes": found})
        return
    output.table(["NODE", "STATUS", "CPU", "MEMORY FREE", "DISK FREE"],
                 [(n["node"], n["status"], f"{n['cpu'] * 100:.0f}% of {n['maxcpu']}",
                   f"{n['free_memory_mb']} / {n['total_memory_mb']} MB",
                   f"{n['free_disk_gb']} GB" if n["free_disk_gb"] is not None else "?") for n in found])


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def tokens(ctx, as_json):
    """Your API tokens: list them, create one (shown once), revoke one by its prefix."""
    listing(ctx, as_json, "tokens", ["NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED"],
            lambda t: (t["name"], t["prefix"], stamp(t["created_at"]), stamp(t["last_used_at"]),
                       stamp(t["expires_at"]), stamp(t["revoked_at"])))


def listing(ctx, as_json, resource, columns, row):
    """A group's own output when no subcommand is given: GET /<resource> as a table (or JSON)."""
    if ctx.invoked_subcommand is not None:
        return
    found = call(ctx.find_object(State).client().get, f"/{resource}")[resource]
    if as_json:
        output.emit_json({resource: found})
    else:
        output.table(columns, [row(item) for item in found])


def stamp(value):
    return value[:19].replace("T", " ") if value else None


@tokens.command("create")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(1, 3650))
@json_option
@pass_state
def tokens_create(state, name, expires_in_days, as_json):
    """Create a token NAME; it is printed this once."""
    body = {"name": name, **({"expires_in_days": expires_in_days} if expires_in_days else {})}
    answer = call(state.client().post, "/tokens", body)
    finish(as_json, answer, answer["token"])


@tokens.command("revoke")
@click.argument("prefix")
@pass_state
def tokens_revoke(state, prefix):
    """Revoke the token whose prefix (as paas tokens shows it) starts with PREFIX."""
    client = state.client()
    matches = [t for t in call(client.get, "/tokens")["tokens"] if t["prefix"].startswith(prefix) and not
               t["revoked_at"]]
    if len(matches) != 1:
        raise Fail(f"{len(matches)} live tokens start with {prefix!r}: give a prefix that names one")
    call(client.delete, f"/tokens/{matches[0]['id']}")
    output.line(f"Revoked {matches[0]['name']} ({matches[0]['prefix']}).")


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def users(ctx, as_json):
    """People on the platform (admins): list, create, change role, disable or enable."""
    listing(ctx, as_json, "users", ["USERNAME", "ROLE", "CREATED", "DISABLED"],
            lambda u: (u["username"], u["role"], stamp(u["created_at"]), stamp(u["disabled_at"])))


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="An admin (default: a member).")
@json_option
@pass_state
def users_create(state, username, admin, as_json):
    """Create a user; their first API token is printed this once."""
    answer = call(state.client().post, "/users", {"username": username, "role": "admin" if admin else "member"})
    finish(as_json, answer, f"Created {username}. Their first API token (shown once): {answer['token']}")


def user_change(name, body, done):
    @click.argument("username")
    @json_option
    @pass_state
    def command(state, username, as_json):
        answer = call(state.client().patch, f"/users/{quote(username, safe='')}", body)
        finish(as_json, answer, f"{username} {done}.")
    return name, command


for _name, _body, _done, _doc in (("disable", {"disabled": True}, "is disabled; their tokens are revoked",
                                   "Disable a user (revokes every token)."),
                                  ("enable", {"disabled": False}, "is enabled", "Enable a disabled user."),
                                  ("promote", {"role": "admin"}, "is an admin", "Make a user an admin."),
                                  ("demote", {"role": "member"}, "is a member", "Make a user a member.")):
    _, _command = user_change(_name, _body, _done)
    _command.__doc__ = _doc
    users.command(_name)(_command)


@users.command("quota")
@click.argument("username")
@click.option("--deployments", type=click.IntRange(0))
@click.option("--cores", type=click.IntRange(0))
@click.option("--memory", type=click.IntRange(0), help="MB")
@click.option("--disk", type=click.IntRange(0), help="GB")
@click.option("--default", "reset", is_flag=True, help="Back to the platform's defaults.")
@json_option
@pass_state
def users_quota(state, username, deployments, cores, memory, disk, reset, as_json):
    """Set a user's limits (the others keep theirs), or --default to use the platform's."""
    given = {k: v for k, v in (("deployments", deployments), ("cores", cores), ("memory", memory), ("disk", disk))
             if v is not None}
    if reset == bool(given):
        raise click.UsageError("give --default, or one or more of --deployments, --cores, --memory, --disk")
    current = call(state.client().get, f"/users/{quote(username, safe='')}")["user"]["quota_overrides"]
    quotas = dict.fromkeys(current) if reset else {**current, **given}
    answer = call(state.client().patch, f"/users/{quote(username, safe='')}", {"quotas": quotas})
    finish(as_json, answer, f"{username}'s quotas: " + ", ".join(
        f"{key} {value if value is not None else 'default'}" for key, value in sorted(quotas.items())))


@cli.command()
@click.argument("app")
@click.argument("state_word", metavar="on|off", type=click.Choice(["on", "off"]), required=False)
@json_option
@pass_state
def webhook(state, app, state_word, as_json):
    """GitHub push-to-deploy: show it, or turn it on (prints the payload URL and secret once) or off."""
    client = state.client()
    path = app_path(app, "/webhook")
    if state_word is None:
        answer = call(client.get, path)
    elif state_word == "on":
        answer = call(client.post, path)
    else:
        answer = call(client.delete, path) or {"enabled": False}
    if as_json:
        output.emit_json(answer)
        return
    if not answer.get("enabled"):
        output.line(f"Push-to-deploy is off for {app}.")
        return
    output.line(f"Push-to-deploy is on for {app}.")
    output.fields([("payload URL", answer.get("url")), ("content type", "application/json"),
                   ("secret", answer.get("secret") or "(shown only when turned on)"),
                   ("events", ", ".join(answer.get("events") or ["push"]))])
    if answer.get("secret"):
        output.line("In GitHub: Settings > Webhooks > Add webhook; paste the payload URL and the secret, choose "
                    "application/json and 'Just the push event'. The secret is not shown again.")


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell):
    """Print the shell completion script: eval "$(paas completion bash)" (or zsh, or fish)."""
    from click.shell_completion import get_completion_class  # noqa: PLC0415 (only this command needs it)

    completer = get_completion_class(shell)(cli, {}, "paas", "_PAAS_COMPLETE")
    sys.stdout.write(completer.source())


# -- errors ----------------------------------------------------------------------------------------------------


def api_failure(exc):
    parts = [exc.message]
    for field, problem in sorted((exc.fields or {}).items()):
        parts.append(f"  {field}: {problem}")
    if exc.request_id:
        parts.append(f"  (request id {exc.request_id})")
    return Fail("\n".join(parts))


def call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ApiError as exc:
        raise api_failure(exc) from None


def run():
    """The console script: `paas`. Every way out is a message and an exit status, never a traceback."""
    try:
        cli.main(prog_name="paas", standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C or end of input at a prompt
        output.err.print("interrupted", markup=False)
        sys.exit(130)
    except KeyboardInterrupt:
        output.err.print("interrupted", markup=False)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except config.ConfigError as exc:
        Fail(str(exc)).show()
        sys.exit(1)
    except ApiError as exc:
        api_failure(exc).show()
        sys.exit(1)
    except BrokenPipeError:  # paas ... | head: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (KeyError, TypeError, ValueError) as exc:  # an answer of another shape than this client knows
        Fail(f"the platform's answer was not what this client expects ({exc.__class__.__name__}: {exc}); "
             "is paas older or newer than the platform?").show()
        sys.exit(1)
