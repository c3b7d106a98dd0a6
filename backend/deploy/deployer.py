"""The deploy step: one release of an app onto its guest, switched in only once it answers.

Layout on the guest (under the transport's root, /srv/paas on a real guest):

    releases/<version>/src        the checked-out source, built in place (the app's user owns it)
    releases/<version>/home       HOME of the build and release commands (the app's user owns it)
    releases/<version>/app.env    the environment (systemd EnvironmentFile format), mode 0600
    releases/<version>/env.sh     the same for build commands (shell-quoted), mode 0640, group of the app's user
    releases/<version>/start      the start script (mode 0755) of the web process; proc-<name> of the others
    releases/<version>/processes  the names of the processes beside web; build-key: the build cache's key
    current -> releases/<version>
    data/                         DATA_DIR of every release: the app's own files (the app's user owns it)

Only src/ and home/ belong to the app's user: the files the platform reads back or hands to systemd as root
stay root's, so that the app cannot swap one for a link.

Each release is built in its own directory while the previous one keeps serving; then `current`
is switched (an atomic rename), the service restarted and the app health-checked. If the check
fails, `current` is switched back and the previous release restarted, so a failed release never
takes down an app that worked.

Behind a router (a switch_route callback) a release replaces a live one without a moment unanswered. The
router holds two ports of each app, its own and the spare next to it (spare_port), and sends every request to
the first that accepts. A release starts beside the live one as CANDIDATE_SERVICE on the spare port and is
health-checked there: the router never sends it a request while the live release answers, so a release that
fails its check is removed having seen none. Once it answers, the app's own service restarts on it (the live
release finishes its requests and stops; meanwhile the router sends requests to the spare); once that answers
too, the spare drains and goes. The app's service, its port and its processes stay what they were, so every
other part of the platform (ps, logs, actions) sees one web process, and no switch reloads the router.

One module over 400 lines on purpose: it is one class, the steps of one release, read top to bottom.
"""
import hashlib
import http.client
import logging
import secrets
import shlex
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from backend.deploy import detection, recipes
from backend.deploy.control import Interrupted, RunControl
from backend.deploy.transport import (
    APP_SERVICE,
    CANDIDATE_SERVICE,
    CommandTimeout,
    HostKeyMismatch,
    ServiceSpec,
    TransportError,
    process_service,
)
from backend.deploy.units import render_env_file
from backend.rules import check_branch, check_commit, check_github_url

log = logging.getLogger(__name__)
ERROR_TAIL_LINES = 15
ROLLBACK_SECONDS = 120  # on top of the health check's time: switching back must not starve
REACHABLE_SECONDS = 180  # a new guest's sshd may take a while to answer


def spare_port(port):
    """The port a new release starts on beside the live one on `port` (a router holds both for the app)."""
    return port + 1 if port < 65535 else port - 1


class DeployFailed(Exception):
    """The release failed (a build, a health check, the guest), worded for the app's owner."""


class KeptPrevious(DeployFailed):
    """The release failed; the previous one was switched back in and answers."""


class ReleaseLog(Protocol):
    """Where a release's output goes, line by line (the caller stores it)."""

    def __call__(self, line: str, stream: str = "out") -> None: ...

    def step(self, text: str) -> None: ...

    def redact(self, line: str) -> str: ...


@dataclass(frozen=True)
class ReleaseSpec:
    """What one release run needs to know, read by the caller before it starts."""

    deployment_id: str  # for the server log only
    name: str
    github_url: str
    address: str
    version: int
    branch: str
    commit: str | None
    config: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    live_release: int | None = None  # the version serving now, if any
    live_port: int | None = None  # where it serves, and the path its health check asked for
    live_health_path: str | None = None


# -- running one release ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The deploy settings a Deployer works with (the composition root reads them from the configuration)."""

    command_timeout: float = 900
    health_timeout: float = 60
    releases_kept: int = 3
    git_protocols: str = "https"
    git_rewrites: tuple = ()  # (base, insteadOf prefix) pairs
    http_proxy: str | None = None  # what apt, pip, npm and git on the guest go through (GUEST_HTTP_PROXY)
    no_proxy: str | None = None


