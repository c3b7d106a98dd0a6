"""A notes app as Flask's tutorial lays one out: a package, a create_app() factory, a database to initialise."""
import os

from flask import Flask

from notes import db


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DATABASE=os.environ.get("NOTES_DATABASE")
                            or os.path.join(app.instance_path, "notes.sqlite"))
    if test_config:
        app.config.update(test_config)

    db.init_app(app)

    @app.get("/")
    def index():
        notes = db.get_db().execute("SELECT body FROM notes ORDER BY id").fetchall()
        return f"{len(notes)} notes: " + "; ".join(row[0] for row in notes)

    @app.get("/health")
    def health():
        return "ok"

    return app
