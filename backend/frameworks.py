"""The framework catalogue: what the platform knows how to build and run.

How each one is built and started lives in backend/deploy/recipes.py; the catalogue's commands are
that recipe applied to a typical repository, so GET /api/frameworks always shows what a deploy runs.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    key: str
    display_name: str
    language: str
    default_port: int
    description: str

    @property
    def build_command(self):
        """The recipe's install and build steps on a typical repository, as text (None: nothing to run)."""
        return _typical_commands(self.key)["build_command"]

    @property
    def start_command(self):
        """The recipe's start command on a typical repository, as text."""
        return _typical_commands(self.key)["start_command"]


def _typical_commands(key):
    from backend.deploy.recipes import describe  # noqa: PLC0415  (recipes reads this catalogue)

    return describe(key)


_CATALOGUE = (
    Framework("django", "Django", "python", 8000,
              "Python web framework: pip install into a virtualenv, collectstatic and migrate, served by gunicorn."),
    Framework("flask", "Flask", "python", 8000,
              "Python micro-framework: pip install into a virtualenv, served by gunicorn."),
    Framework("fastapi", "FastAPI", "python", 8000,
              "Async Python API framework: served by gunicorn with uvicorn workers."),
    Framework("express", "Express", "javascript", 3000,
              "Node.js web framework: npm ci (npm install without a lockfile), npm start or node server.js."),
    Framework("nextjs", "Next.js", "javascript", 3000,
              "React framework: npm ci, next build, next start."),
    Framework("static", "Static site", "html", 8080,
              "Plain HTML, CSS and JavaScript from public/ (or dist/, build/, site/, the root) served as files."),
)

FRAMEWORKS = {f.key: f for f in _CATALOGUE}


def get_framework(key):
    """The catalogue entry for key, or None."""
    return FRAMEWORKS.get(key)
