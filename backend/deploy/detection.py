"""What a repository is, read from its files: the framework, where its app object lives, the runtimes it asks for.

Pure functions over a Repo (the file names the deployer listed and the text of the files it was asked to
read); every answer carries its reason, which the deployer writes to the build log. Dependencies are read
as pip and the build backends read them (PEP 508 entries, PEP 503 names), an app object is found the way a
person skimming the module would find it (a top-level `app = ...` or `def create_app(...)`), and runtime
versions are checked with each ecosystem's own rules (PEP 440 for Python, npm ranges for Node).
"""
import ast
import json
import keyword
import re
import tomllib
from dataclasses import dataclass

import semantic_version
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


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

    def pyproject(self):
        """pyproject.toml as a dict ({} without one); a file that is not TOML is an error naming the place."""
        try:
            return tomllib.loads(self.text("pyproject.toml"))
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"pyproject.toml is not valid TOML: {exc}") from None


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
# The modules an app object may live in, at the root or in a package, in the order each framework looks.
APP_MODULES = {
    "flask": ("wsgi", "app", "main", "application", "asgi", "api", "server"),
    "fastapi": ("main", "app", "api", "asgi", "server"),
}
MODULES_READ = APP_MODULES["flask"]
# Directories that hold a package of the project but never its app.
NOT_APP_PACKAGES = frozenset({"tests", "test", "docs", "doc", "migrations", "examples", "example"})
# At most this many files are read: a repository of many packages is skimmed, not read through.
MAX_FILES_READ = 40
REQUIREMENTS_FILE = re.compile(r"requirements[\w.-]*\.txt|requirements/[\w.-]+\.txt")
FRAMEWORK_PACKAGES = ("fastapi", "django", "flask")
PYTHON_VERSION_FILE = re.compile(r"(?:cpython[-@]?|python)?(\d+(?:\.\d+){0,2}(?:(?:a|b|rc)\d+)?)")


def _packages(files):
    """(directory, import name, directory for the import path) of each package an app may live in: the
    directories with an __init__.py at the root, then those under src/ (imported with src/ on the path)."""
    found = []
    for parent, pythonpath in (("", None), ("src/", "src")):
        names = sorted(path[len(parent):-len("/__init__.py")] for path in files
                       if path.startswith(parent) and path.endswith("/__init__.py")
                       and path.count("/") == parent.count("/") + 1)
        found += [(parent + name, name, pythonpath) for name in names
                  if name.isidentifier() and not keyword.iskeyword(name)
                  and not name.startswith("_") and name not in NOT_APP_PACKAGES]
    return found


def files_to_read(files):
    """Which of the listed files (relative paths) detection needs the text of, most telling first: the root
    files, the requirements files, the root modules, then each package's modules; at most MAX_FILES_READ."""
    wanted = [name for name in ROOT_FILES if name in files]
    wanted += sorted(name for name in files if REQUIREMENTS_FILE.fullmatch(name) and name not in wanted)
    wanted += [f"{module}.py" for module in MODULES_READ if f"{module}.py" in files]
    for directory, _, _ in _packages(files):
        wanted += [path for path in (f"{directory}/__init__.py", *(f"{directory}/{m}.py" for m in MODULES_READ))
                   if path in files]
    wanted += [f"src/{module}.py" for module in MODULES_READ if f"src/{module}.py" in files]
    return list(dict.fromkeys(wanted))[:MAX_FILES_READ]


def _logical_lines(text):
    """A requirements file's lines with the backslash continuations joined."""
    return re.sub(r"\\\r?\n", " ", text).splitlines()


def requirement_names(text):
    """The canonical names a requirements file installs. Comments, options (-r, -e, --index-url: an included
    file is not followed) and entries that are no PEP 508 requirement (a path, a bare URL) are left out."""
    names = []
    for line in _logical_lines(text):
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        line = re.split(r"\s+--?[A-Za-z]", line, maxsplit=1)[0]
        if not line or line.startswith("-"):
            continue
        try:
            names.append(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def _pep508_names(entries):
    names = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, str):
            try:
                names.append(canonicalize_name(Requirement(entry).name))
            except InvalidRequirement:
                continue
    return names