class Deployer:
    """Runs one release on a guest through a transport: build beside the live release, switch, check.

    It reports through its callbacks only: release_log takes the output, on_progress(**fields) the
    commit and settings as soon as they are known; control bounds it in time and stops it.
    """

    def __init__(self, transport, release: ReleaseSpec, release_log: ReleaseLog, control: RunControl,
                 limits=Limits(), on_progress=None, switch_route=None, drain_seconds=0.0):
        self.transport, self.release, self.log, self.control = transport, release, release_log, control
        self.on_progress = on_progress or (lambda **fields: None)
        # switch_route(port) -> str: the router sends the app's requests to that port of the guest from now
        # on (the words say how it went); None: no router, a release restarts the app in place.
        self.switch_route = switch_route
        self.drain_seconds = drain_seconds
        self.command_timeout = limits.command_timeout
        self.health_timeout = limits.health_timeout
        self.keep = limits.releases_kept
        self.git_protocols = limits.git_protocols
        self.git_rewrites = dict(limits.git_rewrites)
        self.http_proxy, self.no_proxy = limits.http_proxy, limits.no_proxy
        self.apt_updated = False
        self.manages_system = getattr(transport, "manages_system", False)
        root = transport.root
        self.root = root
        self.dir = f"{root}/releases/{release.version}"
        self.src = f"{self.dir}/src"
        self.current = f"{root}/current"
        self.data_dir = f"{root}/data"  # DATA_DIR: the app's files that every release shares

    # commands

    def _timeout(self):
        left = self.control.seconds_left()
        if left <= 1:
            raise TimeoutError(f"the job ran out of its {self.control.time_limit} s time limit")
        return min(self.command_timeout, left)

    def sh(self, argv, *, label=None, cwd=None, env=None, quiet=False, as_app_user=False, check=True):
        """Run a command on the guest, its output in the release log (or collected, when quiet)."""
        self.control.checkpoint()
        lines = []
        on_line = lines.append if quiet else self.log
        if label:
            self.log.step(label)
        try:
            result = self.transport.run(list(argv), cwd=cwd, env=env, timeout=self._timeout(), on_line=on_line,
                                as_app_user=as_app_user)
        except CommandTimeout as exc:
            raise DeployFailed(f"{label or argv[0]}: {exc}{self._tail_text(exc.tail)}") from None
        except TransportError as exc:
            raise DeployFailed(f"{label or argv[0]}: {exc}") from None
        if check and not result.ok:
            raise DeployFailed(f"{label or argv[0]} exited with status {result.exit_code}"
                               f"{self._tail_text(result.tail)}")
        return lines if quiet else result

    def succeeds(self, argv):
        """Whether a quiet command (a test) exits 0."""
        self.control.checkpoint()
        try:
            return self.transport.run(list(argv), timeout=self._timeout()).ok
        except TransportError as exc:
            raise DeployFailed(f"{argv[0]}: {exc}") from None

    def _tail_text(self, tail):
        tail = [self.log.redact(line) for line in list(tail)[-ERROR_TAIL_LINES:] if line.strip()]
        return ("; last lines:\n" + "\n".join(tail)) if tail else ""

    def in_release(self, argv, label):
        """A build or install command: in the source directory, with the app's environment, as the app user."""
        wrapped = ("sh", "-c", '. "$1" && shift && exec "$@"', "paas-build", f"{self.dir}/env.sh", *argv)
        path_dirs = ":".join(f"{self.src}/{d}" for d in self.plan.path_dirs)
        env = {"PATH": f"{path_dirs}:/usr/local/bin:/usr/bin:/bin" if path_dirs else "/usr/local/bin:/usr/bin:/bin",
               "PORT": str(self.plan.port), "HOST": self.transport.bind_host, "DATA_DIR": self.data_dir,
               "CI": "true", "HOME": f"{self.dir}/home",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "npm_config_update_notifier": "false", **self.proxy_env()}
        self.sh(wrapped, label=label, cwd=self.src, env=env, as_app_user=True)

    def proxy_env(self):
        """The variables that send pip, npm and git through the guests' proxy (none without one)."""
        if not self.http_proxy:
            return {}
        names = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "npm_config_proxy", "npm_config_https_proxy")
        env = dict.fromkeys(names, self.http_proxy)
        if self.no_proxy:
            env.update(no_proxy=self.no_proxy, NO_PROXY=self.no_proxy, npm_config_noproxy=self.no_proxy)
        return env

    def apt_get(self, *args, label):
        """apt-get on the guest, non-interactive, waiting for another apt's lock, through the proxy if any."""
        proxy = ["-o", f"Acquire::http::Proxy={self.http_proxy}", "-o", f"Acquire::https::Proxy={self.http_proxy}"] \
            if self.http_proxy else []
        return self.sh(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-o", "DPkg::Lock::Timeout=300",
                        *proxy, *args], label=label)

    def ensure_packages(self, packages, label):
        """apt-get install what of packages the guest lacks (after one apt-get update); nothing when it has
        them all, as a template with the runtimes or a guest's second release does."""
        lines = self.sh(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n", "--", *packages],
                        quiet=True, check=False)
        installed = {words[0] for words in (line.split() for line in lines)
                     if len(words) >= 2 and words[1].startswith("ii")}
        missing = [package for package in packages if package not in installed]
        if not missing:
            self.log(f"{' '.join(packages)}: installed already")
            return
        if not self.apt_updated:
            self.apt_get("update", label="apt-get update")
            self.apt_updated = True
        self.apt_get("-y", "install", "--no-install-recommends", *missing, label=label)

    # steps

    def prepare_guest(self):
        if self.manages_system:
            self.ensure_packages(("git", "ca-certificates"), label="install git")
            self.sh(["sh", "-c", 'id -u "$1" >/dev/null 2>&1 || useradd --system --no-create-home '
                     '--home-dir "$2" --shell /usr/sbin/nologin "$1"', "paas-useradd", self.transport.app_user,
                     self.root],
                    label=f"app user {self.transport.app_user}")
        self.sh(["mkdir", "-p", "--", f"{self.root}/releases", self.data_dir], quiet=True)
        if self.manages_system:
            # The app's own: it outlives releases (and is in the guest's snapshots and backups); never followed
            # as root: -h changes a link itself, and only the directory, not what is in it.
            user = self.transport.app_user
            self.sh(["chown", "-h", "--", f"{user}:{user}", self.data_dir], quiet=True)
            self.sh(["chmod", "0750", "--", self.data_dir], quiet=True)
        previous = self.previous_target()
        if previous and self.current_target() == f"releases/{self.release.version}":
            # A run of this release died after switching to it: the live one serves again while it rebuilds.
            self.log.step(f"switch back to {previous} while release {self.release.version} is rebuilt")
            self.switch_to(previous)
            self.restart()
            self.run_processes(self.release_processes(previous))
        # A candidate a dead run left goes once the app's own service is back (it may have been what answered).
        self.remove_candidate(quiet=True)
        self.sh(["rm", "-rf", "--", self.dir], quiet=True)
        self.sh(["mkdir", "-p", "--", self.dir], quiet=True)

    def git_env(self):
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": self.git_protocols, "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ASKPASS": "/bin/false", "GCM_INTERACTIVE": "never"}
        rewrites = sorted(self.git_rewrites.items())
        env["GIT_CONFIG_COUNT"] = str(len(rewrites))
        for i, (base, prefix) in enumerate(rewrites):
            env[f"GIT_CONFIG_KEY_{i}"] = f"url.{base}.insteadOf"
            env[f"GIT_CONFIG_VALUE_{i}"] = prefix
        return {**env, **self.proxy_env()}

    def fetch(self):
        release = self.release
        # The values were checked at the API; a sink checks again what it is about to use.
        check_github_url(release.github_url)
        check_branch(release.branch)
        if release.commit is not None:
            check_commit(release.commit)
        argv = ["git", "clone", "--no-recurse-submodules", "--single-branch", "--branch", release.branch]
        if release.commit is None:
            argv += ["--depth", "1"]
        argv += ["--", release.github_url, self.src]
        self.sh(argv, label=f"git clone {release.github_url} (branch {release.branch})", env=self.git_env())
        if release.commit is not None:
            self.sh(["git", "-C", self.src, "-c", "advice.detachedHead=false", "checkout", "--detach",
                     release.commit, "--"], label=f"check out {release.commit}", env=self.git_env())
        sha = self.sh(["git", "-C", self.src, "rev-parse", "HEAD"], quiet=True, env=self.git_env())
        sha = next((line.strip() for line in sha if line.strip()), "")
        if len(sha) != 40:
            raise DeployFailed("git did not report the commit it checked out")
        self.log(f"commit {sha}")
        # The history is not needed to run the app, and a static site must not serve it.
        self.sh(["rm", "-rf", "--", f"{self.src}/.git"], quiet=True)
        self.on_progress(commit_sha=sha)
        return sha

    def read_repo(self):
        """The source's file names (a few levels deep) and the text of the files detection asks for, in two
        commands whatever their number."""
        pruned = ("-name", ".git", "-o", "-name", "node_modules", "-o", "-name", ".venv")
        listing = self.sh(["find", self.src, "-mindepth", "1", "-maxdepth", str(detection.LIST_DEPTH),
                           "(", *pruned, ")", "-prune", "-o", "-print"], quiet=True)
        prefix = self.src + "/"
        files = {line[len(prefix):] for line in listing if line.startswith(prefix)}
        wanted = detection.files_to_read(files)
        texts = {}
        if wanted:
            # Each file's text follows a line holding a marker no file of the repository can know in advance.
            marker = f"paas-file-{secrets.token_hex(8)}"
            lines = self.sh(["sh", "-c", READ_FILES, "paas-read", marker, self.src, *wanted], quiet=True,
                            as_app_user=True)
            current = None
            for line in lines:
                if line.startswith(marker + " "):
                    current = line[len(marker) + 1:]
                    texts[current] = []
                elif current is not None:
                    texts[current].append(line)
            texts = {name: "\n".join(body[:-1] if body and body[-1] == "" else body).strip("\n") + "\n"
                     for name, body in texts.items()}
        return recipes.Repo(files, texts)

    def plan_on(self, repo, port):
        """The recipe for this repository with the deployment's settings, listening on port (None: the app's)."""
        config = self.release.config
        try:
            return recipes.plan_for(config.get("framework") or "auto", repo, host=self.transport.bind_host,
                                    port=port or config.get("port"), build_command=config.get("build_command"),
                                    start_command=config.get("start_command"),
                                    health_check_path=config.get("health_check_path"),
                                    release_command=config.get("release_command"))
        except recipes.RecipeError as exc:
            raise DeployFailed(str(exc)) from None

    def make_plan(self, repo):
        self.repo = repo
        self.plan = self.plan_on(repo, None)
        for reason in self.plan.reasons:
            self.log(reason)
        shown = self.plan.config()
        self.log(f"port {self.plan.port}; processes: "
                 + "; ".join(f"{name}: {command}" for name, command in shown["processes"].items()))
        if shown["release"]:
            self.log(f"release phase: {shown['release']}")
        return self.plan

    def install_runtime(self):
        if self.manages_system:
            self.ensure_packages(tuple(self.plan.packages), label=f"install {' '.join(self.plan.packages)}")
        else:
            for command in self.plan.commands:
                result = self.sh(["sh", "-c", 'command -v "$1"', "paas-which", command], quiet=True, check=False)
                if not result:
                    raise DeployFailed(f"{command} is not installed on this machine; "
                                       f"the {self.plan.runtime} runtime needs it")
        self.runtime_version = self.check_runtime()

    # What reports the version of each runtime on the guest.
    VERSION_COMMANDS = {"python": ("python3", "-c", "import platform; print(platform.python_version())"),
                        "node": ("node", "--version")}

    def check_runtime(self):
        """The guest's version of the app's runtime, checked against what the app asks for."""
        argv = self.VERSION_COMMANDS.get(self.plan.runtime)
        if argv is None:
            return None
        lines = self.sh(list(argv), quiet=True, check=False)
        version = next((line.strip() for line in lines if line.strip()), "")
        if not version:
            raise DeployFailed(f"{argv[0]} did not report its version on the guest")
        self.log(f"{self.plan.runtime} {version.lstrip('v')} on the guest")
        for requirement in self.plan.requirements:
            if requirement.runtime != self.plan.runtime:
                continue
            try:
                problem = detection.unmet(requirement, version)
            except detection.RecipeError as exc:
                raise DeployFailed(str(exc)) from None
            if problem:
                raise DeployFailed(problem)
            self.log(f"{requirement.source} asks for {self.plan.runtime} {requirement.spec}: satisfied")
        return version

    def _script(self, argv, what, port=None):
        """A start script: the release's directory, PATH, PORT and HOST, then exec argv."""
        path_dirs = "".join(f"{shlex.quote(f'{self.src}/{d}')}:" for d in self.plan.path_dirs)
        return (
            "#!/bin/sh\n"
            f"# Written by the platform: the {what} of release {self.release.version} of {self.release.name}.\n"
            f"cd {shlex.quote(self.src)} || exit 1\n"
            f'PATH={path_dirs}"$PATH"\n'
            f"PORT={port or self.plan.port}\nHOST={shlex.quote(self.transport.bind_host)}\n"
            f"DATA_DIR={shlex.quote(self.data_dir)}\n"
            "export PATH PORT HOST DATA_DIR\n"
            f"exec {shlex.join(argv)}\n"
        ).encode()

    def write_files(self):
        env = dict(self.release.env)
        self.transport.upload(f"{self.dir}/app.env", render_env_file(env), mode=0o600)
        script = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))
        self.transport.upload(f"{self.dir}/env.sh", script.encode(), mode=0o640 if self.manages_system else 0o600)
        self.transport.upload(f"{self.dir}/start", self._script(self.plan.start, "web process"), mode=0o755)
        for process in self.plan.processes:
            script = self._script(process.argv, f"{process.name} process")
            self.transport.upload(f"{self.dir}/proc-{process.name}", script, mode=0o755)
        # Which processes this release runs: read back when the deployer switches to it again.
        names = "".join(f"{p.name}\n" for p in self.plan.processes)
        self.transport.upload(f"{self.dir}/processes", names.encode(), mode=0o644)
        self.sh(["mkdir", "-p", "--", f"{self.dir}/home"], quiet=True)
        if self.manages_system:
            user = self.transport.app_user
            self.sh(["chown", "-R", "--", f"{user}:{user}", self.src, f"{self.dir}/home"], quiet=True)
            self.sh(["chgrp", "--", user, f"{self.dir}/env.sh"], quiet=True)

    def build(self):
        install = self.plan.install
        if install and self.plan.cache_dir:
            key = self.dependency_key()
            cached = self.reuse_cache(key)
            if cached:
                install = self.plan.reinstall
        for step in install + self.plan.build:
            self.in_release(step.argv, step.label)
        if self.plan.install and self.plan.cache_dir:
            self.transport.upload(f"{self.dir}/build-key", f"{key}\n".encode(), mode=0o644)

    # -- the build cache: a release whose dependency files are unchanged reuses the previous install -------

    def dependency_key(self):
        """A digest of what decides the install step's result: the dependency files' content, the install
        commands and the runtime's version."""
        lines = self.sh(["sh", "-c", HASH_FILES, "paas-deps", self.src, *recipes.DEPENDENCY_FILES], quiet=True,
                        as_app_user=True)
        digest = hashlib.sha256()
        for part in (*sorted(line.strip() for line in lines if line.strip()),
                     *(shlex.join(step.argv) for step in self.plan.install), str(self.runtime_version)):
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()

    def reuse_cache(self, key):
        """Copy the install of an earlier release on the guest with the same key; True when one was reused."""
        cache_dir = self.plan.cache_dir
        if self.succeeds(["sh", "-c", 'test -e "$1" || test -h "$1"', "paas-exists", f"{self.src}/{cache_dir}"]):
            self.log(f"build cache: the repository has its own {cache_dir}; installing as it says")
            return False
        listing = self.sh(["ls", "-1", "--", f"{self.root}/releases"], quiet=True, check=False)
        versions = sorted((int(n) for n in listing if n.strip().isdigit() and int(n) != self.release.version),
                          key=lambda v: (v != self.release.live_release, -v))
        for version in versions:
            other = f"{self.root}/releases/{version}"
            # As the app's user: it owns the release's directory, and root follows no link it may have put there.
            lines = self.sh(["cat", "--", f"{other}/build-key"], quiet=True, check=False, as_app_user=True)
            if not lines or lines[0].strip() != key:
                continue
            if not self.succeeds(["test", "-d", f"{other}/src/{cache_dir}"]):
                continue
            self.log.step(f"build cache: the dependencies are those of release {version}; reusing its {cache_dir}")
            # As the app's user: the source is the user's, and a link planted in it must not lead root anywhere.
            copied = self.sh(["cp", "-a", "--", f"{other}/src/{cache_dir}", f"{self.src}/{cache_dir}"],
                             check=False, as_app_user=True)
            if copied.ok and cache_dir == recipes.VENV:
                copied = self.sh(["python3", "-c", RELOCATE_VENV, f"{other}/src/{cache_dir}",
                                  f"{self.src}/{cache_dir}"], check=False, as_app_user=True)
            if copied.ok:
                return True
            self.log(f"build cache: copying failed (exit {copied.exit_code}); installing from scratch")
            self.sh(["rm", "-rf", "--", f"{self.src}/{cache_dir}"], quiet=True, as_app_user=True)
            return False
        self.log("build cache: no earlier release on the guest has these dependencies; installing")
        return False

    def release_phase(self):
        """The release command, after the build and before the switch: a failure leaves the live release serving."""
        if self.plan.release is not None:
            self.in_release(self.plan.release.argv, self.plan.release.label)

    # -- the processes ---------------------------------------------------------------------------------

    def service_spec(self):
        return ServiceSpec(name=APP_SERVICE, description=f"{self.release.name} (deployed by the PaaS)",
                           working_directory=f"{self.current}/src", exec_start=(f"{self.current}/start",),
                           environment_file=f"{self.current}/app.env", user=self.transport.app_user)

    def process_spec(self, name):
        return ServiceSpec(name=process_service(name), description=f"{self.release.name} {name} (deployed by the PaaS)",
                           working_directory=f"{self.current}/src", exec_start=(f"{self.current}/proc-{name}",),
                           environment_file=f"{self.current}/app.env", user=self.transport.app_user,
                           restart_always=True)

    def release_processes(self, target):
        """The names of the processes beside web that the release in target (releases/<n>) runs."""
        lines = self.sh(["cat", "--", f"{self.root}/{target}/processes"], quiet=True, check=False, as_app_user=True)
        return [line.strip() for line in lines if recipes.PROCESS_NAME.fullmatch(line.strip())]

    def run_processes(self, names):
        """Install and (re)start the units of the processes named, remove those of any other process."""
        try:
            wanted = {process_service(name): name for name in names}
            for service in self.transport.services():
                if service not in (APP_SERVICE, CANDIDATE_SERVICE) and service not in wanted:
                    self.log(f"process unit {service} is not in this release: removed")
                    self.transport.remove_service(service)
            for service, name in wanted.items():
                self.transport.install_service(self.process_spec(name))
                self.transport.restart_service(service)
                self.log(f"process {name}: (re)started as {service}")
        except TransportError as exc:
            raise DeployFailed(f"the processes did not start: {exc}") from None

    def previous_target(self):
        """The directory of the release that served before this one, when it is still on the guest."""
        live = self.release.live_release
        if live is None or live == self.release.version:
            return None
        result = self.transport.run(["test", "-d", f"{self.root}/releases/{live}/src"], timeout=self._timeout())
        return f"releases/{live}" if result.ok else None

    def current_target(self):
        lines = self.sh(["readlink", "--", self.current], quiet=True, check=False)
        return lines[0].strip() if lines and lines[0].strip() else None

    def switch_to(self, target):
        temporary = f"{self.current}.next"
        self.sh(["ln", "-sfn", "--", target, temporary], quiet=True)
        self.sh(["mv", "-Tf", "--", temporary, self.current], quiet=True)

    def restart(self):
        try:
            self.transport.install_service(self.service_spec())
            self.transport.restart_service(APP_SERVICE)
        except TransportError as exc:
            raise DeployFailed(f"the service did not start: {exc}") from None

    def health_check(self, port=None, service=APP_SERVICE):
        """GET http://ip:port/path until it answers 2xx/3xx, within the time limit (port: the plan's by default;
        service: the one whose exit ends the wait and whose log explains a failure)."""
        host, port, path = self.release.address, port or self.plan.port, self.plan.health_check_path
        self.log.step(f"health check: GET http://{host}:{port}{path}")
        started = time.monotonic()
        deadline = started + self.health_timeout
        last = "no answer"
        while True:
            status = probe(host, port, path)
            if isinstance(status, int) and 200 <= status < 400:
                self.log(f"answered {status} after {time.monotonic() - started:.1f} s")
                return
            last = f"answered {status}" if isinstance(status, int) else status
            if time.monotonic() >= deadline:
                break
            if self.transport.service_running(service) is False:
                last = "gave no answer: the app exited"
                break
            self.control.sleep(0.2)
        tail = []
        try:
            tail = self.transport.service_log(service, lines=ERROR_TAIL_LINES)
        except TransportError:
            pass
        for line in tail:
            self.log(line, stream="app")
        raise DeployFailed(f"health check failed: GET {path} on port {port} {last} within {self.health_timeout} s"
                           f"{self._tail_text(tail)}")

    def prune(self, keep_also):
        listing = self.sh(["ls", "-1", "--", f"{self.root}/releases"], quiet=True, check=False)
        versions = sorted((int(n) for n in listing if n.strip().isdigit()), reverse=True)
        keep = set(versions[:self.keep]) | {self.release.version} | set(keep_also)
        for version in versions:
            if version not in keep:
                self.sh(["rm", "-rf", "--", f"{self.root}/releases/{version}"], quiet=True, check=False)

    def wait_reachable(self):
        """A guest that just got its address may not accept connections yet: retry for a while."""
        deadline = time.monotonic() + REACHABLE_SECONDS
        while True:
            try:
                self.transport.run(["true"], timeout=30)
                return
            except HostKeyMismatch as exc:
                raise DeployFailed(f"the guest was refused: {exc}") from None
            except TransportError as exc:
                if time.monotonic() >= deadline:
                    raise DeployFailed(f"the guest did not answer: {exc}") from None
                self.control.sleep(2)

    def run(self):
        """Build, release phase, switch, check; switch back on failure. Returns the commit that went live."""
        self.log.step(f"release {self.release.version}: {self.release.github_url} branch {self.release.branch}"
                      + (f" at {self.release.commit}" if self.release.commit else ""))
        self.wait_reachable()
        self.prepare_guest()
        try:
            sha = self.fetch()
            self.make_plan(self.read_repo())
            self.on_progress(config={**self.release.config, **self.plan.config()})
            self.install_runtime()
            self.write_files()
            self.build()
            self.release_phase()
        except TransportError as exc:  # an upload's, the commands' are DeployFailed already
            failure = DeployFailed(f"the guest: {exc}")
            self.keep_live_release(failure)
            raise failure from None
        except (DeployFailed, TimeoutError) as exc:
            self.keep_live_release(exc)
            raise
        previous = self.previous_target()
        if self.can_release_beside(previous):
            self.release_beside(previous)
            self.prune([int(previous.rsplit("/", 1)[-1])])
            return sha
        self.log.step(f"switch to release {self.release.version}")
        self.switch_to(f"releases/{self.release.version}")
        try:
            self.restart()
            self.health_check()
            self.run_processes([process.name for process in self.plan.processes])
        except Interrupted:
            raise
        except Exception as exc:
            if previous is None:
                raise
            self.roll_back(previous, exc)
        last_part = previous.rsplit("/", 1)[-1] if previous else ""
        previous_version = int(last_part) if last_part.isdigit() else None
        self.prune([previous_version] if previous_version else [])
        return sha

    # -- behind a router: the new release beside the live one --------------------------------------------

    def candidate_spec(self):
        return ServiceSpec(name=CANDIDATE_SERVICE, description=f"{self.release.name} release {self.release.version}"
                           " starting beside the live one (deployed by the PaaS)",
                           working_directory=self.src, exec_start=(f"{self.dir}/start-next",),
                           environment_file=f"{self.dir}/app.env", user=self.transport.app_user)

    def remove_candidate(self, quiet=False):
        try:
            if CANDIDATE_SERVICE in self.transport.services():
                self.transport.remove_service(CANDIDATE_SERVICE)
                if not quiet:
                    self.log(f"the release that answered beside the app ({CANDIDATE_SERVICE}) is stopped")
        except TransportError as exc:
            self.log(f"could not remove {CANDIDATE_SERVICE}: {exc}", stream="error")

    def drain(self, what):
        """Let the router stop passing over the app's port and the requests on their way to `what` finish."""
        if self.drain_seconds:
            self.log(f"{what}: {self.drain_seconds:g} s for the requests on their way to it")
            self.control.sleep(self.drain_seconds)

    def can_release_beside(self, previous):
        live_port = self.release.live_port
        return (self.switch_route is not None and previous is not None and live_port is not None
                and spare_port(live_port) != self.plan.port)

    def release_beside(self, previous):
        """Start the release on the spare port beside the live one and check it there; then move the app's service
        onto it while the spare answers for it; on a failure the live release keeps (or gets back) every request.

        The router holds both ports of the app, the app's own first: it sends each request to the first that
        accepts, so nothing is reloaded for a switch. Raises KeptPrevious."""
        version, live, live_port = self.release.version, self.release.live_release, self.release.live_port
        spare = spare_port(live_port)
        candidate = self.plan_on(self.repo, spare)
        self.transport.upload(f"{self.dir}/start-next", self._script(candidate.start, "web process (beside)", spare),
                              mode=0o755)
        self.log.step(f"start release {version} beside release {live}, on port {spare}")
        try:
            self.transport.install_service(self.candidate_spec())
            self.transport.restart_service(CANDIDATE_SERVICE)
            self.health_check(spare, service=CANDIDATE_SERVICE)
        except Interrupted:
            raise
        except (DeployFailed, TimeoutError, TransportError) as exc:
            self.control.extend(ROLLBACK_SECONDS)
            self.remove_candidate()
            self.log(str(exc), stream="error")
            raise KeptPrevious(f"{exc} (release {live} still serves; release {version} never received a request)") \
                from None
        self.log.step(f"switch to release {version}: release {live} stops, and the router sends the app's requests "
                      f"to port {spare} until the app's own port answers again")
        try:
            self.switch_to(f"releases/{version}")
            self.restart()
            self.health_check()
            self.run_processes([process.name for process in self.plan.processes])
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure, a bug too, moves the app back (move_back raises)
            self.move_back(previous, exc)
        if self.plan.port != live_port:
            self.log.step(f"router: the app's port is now {self.plan.port}")
            self.log(self.switch_route(self.plan.port))
        self.drain(f"release {version} answers on port {self.plan.port}")
        self.remove_candidate()

    def move_back(self, previous, exc):
        """The app's service did not take the new release while the spare answered for it: give it the previous
        release again, and let the spare go. If that fails too, the spare stays: it still answers for the app."""
        exc = self.put_back(previous, exc)
        self.drain(f"release {self.release.live_release} answers again")
        self.remove_candidate()
        raise KeptPrevious(str(exc))

    def keep_live_release(self, exc):
        """A failure before the switch: when the live release still serves from `current`, say so (KeptPrevious)
        instead of failing the deployment; nothing of it was touched."""
        live = self.release.live_release
        if live is None or live == self.release.version:
            return
        # Out of time is one of the failures that lands here: a moment more to look, as roll_back has.
        self.control.extend(ROLLBACK_SECONDS)
        try:
            serving = self.current_target() == f"releases/{live}"
        except (DeployFailed, TimeoutError, TransportError):
            return
        if serving:
            self.log(str(exc), stream="error")
            raise KeptPrevious(f"{exc} (release {live} still serves)") from None

    def roll_back(self, previous, exc):
        """The new release failed its check: put the previous one back and make sure it answers."""
        raise KeptPrevious(str(self.put_back(previous, exc)))

    def put_back(self, previous, exc):
        """Switch `current` back to previous, restart it and check it; returns exc worded for the owner (a bug is
        named by its class), or raises DeployFailed when the previous release does not answer either."""
        self.control.extend(self.health_timeout + ROLLBACK_SECONDS)
        if not isinstance(exc, (DeployFailed, TimeoutError)):
            log.exception("release %s of %s", self.release.version, self.release.deployment_id)
            exc = DeployFailed(f"internal error ({exc.__class__.__name__})")
        self.log(str(exc), stream="error")
        self.log.step(f"switch back to {previous}")
        self.switch_to(previous)
        try:
            self.restart()
            self.health_check_previous()
            self.run_processes(self.release_processes(previous))
        except (DeployFailed, TimeoutError) as again:
            raise DeployFailed(f"{exc}; switching back to the previous release failed too: {again}") from None
        return exc

    def health_check_previous(self):
        plan, self.plan = self.plan, replace(self.plan, port=self.release.live_port or self.plan.port,
                                             health_check_path=self.release.live_health_path or "/")
        try:
            self.health_check()
        finally:
            self.plan = plan


