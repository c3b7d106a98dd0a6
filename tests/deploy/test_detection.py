"""Detection: the files read, the framework and its reason, where the app object lives, the runtime versions."""
import random

import pytest

from backend.deploy.detection import (
    MAX_FILES_READ,
    RecipeError,
    Repo,
    RuntimeRequirement,
    detect,
    django_wsgi,
    files_to_read,
    python_app,
    requirement_names,
    runtime_requirements,
    unmet,
)


def repo(texts, *files):
    """A Repo whose listing holds the files with a text, the other files named, and their directories."""
    listed = set(texts) | set(files)
    directories = {path.rsplit("/", 1)[0] for path in listed if "/" in path}
    return Repo(listed | directories, dict(texts))


FLASK_TUTORIAL = '''"""The Flask tutorial's package."""
import os

from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    return app
'''


def test_files_to_read_takes_the_root_files_requirements_and_the_modules_of_packages():
    listing = {
        "package.json", "pyproject.toml", "Procfile", "README.md", ".python-version", "requirements-prod.txt",
        "requirements", "requirements/base.txt", "app.py", "asgi.py", "setup.py", "views.py",
        "pkg", "pkg/__init__.py", "pkg/wsgi.py", "pkg/views.py", "pkg/sub", "pkg/sub/__init__.py",
        "tests", "tests/__init__.py", "tests/app.py", "docs/__init__.py", "migrations/__init__.py",
        "_private/__init__.py", ".hidden/__init__.py", "my-dir/__init__.py", "class/__init__.py",
        "scripts/main.py", "src", "src/lib", "src/lib/__init__.py", "src/lib/main.py", "src/main.py",
    }
    assert files_to_read(listing) == [
        "package.json", "pyproject.toml", "Procfile", ".python-version",
        "requirements-prod.txt", "requirements/base.txt",
        "app.py", "asgi.py",
        "pkg/__init__.py", "pkg/wsgi.py",
        "src/lib/__init__.py", "src/lib/main.py",
        "src/main.py",
    ]


def test_files_to_read_stops_at_the_cap_the_same_way_whatever_the_listing_order():
    listing = ["requirements.txt", "wsgi.py"] + [f"p{n:02}/{m}.py" for n in range(30) for m in ("__init__", "app")]
    chosen = files_to_read(set(listing))
    assert len(chosen) == MAX_FILES_READ
    assert chosen[:4] == ["requirements.txt", "wsgi.py", "p00/__init__.py", "p00/app.py"]
    assert chosen[-1] == "p18/app.py"
    random.Random(7).shuffle(listing)
    assert files_to_read(set(listing)) == chosen


@pytest.mark.parametrize("text, names", [
    ("Flask==3.1\nfastapi[standard]>=0.115 ; python_version >= '3.9'\n", ["flask", "fastapi"]),
    ("# fastapi later\nflask  # the web framework\n", ["flask"]),
    ("-r base.txt\n-e git+https://github.com/x/fastapi.git#egg=fastapi\n--index-url https://pypi.example\n", []),
    ("Django_REST_framework==3\nzope.interface\n", ["django-rest-framework", "zope-interface"]),
    ("django==5.1 \\\n    --hash=sha256:abc\n", ["django"]),
    ("starlette @ https://example.com/starlette-0.40.tar.gz\n./local-package\nhttps://x/y.whl\n", ["starlette"]),
    ("fastapi-utils\nnot a requirement ===\n", ["fastapi-utils"]),
])
def test_requirement_names(text, names):
    assert requirement_names(text) == names


PEP621 = '[project]\nname = "svc"\ndependencies = ["FastAPI[standard]>=0.115", "sqlmodel"]\n'
POETRY = '[tool.poetry.dependencies]\npython = "^3.11"\nDjango = "^5.1"\n'


