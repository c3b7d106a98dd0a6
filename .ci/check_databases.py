"""Fail loudly when a test server that CI relies on (PostgreSQL, MariaDB, Redis) does not answer."""
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from config import normalize_database_url

failed = False
for variable in ("TEST_POSTGRES_URL", "TEST_MYSQL_URL"):
    url = os.environ.get(variable)
    if not url:
        print(f"{variable} is not set", file=sys.stderr)
        failed = True
        continue
    engine = create_engine(normalize_database_url(url), connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version()")).scalar()
        print(f"{variable}: {engine.url.render_as_string(hide_password=True)} answers ({version.split(',')[0]})")
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server ends CI
        print(f"{variable}: cannot connect to {engine.url.render_as_string(hide_password=True)}: "
              f"{exc.__class__.__name__}: {exc}", file=sys.stderr)
        failed = True
    finally:
        engine.dispose()

redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
try:
    import redis

    redis.Redis.from_url(redis_url, socket_connect_timeout=10).ping()
    print(f"TEST_REDIS_URL: {redis_url} answers")
except Exception as exc:  # noqa: BLE001 - the Celery tests need it
    print(f"TEST_REDIS_URL: cannot reach {redis_url}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
    failed = True
sys.exit(1 if failed else 0)
