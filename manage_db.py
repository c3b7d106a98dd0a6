"""Database commands: init, reset, seed, stats, backup, restore, reconcile, recover, create-user, create-token,
set-password.
Thin: the work is in backend/services.

    python manage_db.py init             # create what is missing, stand at the migration head
    python manage_db.py backup backups/paas.json
    python manage_db.py restore backups/paas.json --force
    python manage_db.py reconcile [--fix]    # database against the Proxmox cluster and the edge router
    python manage_db.py create-user alice --admin   # a user and its first API token (printed once)
    python manage_db.py set-password alice          # a password (asked twice), for POST /api/auth/login

The app comes from create_app() (APP_ENV picks the config) unless one is passed as the click
context object, which is how the tests point the commands at their own database.
"""
import functools
import os
import secrets
import sys
import time

import click
from flask import current_app
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from app import create_app
from backend.errors import DomainError
from backend.jobs.backends import ThreadJobs
from backend.jobs.recovery import recover as queue_unfinished
from backend.platform import platform_of
from backend.proxmox.errors import ProxmoxError
from backend.router import RouterError
from backend.services import accounts, audit, passwords, routing
from backend.services import backup as backup_service
from backend.services import database as database_service
from backend.services.reconcile import reconcile as run_reconcile
from config import database_source, unreachable_database


@click.group()
def cli():
    """Manage the PaaS database."""


def with_app(command):
    """Run command inside the app's context; the app is ctx.obj, built by create_app() when absent."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        root = click.get_current_context().find_root()
        if root.obj is None:  # built here, not in cli(), so `--help` needs no working configuration
            root.obj = create_app()
        with root.obj.app_context():
            try:
                return command(*args, **kwargs)
            except DomainError as exc:
                raise click.ClickException(exc.message) from None
            except (OperationalError, InterfaceError, ProgrammingError) as exc:
                # Down, refusing, or without the schema: one line naming DATABASE_URL, not a driver traceback.
                raise unreachable_database(exc, root.obj.config["SQLALCHEMY_DATABASE_URI"],
                                           database_source()) from None

    return run


@cli.command()
@with_app
def init():
    """Create missing tables and stamp the migration head; upgrade if already under migrations."""
    result = database_service.init_database()
    if result.action == "created":
        click.echo(f"Created the missing tables and stamped the migration head {result.revision_after}.")
    elif result.revision_before == result.revision_after:
        click.echo(f"Database is under migrations and already at head {result.revision_after}; nothing to do.")
    else:
        click.echo(f"Upgraded the database from {result.revision_before} to {result.revision_after}.")


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_app
def reset(yes):
    """Drop every table and rebuild the schema from the migrations (refused in production)."""
    database_service.ensure_resettable()
    if not yes:
        click.confirm(f"Drop all tables and data in {database_service.database_label()}?", abort=True)
    revision = database_service.reset_database()
    click.echo(f"Dropped every table and rebuilt the schema at revision {revision}.")


@cli.command()
@with_app
def seed():
    """Add sample deployments (those already there are skipped)."""
    added = database_service.seed_sample_deployments()
    total = len(database_service.SAMPLE_DEPLOYMENTS)
    click.echo(f"Added {added} sample deployment{'s' if added != 1 else ''} ({total - added} already there).")


@cli.command()
@with_app
def stats():
    """Show deployment counts by status and by type."""
    totals = database_service.deployment_totals()
    rows = [("Status", "Count"), *totals["by_status"].items(), None,
            ("Type (deleted included)", "Count"), *totals["by_type"].items(), None,
            ("Total", totals["total"])]
    width = max(len(row[0]) for row in rows if row)
    digits = max(len(str(row[1])) for row in rows if row)
    for row in rows:
        click.echo("" if row is None else f"{row[0]:<{width}}  {row[1]:>{digits}}")


def _echo_counts(verb, counts, err=False):
    summary = ", ".join(f"{table}: {count}" for table, count in counts.items())
    click.echo(f"{verb} {sum(counts.values())} rows ({summary}).", err=err)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@with_app
def backup(file):
    """Write every table to FILE as JSON ('-' for stdout)."""
    try:
        # atomic: a failed backup leaves no half-written file behind
        with click.open_file(file, "w", encoding="utf-8", atomic=True) as fp:
            counts = backup_service.write_backup(fp)
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
    _echo_counts(f"Backed up to {file}:" if file != "-" else "Backed up", counts, err=file == "-")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--force", is_flag=True, help="Delete the rows already in the database first.")
@with_app
def restore(file, force):
    """Load a backup FILE ('-' for stdin) into the database, migrated to the backup's revision."""
    try:
        with click.open_file(file, "r", encoding="utf-8") as fp:
            counts = backup_service.restore_backup(fp, force=force)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    _echo_counts("Restored", counts)


