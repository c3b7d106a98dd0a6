"""How each framework is built and run, worked out from the catalogue and the repository's own files.

A Plan is argument lists only: the deployer runs them through a transport, which never hands them
to a shell unquoted. Per-deployment overrides (build_command, start_command, port,
health_check_path) replace the recipe's parts; a `Procfile` with a `web:` line is honoured like on
Heroku when no start_command is given.
"""
import json
import re
import shlex
from dataclasses import dataclass, field

from backend.frameworks import FRAMEWORKS

VENV = ".venv"
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")


class RecipeError(Exception):
    """The repository does not fit the framework (or no framework fits it)."""


@dataclass(frozen=True)
class Step:
    label: str
    argv: tuple


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

    def config(self):
        """What a release records of how it was built."""
        return {"framework": self.framework, "runtime": self.runtime, "port": self.port,
                "health_check_path": self.health_check_path,
                "install": [" ".join(map(shlex.quote, s.argv)) for s in self.install],
                "build": [" ".join(map(shlex.quote, s.argv)) for s in self.build],
                "start": " ".join(map(shlex.quote, self.start))}


@dataclass
class Repo:
    """What the deployer learnt of the checked-out source: its file names and a few files' text."""

    files: set
    texts: dict  # relative path -> text, for the files detection reads

    def has(self, name):
        return name in self.files

    def text(self, name):
        return self.texts.get(name) or ""

    def package_json(self):
        try:
            body = json.loads(self.text("package.json") or "{}")
        except ValueError:
            raise RecipeError("package.json is not valid JSON") from None
        return body if isinstance(body, dict) else {}

    def python_requirements(self):
        return (self.text("requirements.txt") + "\n" + self.text("pyproject.toml")).lower()


# The files detection reads (small text files, at the root of the repository).
DETECTION_FILES = ("package.json", "requirements.txt", "pyproject.toml", "Procfile", "manage.py")


def _mentions(requirements, package):
    return re.search(rf"(^|[\s\"'\[,]){re.escape(package)}(\s*[\[<>=!~;,\"'\]]|\s*$)", requirements, re.M) is not None


def detect(repo):
    """The framework key that fits the repository's files."""
    if repo.has("package.json"):
        deps = {**repo.package_json().get("dependencies", {}), **repo.package_json().get("devDependencies", {})}
        return "nextjs" if "next" in deps else "express"
    if repo.has("manage.py"):
        return "django"
    requirements = repo.python_requirements()
    if _mentions(requirements, "fastapi"):
        return "fastapi"
    if _mentions(requirements, "django"):
        return "django"
    if requirements.strip() or repo.has("app.py") or repo.has("wsgi.py"):
        return "flask"
    if any(repo.has(f"{d}index.html") for d in ("", "public/", "dist/", "build/", "site/")):
        return "static"
    raise RecipeError("cannot tell the framework from the repository's files: "
                      "no package.json, manage.py, requirements.txt, pyproject.toml or index.html at its root")


def _python_module(repo, candidates, what):
    for module in candidates:
        if repo.has(module.replace(".", "/") + ".py"):
            return module
    raise RecipeError(f"cannot find the {what}: looked for {', '.join(m + '.py' for m in candidates)}; "
                      "set start_command")


def _django_wsgi(repo):
    packages = sorted(p.split("/")[0] for p in repo.files if p.endswith("/wsgi.py") and p.count("/") == 1)
    if not packages:
        raise RecipeError("cannot find the Django project's wsgi.py (looked one directory deep); set start_command")
    return f"{packages[0]}.wsgi"


def _python_install(repo, extra):
    pip = (f"{VENV}/bin/pip", "install", *PIP_FLAGS)
    steps = [Step("create the virtualenv", ("python3", "-m", "venv", VENV))]
    if repo.has("requirements.txt"):
        steps.append(Step("install requirements.txt", (*pip, "-r", "requirements.txt", *extra)))
    elif repo.has("pyproject.toml"):
        steps.append(Step("install the project (pyproject.toml)", (*pip, ".", *extra)))
    else:
        raise RecipeError("no requirements.txt or pyproject.toml: the dependencies are unknown")
    return tuple(steps)


def _node_install(repo, production):
    lockfile = repo.has("package-lock.json") or repo.has("npm-shrinkwrap.json")
    argv = ["npm", "ci" if lockfile else "install", "--no-audit", "--no-fund"]
    if production:
        argv.append("--omit=dev")
    return (Step("install dependencies (" + ("npm ci, from the lockfile" if lockfile else "npm install") + ")",
                 tuple(argv)),)


def _static_root(repo):
    for directory in ("public", "dist", "build", "site"):
        if repo.has(f"{directory}/index.html"):
            return directory
    return "."


