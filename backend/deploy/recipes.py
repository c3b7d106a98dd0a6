"""How each framework is built and run, worked out from the catalogue and what detection found.

A Plan is argument lists. The platform's own commands are composed from checked values and never meet a
shell unquoted. The user's own command lines (build_command, start_command, release_command, Procfile
lines) are their code for their guest, like the app itself: each runs as `sh -c -- LINE` (one argument,
quoted like any other on the way), as the app's user, in the release's source directory, with the app's
environment. A `Procfile` is read as on Heroku: `web:` is the start command when no start_command is
given, `release:` the release command when no release_command is given, and every other line a process
of its own (a worker, a clock) beside the web one.
"""
import re
import shlex
from dataclasses import dataclass, field

from backend.deploy import detection
from backend.deploy.detection import Detected, RecipeError, Repo
from backend.frameworks import FRAMEWORKS
from backend.rules import check_command

__all__ = ["Plan", "Process", "RecipeError", "Repo", "Step", "plan_for", "shell", "parse_procfile", "describe"]

VENV = ".venv"
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")
# A Procfile process name: systemd unit names are made of it (paas-app-<name>).
PROCESS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")
MAX_PROCESSES = 10
# The files whose content decides what a build installs: unchanged, a release may reuse the previous one's
# virtualenv or node_modules (the build cache).
DEPENDENCY_FILES = ("requirements*.txt", "requirements/*.txt", "constraints*.txt", "pyproject.toml", "poetry.lock",
                    "uv.lock", "pdm.lock", "Pipfile", "Pipfile.lock", "setup.py", "setup.cfg", "package.json",
                    "package-lock.json", "npm-shrinkwrap.json")  # shell patterns, relative to the source


@dataclass(frozen=True)
class Step:
    label: str
    argv: tuple


@dataclass(frozen=True)
class Process:
    """A long-running process of the app beside the web one, from a Procfile line."""

    name: str
    argv: tuple


def shell(line):
    """The argument list that runs a user's command line in a POSIX shell on the guest."""
    return ("sh", "-c", "--", line)


def show(argv):
    """An argument list as a person reads it: a user's command line as they wrote it."""
    argv = tuple(argv)
    if argv[:3] == ("sh", "-c", "--") and len(argv) == 4:
        return argv[3]
    return " ".join(map(shlex.quote, argv))


@dataclass(frozen=True)
class Plan:
    framework: str
    runtime: str  # python | node | static
    packages: tuple  # Debian packages a real guest needs
    commands: tuple  # executables a local sandbox must already have
    install: tuple = ()  # Steps: runtime and dependencies
    build: tuple = ()  # Steps: the app's build (and Django's collectstatic and migrate)
    start: tuple = ()  # argv of the production server
    port: int = 8000
    health_check_path: str = "/"
    path_dirs: tuple = field(default=())  # directories (relative to the source) put first on PATH
    release: Step | None = None  # the release phase: after the build, before the switch
    processes: tuple = ()  # Process: the app's other long-running processes
    cache_dir: str | None = None  # what the install step makes, reusable while DEPENDENCY_FILES are unchanged
    reinstall: tuple = ()  # Steps to run instead of install when cache_dir is reused (the project itself)
    reasons: tuple = ()  # what detection found and why, for the build log
    requirements: tuple = ()  # detection.RuntimeRequirement: the runtime versions the app asks for

    def config(self):
        """What a release records of how it was built."""
        return {"framework": self.framework, "runtime": self.runtime, "port": self.port,
                "health_check_path": self.health_check_path,
                "install": [show(s.argv) for s in self.install],
                "build": [show(s.argv) for s in self.build],
                "release": show(self.release.argv) if self.release else None,
                "start": show(self.start),
                "processes": {"web": show(self.start), **{p.name: show(p.argv) for p in self.processes}}}


def _python_install(repo, extra):
    pip = (f"{VENV}/bin/pip", "install", *PIP_FLAGS)
    steps = [Step("create the virtualenv", ("python3", "-m", "venv", VENV))]
    if repo.has("requirements.txt"):
        steps.append(Step("install requirements.txt", (*pip, "-r", "requirements.txt", *extra)))
        # With a copied virtualenv pip finds everything satisfied in a moment, and still installs what the
        # key cannot see: local paths and editable installs (-e .) of this release, files another -r names.
        reinstall = (Step("check requirements.txt against the cached virtualenv",
                          (*pip, "-r", "requirements.txt", *extra)),)
    elif repo.has("pyproject.toml"):
        steps.append(Step("install the project (pyproject.toml)", (*pip, ".", *extra)))
        # The project itself is in the virtualenv: a reused one gets this release's code, not its dependencies.
        reinstall = (Step("install this release of the project (its dependencies are cached)",
                          (*pip, "--no-deps", "--force-reinstall", ".")),)
    else:
        raise RecipeError("no requirements.txt or pyproject.toml: the dependencies are unknown")
    return tuple(steps), reinstall


