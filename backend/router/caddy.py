"""The edge router: Caddy, driven only through its admin API.

The whole configuration is built here as data (desired_config) and loaded at once (POST /load) when Caddy's
running configuration differs from it, so a restarted, empty Caddy is brought back by the same call that
changes a route. Checked against Caddy 2.6.2 (Debian's):

- its automatic HTTP->HTTPS redirect binds the HTTPS listener's host, but points at port 443 whatever
  apps.http.https_port says (it takes https_port for an internal port behind a forward), so the redirect
  server is built here with the real port and the automatic one is disabled. Every Caddy HTTP server answers
  ACME HTTP-01 challenges before its routes, so ours does too;
- access logs name their logger by the exact Host header: "app.example:8443" does not find "app.example",
  so each host is mapped with and without the HTTPS port;
- Authorization, Cookie and Set-Cookie reach the access log as empty lists (should_log_credentials off);
- the admin API accepts only the Host it listens on; over a unix socket that is an empty Host header.

A request for a host no route names gets a 404 over plain HTTP and over HTTPS when Caddy holds a certificate
for its name (a route removed a moment ago); otherwise the TLS handshake fails (an "internal error" alert),
since Caddy has no certificate to show. On-demand TLS would answer it, but would also let anyone make Caddy
issue (internal) or request (ACME) a certificate for any name they point at it, so it stays off.
"""
import http.client
import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

KEY_RE = re.compile(r"[a-z0-9-]{1,64}")
HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_RE = re.compile(rf"{HOST_LABEL}(\.{HOST_LABEL})*")
HOST_MAX = 253
TLS_MODES = ("acme", "internal")
EDGE_SERVER = "edge"
REDIRECT_SERVER = "edge_redirect"
ACCESS_LOGGER = "http.log.access"
LOG_ROLL_SIZE_MB = 10
LOG_ROLL_KEEP = 3
ERROR_TEXT_LIMIT = 500
# Reading an access log from its end, this much at a time: ~100 entries of a usual size.
TAIL_BLOCK = 64 * 1024


@dataclass(frozen=True)
class RouterSettings:
    admin_url: str
    http_port: int = 80
    https_port: int = 443
    bind: str | None = None
    tls: str = "acme"
    acme_email: str | None = None
    access_log_dir: str | None = None
    timeout: float = 5.0


# How long a request waits for an upstream that accepts before it gets a 502, how often it tries, and how long
# a refused upstream is passed over (the platform waits longer than that before it stops the other one).
TRY_DURATION, TRY_INTERVAL, FAIL_DURATION = "5s", "100ms", "1s"


@dataclass(frozen=True)
class Route:
    key: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...]  # "IPv4:port", preferred first: each request goes to the first that accepts

    def __post_init__(self):
        # The key names a file Caddy writes and a logger; the hosts go into matchers Caddy expands
        # placeholders in: both are checked here, once, rather than trusted to every caller.
        if not isinstance(self.key, str) or not KEY_RE.fullmatch(self.key):
            raise ValueError(f"not a route key: {self.key!r}")
        if isinstance(self.hosts, str):
            raise ValueError(f"route {self.key}: hosts is a string, not a sequence of host names")
        object.__setattr__(self, "hosts", tuple(self.hosts))
        if not self.hosts:
            raise ValueError(f"route {self.key} has no host")
        for host in self.hosts:
            if not isinstance(host, str) or len(host) > HOST_MAX or not HOST_RE.fullmatch(host):
                raise ValueError(f"not a lowercase host name: {host!r}")
        if isinstance(self.upstreams, str):
            raise ValueError(f"route {self.key}: upstreams is a string, not a sequence of addresses")
        object.__setattr__(self, "upstreams", tuple(self.upstreams))
        if not self.upstreams:
            raise ValueError(f"route {self.key} has no upstream")
        for upstream in self.upstreams:
            checked_upstream(upstream)


class RouterError(Exception):
    """Caddy refused a request; str(exc) is its own message, trimmed."""


class RouterUnavailable(RouterError):
    """Caddy's admin API could not be reached."""


def checked_upstream(upstream):
    """upstream, when it is "IPv4:port"."""
    address, _, port = str(upstream).rpartition(":")
    try:
        ipaddress.IPv4Address(address)
        valid = port.isdigit() and 0 < int(port) < 65536
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"not an IPv4 address and port: {upstream!r}")
    return upstream


