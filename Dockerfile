FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

# Requirements first, so code changes do not reinstall every package.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root (read-only to the app); only instance/ is writable, since create_app makes it.
COPY . .
RUN mkdir -p /app/instance && chown app:app /app/instance

USER app

EXPOSE 5000

# slim has no curl; urlopen raises on a refused connection and on the 503 /health gives when the database is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]

# gunicorn.conf.py reads HOST, PORT and WEB_CONCURRENCY; inside the container it listens on every interface.
ENV HOST=0.0.0.0 PORT=5000
VOLUME ["/app/instance"]
CMD ["sh", "-c", "flask db upgrade && exec gunicorn wsgi:app"]
