"""The deployment files: docker-compose.yml, .env.example and setup.sh say what the code expects."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# os.environ.get("X"...), os.environ["X"], os.getenv("X"...), env_bool("X"...), env_int("X"...),
# and the settings classes' env.get("X") / _int(env, "X", ...) over a mapping such as os.environ
ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|env_bool|env_int|env\.get|_int\(\s*env,)\(?\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
ENV_EXAMPLE_ENTRY = re.compile(r"^[ \t]*#?[ \t]*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def db_service(compose):
    return compose["services"]["db"]


@pytest.fixture(scope="module")
def api_service(compose):
    return compose["services"]["api"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def env_files(service):
    """env_file in short (string/list) or long ({path: ...}) syntax, as a list of paths."""
    return [entry["path"] if isinstance(entry, dict) else entry for entry in as_list(service.get("env_file", []))]


def environment(service):
    """environment in mapping or KEY=VALUE list syntax, as a dict."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def command_text(command):
    return command if isinstance(command, str) else " ".join(command)


def env_vars_read_by(*names):
    """Every variable name the given source files read from the environment."""
    found = set()
    for name in names:
        for match in ENV_READ.finditer((ROOT / name).read_text()):
            found.add(match.group(1) or match.group(2))
    return found


def test_compose_file_parses_into_db_and_api_services(compose):
    assert isinstance(compose, dict)
    assert {"db", "api"} <= set(compose["services"])


def test_db_runs_a_pinned_postgres_image(db_service):
    image = db_service["image"]
    assert image.startswith("postgres:")
    assert image.split(":", 1)[1] not in ("", "latest")


def test_both_services_read_the_env_file(db_service, api_service):
    assert ".env" in env_files(db_service)
    assert ".env" in env_files(api_service)


def test_db_is_configured_from_postgres_variables(db_service):
    env = environment(db_service)
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        assert name in env
        assert "${" + name in str(env[name]), f"{name} should come from .env"


def test_db_is_published_on_host_port_5435(db_service):
    assert "5435:5432" in [str(port) for port in db_service["ports"]]


def test_db_keeps_its_data_in_the_pgdata_volume(compose, db_service):
    assert "pgdata:/var/lib/postgresql/data" in db_service["volumes"]
    assert "pgdata" in compose["volumes"]


def test_both_services_share_the_backend_network(compose, db_service, api_service):
    assert "backend" in compose["networks"]
    assert "backend" in db_service["networks"]
    assert "backend" in api_service["networks"]


def test_db_healthcheck_asks_pg_isready_every_ten_seconds(db_service):
    check = db_service["healthcheck"]
    test = command_text(check["test"])
    assert "pg_isready" in test
    assert "POSTGRES_USER" in test and "POSTGRES_DB" in test
    assert (check["interval"], check["timeout"], check["retries"]) == ("10s", "5s", 5)