@dataclass(frozen=True)
class AdminEndpoint:
    """Where Caddy's admin API is: a TCP host and port, or a unix socket's path."""

    host: str | None = None
    port: int | None = None
    socket_path: str | None = None

    @classmethod
    def parse(cls, admin_url):
        """The endpoint of "http://host:port", "host:port", "unix//path" (Caddy's notation) or "unix:///path"."""
        if admin_url.startswith("unix:///"):
            return cls(socket_path=admin_url[len("unix://"):])
        if admin_url.startswith("unix//"):
            return cls(socket_path=admin_url[len("unix/"):])
        parts = urlsplit(admin_url if "://" in admin_url else f"http://{admin_url}")
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"not an admin URL (http://host:port or unix//path): {admin_url!r}")
        return cls(host=parts.hostname, port=parts.port or 2019)

    @property
    def listen(self):
        """The address as Caddy's admin.listen spells it."""
        if self.socket_path:
            return f"unix/{self.socket_path}"
        return f"{bracketed(self.host)}:{self.port}"

    @property
    def host_header(self):
        """The Host Caddy's admin API accepts from us (it refuses any other)."""
        return "" if self.socket_path else self.listen

    def connection(self, timeout):
        """A fresh HTTP connection to the endpoint."""
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (http.client speaks only TCP)."""

    def __init__(self, socket_path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        """Connect to the socket instead of a TCP address."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def bracketed(host):
    """host as it stands before ":port" (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


class CaddyRouter:
    """The edge's routes, held in one Caddy through its admin API."""

    def __init__(self, settings: RouterSettings):
        if settings.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}, not {settings.tls!r}")
        self.settings = settings
        self.admin = AdminEndpoint.parse(settings.admin_url)

    # The configuration

    def desired_config(self, routes) -> dict:
        """The whole Caddy configuration serving routes, the same for the same routes in any order."""
        routes = sorted(routes, key=lambda route: route.key)
        hosts = self._all_hosts(routes)
        config = {
            "admin": {"listen": self.admin.listen},
            "apps": {
                "http": {
                    "http_port": self.settings.http_port,
                    "https_port": self.settings.https_port,
                    "servers": {EDGE_SERVER: self._edge_server(routes), REDIRECT_SERVER: self._redirect_server(hosts)},
                },
                # Caddy's internal CA would otherwise try to add its root to the system's trust store.
                "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
            },
        }
        if hosts:
            config["apps"]["tls"] = {"automation": {"policies": [{"subjects": hosts, "issuers": [self._issuer()]}]}}
        if self.settings.access_log_dir and routes:
            config["logging"] = {"logs": self._logs(routes)}
        return config

    def _all_hosts(self, routes):
        keys, owners = set(), {}
        for route in routes:
            if route.key in keys:
                raise ValueError(f"two routes have the key {route.key}")
            keys.add(route.key)
            for host in route.hosts:
                if owners.setdefault(host, route.key) != route.key:
                    raise ValueError(f"{host} is in two routes: {owners[host]} and {route.key}")
        return sorted(owners)

    def _address(self, port):
        return f"{bracketed(self.settings.bind)}:{port}" if self.settings.bind else f":{port}"

    def _edge_server(self, routes):
        server = {
            "listen": [self._address(self.settings.https_port)],
            "routes": [self._proxy_route(route) for route in routes] + [NOT_FOUND_ROUTE],
            # The redirect server below says where HTTPS really is; Caddy's own would always say port 443.
            "automatic_https": {"disable_redirects": True},
        }
        if self.settings.access_log_dir and routes:
            names = {}
            for route in routes:
                for host in sorted(route.hosts):
                    names[host] = route.key
                    names[f"{host}:{self.settings.https_port}"] = route.key
            server["logs"] = {"logger_names": names, "skip_unmapped_hosts": True}
        return server

    def _proxy_route(self, route):
        return {
            "match": [{"host": sorted(route.hosts)}],
            "handle": [{
                "handler": "reverse_proxy",
                "upstreams": [{"dial": upstream} for upstream in route.upstreams],
                # The first upstream that accepts: a release starting beside the live one (the second) gets
                # requests only once the first refuses them, so a switch needs no reload (which would cut every
                # app's open websockets and streams). A refused dial marks an upstream down for FAIL_DURATION
                # and the request is tried on the next at once; a request already sent is never retried.
                "load_balancing": {"selection_policy": {"policy": "first"}, "try_duration": TRY_DURATION,
                                   "try_interval": TRY_INTERVAL},
                "health_checks": {"passive": {"fail_duration": FAIL_DURATION, "max_fails": 1}},
                # Negative: flush every write at once, so a Server-Sent Event is not held in a buffer.
                "flush_interval": -1,
            }],
            "terminal": True,
        }

    def _redirect_server(self, hosts):
        port = self.settings.https_port
        target = "https://{http.request.host}" + ("" if port == 443 else f":{port}") + "{http.request.uri}"
        routes = []
        if hosts:
            routes.append({
                "match": [{"host": hosts}],
                "handle": [{"handler": "static_response", "status_code": 308, "headers": {"Location": [target]}}],
                "terminal": True,
            })
        return {"listen": [self._address(self.settings.http_port)], "routes": routes + [NOT_FOUND_ROUTE]}

    def _issuer(self):
        if self.settings.tls == "internal":
            return {"module": "internal"}
        issuer = {"module": "acme"}
        if self.settings.acme_email:
            issuer["email"] = self.settings.acme_email
        return issuer

    def _logs(self, routes):
        logs = {"default": {"exclude": [f"{ACCESS_LOGGER}.{route.key}" for route in routes]}}
        for route in routes:
            logs[f"access_{route.key}"] = {
                "writer": {
                    "output": "file",
                    "filename": self._log_path(route.key),
                    "roll_size_mb": LOG_ROLL_SIZE_MB,
                    "roll_keep": LOG_ROLL_KEEP,
                },
                "encoder": {"format": "json"},
                "include": [f"{ACCESS_LOGGER}.{route.key}"],
            }
        return logs

    def _log_path(self, key):
        return os.path.join(self.settings.access_log_dir, f"{key}.log")

    # Talking to Caddy

    def apply(self, routes) -> bool:
        """Make Caddy serve routes; True when it had to load a new configuration, False when it already did."""
        desired = self.desired_config(routes)
        if self._running_config() == desired:
            return False
        status, body = self._request("POST", "/load", desired)
        if status != 200:
            raise RouterError(error_text(body, status))
        return True

    def in_sync(self, routes) -> bool:
        """Whether Caddy runs exactly the configuration that serves routes."""
        return self._running_config() == self.desired_config(routes)

    def ping(self) -> bool:
        """Whether the admin API answers us."""
        try:
            status, _ = self._request("GET", "/config/")
        except RouterUnavailable:
            return False
        return status == 200

    def _running_config(self):
        status, body = self._request("GET", "/config/")
        if status != 200:
            raise RouterError(error_text(body, status))
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise RouterError(f"Caddy's configuration is not JSON: {exc}") from exc

    def _request(self, method, path, payload=None):
        connection = self.admin.connection(self.settings.timeout)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.admin.host_header)
            body = None
            if payload is not None:
                body = json.dumps(payload).encode()
                connection.putheader("Content-Type", "application/json")
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RouterUnavailable(f"Caddy's admin API at {self.settings.admin_url} did not answer: {exc}") from exc
        finally:
            connection.close()

    # Access logs

    def access_log(self, key, lines=200) -> list[dict]:
        """The last `lines` requests to the route `key`, oldest first; [] when it has no access log."""
        if not KEY_RE.fullmatch(str(key)):
            raise ValueError(f"not a route key: {key!r}")
        if not self.settings.access_log_dir or lines <= 0:
            return []
        try:
            raw_lines = tail_lines(self._log_path(key), lines)
        except FileNotFoundError:
            return []
        entries = []
        for raw in raw_lines:
            try:
                entry = access_entry(json.loads(raw))
            except (ValueError, TypeError, AttributeError):
                continue  # a line cut by a roll or a crash: the others still read
            entries.append(entry)
        return entries


