"""Fail loudly when a test database server that CI relies on does not answer."""
import os
import sys

from sqlalchemy import create_engine, text

failed = False
for variable in ("TEST_POSTGRES_URL", "TEST_MYSQL_URL"):
    url = os.environ.get(variable)
    if not url:
        print(f"{variable} is not set", file=sys.stderr)
        failed = True
        continue
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version()")).scalar()
        print(f"{variable}: {engine.url.render_as_string(hide_password=True)} answers ({version.split(',')[0]})")
    except Exception as exc:  # any failure to reach the server ends CI
        print(f"{variable}: cannot connect to {engine.url.render_as_string(hide_password=True)}: "
              f"{exc.__class__.__name__}: {exc}", file=sys.stderr)
        failed = True
    finally:
        engine.dispose()
sys.exit(1 if failed else 0)
