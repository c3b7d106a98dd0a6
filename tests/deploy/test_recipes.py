"""Framework recipes: the framework detected, the commands, the overrides, the Procfile."""
import pytest

from backend.deploy.detection import RecipeError, Repo, RuntimeRequirement, detect
from backend.deploy.recipes import Process, Step, parse_procfile, plan_for, shell
from backend.frameworks import FRAMEWORKS


def words(plan):
    return [" ".join(step.argv) for step in plan.install + plan.build]


@pytest.mark.parametrize("files, texts, expected", [
    ({"package.json"}, {"package.json": '{"dependencies": {"next": "15.0.0", "react": "19"}}'}, "nextjs"),
    ({"package.json", "server.js"}, {"package.json": '{"dependencies": {"express": "^4"}}'}, "express"),
    ({"manage.py", "requirements.txt", "shop/wsgi.py"}, {"requirements.txt": "Django>=5\n"}, "django"),
    ({"requirements.txt", "main.py"}, {"requirements.txt": "fastapi==0.115\nuvicorn\n"}, "fastapi"),
    ({"pyproject.toml", "main.py"}, {"pyproject.toml": '[project]\ndependencies = ["fastapi>=0.1"]\n'}, "fastapi"),
    ({"requirements.txt", "app.py"}, {"requirements.txt": "flask\n"}, "flask"),
    ({"public/index.html"}, {}, "static"),
    ({"index.html"}, {}, "static"),
])
def test_detect(files, texts, expected):
    assert detect(Repo(files | set(texts), texts)).value == expected


def test_detect_says_what_it_looked_for():
    with pytest.raises(RecipeError, match="cannot tell the framework"):
        detect(Repo({"README.md"}, {}))


def test_a_package_mentioned_in_a_comment_or_as_a_prefix_is_not_a_match():
    texts = {"requirements.txt": "fastapi-utils\n# fastapi later\nflask\n"}
    assert detect(Repo({"requirements.txt", "app.py"}, texts)).value == "flask"


def test_django_recipe():
    texts = {"requirements.txt": "django\n"}
    plan = plan_for("django", Repo({"manage.py", "requirements.txt", "shop/wsgi.py", "shop/settings.py"}, texts),
                    host="0.0.0.0")
    assert words(plan) == [
        "python3 -m venv .venv",
        ".venv/bin/pip install --disable-pip-version-check --no-input --progress-bar off -r requirements.txt gunicorn",
        ".venv/bin/python manage.py collectstatic --noinput",
        ".venv/bin/python manage.py migrate --noinput",
    ]
    assert plan.start == (".venv/bin/gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-",
                          "shop.wsgi")
    assert "python3-venv" in plan.packages and plan.port == FRAMEWORKS["django"].default_port


def test_fastapi_runs_uvicorn_workers_and_pyproject_installs_the_project():
    texts = {"pyproject.toml": '[project]\nname = "svc"\ndependencies = ["fastapi"]\nrequires-python = ">=3.11"\n',
             "app/__init__.py": "", "app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n"}
    plan = plan_for("auto", Repo(set(texts), texts), host="h")
    assert words(plan)[1].endswith("install --disable-pip-version-check --no-input --progress-bar off . "
                                   "gunicorn uvicorn")
    assert "uvicorn.workers.UvicornWorker" in plan.start and plan.start[-1] == "app.main:app"
    assert plan.reasons == ("framework fastapi: pyproject.toml depends on fastapi",
                            "the application: app.main:app (app in app/main.py)")
    assert plan.requirements == (RuntimeRequirement("python", ">=3.11", "pyproject.toml requires-python"),)


def test_a_factory_in_a_src_layout_is_called_with_src_on_the_import_path():
    texts = {"requirements.txt": "flask\n",
             "src/flaskr/__init__.py": "def create_app(test_config=None):\n    return Flask(__name__)\n"}
    plan = plan_for("auto", Repo(set(texts), texts), host="h", port=5000)
    assert plan.start[-3:] == ("--pythonpath", "src", "flaskr:create_app()")
    assert plan.reasons[-1] == ("the application: flaskr:create_app() (create_app() in src/flaskr/__init__.py, "
                                "with src/ on the import path)")


def test_node_recipes_use_the_lockfile_and_install_dev_dependencies_for_a_build():
    texts = {"package.json": '{"scripts": {"build": "tsc", "start": "node dist/index.js"}}'}
    plan = plan_for("express", Repo({"package.json", "package-lock.json"}, texts), host="h")
    assert words(plan) == ["npm ci --no-audit --no-fund", "npm run build"]
    assert plan.start == ("npm", "start")
    assert plan.reasons[1:] == ("package.json has a build script: npm run build (dev dependencies installed for it)",
                                "package.json's start script: node dist/index.js")
    plan = plan_for("express", Repo({"package.json", "index.js"}, {"package.json": "{}"}), host="h")
    assert words(plan) == ["npm install --no-audit --no-fund --omit=dev"] and plan.start == ("node", "index.js")
    plan = plan_for("nextjs", Repo({"package.json"}, {"package.json": '{"dependencies": {"next": "1"}}'}),
                    host="10.0.0.5", port=4000)
    assert words(plan) == ["npm install --no-audit --no-fund", "npm run build"]
    assert plan.start == ("node_modules/.bin/next", "start", "--hostname", "10.0.0.5", "--port", "4000")


