"""The framework catalogue: what the platform knows how to build and run."""
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Framework:
    key: str
    display_name: str
    language: str
    default_port: int
    build_command: str | None
    start_command: str
    description: str

    def to_dict(self):
        return asdict(self)


_CATALOGUE = (
    Framework(
        "django", "Django", "python", 8000,
        "pip install -r requirements.txt && python manage.py collectstatic --noinput && python manage.py migrate --noinput",
        "gunicorn --bind 0.0.0.0:$PORT --workers 2 $WSGI_MODULE",
        "Python web framework; served by gunicorn after migrate and collectstatic.",
    ),
    Framework(
        "flask", "Flask", "python", 8000,
        "pip install -r requirements.txt",
        "gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app",
        "Python micro-framework; served by gunicorn.",
    ),
    Framework(
        "fastapi", "FastAPI", "python", 8000,
        "pip install -r requirements.txt",
        "gunicorn --bind 0.0.0.0:$PORT --workers 2 -k uvicorn.workers.UvicornWorker main:app",
        "Async Python API framework; served by gunicorn with uvicorn workers.",
    ),
    Framework(
        "express", "Express", "javascript", 3000,
        "npm ci --omit=dev",
        "node server.js",
        "Node.js web framework; started with node.",
    ),
    Framework(
        "nextjs", "Next.js", "javascript", 3000,
        "npm ci && npm run build",
        "npx next start --port $PORT",
        "React framework; built with next build, served by next start.",
    ),
    Framework(
        "static", "Static site", "html", 8080,
        None,
        "python3 -m http.server $PORT --directory public",
        "Plain HTML, CSS and JavaScript served as files.",
    ),
)

FRAMEWORKS = {f.key: f for f in _CATALOGUE}


def get_framework(key):
    """The catalogue entry for key, or None."""
    return FRAMEWORKS.get(key)