@cli.command()
@click.option("--fix", is_flag=True, help="Destroy the orphaned guests, mark deployments without a guest failed, "
              "and load the routes the router lacks.")
@with_app
def reconcile(fix):
    """Compare the database with the Proxmox cluster (guests the platform tagged that no live deployment owns,
    deployments whose guest is gone) and with the edge router (the routes it should hold). Report only, unless
    --fix. Exit status 1 when something is off."""
    platform = platform_of(current_app)
    if platform.proxmox is None and platform.edge is None:
        raise click.ClickException("Proxmox is not configured: set PROXMOX_HOST and its credentials")
    off = False
    if platform.proxmox is not None:
        off = _reconcile_cluster(platform.proxmox, fix) or off
    if platform.edge is not None:
        off = _reconcile_router(platform.edge, fix) or off
    if off:
        raise SystemExit(1)


def _reconcile_cluster(proxmox, fix):
    try:
        report = run_reconcile(proxmox.job_client(time.sleep), fix=fix)
    except ProxmoxError as exc:
        raise click.ClickException(f"Proxmox did not answer: {exc.describe()}") from None
    for orphan in report.orphans:
        done = " -> destroyed" if orphan["vmid"] in report.destroyed else ""
        click.echo(f"orphan guest {orphan['type']} {orphan['vmid']} ({orphan['name']}) on {orphan['node']}: "
                   f"{orphan['reason']}{done}")
    for missing in report.missing:
        done = " -> marked failed" if missing["id"] in report.marked else ""
        click.echo(f"deployment {missing['name']} ({missing['id']}, {missing['status']}) has no guest "
                   f"(VMID {missing['vm_id']}){done}")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{len(report.orphans)} orphaned guest(s), {len(report.missing)} deployment(s) without a guest"
               + (f"; destroyed {len(report.destroyed)}, marked {len(report.marked)}" if fix else
                  ("" if report.clean else "; run with --fix to repair")))
    return bool(report.errors or (not fix and not report.clean))


def _reconcile_router(edge, fix):
    """The router against the routes the database asks for; with fix, load them. True when something is off."""
    try:
        in_sync, count = routing.check_sync(edge)
        if in_sync:
            click.echo(f"router: holds the {count} route(s) the database asks for")
            return False
        if not fix:
            click.echo(f"router: does not hold the {count} route(s) the database asks for; run with --fix to load "
                       "them")
            return True
        routing.sync(edge)
    except RouterError as exc:
        click.echo(f"error: router: {exc}", err=True)
        return True
    click.echo(f"router: was missing routes or held others -> loaded the {count} route(s) the database asks for")
    return False


@cli.command()
@with_app
def recover():
    """Run the jobs of deployments left mid-way (pending, provisioning, deploying, deleting) to their end,
    in this process. The in-process pool and Celery workers do this by themselves when they start."""
    jobs = ThreadJobs(current_app._get_current_object(), current_app.config["JOB_WORKERS"])
    queued = queue_unfinished(current_app._get_current_object(), jobs)
    jobs.wait_idle(current_app.config["JOB_TIME_LIMIT"] + 60)
    jobs.shutdown()
    click.echo(f"Recovered {len(queued)} deployment(s).")