def test_static_serves_its_public_directory_only():
    plan = plan_for("static", Repo({"public/index.html", "README.md"}, {}), host="127.0.0.9")
    assert plan.start == ("python3", "-m", "http.server", "8080", "--bind", "127.0.0.9", "--directory", "public")


PROCFILE = ("# the app's processes\n"
            "release: flask db upgrade\n"
            "web: gunicorn 'app:create_app()' -b $HOST:$PORT\n"
            "worker: celery -A tasks worker --loglevel=info\n"
            "clock: python clock.py\n")
FLASK_APP = {"requirements.txt": "flask\n", "app.py": "app = Flask(__name__)\n", "Procfile": PROCFILE}


def test_the_procfile_gives_the_web_release_and_other_processes():
    plan = plan_for("auto", Repo(set(FLASK_APP), FLASK_APP), host="1.2.3.4", port=5001)
    assert plan.start == ("sh", "-c", "--", "gunicorn 'app:create_app()' -b $HOST:$PORT")
    assert plan.release == Step("release command (Procfile)", shell("flask db upgrade"))
    assert plan.processes == (Process("worker", shell("celery -A tasks worker --loglevel=info")),
                              Process("clock", shell("python clock.py")))
    assert plan.reasons == ("framework flask: requirements.txt depends on flask",
                            "start command: the Procfile's web line")
    assert plan.config()["processes"] == {"web": "gunicorn 'app:create_app()' -b $HOST:$PORT",
                                          "worker": "celery -A tasks worker --loglevel=info",
                                          "clock": "python clock.py"}
    assert plan.config()["release"] == "flask db upgrade" and plan.port == 5001


def test_the_deployments_commands_win_over_the_procfile_and_each_is_one_shell_line():
    plan = plan_for("flask", Repo(set(FLASK_APP), FLASK_APP), host="h", start_command="waitress-serve "
                    "--port=${PORT} app:app", build_command="make assets && echo '$(id)'",
                    release_command="./migrate.sh --check", health_check_path="/up")
    assert plan.start == ("sh", "-c", "--", "waitress-serve --port=${PORT} app:app")
    assert plan.build == (Step("build command", ("sh", "-c", "--", "make assets && echo '$(id)'")),)
    assert plan.release == Step("release command", ("sh", "-c", "--", "./migrate.sh --check"))
    assert [p.name for p in plan.processes] == ["worker", "clock"] and plan.health_check_path == "/up"
    assert "start command: start_command" in plan.reasons
    assert plan.config()["start"] == "waitress-serve --port=${PORT} app:app"


def test_without_a_procfile_or_release_command_there_is_no_release_phase():
    texts = {"requirements.txt": "flask\n", "app.py": "app = Flask(__name__)\n"}
    plan = plan_for("auto", Repo(set(texts), texts), host="h")
    assert plan.release is None and plan.processes == ()
    assert plan.start[-1] == "app:app" and plan.config()["processes"] == {"web": " ".join(plan.start)}


@pytest.mark.parametrize("procfile, message", [
    ("web gunicorn\n", "Procfile line 1: expected 'name: command'"),
    ("\nweb:\n", "Procfile line 2: expected 'name: command'"),
    ("Web: x\n", "the process name 'Web' must be"),
    ("my_worker: a\nmy-worker: b\n", "would share a unit name"),
    ("".join(f"w{n}: run\n" for n in range(11)), "at most 10 processes beside web"),
])
def test_a_procfile_that_cannot_be_read_says_which_line(procfile, message):
    with pytest.raises(RecipeError, match=message):
        parse_procfile(procfile)


def test_a_later_procfile_line_of_the_same_name_wins():
    assert parse_procfile("web: a\nworker: b\nweb: c\n") == {"web": "c", "worker": "b"}


def test_missing_pieces_are_explained():
    with pytest.raises(RecipeError, match="no requirements.txt or pyproject.toml"):
        plan_for("flask", Repo({"app.py"}, {}), host="h")
    with pytest.raises(RecipeError, match="Flask application"):
        plan_for("flask", Repo({"requirements.txt", "server/run.py"}, {"requirements.txt": "flask"}), host="h")
    with pytest.raises(RecipeError, match="not valid JSON"):
        plan_for("express", Repo({"package.json"}, {"package.json": "{"}), host="h")
    with pytest.raises(RecipeError, match=r"\.python-version: 'pypy3.10'"):
        plan_for("flask", Repo({"requirements.txt", "app.py", ".python-version"}, {".python-version": "pypy3.10"}),
                 host="h")
