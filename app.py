"""Application factory. `python app.py` serves the API; `flask db upgrade` finds this file by itself."""
import logging
import os
import sys

from flask import Flask, g, has_request_context

from backend import api, bootstrap, web
from backend.extensions import db, migrate
from backend.platform import platform_of
from config import (
    BASE_DIR,
    ConfigurationError,
    check_common,
    check_database_url,
    config_by_name,
    database_source,
    database_url,
    env_bool,
    env_int,
    normalize_database_url,
    proxmox_settings_from_env,
    unreachable_database,
)

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

    # No app-wide static folder: the dashboard's blueprint serves /static (its own and the vendored assets).
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.config.from_object(config_class)
    app.config["CONFIG_NAME"] = config_name
    app.config.update(overrides)
    if "PROXMOX_SETTINGS" not in app.config:
        app.config["PROXMOX_SETTINGS"] = proxmox_settings_from_env()
    app.json.sort_keys = False
    # Werkzeug would answer /api//deployments with an HTML redirect that bypasses the error shape.
    app.url_map.merge_slashes = False
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.instance_path)
    # Every spelling of a URL maps onto a driver we ship, and a URL that cannot work stops here in one line.
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    check_database_url(app.config["SQLALCHEMY_DATABASE_URI"], database_source())
    if hasattr(config_class, "validate"):
        config_class.validate(app.config)
    else:
        check_common(app.config)

    configure_logging(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    bootstrap.init_app(app)
    api.init_app(app)
    web.init_app(app)
    return app


def main(argv=None):
    """Serve on HOST:PORT (127.0.0.1:5000), upgrading the schema first; --simulate runs without Proxmox."""
    import argparse  # noqa: PLC0415 - the CLI's needs stay out of the factory's imports

    parser = argparse.ArgumentParser(description="The PaaS API server.")
    parser.add_argument("--simulate", action="store_true", default=env_bool("SIMULATE"),
                        help="run a fake Proxmox in-process; guests are local sandboxes on 127.77.x.y "
                             "(apps are really cloned, built and started on this machine)")
    parser.add_argument("--guests", choices=("sandboxes", "containers"),
                        default=os.environ.get("SIMULATION_GUESTS") or "sandboxes",
                        help="with --simulate: sandboxes (the default), or containers: real Debian guests with "
                             "systemd and sshd on a bridge, deployed over SSH as on Proxmox (needs root)")
    args = parser.parse_args(argv)
    try:
        if args.simulate:
            _simulate(parser, args.guests)
        else:
            _serve(create_app())
    except ConfigurationError as exc:
        parser.exit(1, f"Error: {exc.message}\n")


def _serve(app, before_serving=None):
    """Upgrade the schema, start the background jobs and serve until interrupted."""
    from flask_migrate import upgrade  # noqa: PLC0415 - only the serving path migrates
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - as above

    with app.app_context():
        try:
            upgrade()
        except SQLAlchemyError as exc:
            raise unreachable_database(exc, app.config["SQLALCHEMY_DATABASE_URI"], database_source()) from None
    if before_serving:
        before_serving(app)
    platform_of(app).jobs.start()
    try:
        app.run(host=os.environ.get("HOST", "127.0.0.1"), port=env_int("PORT", 5000), threaded=True,
                use_reloader=False)
    finally:
        platform_of(app).jobs.shutdown(wait=False)


def _announce_admin(app, base):
    """A fresh admin token and password for this simulation, printed and written beside it."""
    from backend.simulation.runtime import admin_credentials  # noqa: PLC0415 - simulation-only import

    admin = admin_credentials(app, base)
    print(f" * Admin API token (also in {admin.token_path}):\n   export TOKEN={admin.token}\n"
          " * Every /api call needs -H \"Authorization: Bearer $TOKEN\"\n"
          f" * Admin login: username admin, password {admin.password} (also in {admin.password_path}),\n"
          "   exchanged for a token by POST /api/auth/login", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _ignore_signals():
    """From here on the process cleans up and ends: Ctrl-C and SIGTERM wait for it."""
    import signal  # noqa: PLC0415 - simulation only

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _simulate(parser, guests="sandboxes"):
    """Serve with an in-process fake Proxmox; on exit (Ctrl-C, SIGTERM) every simulated guest's app stops."""
    import ipaddress  # noqa: PLC0415 - simulation-only imports
    import signal  # noqa: PLC0415 - simulation only

    from backend.bootstrap import simulation_dir  # noqa: PLC0415 - simulation only
    from backend.simulation import runtime  # noqa: PLC0415 - simulation only

    host = os.environ.get("HOST", "127.0.0.1")
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        # Simulated guests run their builds as this user on this machine: never offer that to a network.
        parser.error(f"--simulate serves on loopback only; HOST is {host}")
    if guests == "containers":
        from backend.simulation.containers import ContainerError, require_capabilities  # noqa: PLC0415 - containers only

        try:
            require_capabilities()  # before anything is made: a plain refusal, nothing to undo
        except ContainerError as exc:
            parser.exit(1, f"Error: {exc}\n")
    # SIGTERM ends the server as Ctrl-C does (werkzeug stops serving on KeyboardInterrupt), so the cleanup
    # below runs and main() returns to the os._exit that keeps running jobs from outliving it.
    signal.signal(signal.SIGTERM, _interrupt)
    probe = create_app(SIMULATE=True)
    base = simulation_dir(probe)
    try:
        dir_lock = runtime.lock_simulation_dir(base)
        block, block_lock = runtime.claim_block()
    except runtime.SimulationBusy as exc:
        parser.exit(1, f"Error: {exc}\n")
    if guests == "containers":
        return _simulate_containers(parser, base, block, (dir_lock, block_lock))
    fake, settings = runtime.start_fake(ip_pool=runtime.address_pool(block))
    edge = None
    try:
        # The fake cluster lives as long as this process: so do the simulated guests and, unless
        # DATABASE_URL names one, the database that records them.
        database = runtime.reset(base)
        extra = {} if os.environ.get("DATABASE_URL") else {"SQLALCHEMY_DATABASE_URI": database}
        extra.update(runtime.backup_settings())
        if runtime.router_wanted():
            edge, router = runtime.start_edge(base)
            extra.update(router)
        # The sample apps are local repositories that guests clone by their GitHub-like URLs.
        examples = runtime.prepare_examples(base, BASE_DIR / "examples")
        app = create_app(PROXMOX_SETTINGS=settings, SIMULATE=True, GIT_URL_REWRITES=examples,
                         GIT_ALLOW_PROTOCOL="https:file", **extra)
        print(f" * Simulation mode: fake Proxmox at {fake.url}; simulated guests live on 127.77.{block}.x;\n"
              f" * sample apps at {runtime.EXAMPLES_OWNER}flask-hello and {runtime.EXAMPLES_OWNER}static-site",
              flush=True)
        if edge is not None:
            print(_edge_banner(edge, base), flush=True)

        _serve(app, before_serving=lambda app: _announce_admin(app, base))
    finally:
        _ignore_signals()  # a second Ctrl-C or SIGTERM must not cut the cleanup short
        # The fake first: a job still running then fails at its next Proxmox call instead of going on.
        fake.stop()
        stopped = runtime.stop_guest_apps(base)
        if edge is not None:
            edge.stop()
        print(f" * Simulation ended: stopped the apps of {stopped} simulated guest(s)", flush=True)
        block_lock.close()
        dir_lock.close()


def _edge_banner(edge, base):
    from backend.simulation.runtime import SIMULATION_APPS_DOMAIN  # noqa: PLC0415 - simulation only

    settings = edge.settings
    return (f" * Edge router: Caddy on 127.0.0.1 (http {settings.http_port}, https {settings.https_port}); apps answer "
            f"at https://NAME.{SIMULATION_APPS_DOMAIN}:{settings.https_port}/\n"
            f"   trust its CA with: curl --cacert {edge.ca_path} ... (ports and CA also in {base / 'router.json'};"
            " ROUTER=none turns it off)")


def _simulate_containers(parser, base, block, locks):
    """--simulate --guests=containers: real guests on a bridge of this run's block, removed when it ends."""
    from backend.simulation import runtime  # noqa: PLC0415 - simulation-only imports
    from backend.simulation.containers import ContainerError  # noqa: PLC0415 - simulation only
    from backend.simulation.realguests import RealGuestCluster  # noqa: PLC0415 - simulation only

    database = runtime.reset(base)
    runtime.prepare_examples(base, BASE_DIR / "examples")  # the repositories; guests clone them over HTTP
    cluster = RealGuestCluster(base / "containers", block, base / "examples", runtimes=False,
                               serves_as=runtime.EXAMPLES_OWNER, task_seconds=0.2)
    try:
        print(" * Real guests: building or checking the guest image (the first time takes a minute or two)",
              flush=True)
        cluster.start()
    except ContainerError as exc:
        for lock in locks:
            lock.close()
        parser.exit(1, f"Error: {exc}\n")
    edge = None
    try:
        extra = {} if os.environ.get("DATABASE_URL") else {"SQLALCHEMY_DATABASE_URI": database}
        extra.update(runtime.backup_settings())
        if runtime.router_wanted():
            edge, router = runtime.start_edge(base)
            extra.update(router)
        app = create_app(**cluster.app_config(), **extra)
        print(f" * Simulation mode with real guests: fake Proxmox at {cluster.fake.url}; guests are containers on "
              f"{cluster.host.bridge} ({cluster.host.network}), reached over SSH;\n"
              f" * packages through the proxy {cluster.proxy.url}; sample apps at "
              f"{runtime.EXAMPLES_OWNER}flask-hello and {runtime.EXAMPLES_OWNER}static-site", flush=True)
        if edge is not None:
            print(_edge_banner(edge, base), flush=True)

        _serve(app, before_serving=lambda app: _announce_admin(app, base))
    finally:
        _ignore_signals()
        cluster.close()
        if edge is not None:
            edge.stop()
        print(" * Simulation ended: every real guest it made is removed", flush=True)
        for lock in locks:
            lock.close()


if __name__ == "__main__":
    main()
    # Jobs still running (a build mid-way) would hold the interpreter open, and could start an app after
    # the cleanup stopped them: once served, the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
