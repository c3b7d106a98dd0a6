"""The web process: shows what the release phase and the worker left in the release's directory."""
import pathlib

from flask import Flask

app = Flask(__name__)


def read(name):
    path = pathlib.Path(name)
    return path.read_text().strip() if path.exists() else "missing"


@app.get("/")
def index():
    return f"release phase: {read('migrated')}; worker heartbeat: {read('heartbeat')}"


@app.get("/health")
def health():
    return "ok"
