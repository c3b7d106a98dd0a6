"""The derived subset of the API as endpoints: matching a concrete path to its endpoint, and checking a
request's parameters the way the real server verifies them."""
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from backend.simulation.pve_schema.checks import check_values

SUBSET_PATH = Path(__file__).resolve().parent.parent / "pve-api-subset.json"

PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
INDEXED_KEY = re.compile(r"^([a-z]+)\[n\]$")


class Endpoint:
    """One method entry of the subset: a templated path, its method and its parameters."""

    def __init__(self, method, path, properties):
        """Keep the entry and compile its path: a {placeholder} matches one path segment."""
        self.method = method
        self.path = path
        self.properties = properties
        segments = [f"(?P<{m.group(1)}>[^/]+)" if (m := PATH_PARAM.fullmatch(s)) else re.escape(s)
                    for s in path.split("/")]
        self.regex = re.compile("^" + "/".join(segments) + "$")
        self.literal_segments = sum(1 for s in path.split("/") if s and not s.startswith("{"))

    def __repr__(self):
        """Method and templated path."""
        return f"<Endpoint {self.method} {self.path}>"

    @property
    def path_params(self):
        """Names of the parameters carried in the path."""
        return PATH_PARAM.findall(self.path)

    def property_for(self, name):
        """The schema of a parameter name, resolving indexed keys such as net0 -> net[n]."""
        if name in self.properties:
            return self.properties[name]
        match = re.fullmatch(r"([a-z]+)(0|[1-9]\d*)", name)
        if match:
            prop = self.properties.get(f"{match.group(1)}[n]")
            if prop is not None and int(match.group(2)) <= prop.get("max_index", -1):
                return prop
        return None


@dataclass
class CheckResult:
    """The outcome of checking one request: the matched endpoint, path values and errors."""

    endpoint: Endpoint | None
    path_values: dict
    errors: dict

    @property
    def ok(self):
        """True when the request would pass the real server's parameter verification."""
        return self.endpoint is not None and not self.errors


class ApiSchema:
    """The derived subset of the PVE API: route matching and parameter verification."""

    def __init__(self, endpoints):
        """Keep the endpoints, most literal templates first so they win over placeholders."""
        self.endpoints = sorted(endpoints, key=lambda e: -e.literal_segments)
        self.source = ""

    @classmethod
    def load(cls, path=SUBSET_PATH):
        """Load the subset written by scripts/derive_pve_schema.py."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        schema = cls([Endpoint(e["method"], e["path"], e["parameters"].get("properties", {}))
                      for e in document["endpoints"]])
        schema.source = document.get("source", "")
        return schema

    def match(self, method, path):
        """(endpoint, path values) for a concrete path such as /nodes/pve1/lxc/100, or (None, {})."""
        for endpoint in self.endpoints:
            if endpoint.method != method.upper():
                continue
            found = endpoint.regex.match(path.rstrip("/") or "/")
            if found:
                return endpoint, {name: unquote(value) for name, value in found.groupdict().items()}
        return None, {}

    def check(self, method, path, params):
        """Check a request; errors map parameter names to the server's messages."""
        endpoint, path_values = self.match(method, path)
        if endpoint is None:
            return CheckResult(None, {}, {"_path": f"no {method.upper()} {path} in the API (subset)"})
        values = dict(params)
        values.update(path_values)
        required = [name for name, prop in endpoint.properties.items()
                    if not prop.get("optional") and not INDEXED_KEY.match(name)]
        errors = {}
        check_values(values, endpoint.property_for, required, errors)
        return CheckResult(endpoint, path_values, errors)

    def validate(self, method, path, params):
        """Human-readable error strings for a request; empty when the real server would accept it."""
        result = self.check(method, path, params)
        return [f"{name}: {message}" for name, message in sorted(result.errors.items())]


@lru_cache(maxsize=1)
def default_schema():
    """The subset shipped beside this module, loaded once."""
    return ApiSchema.load()


def validate(method, path, params):
    """Error strings for a request against the shipped subset; [] when it is valid."""
    return default_schema().validate(method, path, params)