def test_db_healthcheck_expands_variables_in_the_container(db_service):
    test = db_service["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL", "variables need a shell to expand"
    # A single $ would be interpolated by compose at parse time; $$ reaches the container's shell as $.
    assert re.search(r"(?<!\$)\$\{?POSTGRES_", test[1]) is None


def test_api_is_built_from_the_dockerfile(api_service):
    build = api_service["build"]
    if isinstance(build, str):
        assert build == "."
        dockerfile = "Dockerfile"
    else:
        assert build.get("context", ".") == "."
        dockerfile = build.get("dockerfile", "Dockerfile")
    assert (ROOT / dockerfile).is_file()


def test_api_waits_for_a_healthy_database(api_service):
    assert api_service["depends_on"]["db"]["condition"] == "service_healthy"


def test_api_runs_in_production_against_the_db_service(api_service):
    env = environment(api_service)
    assert env["APP_ENV"] == "production"
    assert str(env["USE_POSTGRES"]).lower() == "true"
    assert env["POSTGRES_HOST"] == "db"
    assert str(env["POSTGRES_PORT"]) == "5432"


def test_api_and_worker_share_the_instance_folder_in_a_named_volume(compose, api_service):
    """env.key decrypts every stored env value and the SSH key pair opens every guest: the api (which
    encrypts) and the worker (which deploys) must hold the same ones, and keep them across rebuilds."""
    worker = compose["services"]["worker"]
    mounts = {}
    for name, service in (("api", api_service), ("worker", worker)):
        for volume in service.get("volumes", []):
            source, _, target = (volume if isinstance(volume, str) else f"{volume['source']}:{volume['target']}"
                                 ).partition(":")
            if target.split(":")[0] == "/app/instance":
                mounts[name] = source
    assert mounts.get("api") and mounts.get("api") == mounts.get("worker"), mounts
    assert mounts["api"] in (compose.get("volumes") or {}), "a named volume, not a bind mount or anonymous one"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "chown app:app /app/instance" in dockerfile


def test_the_readme_says_to_back_up_the_instance_volume_with_the_database():
    readme = (ROOT / "README.md").read_text()
    backup = readme[readme.index("### Backup and restore"):]
    backup = backup[:backup.index("\n## ")]
    assert "instance" in backup and "env.key" in backup and "id_ed25519" in backup


def test_api_upgrades_the_schema_before_gunicorn_serves(api_service):
    command = command_text(api_service["command"])
    assert "flask db upgrade" in command
    assert "gunicorn" in command
    assert command.index("flask db upgrade") < command.index("gunicorn")
    assert "flask db upgrade &&" in command, "gunicorn must not start when the upgrade fails"
    assert "wsgi:app" in command


def test_api_is_published_on_port_5000_and_restarts(api_service):
    assert "5000:5000" in [str(port) for port in api_service["ports"]]
    assert api_service["restart"] == "unless-stopped"


def sources_read_at_run_time():
    files = [ROOT / "config.py", ROOT / "app.py", ROOT / "gunicorn.conf.py", *(ROOT / "backend").rglob("*.py")]
    return [p.relative_to(ROOT) for p in files]


def test_env_example_mentions_every_variable_the_code_reads():
    sources = sources_read_at_run_time()
    read = env_vars_read_by(*sources)
    assert {"APP_ENV", "SECRET_KEY", "DATABASE_URL", "POSTGRES_PORT", "PER_PAGE_MAX"} <= read, "regex lost its way"
    listed = set(ENV_EXAMPLE_ENTRY.findall((ROOT / ".env.example").read_text()))
    assert read - listed == set()


def test_env_example_lists_no_variable_the_code_ignores():
    sources = sources_read_at_run_time()
    read = env_vars_read_by(*sources)
    listed = set(ENV_EXAMPLE_ENTRY.findall((ROOT / ".env.example").read_text()))
    assert listed - read == set()


def test_env_example_defaults_to_sqlite():
    active = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    active = {name: value.strip() for name, value in active}
    assert active.get("DATABASE_URL", "") == ""
    assert active.get("USE_POSTGRES", "") == ""


def test_setup_script_is_executable_and_valid_bash():
    script = ROOT / "setup.sh"
    if os.name != "nt":  # Windows has no execute bit; git keeps it from the committed mode
        assert os.access(script, os.X_OK)
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_jobs_run_in_a_celery_worker_fed_by_redis(compose, api_service):
    redis_service = compose["services"]["redis"]
    worker = compose["services"]["worker"]
    assert redis_service["image"].startswith("redis:") and "ping" in command_text(redis_service["healthcheck"]["test"])
    assert command_text(worker["command"]).startswith("celery -A backend.jobs.celery_app worker")
    broker = "redis://redis:6379/0"
    assert environment(worker)["CELERY_BROKER_URL"] == broker == environment(api_service)["CELERY_BROKER_URL"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert ".env" in env_files(worker)
