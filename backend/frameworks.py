"""The framework catalogue: what the platform knows how to build and run.

How each one is built and started lives in backend/deploy/recipes.py; services/catalogue.py shows each
entry with that recipe applied to a typical repository, so GET /api/frameworks always shows what a deploy runs.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    key: str
    display_name: str
    language: str
    default_port: int
    description: str


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