def recipe(framework, repo, host, port, start=None):
    """The Plan of a framework for this repository; host and port are where the app must listen.

    `start` (an argument list) replaces the recipe's start command, and spares looking for the app's module.
    """
    bind = f"{host}:{port}"
    if framework == "django":
        install = _python_install(repo, ("gunicorn",))
        python = f"{VENV}/bin/python"
        build = (Step("collect static files", (python, "manage.py", "collectstatic", "--noinput")),
                 Step("apply migrations", (python, "manage.py", "migrate", "--noinput")))
        start = start or (f"{VENV}/bin/gunicorn", "--bind", bind, "--workers", "2", "--access-logfile", "-",
                          _django_wsgi(repo))
        return Plan("django", "python", ("python3", "python3-venv", "git"), ("python3", "git"), install, build,
                    start, port, path_dirs=(f"{VENV}/bin",))
    if framework == "flask":
        install = _python_install(repo, ("gunicorn",))
        start = start or (f"{VENV}/bin/gunicorn", "--bind", bind, "--workers", "2", "--access-logfile", "-",
                          _python_module(repo, ("wsgi", "app", "main", "application"), "Flask application") + ":app")
        return Plan("flask", "python", ("python3", "python3-venv", "git"), ("python3", "git"), install, (), start,
                    port, path_dirs=(f"{VENV}/bin",))
    if framework == "fastapi":
        install = _python_install(repo, ("gunicorn", "uvicorn"))
        start = start or (f"{VENV}/bin/gunicorn", "--bind", bind, "--workers", "2", "--worker-class",
                          "uvicorn.workers.UvicornWorker", "--access-logfile", "-",
                          _python_module(repo, ("main", "app", "app.main", "api"), "FastAPI application") + ":app")
        return Plan("fastapi", "python", ("python3", "python3-venv", "git"), ("python3", "git"), install, (), start,
                    port, path_dirs=(f"{VENV}/bin",))
    if framework in ("express", "nextjs"):
        if not repo.has("package.json"):
            raise RecipeError("no package.json at the repository's root")
        scripts = repo.package_json().get("scripts") or {}
        if framework == "nextjs":
            install = _node_install(repo, production=False)
            build = (Step("next build", ("npm", "run", "build")),)
            start = start or ("node_modules/.bin/next", "start", "--hostname", host, "--port", str(port))
        else:
            install = _node_install(repo, production=True)
            build = (Step("npm run build", ("npm", "run", "build")),) if "build" in scripts else ()
            if start:
                pass
            elif "start" in scripts:
                start = ("npm", "start")
            else:
                main = repo.package_json().get("main")
                candidates = ((main,) if isinstance(main, str) else ()) + ("server.js", "app.js", "index.js")
                entry = next((f for f in candidates if repo.has(f)), None)
                if entry is None:
                    raise RecipeError("no start script in package.json and no server.js, app.js or index.js")
                start = ("node", entry)
        return Plan(framework, "node", ("nodejs", "npm", "git"), ("node", "npm", "git"), install, build, start, port,
                    path_dirs=("node_modules/.bin",))
    if framework == "static":
        start = start or ("python3", "-m", "http.server", str(port), "--bind", host, "--directory", _static_root(repo))
        return Plan("static", "static", ("python3", "git"), ("python3", "git"), (), (), start, port)
    raise RecipeError(f"unknown framework {framework!r}")


def _substitute(word, host, port):
    for name, value in (("PORT", str(port)), ("HOST", host)):
        word = word.replace("${" + name + "}", value).replace("$" + name, value)
    return word


def split_command(text, host, port):
    """A user's command line as an argument list ($PORT and $HOST filled in); no shell ever sees it."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RecipeError(f"cannot parse the command {text!r}: {exc}") from None
    if not words:
        raise RecipeError("the command is empty")
    return tuple(_substitute(w, host, port) for w in words)


def procfile_web(repo):
    for line in repo.text("Procfile").splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == "web" and command.strip():
            return command.strip()
    return None


def plan_for(framework, repo, *, host, port=None, build_command=None, start_command=None, health_check_path=None):
    """The framework's recipe for this repository with the deployment's overrides applied."""
    key = detect(repo) if framework == "auto" else framework
    entry = FRAMEWORKS.get(key)
    if entry is None:
        raise RecipeError(f"unknown framework {key!r}")
    port = port or entry.default_port
    start_override = start_command or procfile_web(repo)
    start = split_command(start_override, host, port) if start_override else None
    plan = recipe(key, repo, host, port, start=start)
    changes = {"health_check_path": health_check_path or "/"}
    if build_command:
        changes["build"] = (Step("build command", split_command(build_command, host, port)),)
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
