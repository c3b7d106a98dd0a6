"""Framework recipes: detection from the repository's files, the commands, the overrides."""
import pytest

from backend.deploy.recipes import RecipeError, Repo, detect, plan_for, split_command
from backend.frameworks import FRAMEWORKS


def repo(files, **texts):
    return Repo(set(files) | set(texts), {name.replace("_", "."): text for name, text in texts.items()})


def words(plan):
    return [" ".join(step.argv) for step in plan.install + plan.build]


@pytest.mark.parametrize("files, texts, expected", [
    ({"package.json"}, {"package.json": '{"dependencies": {"next": "15.0.0", "react": "19"}}'}, "nextjs"),
    ({"package.json", "server.js"}, {"package.json": '{"dependencies": {"express": "^4"}}'}, "express"),
    ({"manage.py", "requirements.txt", "shop/wsgi.py"}, {"requirements.txt": "Django>=5\n"}, "django"),
    ({"requirements.txt", "main.py"}, {"requirements.txt": "fastapi==0.115\nuvicorn\n"}, "fastapi"),
    ({"pyproject.toml", "main.py"}, {"pyproject.toml": 'dependencies = ["fastapi>=0.1"]\n'}, "fastapi"),
    ({"requirements.txt", "app.py"}, {"requirements.txt": "flask\n"}, "flask"),
    ({"public/index.html"}, {}, "static"),
    ({"index.html"}, {}, "static"),
])
def test_detect(files, texts, expected):
    assert detect(Repo(files | set(texts), texts)) == expected


def test_detect_says_what_it_looked_for():
    with pytest.raises(RecipeError, match="cannot tell the framework"):
        detect(Repo({"README.md"}, {}))


def test_a_package_mentioned_in_a_comment_or_as_a_prefix_is_not_a_match():
    texts = {"requirements.txt": "fastapi-utils\n# fastapi later\nflask\n"}
    assert detect(Repo({"requirements.txt", "app.py"}, texts)) == "flask"


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
    plan = plan_for("fastapi", Repo({"pyproject.toml", "app/main.py"}, {"pyproject.toml": "fastapi"}), host="h")
    assert words(plan)[1].endswith("install --disable-pip-version-check --no-input --progress-bar off . "
                                   "gunicorn uvicorn")
    assert "uvicorn.workers.UvicornWorker" in plan.start and plan.start[-1] == "app.main:app"


def test_node_recipes_use_the_lockfile_when_there_is_one():
    texts = {"package.json": '{"scripts": {"build": "tsc", "start": "node dist/index.js"}}'}
    plan = plan_for("express", Repo({"package.json", "package-lock.json"}, texts), host="h")
    assert words(plan) == ["npm ci --no-audit --no-fund --omit=dev", "npm run build"]
    assert plan.start == ("npm", "start")
    plan = plan_for("express", Repo({"package.json", "index.js"}, {"package.json": "{}"}), host="h")
    assert words(plan) == ["npm install --no-audit --no-fund --omit=dev"] and plan.start == ("node", "index.js")
    plan = plan_for("nextjs", Repo({"package.json"}, {"package.json": '{"dependencies": {"next": "1"}}'}),
                    host="10.0.0.5", port=4000)
    assert words(plan) == ["npm install --no-audit --no-fund", "npm run build"]
    assert plan.start == ("node_modules/.bin/next", "start", "--hostname", "10.0.0.5", "--port", "4000")


def test_static_serves_its_public_directory_only():
    plan = plan_for("static", Repo({"public/index.html", "README.md"}, {}), host="127.0.0.9")
    assert plan.start == ("python3", "-m", "http.server", "8080", "--bind", "127.0.0.9", "--directory", "public")


def test_overrides_and_procfile():
    base = Repo({"requirements.txt", "app.py", "Procfile"},
                {"requirements.txt": "flask\n", "Procfile": "release: echo hi\nweb: gunicorn app:app -b $HOST:$PORT\n"})
    plan = plan_for("flask", base, host="1.2.3.4", port=5001)
    assert plan.start == ("gunicorn", "app:app", "-b", "1.2.3.4:5001")
    plan = plan_for("flask", base, host="h", start_command="waitress-serve --port=${PORT} app:app",
                    build_command="make assets", health_check_path="/up")
    assert plan.start == ("waitress-serve", "--port=8000", "app:app")
    assert [s.argv for s in plan.build] == [("make", "assets")] and plan.health_check_path == "/up"


def test_missing_pieces_are_explained():
    with pytest.raises(RecipeError, match="no requirements.txt or pyproject.toml"):
        plan_for("flask", Repo({"app.py"}, {}), host="h")
    with pytest.raises(RecipeError, match="Flask application"):
        plan_for("flask", Repo({"requirements.txt", "server/run.py"}, {"requirements.txt": "flask"}), host="h")
    with pytest.raises(RecipeError, match="not valid JSON"):
        plan_for("express", Repo({"package.json"}, {"package.json": "{"}), host="h")


def test_a_command_is_split_into_words_never_given_to_a_shell():
    assert split_command("echo '$(id)' `id` ; && |", "h", 1) == ("echo", "$(id)", "`id`", ";", "&&", "|")
    with pytest.raises(RecipeError):
        split_command("echo 'unclosed", "h", 1)
