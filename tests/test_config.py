"""Settings: where the database is, and what production refuses."""
import pytest

from app import create_app
from config import database_url


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
    assert database_url(tmp_path) == "postgresql+psycopg2://paas:p%40ss%3Aw%2Frd@db:5432/paas"


def test_database_url_wins_over_everything(clean_env, tmp_path):
    clean_env.setenv("USE_POSTGRES", "true")
    clean_env.setenv("DATABASE_URL", "mysql+pymysql://root@127.0.0.1/test")
    assert database_url(tmp_path) == "mysql+pymysql://root@127.0.0.1/test"


def test_a_heroku_style_postgres_url_is_understood(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "postgres://u@h/d")
    assert database_url(tmp_path) == "postgresql://u@h/d"


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