@cli.command("create-user")
@click.argument("username")
@click.option("--admin", is_flag=True, help="An admin: every deployment, user management, the audit log.")
@click.option("--token-name", default="initial", show_default=True, help="Name of the first token.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Default: no expiry.")
@click.option("--if-no-users", is_flag=True, help="Do nothing when the database has users already (setup.sh).")
@click.option("--password-file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also give the user a random password for the dashboard, written to this file (mode 0600) "
                   "and never printed (setup.sh: instance/admin-password).")
@with_app
def create_user(username, admin, token_name, expires_in_days, if_no_users, password_file):
    """Create a user with a first API token; the token is printed once (only its hash is stored)."""
    if if_no_users and accounts.count_users():
        click.echo("Users exist already; no user created (manage_db.py create-token makes a new token).", err=True)
        return
    password = secrets.token_urlsafe(18) if password_file else None
    if password_file:
        # Written first: a file that cannot be written stops here, before a user exists whose password nobody
        # would know (and whom --if-no-users would then never make again).
        try:
            _write_private(password_file, password)
        except OSError as exc:
            raise click.ClickException(f"cannot write {password_file}: {exc.strerror}") from None
    try:
        user = accounts.create_user(username, "admin" if admin else "member")
        if password:
            passwords.set_password(user, password)
    except BaseException:
        if password_file:
            os.remove(password_file)
        raise
    token, _ = accounts.issue_token(user, token_name, expires_in_days)
    click.echo(f"Created {user.role} {user.username} ({user.id}). Its API token, shown this once:", err=True)
    click.echo(token)
    audit.record("user.create", target=f"user {user.username}", details={"role": user.role, "via": "manage_db.py"})
    if password:
        audit.record("user.password_set", target=f"user {user.username}", details={"via": "manage_db.py"})
    if password_file:
        click.echo(f"Its dashboard password is in {password_file} (readable by you alone); change it on the "
                   "Account page.", err=True)


def _write_private(path, secret):
    """secret and a newline in path, readable by this user alone (an existing file's mode is put right too)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, where the mode means little
        os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")


@cli.command("create-token")
@click.argument("username")
@click.option("--name", "token_name", default="cli", show_default=True, help="A name to recognise the token by.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Default: no expiry.")
@with_app
def create_token(username, token_name, expires_in_days):
    """A new API token for an existing user (a lost admin token, say); printed once."""
    user = accounts.find_user(username)
    if not user.is_active:
        raise click.ClickException(f"{user.username} is disabled")
    token, row = accounts.issue_token(user, token_name, expires_in_days)
    audit.record("token.create", target=f"token {row.prefix}", details={"user": user.username, "via": "manage_db.py"})
    click.echo(f"New token {row.prefix}... for {user.username}, shown this once:", err=True)
    click.echo(token)


def _stdin_is_a_terminal():
    return sys.stdin.isatty()


@cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin (scripts) instead of asking twice.")
@with_app
def set_password(username, password_stdin):
    """Set (or replace) a user's password, for POST /api/auth/login; at least 12 characters.

    Asked twice on the terminal, never echoed; with --password-stdin, the first line of stdin.
    """
    user = accounts.find_user(username)
    if password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif not _stdin_is_a_terminal():
        # getpass would ask /dev/tty and leave what was piped in unread, or read it with a warning: say it instead.
        raise click.ClickException("stdin is not a terminal: pass --password-stdin to read the password from it")
    else:
        password = click.prompt(f"New password for {user.username}", hide_input=True,
                                confirmation_prompt="Repeat it", err=True)
    passwords.set_password(user, password)
    audit.record("user.password_set", target=f"user {user.username}", details={"via": "manage_db.py"})
    click.echo(f"Set the password of {user.username}; it logs in with POST /api/auth/login.", err=True)
    if not user.is_active:
        click.echo(f"{user.username} is disabled: the password works once an admin enables it again.", err=True)


if __name__ == "__main__":
    cli()
