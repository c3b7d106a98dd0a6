"""A Flask app in a src/ layout, not installed as a package: found as hello_src:app with src on the import path."""
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"hello {os.environ.get('GREETING', 'nobody')} from a src layout"


@app.get("/health")
def health():
    return "ok"
