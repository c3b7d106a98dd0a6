"""The database: `flask --app notes init-db` creates it (the release phase runs it before every release)."""
import os
import sqlite3

import click
from flask import current_app, g


def get_db():
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
    return g.db


def close_db(exc=None):
    connection = g.pop("db", None)
    if connection is not None:
        connection.close()


@click.command("init-db")
def init_db_command():
    """Create the tables if they are missing, with a first note (safe to run again)."""
    os.makedirs(os.path.dirname(current_app.config["DATABASE"]), exist_ok=True)
    connection = get_db()
    connection.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    if connection.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0:
        connection.execute("INSERT INTO notes (body) VALUES (?)", (os.environ.get("FIRST_NOTE", "welcome"),))
    connection.commit()
    click.echo(f"initialised {current_app.config['DATABASE']}")


def init_app(app):
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
