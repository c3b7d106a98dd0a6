"""What a repository is, read from its files: the framework, where its app object lives, the runtimes it asks for.

Pure functions over a Repo (the file names the deployer listed and the text of the files it was asked to
read); every answer carries its reason, which the deployer writes to the build log.
"""
import json
import re
from dataclasses import dataclass


class RecipeError(Exception):
    """The repository does not fit the framework (or no framework fits it)."""


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


@dataclass(frozen=True)
class Detected:
    """A finding and why: the reason goes to the build log as it is."""

    value: str
    reason: str


@dataclass(frozen=True)
class PythonApp:
    """Where the WSGI/ASGI application is: gunicorn's APP_MODULE ("pkg:app", "pkg:create_app()"), and a
    directory to put on the import path first (a src/ layout not installed as a package), or None."""

    target: str
    pythonpath: str | None
    reason: str


@dataclass(frozen=True)
class RuntimeRequirement:
    """A version the app asks for: runtime "python" or "node", a specifier in that ecosystem's syntax, and the
    file that says so."""

    runtime: str
    spec: str
    source: str


# How deep the deployer lists the source (src/<package>/__init__.py is three levels down).
LIST_DEPTH = 3
# The files detection reads at the root of the repository (small text files).
ROOT_FILES = ("package.json", "requirements.txt", "pyproject.toml", "Procfile", "manage.py", ".python-version")


def files_to_read(files):
    """Which of the listed files (relative paths) detection needs the text of."""
    return sorted(name for name in ROOT_FILES if name in files)


def _mentions(requirements, package):
    return re.search(rf"(^|[\s\"'\[,]){re.escape(package)}(\s*[\[<>=!~;,\"'\]]|\s*$)", requirements, re.M) is not None


def detect(repo):
    """The framework key that fits the repository's files, and why."""
    if repo.has("package.json"):
        deps = {**repo.package_json().get("dependencies", {}), **repo.package_json().get("devDependencies", {})}
        if "next" in deps:
            return Detected("nextjs", "package.json depends on next")
        return Detected("express", "package.json (a Node app)")
    if repo.has("manage.py"):
        return Detected("django", "manage.py at the root")
    requirements = repo.python_requirements()
    if _mentions(requirements, "fastapi"):
        return Detected("fastapi", "the requirements name fastapi")
    if _mentions(requirements, "django"):
        return Detected("django", "the requirements name django")
    if requirements.strip() or repo.has("app.py") or repo.has("wsgi.py"):
        return Detected("flask", "a Python project (served as WSGI by gunicorn)")
    if any(repo.has(f"{d}index.html") for d in ("", "public/", "dist/", "build/", "site/")):
        return Detected("static", "an index.html")
    raise RecipeError("cannot tell the framework from the repository's files: "
                      "no package.json, manage.py, requirements.txt, pyproject.toml or index.html at its root")


def python_app(repo, framework):
    """Where the app object of a flask or fastapi project is."""
    candidates = ("wsgi", "app", "main", "application") if framework == "flask" else ("main", "app", "app.main", "api")
    what = "Flask application" if framework == "flask" else "FastAPI application"
    for module in candidates:
        if repo.has(module.replace(".", "/") + ".py"):
            return PythonApp(f"{module}:app", None, f"{module.replace('.', '/')}.py")
    raise RecipeError(f"cannot find the {what}: looked for {', '.join(m + '.py' for m in candidates)}; "
                      "set start_command")


def django_wsgi(repo):
    packages = sorted(p.split("/")[0] for p in repo.files if p.endswith("/wsgi.py") and p.count("/") == 1)
    if not packages:
        raise RecipeError("cannot find the Django project's wsgi.py (looked one directory deep); set start_command")
    return f"{packages[0]}.wsgi"


def static_root(repo):
    for directory in ("public", "dist", "build", "site"):
        if repo.has(f"{directory}/index.html"):
            return directory
    return "."


def runtime_requirements(repo):
    """The runtime versions the repository asks for (.python-version, requires-python, engines.node)."""
    return []


def unmet(requirement, version):
    """Why the guest's version (text such as "3.11.2" or "v20.19.2") does not satisfy requirement, or None."""
    return None
