"""Local git repositories that stand for GitHub ones, and the sample apps the deploy tests put in them."""
import subprocess
import textwrap
from pathlib import Path


def git(cwd, *args):
    """Run git in cwd as a test identity, on branch main by default; raises when it fails."""
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True)


class Repos:
    """Local git repositories that stand for https://github.com/<owner>/<name>."""

    def __init__(self, base):
        self.base = base

    def make(self, name, files, owner="acme"):
        path = self.base / owner / name
        path.mkdir(parents=True)
        git(path, "init", "-q")
        return self.commit(name, files, owner=owner, message="first")

    def commit(self, name, files, owner="acme", message="change", branch=None):
        path = self.base / owner / name
        if branch:
            git(path, "checkout", "-q", "-B", branch)
        for relative, text in files.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", message)
        if branch:
            git(path, "checkout", "-q", "main")
        return subprocess.run(["git", "rev-parse", branch or "HEAD"], cwd=path, check=True, capture_output=True,
                              text=True).stdout.strip()

    @staticmethod
    def url(name, owner="acme"):
        return f"https://github.com/{owner}/{name}"


def flask_app(version="v1"):
    """A Flask app answering "hello <GREETING> from <version>" at / and "ok" at /health."""
    return {
        "requirements.txt": "flask\n",
        "app.py": f'''
            import os
            from flask import Flask

            app = Flask(__name__)


            @app.get("/")
            def index():
                return f"hello {{os.environ.get('GREETING', 'nobody')}} from {version}"


            @app.get("/health")
            def health():
                return "ok"
        ''',
    }


# An app that exits as it starts (its health check fails); detection finds its app object all the same.
BROKEN_APP = {"app.py": "raise SystemExit('broken on purpose')\napp = object()  # never reached\n"}

STATIC_SITE = {"public/index.html": "<!doctype html><title>static</title><h1>static site v1</h1>\n",
               "README.md": "not served\n"}

EXPRESS_APP = {
    "package.json": """
        {"name": "hello-express", "version": "1.0.0", "private": true,
         "dependencies": {"express": "^4.21.0"}, "scripts": {"start": "node server.js"}}
    """,
    "server.js": """
        const express = require("express");
        const app = express();
        app.get("/", (req, res) => res.send(`hello ${process.env.GREETING} from express`));
        app.listen(Number(process.env.PORT), process.env.HOST);
    """,
}


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name):
    """The files of examples/<name> as Repos.make takes them (what a user would push to GitHub)."""
    root = EXAMPLES / name
    return {str(path.relative_to(root)): path.read_text() for path in sorted(root.rglob("*"))
            if path.is_file() and not {"node_modules", ".venv", "__pycache__"} & set(path.parts)}


def data_app(version="v1"):
    """A Flask app keeping a value in DATA_DIR (the files every release shares): GET / answers "<version> <value>",
    POST /value sets it, GET /health answers "ok"."""
    return {
        "requirements.txt": "flask\n",
        "app.py": f'''
            import os
            from pathlib import Path

            from flask import Flask, request

            app = Flask(__name__)
            VALUE = Path(os.environ["DATA_DIR"]) / "value.txt"


            @app.get("/")
            def index():
                return "{version} " + (VALUE.read_text() if VALUE.exists() else "-")


            @app.post("/value")
            def set_value():
                VALUE.write_text(request.get_data(as_text=True))
                return "ok"


            @app.get("/health")
            def health():
                return "ok"
        ''',
    }