def _node_install(repo, production):
    lockfile = repo.has("package-lock.json") or repo.has("npm-shrinkwrap.json")
    argv = ["npm", "ci" if lockfile else "install", "--no-audit", "--no-fund"]
    if production:
        argv.append("--omit=dev")
    return (Step("install dependencies (" + ("npm ci, from the lockfile" if lockfile else "npm install") + ")",
                 tuple(argv)),)


def _node_reinstall(scripts):
    """What npm ci runs that a copied node_modules lacks: the app's own install-time scripts. The dependencies'
    built files (native modules) come with the copy, built by the same node: its version is part of the key."""
    return tuple(Step(f"npm run {script} (as npm ci would)", ("npm", "run", script))
                 for script in ("preinstall", "install", "postinstall", "prepare")
                 if isinstance(scripts.get(script), str))


def _gunicorn(repo, framework, bind, extra=()):
    found = detection.python_app(repo, framework)
    argv = (f"{VENV}/bin/gunicorn", "--bind", bind, "--workers", "2", *extra, "--access-logfile", "-")
    if found.pythonpath:
        argv += ("--pythonpath", found.pythonpath)
    return argv + (found.target,), found.reason


def recipe(framework, repo, host, port, start=None):
    """The Plan of a framework for this repository; host and port are where the app must listen.

    `start` (an argument list) replaces the recipe's start command, and spares looking for the app's module.
    """
    bind = f"{host}:{port}"
    reasons = []
    python = dict(runtime="python", packages=("python3", "python3-venv", "git"), commands=("python3", "git"),
                  path_dirs=(f"{VENV}/bin",), cache_dir=VENV)
    if framework == "django":
        install, reinstall = _python_install(repo, ("gunicorn",))
        build = (Step("collect static files", (f"{VENV}/bin/python", "manage.py", "collectstatic", "--noinput")),
                 Step("apply migrations", (f"{VENV}/bin/python", "manage.py", "migrate", "--noinput")))
        if not start:
            module = detection.django_wsgi(repo)
            reasons.append(f"the Django project's WSGI module: {module}")
            start = (f"{VENV}/bin/gunicorn", "--bind", bind, "--workers", "2", "--access-logfile", "-", module)
        return Plan("django", install=install, build=build, start=start, port=port, reinstall=reinstall,
                    reasons=tuple(reasons), **python)
    if framework in ("flask", "fastapi"):
        extra = ("gunicorn",) if framework == "flask" else ("gunicorn", "uvicorn")
        install, reinstall = _python_install(repo, extra)
        if not start:
            workers = () if framework == "flask" else ("--worker-class", "uvicorn.workers.UvicornWorker")
            start, reason = _gunicorn(repo, framework, bind, workers)
            reasons.append(f"the application: {start[-1]} ({reason})")
        return Plan(framework, install=install, start=start, port=port, reinstall=reinstall, reasons=tuple(reasons),
                    **python)
    if framework in ("express", "nextjs"):
        if not repo.has("package.json"):
            raise RecipeError("no package.json at the repository's root")
        scripts = repo.package_json().get("scripts") or {}
        if not isinstance(scripts, dict):
            raise RecipeError("package.json: scripts must be an object")
        node = dict(runtime="node", packages=("nodejs", "npm", "git"), commands=("node", "npm", "git"),
                    path_dirs=("node_modules/.bin",), cache_dir="node_modules")
        if framework == "nextjs":
            install = _node_install(repo, production=False)
            build = (Step("next build", ("npm", "run", "build")),)
            start = start or ("node_modules/.bin/next", "start", "--hostname", host, "--port", str(port))
        else:
            install = _node_install(repo, production=not isinstance(scripts.get("build"), str))
            build = ()
            if isinstance(scripts.get("build"), str):
                build = (Step("npm run build", ("npm", "run", "build")),)
                reasons.append("package.json has a build script: npm run build (dev dependencies installed for it)")
            if start:
                pass
            elif isinstance(scripts.get("start"), str):
                start = ("npm", "start")
                reasons.append(f"package.json's start script: {scripts['start']}")
            else:
                main = repo.package_json().get("main")
                candidates = ((main,) if isinstance(main, str) else ()) + ("server.js", "app.js", "index.js")
                entry = next((f for f in candidates if repo.has(f)), None)
                if entry is None:
                    raise RecipeError("no start script in package.json and no server.js, app.js or index.js")
                start = ("node", entry)
                reasons.append(f"no start script: node {entry}")
        return Plan(framework, install=install, build=build, start=start, port=port, reasons=tuple(reasons),
                    reinstall=_node_reinstall(scripts), **node)
    if framework == "static":
        root = detection.static_root(repo)
        start = start or ("python3", "-m", "http.server", str(port), "--bind", host, "--directory", root)
        return Plan("static", "static", ("python3", "git"), ("python3", "git"), (), (), start, port,
                    reasons=(f"serves the directory {root}",))
    raise RecipeError(f"unknown framework {framework!r}")


