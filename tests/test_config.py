"""Settings: where the database is, and what production refuses."""
import pytest

from app import create_app
from config import ConfigurationError, check_database_url, database_url


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DATABASE_URL", "USE_POSTGRES", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD",
                 "POSTGRES_HOST", "POSTGRES_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_default_is_sqlite_in_the_instance_folder(clean_env, tmp_path):
    assert database_url(tmp_path) == f"sqlite:///{tmp_path}/deployments.db"


def test_use_postgres_builds_a_url_from_the_compose_variables(clean_env, tmp_path):
    clean_env.setenv("USE_POSTGRES", "true")
    clean_env.setenv("POSTGRES_DB", "paas")
    clean_env.setenv("POSTGRES_USER", "paas")
    clean_env.setenv("POSTGRES_PASSWORD", "p@ss:w/rd")
    clean_env.setenv("POSTGRES_HOST", "db")
    clean_env.setenv("POSTGRES_PORT", "5432")
    assert database_url(tmp_path) == "postgresql+psycopg://paas:p%40ss%3Aw%2Frd@db:5432/paas"


def test_database_url_wins_over_everything(clean_env, tmp_path):
    clean_env.setenv("USE_POSTGRES", "true")
    clean_env.setenv("DATABASE_URL", "mysql+pymysql://root@127.0.0.1/test")
    assert database_url(tmp_path) == "mysql+pymysql://root@127.0.0.1/test"


@pytest.mark.parametrize("given, used", [
    ("postgres://u:p@h/d", "postgresql+psycopg://u:p@h/d"),  # Heroku's spelling
    ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
    ("postgresql+psycopg2://u:p@h/d", "postgresql+psycopg://u:p@h/d"),  # psycopg 3 is the driver we ship
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("mysql://root@h:3306/d", "mysql+pymysql://root@h:3306/d"),
    ("mysql+pymysql://root@h/d", "mysql+pymysql://root@h/d"),
    ("mariadb://root@h/d", "mariadb+pymysql://root@h/d"),
    ("sqlite:///relative.db", "sqlite:///relative.db"),
    ("sqlite:////absolute/paas.db", "sqlite:////absolute/paas.db"),
    ("  postgres://u@h/d  ", "postgresql+psycopg://u@h/d"),
])
def test_every_documented_url_form_maps_onto_a_shipped_driver(clean_env, tmp_path, given, used):
    clean_env.setenv("DATABASE_URL", given)
    assert database_url(tmp_path) == used
    check_database_url(used)  # its driver imports


@pytest.mark.parametrize("url, words", [
    ("nonsense", "DATABASE_URL is not a database URL"),
    ("oracle2://u@h/d", "unknown database kind 'oracle2'"),
    ("postgresql+pg8000://u:secret@h/d", "its driver is not installed"),
])
def test_a_url_that_cannot_work_is_one_clear_line_naming_database_url(url, words):
    with pytest.raises(ConfigurationError) as refused:
        check_database_url(url)
    message = refused.value.message
    assert words in message and "DATABASE_URL" in message
    assert "\n" not in message and "secret" not in message


def test_production_refuses_the_default_secret_key(clean_env, monkeypatch):
    monkeypatch.setattr("config.ProductionConfig.SECRET_KEY", "dev-insecure-change-me")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_starts_with_a_real_secret_key(clean_env):
    app = create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY="k" * 64)
    assert app.config["CONFIG_NAME"] == "production" and not app.testing


def test_an_unknown_config_name_is_refused():
    with pytest.raises(ValueError):
        create_app("staging")