def _table(value, *keys):
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _dependency_sources(repo):
    """The main dependencies (requirements.txt, pyproject.toml's project and Poetry dependencies) and the
    secondary ones (other requirements files, optional dependencies, dependency groups of PEP 735, Poetry, PDM
    and uv), each a list of (where, canonical names)."""
    pyproject = repo.pyproject() if repo.has("pyproject.toml") else {}
    project, poetry = _table(pyproject, "project"), _table(pyproject, "tool", "poetry")
    main = [("requirements.txt", requirement_names(repo.text("requirements.txt"))),
            ("pyproject.toml", _pep508_names(project.get("dependencies"))
             + [canonicalize_name(name) for name in _table(poetry, "dependencies") if name != "python"])]
    secondary = [(name, requirement_names(text)) for name, text in sorted(repo.texts.items())
                 if REQUIREMENTS_FILE.fullmatch(name) and name != "requirements.txt"]
    secondary += [(f"pyproject.toml's optional dependencies {extra!r}", _pep508_names(entries))
                  for extra, entries in _table(project, "optional-dependencies").items()]
    groups = {**_table(pyproject, "dependency-groups"), **_table(pyproject, "tool", "pdm", "dev-dependencies")}
    secondary += [(f"pyproject.toml's dependency group {group!r}", _pep508_names(entries))
                  for group, entries in groups.items()]
    secondary += [(f"pyproject.toml's Poetry group {group!r}", [canonicalize_name(name) for name in
                                                                _table(body, "dependencies")])
                  for group, body in _table(poetry, "group").items()]
    secondary.append(("pyproject.toml's uv dev-dependencies",
                      _pep508_names(_table(pyproject, "tool", "uv").get("dev-dependencies"))))
    return main, secondary


def detect(repo):
    """The framework key that fits the repository's files, and why. A package.json makes a Node app (Next.js
    when it depends on next); then Django by its manage.py; then the Python frameworks by the dependencies
    (the main ones before the optional ones); any other Python project is served as WSGI by gunicorn; an
    index.html is a static site."""
    if repo.has("package.json"):
        body = repo.package_json()
        deps = {name for key in ("dependencies", "devDependencies") for name in _table(body, key)}
        if "next" in deps:
            return Detected("nextjs", "package.json depends on next")
        return Detected("express", "package.json without next: a Node app")
    if repo.has("manage.py"):
        return Detected("django", "manage.py at the root")
    for tier in _dependency_sources(repo):
        for framework in FRAMEWORK_PACKAGES:
            where = next((where for where, names in tier if framework in names), None)
            if where:
                return Detected(framework, f"{where} depends on {framework}")
    python = [name for name in ("requirements.txt", "pyproject.toml", "app.py", "wsgi.py") if repo.has(name)]
    python += sorted(name for name in repo.files if REQUIREMENTS_FILE.fullmatch(name))
    if python:
        return Detected("flask", f"a Python project ({python[0]}) naming none of {', '.join(FRAMEWORK_PACKAGES)}: "
                                 "served as WSGI by gunicorn")
    if any(repo.has(f"{d}index.html") for d in ("", "public/", "dist/", "build/", "site/")):
        return Detected("static", "an index.html")
    raise RecipeError("cannot tell the framework from the repository's files: "
                      "no package.json, manage.py, requirements.txt, pyproject.toml or index.html at its root")


def _code(text):
    """A module's text without its triple-quoted strings, whose lines are no code (an example in a docstring)."""
    return re.sub(r'"""[\s\S]*?(?:"""|\Z)|\'\'\'[\s\S]*?(?:\'\'\'|\Z)', "", text)


APP_OBJECT = re.compile(r"^(app|application)[ \t]*(?::[^=\n]+)?=(?!=)[ \t]*(\S.*)?$", re.M)
APP_FACTORY = re.compile(r"^def[ \t]+(create_app|make_app)[ \t]*\(", re.M)


def _app_object(code):
    for match in APP_OBJECT.finditer(code):
        if (match.group(2) or "").strip() != "None":
            return match.group(1)
    return None


