"""The sample Flask app of simulation mode: python app.py --simulate, then deploy
https://github.com/paas-examples/flask-hello (see the README)."""
import os
import socket

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    greeting = os.environ.get("GREETING", "Hello")
    return f"<h1>{greeting} from Flask</h1><p>Served by gunicorn on {socket.gethostname()}.</p>\n"


@app.get("/health")
def health():
    return {"status": "ok"}