# Prints each file named after the marker and the directory, each after a line "MARKER NAME", its first 64 KiB.
# Links and anything but a regular file are skipped: a repository must not make the platform read elsewhere.
READ_FILES = 'marker=$1; cd "$2" || exit 1; shift 2; for f; do if [ -f "$f" ] && [ ! -h "$f" ]; then ' \
             'printf "\\n%s %s\\n" "$marker" "$f"; head -c 65536 -- "$f" 2>/dev/null; fi; done; true'

# Prints the SHA-256 of each regular file the patterns after the directory match in it (the patterns are the
# platform's own, recipes.DEPENDENCY_FILES; a pattern that matches nothing stays as it is and is skipped).
HASH_FILES = 'cd "$1" || exit 1; shift; for pattern; do for f in $pattern; do ' \
             'if [ -f "$f" ] && [ ! -h "$f" ]; then sha256sum -- "$f"; fi; done; done; true'

# Given two paths, rewrites the first into the second in a copied virtualenv's scripts and pyvenv.cfg (their
# shebangs name the virtualenv's own python by its absolute path). A constant: the paths come as arguments.
RELOCATE_VENV = """
import os, sys
old, new = (os.fsencode(p) for p in sys.argv[1:3])
bindir = os.path.join(new, b"bin")
for path in [os.path.join(new, b"pyvenv.cfg")] + [os.path.join(bindir, n) for n in os.listdir(bindir)]:
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as handle:
        data = handle.read()
    if old in data and b"\\0" not in data:
        tmp = path + b".paas-tmp"
        with open(tmp, "wb") as handle:
            handle.write(data.replace(old, new))
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
"""


def probe(host, port, path, timeout=2.0):
    """The HTTP status of GET path, or why there was none."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "paas-health-check"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"gave no answer ({exc.__class__.__name__})"
    finally:
        connection.close()
