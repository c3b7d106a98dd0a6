"""Adapter: the edge router (Caddy, driven through its admin API) that puts each app's hosts in front of its guest.

Knows nothing of Flask or of the models; the caller hands it RouterSettings and the Routes to serve.
"""
from backend.router.caddy import CaddyRouter, Route, RouterError, RouterSettings, RouterUnavailable

__all__ = ["CaddyRouter", "Route", "RouterError", "RouterSettings", "RouterUnavailable"]