def _definition(code, start):
    """The function defined from `start` (a `def` line) as an ast node: the shortest run of its lines that
    parses (a body added when the header has none on its line), or None (cut short, or not Python 3)."""
    lines = code[start:].splitlines()
    for end in range(1, min(len(lines), 30) + 1):
        header = "\n".join(lines[:end])
        for source in (header, header + "\n    pass\n"):
            try:
                return ast.parse(source).body[0]
            except (SyntaxError, ValueError):
                continue
    return None


def _required_parameters(function):
    """The names of a function's parameters that have no default, or None when it is unknown."""
    if function is None:
        return None
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    required = positional[:len(positional) - len(arguments.defaults)]
    required += [arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
                 if default is None]
    return [arg.arg for arg in required]


def _factories(code):
    """[(name, required parameters or None)] of the app factories defined at the top of a module."""
    return [(match.group(1), _required_parameters(_definition(code, match.start())))
            for match in APP_FACTORY.finditer(code)]


def _scopes(repo, framework):
    """[(pythonpath, [(file, module)])]: where python_app looks, a scope at a time: the root modules, each
    package (its __init__.py, then its modules), the modules of src/."""
    modules = APP_MODULES[framework]
    scopes = [(None, [(f"{m}.py", m) for m in modules])]
    for directory, name, pythonpath in _packages(repo.files):
        scopes.append((pythonpath, [(f"{directory}/__init__.py", name)]
                       + [(f"{directory}/{m}.py", f"{name}.{m}") for m in modules]))
    scopes.append(("src", [(f"src/{m}.py", m) for m in modules]))
    return scopes


def python_app(repo, framework):
    """Where the app object of a flask or fastapi project is: in the first scope (root modules, packages,
    src/) that has one, an `app` or `application` object, or else a create_app()/make_app() factory that can
    be called without arguments (a Flask tutorial's `create_app(test_config=None)`)."""
    what = "Flask application" if framework == "flask" else "FastAPI application"
    looked, skipped, unread = [], [], []
    for pythonpath, candidates in _scopes(repo, framework):
        present = [(path, module) for path, module in candidates if repo.has(path)]
        looked += [path for path, _ in present]
        unread += [(path, module, pythonpath) for path, module in present if path not in repo.texts]
        codes = [(path, module, _code(repo.text(path))) for path, module in present]
        suffix = ", with src/ on the import path" if pythonpath else ""
        for path, module, code in codes:
            name = _app_object(code)
            if name:
                return PythonApp(f"{module}:{name}", pythonpath, f"{name} in {path}{suffix}")
        for path, module, code in codes:
            for name, required in _factories(code):
                if required == []:
                    return PythonApp(f"{module}:{name}()", pythonpath, f"{name}() in {path}{suffix}")
                skipped.append(f"{path}'s {name}({', '.join(required)}) needs arguments" if required
                               else f"{path}'s {name}() has a signature that cannot be read")
    if unread:
        path, module, pythonpath = unread[0]
        return PythonApp(f"{module}:app", pythonpath, f"{path}, not read: its app object taken to be `app`")
    modules = ", ".join(f"{m}.py" for m in APP_MODULES[framework])
    where = (f"looked in {', '.join(looked)}" if looked
             else f"there is no {modules} at the root, in a package (with an __init__.py) or under src/")
    notes = "; " + "; ".join(skipped) if skipped else ""
    raise RecipeError(f"cannot find the {what} (a top-level `app` or `application`, or a create_app() or "
                      f"make_app() callable without arguments): {where}{notes}; "
                      "set start_command or add a Procfile web line")


DJANGO_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")


def django_wsgi(repo):
    """The Django project's WSGI module: the one beside the settings manage.py names (config.settings.prod ->
    config.wsgi), or else the first package (by name) with a wsgi.py."""
    settings = DJANGO_SETTINGS.search(repo.text("manage.py"))
    if settings:
        parts = settings.group(1).split(".")
        for end in range(len(parts) - 1, 0, -1):
            if repo.has("/".join(parts[:end]) + "/wsgi.py"):
                return ".".join(parts[:end]) + ".wsgi"
    packages = sorted(p.split("/")[0] for p in repo.files if p.endswith("/wsgi.py") and p.count("/") == 1)
    if not packages:
        raise RecipeError("cannot find the Django project's wsgi.py (looked one directory deep); set start_command")
    return f"{packages[0]}.wsgi"