@pytest.mark.parametrize("texts, files, framework, reason", [
    ({"package.json": '{"dependencies": {"next": "15.0.0", "react": "19"}}'}, (), "nextjs",
     "package.json depends on next"),
    ({"package.json": '{"dependencies": {"express": "^4"}, "scripts": {"start": "node ."}}',
      "requirements.txt": "flask\n"}, (), "express", "package.json without next: a Node app"),
    ({"requirements.txt": "flask\n"}, ("manage.py",), "django", "manage.py at the root"),
    ({"requirements.txt": "fastapi==0.115\nuvicorn\n"}, ("main.py",), "fastapi",
     "requirements.txt depends on fastapi"),
    ({"pyproject.toml": PEP621}, ("svc/main.py",), "fastapi", "pyproject.toml depends on fastapi"),
    ({"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nfastapi = {version = "*", '
                        'extras = ["all"]}\n'}, (), "fastapi", "pyproject.toml depends on fastapi"),
    ({"pyproject.toml": POETRY}, ("site/wsgi.py",), "django", "pyproject.toml depends on django"),
    ({"pyproject.toml": '[project]\ndependencies = ["flask>=3"]\n'}, (), "flask", "pyproject.toml depends on flask"),
    ({"requirements.txt": "fastapi-utils\n# fastapi later\nflask\n"}, ("app.py",), "flask",
     "requirements.txt depends on flask"),
    ({"requirements.txt": "-r requirements/base.txt\n", "requirements/base.txt": "fastapi\n"}, (), "fastapi",
     "requirements/base.txt depends on fastapi"),
    ({"requirements.txt": "flask\n", "requirements-prod.txt": "fastapi\n"}, (), "flask",
     "requirements.txt depends on flask"),
    ({"pyproject.toml": '[project]\ndependencies = []\n[project.optional-dependencies]\nweb = ["django"]\n'}, (),
     "django", "pyproject.toml's optional dependencies 'web' depends on django"),
    ({"pyproject.toml": '[project]\ndependencies = ["requests"]\n[dependency-groups]\nserve = ["fastapi"]\n'}, (),
     "fastapi", "pyproject.toml's dependency group 'serve' depends on fastapi"),
    ({"requirements.txt": "gunicorn\nbottle\n"}, (), "flask",
     "a Python project (requirements.txt) naming none of fastapi, django, flask: served as WSGI by gunicorn"),
    ({}, ("app.py",), "flask",
     "a Python project (app.py) naming none of fastapi, django, flask: served as WSGI by gunicorn"),
    ({}, ("public/index.html",), "static", "an index.html"),
    ({}, ("index.html",), "static", "an index.html"),
])
def test_detect(texts, files, framework, reason):
    found = detect(repo(texts, *files))
    assert (found.value, found.reason) == (framework, reason)


def test_detect_says_what_it_looked_for():
    with pytest.raises(RecipeError, match="cannot tell the framework.*no package.json, manage.py"):
        detect(repo({}, "README.md"))


def test_a_pyproject_that_is_not_toml_is_named_with_the_place_of_the_error():
    with pytest.raises(RecipeError, match=r"pyproject.toml is not valid TOML: .*line 2"):
        detect(repo({"pyproject.toml": '[project]\ndependencies = ["fastapi",,]\n'}))
    with pytest.raises(RecipeError, match="pyproject.toml is not valid TOML"):
        runtime_requirements(repo({"pyproject.toml": "[project\n"}))


@pytest.mark.parametrize("texts, framework, target, pythonpath, reason", [
    ({"app.py": "from flask import Flask\n\napp = Flask(__name__)\n"}, "flask", "app:app", None, "app in app.py"),
    ({"wsgi.py": "from shop import make\napplication = make()\n", "app.py": "app = Flask(__name__)\n"}, "flask",
     "wsgi:application", None, "application in wsgi.py"),
    ({"flaskr/__init__.py": FLASK_TUTORIAL, "flaskr/db.py": "def init_app(app):\n    pass\n"}, "flask",
     "flaskr:create_app()", None, "create_app() in flaskr/__init__.py"),
    ({"src/pkg/__init__.py": "from flask import Flask\napp = Flask(__name__)\n"}, "flask", "pkg:app", "src",
     "app in src/pkg/__init__.py, with src/ on the import path"),
    ({"pkg/__init__.py": "", "pkg/wsgi.py": "from pkg.factory import build\n\napplication = build()\n"}, "flask",
     "pkg.wsgi:application", None, "application in pkg/wsgi.py"),
    ({"pkg/__init__.py": "def create_app():\n    ...\n", "pkg/wsgi.py": "from pkg import create_app\n"
      "app: Flask = create_app()\n"}, "flask", "pkg.wsgi:app", None, "app in pkg/wsgi.py"),
    ({"api/__init__.py": "", "api/main.py": "from fastapi import FastAPI\n\napp = FastAPI(title='x')\n"},
     "fastapi", "api.main:app", None, "app in api/main.py"),
    ({"main.py": "def make_app(\n    settings: Settings | None = None,\n    *,\n    debug: bool = False,\n)"
                 " -> FastAPI:\n    return FastAPI()\n"}, "fastapi", "main:make_app()", None, "make_app() in main.py"),
    ({"src/main.py": "app = FastAPI()\n"}, "fastapi", "main:app", "src", "app in src/main.py, with src/ on the "
     "import path"),
    ({"app.py": "def create_app(config):\n    ...\n", "web/__init__.py": "def create_app(config=None):\n    ...\n"},
     "flask", "web:create_app()", None, "create_app() in web/__init__.py"),
    ({"server.py": "def create_app(): return Flask(__name__)\n"}, "flask", "server:create_app()", None,
     "create_app() in server.py"),
])
def test_python_app_finds_real_layouts(texts, framework, target, pythonpath, reason):
    found = python_app(repo(texts), framework)
    assert (found.target, found.pythonpath, found.reason) == (target, pythonpath, reason)