def parse_procfile(text):
    """{process name: command line} of a Procfile, in its order (a later line of the same name wins, as on
    Heroku). Names are lowercase letters, digits, '-' and '_' (they name systemd units)."""
    processes = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not command:
            raise RecipeError(f"Procfile line {number}: expected 'name: command'")
        if not PROCESS_NAME.fullmatch(name):
            raise RecipeError(f"Procfile line {number}: the process name {name[:40]!r} must be 1-30 of "
                              "a-z, 0-9, '-' and '_', starting with a letter or digit")
        try:
            check_command(command)
        except ValueError as exc:
            raise RecipeError(f"Procfile line {number} ({name}): the command {exc}") from None
        processes[name] = command
    units = {}
    for name in processes:
        unit = name.replace("_", "-")
        if unit in units:
            raise RecipeError(f"Procfile: the processes {units[unit]!r} and {name!r} would share a unit name")
        units[unit] = name
    others = [name for name in processes if name not in ("web", "release")]
    if len(others) > MAX_PROCESSES:
        raise RecipeError(f"Procfile: at most {MAX_PROCESSES} processes beside web")
    return processes


def plan_for(framework, repo, *, host, port=None, build_command=None, start_command=None, health_check_path=None,
             release_command=None):
    """The framework's recipe for this repository with the deployment's overrides and its Procfile applied."""
    found = detection.detect(repo) if framework == "auto" else Detected(framework, "set on the deployment")
    entry = FRAMEWORKS.get(found.value)
    if entry is None:
        raise RecipeError(f"unknown framework {found.value!r}")
    port = port or entry.default_port
    procfile = parse_procfile(repo.text("Procfile")) if repo.has("Procfile") else {}
    reasons = [f"framework {found.value}: {found.reason}"]
    start_line = start_command or procfile.get("web")
    if start_line:
        reasons.append("start command: " + ("start_command" if start_command else "the Procfile's web line"))
    plan = recipe(found.value, repo, host, port, start=shell(start_line) if start_line else None)
    release_line = release_command or procfile.get("release")
    changes = {
        "health_check_path": health_check_path or "/",
        "processes": tuple(Process(name, shell(command)) for name, command in procfile.items()
                           if name not in ("web", "release")),
        "release": Step("release command" if release_command else "release command (Procfile)", shell(release_line))
        if release_line else None,
        "reasons": tuple(reasons) + plan.reasons,
        "requirements": tuple(detection.runtime_requirements(repo)),
    }
    if build_command:
        changes["build"] = (Step("build command", shell(build_command)),)
    return Plan(**{**plan.__dict__, **changes})


# A typical repository of each framework: what GET /api/frameworks shows the recipe applied to.
TYPICAL = {
    "django": Repo({"manage.py", "requirements.txt", "project/wsgi.py"}, {"requirements.txt": "django"}),
    "flask": Repo({"requirements.txt", "app.py"}, {"requirements.txt": "flask"}),
    "fastapi": Repo({"requirements.txt", "main.py"}, {"requirements.txt": "fastapi"}),
    "express": Repo({"package.json", "package-lock.json", "server.js"}, {"package.json": "{}"}),
    "nextjs": Repo({"package.json", "package-lock.json"}, {"package.json": '{"dependencies": {"next": "*"}}'}),
    "static": Repo({"public/index.html"}, {}),
}


def describe(key):
    """build_command and start_command of a framework's recipe on a typical repository, as text."""
    plan = plan_for(key, TYPICAL[key], host="$HOST", port="$PORT")
    steps = [" ".join(step.argv) for step in plan.install + plan.build]
    return {"build_command": " && ".join(steps) or None, "start_command": " ".join(plan.start)}