NOT_FOUND_ROUTE = {"handle": [{"handler": "static_response", "status_code": 404}]}


def error_text(body, status):
    """Caddy's own words from an error answer ({"error": ...} or text), trimmed."""
    text = body.decode("utf-8", "replace").strip()
    try:
        text = str(json.loads(text)["error"]).strip()
    except (ValueError, KeyError, TypeError):
        pass
    if len(text) > ERROR_TEXT_LIMIT:
        text = text[:ERROR_TEXT_LIMIT] + "..."
    return text or f"Caddy answered {status}"


def tail_lines(path, count):
    """The last `count` complete lines of a file, read from its end."""
    with open(path, "rb") as log_file:
        end = log_file.seek(0, os.SEEK_END)
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= count:
            step = min(TAIL_BLOCK, position)
            position -= step
            log_file.seek(position)
            data = log_file.read(step) + data
    lines = data.split(b"\n")
    if position > 0:
        lines = lines[1:]  # begins mid-line
    return [line for line in lines if line.strip()][-count:]


def access_entry(record):
    """One access log record of Caddy's, as the platform shows it: no request headers but the User-Agent."""
    request = record.get("request") or {}
    user_agents = (request.get("headers") or {}).get("User-Agent") or [None]
    duration = record.get("duration") or 0
    return {
        "ts": timestamp(record.get("ts")),
        "remote_ip": request.get("remote_ip"),
        "method": request.get("method"),
        "host": request.get("host"),
        "uri": request.get("uri"),
        "proto": request.get("proto"),
        "status": int(record.get("status") or 0),
        "duration_ms": round(float(duration) * 1000, 3),  # Caddy 2.6 logs seconds
        "size": int(record.get("size") or 0),
        "user_agent": user_agents[0],
    }


def timestamp(value):
    """An ISO-8601 time of Caddy's "ts" (Unix seconds, unless a time_format made it text already)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return str(value) if value is not None else None
