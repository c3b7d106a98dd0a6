"""Rate limits (Flask-Limiter): per user for authenticated calls, per address otherwise.

Counts live in memory by default (one API process); RATELIMIT_STORAGE_URI=redis://... shares them
between processes. Limits come from configuration, so operators tune them without code.
"""
from flask import current_app, request
from flask_limiter import Limiter

from backend.api.auth import identify


def rate_key():
    user = identify()
    return f"user:{user.id}" if user is not None else f"addr:{request.remote_addr}"


def limit_from(setting):
    """A limit read from configuration at request time."""
    return lambda: current_app.config[setting]


limiter = Limiter(key_func=rate_key)