def static_root(repo):
    for directory in ("public", "dist", "build", "site"):
        if repo.has(f"{directory}/index.html"):
            return directory
    return "."


def _python_version_file(text):
    """The specifier a .python-version asks for (pyenv's and uv's file): "3.11" is any 3.11, "3.11.4" that
    release; "system" asks for nothing (None)."""
    line = next((line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")),
                "")
    if not line or line == "system":
        return None
    match = PYTHON_VERSION_FILE.fullmatch(line)
    if match:
        version = match.group(1)
        exact = version.count(".") == 2 or re.search("[a-z]", version)
        return f"=={version}" if exact else f"=={version}.*"
    if line[:1] in "<>=!~":
        return line
    raise RecipeError(f".python-version: {line[:40]!r} is not a CPython version the guests can run "
                      "(write one such as 3.11 or 3.11.4)")


def _npm_range(spec):
    """An npm range as semantic_version reads it: npm allows a space after an operator (">= 18")."""
    return semantic_version.NpmSpec(re.sub(r"(>=|<=|>|<|=|~|\^)\s+(?=[\dvVxX*])", r"\1", spec.strip()))


def _checked(requirement):
    """The requirement's specifier, parsed; an unreadable one is an error naming the file."""
    if requirement.runtime == "python":
        try:
            return SpecifierSet(requirement.spec)
        except InvalidSpecifier:
            raise RecipeError(f"{requirement.source}: {requirement.spec[:60]!r} is not a Python version specifier "
                              "(PEP 440, such as >=3.11 or ==3.12.*)") from None
    if requirement.runtime == "node":
        try:
            return _npm_range(requirement.spec)
        except ValueError:
            raise RecipeError(f"{requirement.source}: {requirement.spec[:60]!r} is not an npm version range "
                              "(such as >=20, ^20.11 or 20.x)") from None
    raise RecipeError(f"unknown runtime {requirement.runtime!r}")


def runtime_requirements(repo):
    """The runtime versions the repository asks for (.python-version, requires-python, engines.node), each
    checked to be readable now rather than on the guest."""
    found = []
    if repo.has(".python-version"):
        spec = _python_version_file(repo.text(".python-version"))
        if spec:
            found.append(RuntimeRequirement("python", spec, ".python-version"))
    if repo.has("pyproject.toml"):
        spec = _table(repo.pyproject(), "project").get("requires-python")
        if spec is not None:
            if not isinstance(spec, str):
                raise RecipeError("pyproject.toml: requires-python must be a string")
            found.append(RuntimeRequirement("python", spec, "pyproject.toml requires-python"))
    if repo.has("package.json"):
        spec = _table(repo.package_json(), "engines").get("node")
        if spec is not None:
            if not isinstance(spec, str):
                raise RecipeError("package.json: engines.node must be a string")
            found.append(RuntimeRequirement("node", spec, "package.json engines.node"))
    for requirement in found:
        _checked(requirement)
    return found


NAMES = {"python": "Python", "node": "Node.js"}


def unmet(requirement, version):
    """Why the guest's version (text such as "3.11.2" or "v20.19.2") does not satisfy requirement, or None."""
    spec = _checked(requirement)
    name = NAMES[requirement.runtime]
    text = version.strip().removeprefix("v")
    try:
        if requirement.runtime == "python":
            satisfied = spec.contains(Version(text), prereleases=True)
        else:
            satisfied = spec.match(semantic_version.Version.coerce(text))
    except (InvalidVersion, ValueError):
        return (f"the app asks for {name} {requirement.spec} ({requirement.source}) but the guest's {name} "
                f"reported the version {version.strip()[:40]!r}, which cannot be compared")
    if satisfied:
        return None
    return (f"the app asks for {name} {requirement.spec} ({requirement.source}) but the guest has {name} {text}: "
            f"use a guest template with that version or change {requirement.source}")