@pytest.mark.parametrize("texts, framework", [
    ({"app.py": '"""Run it with:\n\napp = create_app()\n"""\n    app = Flask(__name__)\n'}, "flask"),
    ({"app.py": "app = None\n\ndef create_app(config):\n    global app\n"}, "flask"),
    ({"app.py": "def create_app(*, config):\n    ...\n"}, "flask"),
    ({"tests/__init__.py": "", "tests/app.py": "app = Flask(__name__)\n"}, "flask"),
    ({"wsgi.py": "app = Flask(__name__)\n"}, "fastapi"),
])
def test_python_app_skips_what_is_no_app(texts, framework):
    with pytest.raises(RecipeError, match="cannot find the (Flask|FastAPI) application"):
        python_app(repo(texts), framework)


def test_the_error_says_where_it_looked_and_what_to_do():
    texts = {"app.py": "import flask\n", "factory/__init__.py": "def create_app(config, debug=False):\n    ...\n"}
    with pytest.raises(RecipeError) as error:
        python_app(repo(texts), "flask")
    assert str(error.value) == (
        "cannot find the Flask application (a top-level `app` or `application`, or a create_app() or make_app() "
        "callable without arguments): looked in app.py, factory/__init__.py; factory/__init__.py's "
        "create_app(config) needs arguments; set start_command or add a Procfile web line")
    with pytest.raises(RecipeError, match="there is no main.py, app.py, api.py, asgi.py, server.py at the root, "
                                          "in a package .* or under src/; set start_command"):
        python_app(repo({"server/run.py": "app = 1\n"}), "fastapi")


def test_a_module_listed_but_not_read_is_taken_to_hold_app():
    found = python_app(Repo({"requirements.txt", "main.py"}, {"requirements.txt": "fastapi\n"}), "fastapi")
    assert (found.target, found.pythonpath) == ("main:app", None)
    assert found.reason == "main.py, not read: its app object taken to be `app`"


@pytest.mark.parametrize("texts, files, module", [
    ({"manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")\n'},
     ("config/wsgi.py", "aaa/wsgi.py", "config/settings/production.py"), "config.wsgi"),
    ({"manage.py": "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n"},
     ("shop/wsgi.py", "blog/wsgi.py"), "shop.wsgi"),
    ({"manage.py": "import sys\n"}, ("shop/wsgi.py", "blog/wsgi.py"), "blog.wsgi"),
])
def test_django_wsgi_follows_the_settings_manage_py_names(texts, files, module):
    assert django_wsgi(repo(texts, *files)) == module


@pytest.mark.parametrize("texts, expected", [
    ({".python-version": "3.11\n"}, [("python", "==3.11.*", ".python-version")]),
    ({".python-version": "# pyenv\n\n3.12.4\n3.11\n"}, [("python", "==3.12.4", ".python-version")]),
    ({".python-version": "3.13.0rc1\n"}, [("python", "==3.13.0rc1", ".python-version")]),
    ({".python-version": "cpython-3.12\n"}, [("python", "==3.12.*", ".python-version")]),
    ({".python-version": "system\n"}, []),
    ({"pyproject.toml": '[project]\nrequires-python = ">=3.10,<4"\n'},
     [("python", ">=3.10,<4", "pyproject.toml requires-python")]),
    ({"package.json": '{"engines": {"node": ">=20 <23", "npm": ">=10"}}'},
     [("node", ">=20 <23", "package.json engines.node")]),
    ({".python-version": "3.12", "pyproject.toml": '[project]\nrequires-python = ">=3.11"\n',
      "package.json": '{"engines": {"node": "^20.11 || 22.x"}}'},
     [("python", "==3.12.*", ".python-version"), ("python", ">=3.11", "pyproject.toml requires-python"),
      ("node", "^20.11 || 22.x", "package.json engines.node")]),
    ({"package.json": '{"engines": {"npm": "10"}}', "pyproject.toml": '[tool.poetry]\nname = "x"\n'}, []),
])
def test_runtime_requirements(texts, expected):
    assert runtime_requirements(repo(texts)) == [RuntimeRequirement(*item) for item in expected]


