"""Application factory. `python app.py` serves the API; `flask db upgrade` finds this file by itself."""
import logging
import os
import sys

from flask import Flask, g, has_request_context

from backend import api, deploy, jobs
from backend.extensions import db, migrate
from config import BASE_DIR, config_by_name, database_url, env_bool, env_int

__all__ = ["create_app", "db"]


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the request id, so one request's lines can be found together."""

    def filter(self, record):
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(app):
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(isinstance(f, RequestIdFilter) for h in root.handlers for f in h.filters):
        root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])


def create_app(config_name=None, **overrides):
    """Build the app for 'development', 'testing' or 'production' (default: APP_ENV or development)."""
    config_name = config_name or os.environ.get("APP_ENV", "development")
    if config_name not in config_by_name:
        raise ValueError(f"unknown config {config_name!r}; use one of {', '.join(config_by_name)}")
    config_class = config_by_name[config_name]

    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config_class)
    app.config["CONFIG_NAME"] = config_name
    app.config.update(overrides)
    app.json.sort_keys = False
    # Werkzeug would answer /api//deployments with an HTML redirect that bypasses the error shape.
    app.url_map.merge_slashes = False
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.instance_path)
    if hasattr(config_class, "validate"):
        config_class.validate(app.config)

    configure_logging(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    jobs.init_app(app)
    deploy.init_app(app)
    api.init_app(app)
    return app


def main(argv=None):
    """Serve on HOST:PORT (127.0.0.1:5000), upgrading the schema first; --simulate runs without Proxmox."""
    import argparse  # noqa: PLC0415

    from flask_migrate import upgrade  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="The PaaS API server.")
    parser.add_argument("--simulate", action="store_true", default=env_bool("SIMULATE"),
                        help="run a fake Proxmox in-process; guests are local sandboxes on 127.77.x.y "
                             "(apps are really cloned, built and started on this machine)")
    args = parser.parse_args(argv)
    host = os.environ.get("HOST", "127.0.0.1")
    if args.simulate:
        import ipaddress  # noqa: PLC0415

        from backend.deploy import simulation_dir  # noqa: PLC0415

        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            # Simulated guests run their builds as this user on this machine: never offer that to a network.
            parser.error(f"--simulate serves on loopback only; HOST is {host}")
        from backend.simulation.runtime import EXAMPLES_OWNER, prepare_examples, reset, start_fake  # noqa: PLC0415

        fake, settings = start_fake()
        app = create_app(PROXMOX_SETTINGS=settings, SIMULATE=True)
        # The fake cluster lives as long as this process: so do the simulated guests and, unless
        # DATABASE_URL names one, the database that records them.
        database = reset(simulation_dir(app))
        if not os.environ.get("DATABASE_URL"):
            app = create_app(PROXMOX_SETTINGS=settings, SIMULATE=True, SQLALCHEMY_DATABASE_URI=database)
        app.config["GIT_URL_REWRITES"] = {**app.config["GIT_URL_REWRITES"],
                                          **prepare_examples(simulation_dir(app), BASE_DIR / "examples")}
        app.config["GIT_ALLOW_PROTOCOL"] = "https:file"
        print(f" * Simulation mode: fake Proxmox at {fake.url}; simulated guests live on 127.77.x.y;\n"
              f" * sample apps at {EXAMPLES_OWNER}flask-hello and {EXAMPLES_OWNER}static-site", flush=True)
    else:
        app = create_app()
    with app.app_context():
        upgrade()
    if args.simulate:
        from backend.simulation.runtime import admin_token  # noqa: PLC0415

        token, path = admin_token(app, simulation_dir(app))
        print(f" * Admin API token (also in {path}):\n   export TOKEN={token}\n"
              " * Every /api call needs -H \"Authorization: Bearer $TOKEN\"", flush=True)
    app.extensions["jobs"].start()
    app.run(host=host, port=env_int("PORT", 5000), threaded=True)


if __name__ == "__main__":
    main()
