"""Who a request acts as: an API token (Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET) or a ticket
(the PVEAuthCookie cookie, and the CSRFPreventionToken header on anything but GET), and POST /access/ticket,
which hands out tickets."""
import re
import secrets
import time

from backend.simulation.fake_proxmox.protocol import ApiError


def authenticate(cluster, method, path, headers):
    """The user (or user!token) a request acts as; raise 401 when it has no valid credentials."""
    if method == "POST" and path == "/access/ticket":
        return None
    authorization = headers.get("Authorization") or ""
    if authorization.startswith("PVEAPIToken="):
        match = re.fullmatch(r"PVEAPIToken=([^!=\s]+![^=\s]+)[=:](.+)", authorization.strip())
        if not match or cluster.tokens.get(match.group(1)) != match.group(2):
            raise ApiError(401, "invalid token value!")
        return match.group(1)
    ticket = cookie(headers, "PVEAuthCookie")
    if not ticket:
        raise ApiError(401, "No ticket")
    session = cluster.tickets.get(ticket)
    if session is None:
        raise ApiError(401, "permission denied - invalid PVE ticket")
    if method != "GET" and headers.get("CSRFPreventionToken") != session["csrf"]:
        raise ApiError(401, "Permission denied - invalid csrf token")
    return session["user"]


def cookie(headers, name):
    """The value of one cookie from the Cookie header, or None."""
    for part in (headers.get("Cookie") or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def create_ticket(cluster, request):
    """POST /access/ticket: a ticket and CSRF token for a valid user and password (or ticket)."""
    username, params = request.params["username"], request.params
    if "@" not in username and params.get("realm"):
        username = f"{username}@{params['realm']}"
    password = params["password"]
    renewing = cluster.tickets.get(password, {}).get("user") == username
    if not renewing and cluster.users.get(username) != password:
        raise ApiError(401, "authentication failure")
    stamp = f"{int(time.time()):08X}"
    ticket = f"PVE:{username}:{stamp}::{secrets.token_hex(32)}"
    csrf = f"{stamp}:{secrets.token_hex(16)}"
    cluster.tickets[ticket] = {"user": username, "csrf": csrf}
    return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf,
            "clustername": cluster.clustername, "cap": {}}