@pytest.mark.parametrize("texts, message", [
    ({".python-version": "pypy3.10\n"}, r"\.python-version: 'pypy3.10' is not a CPython version"),
    ({".python-version": "my-virtualenv\n"}, r"\.python-version: 'my-virtualenv' is not a CPython version"),
    ({".python-version": ">=3.x\n"}, r"\.python-version: '>=3.x' is not a Python version specifier"),
    ({"pyproject.toml": '[project]\nrequires-python = "3.11"\n'},
     "pyproject.toml requires-python: '3.11' is not a Python version specifier"),
    ({"pyproject.toml": '[project]\nrequires-python = 3.11\n'}, "requires-python must be a string"),
    ({"package.json": '{"engines": {"node": "lts/*"}}'},
     "package.json engines.node: 'lts/\\*' is not an npm version range"),
    ({"package.json": '{"engines": {"node": 20}}'}, "engines.node must be a string"),
])
def test_runtime_requirements_that_cannot_be_read_name_their_file(texts, message):
    with pytest.raises(RecipeError, match=message):
        runtime_requirements(repo(texts))


@pytest.mark.parametrize("runtime, spec, source, version", [
    ("python", "==3.11.*", ".python-version", "3.11.2"),
    ("python", ">=3.10,<4", "pyproject.toml requires-python", "3.11.2"),
    ("python", ">=3.12", "pyproject.toml requires-python", "3.13.0rc2"),
    ("python", "", "pyproject.toml requires-python", "3.11.2"),
    ("node", ">=18", "package.json engines.node", "v20.19.2"),
    ("node", ">= 18.0.0 < 21", "package.json engines.node", "v20.19.2"),
    ("node", "^18 || ^20", "package.json engines.node", "v20.19.2"),
    ("node", "20.x", "package.json engines.node", "v20.19.2"),
    ("node", "*", "package.json engines.node", "v20.19.2"),
])
def test_a_satisfied_requirement_is_none(runtime, spec, source, version):
    assert unmet(RuntimeRequirement(runtime, spec, source), version) is None


@pytest.mark.parametrize("runtime, spec, source, version, message", [
    ("python", "==3.12.*", ".python-version", "3.11.2",
     "the app asks for Python ==3.12.* (.python-version) but the guest has Python 3.11.2: use a guest template "
     "with that version or change .python-version"),
    ("python", ">=3.12", "pyproject.toml requires-python", "3.11.2",
     "the app asks for Python >=3.12 (pyproject.toml requires-python) but the guest has Python 3.11.2: use a "
     "guest template with that version or change pyproject.toml requires-python"),
    ("node", ">=22", "package.json engines.node", "v20.19.2",
     "the app asks for Node.js >=22 (package.json engines.node) but the guest has Node.js 20.19.2: use a guest "
     "template with that version or change package.json engines.node"),
    ("node", "~20.1", "package.json engines.node", "v20.19.2",
     "the app asks for Node.js ~20.1 (package.json engines.node) but the guest has Node.js 20.19.2: use a guest "
     "template with that version or change package.json engines.node"),
    ("python", ">=3.11", ".python-version", "unknown",
     "the app asks for Python >=3.11 (.python-version) but the guest's Python reported the version 'unknown', "
     "which cannot be compared"),
])
def test_an_unmet_requirement_says_what_to_change(runtime, spec, source, version, message):
    assert unmet(RuntimeRequirement(runtime, spec, source), version) == message


@pytest.mark.parametrize("requirement, message", [
    (RuntimeRequirement("python", "3.11+", "pyproject.toml requires-python"),
     "pyproject.toml requires-python: '3.11\\+' is not a Python version specifier"),
    (RuntimeRequirement("node", "latest", "package.json engines.node"),
     "package.json engines.node: 'latest' is not an npm version range"),
])
def test_an_unreadable_specifier_is_an_error_naming_its_file(requirement, message):
    with pytest.raises(RecipeError, match=message):
        unmet(requirement, "3.11.2")
