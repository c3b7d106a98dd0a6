"""Request validation against the platform's subset of the official Proxmox VE API schema.

The subset (backend/simulation/pve-api-subset.json) is derived from the 9.1 schema dump by
scripts/derive_pve_schema.py. The checks follow pve-common's PVE/JSONSchema.pm, which is what the
real server runs on every request: unknown parameters are rejected (additionalProperties 0), every
non-optional parameter must be present, values are checked for type, named format, pattern (anchored
at both ends), maxLength/minLength, minimum/maximum and enum, in that order, and property strings
(`net0=name=eth0,bridge=vmbr0,ip=dhcp`) are parsed as comma-separated key=value lists that may not
carry unknown keys. As on the real server, a form-encoded boolean is only "0" or "1" at the top level
(a JSON body may also send true/false), while inside a property string 1/on/yes/true and
0/off/no/false are all accepted.

    errors = validate("POST", "/nodes/pve1/lxc", {"vmid": "100", "ostemplate": "...", "net0": "..."})
"""
import ipaddress
import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from urllib.parse import unquote

SUBSET_PATH = Path(__file__).resolve().parent / "pve-api-subset.json"

PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
INDEXED_KEY = re.compile(r"^([a-z]+)\[n\]$")
INTEGER = re.compile(r"^[+-]?\d+$")
NUMBER = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
FORMAT_NAME = re.compile(r"^(.*?)(?:-(list|opt))?$")


class FormatError(ValueError):
    """A value that does not satisfy a named format; the message is the server's wording."""


# --- named formats (pve-common JSONSchema.pm, pve-storage, pve-container, qemu-server) -------------

def _regex_format(pattern, message, flags=0):
    """A named-format checker that full-matches a regular expression."""
    compiled = re.compile(pattern, flags)

    def check(value):
        if not compiled.fullmatch(value):
            raise FormatError(message.format(value=value))
    return check


def _check_ip(value, version):
    """Raise unless value is a plain IPv4 or IPv6 address (no zone index)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or "%" in value or (version and address.version != version):
        kind = {4: "IPv4 address", 6: "IPv6 address", None: "IP address"}[version]
        raise FormatError(f"value does not look like a valid {kind}")


def _check_cidr(value, version):
    """Raise unless value is address/prefix with 8 < prefix <= 32 (v4) or 128 (v6)."""
    address, _, prefix = value.partition("/")
    try:
        _check_ip(address, version)
        ok = prefix.isdigit() and 7 < int(prefix) <= (32 if version == 4 else 128)
    except FormatError:
        ok = False
    if not ok:
        raise FormatError(f"value does not look like a valid IPv{version} CIDR network")


def _check_any_cidr(value):
    """Raise unless value is an IPv4 or IPv6 CIDR network."""
    for version in (4, 6):
        try:
            return _check_cidr(value, version)
        except FormatError:
            pass
    raise FormatError("value does not look like a valid CIDR network")


def _check_ipv4_config(value):
    """Raise unless value is dhcp, manual or an IPv4 CIDR."""
    if value not in ("dhcp", "manual"):
        try:
            _check_cidr(value, 4)
        except FormatError:
            raise FormatError("value does not look like a valid ipv4 network configuration") from None


def _check_ipv6_config(value):
    """Raise unless value is auto, dhcp, manual or an IPv6 CIDR."""
    if value not in ("auto", "dhcp", "manual"):
        try:
            _check_cidr(value, 6)
        except FormatError:
            raise FormatError("value does not look like a valid ipv6 network configuration") from None


_DNS_NAME = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_check_dns_name = _regex_format(rf"({_DNS_NAME}\.)*{_DNS_NAME}", "value does not look like a valid DNS name")
_check_volume_id = _regex_format(r"(?i:([a-z][a-z0-9\-_.]*[a-z0-9]):(.+))",
                                 "unable to parse volume ID '{value}'", re.DOTALL)


def _check_address(value):
    """Raise unless value is an IP address or a DNS name."""
    try:
        _check_ip(value, None)
    except FormatError:
        try:
            _check_dns_name(value)
        except FormatError:
            raise FormatError(f"value does not look like a valid address: {value}") from None


def _check_volume_or_path(value):
    """Raise unless value is an absolute path or a storage:volume id."""
    if not value.startswith("/"):
        _check_volume_id(value)


def _check_volume_or_qm_path(value):
    """Raise unless value is none, cdrom, an absolute path or a volume id."""
    if value not in ("none", "cdrom"):
        _check_volume_or_path(value)


def _check_lxc_mp_string(value):
    """Raise if a mount point path climbs out with /./ or /../ sequences."""
    if re.search(r"/\.\.?/", value) or re.search(r"/\.\.?$", value) or re.match(r"^\.\.?/", value):
        raise FormatError(f"{value} contains illegal character sequences")


def _check_startup_order(value):
    """Raise unless value is [[order=]N][,up=N][,down=N]."""
    parts = [p for p in value.split(",") if p.strip()]
    if not value or not all(re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", p) for p in parts):
        raise FormatError("unable to parse startup options")


NAMED_FORMATS = {
    "pve-vmid": _regex_format(r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID"),
    "pve-node": _regex_format(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?",
                              "value does not look like a valid node name"),
    "urlencoded": _regex_format(r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string: {value}"),
    "pve-configid": _regex_format(r"[a-z][a-z0-9_-]+", "invalid configuration ID '{value}'", re.I),
    "pve-storage-id": _regex_format(r"[a-z][a-z0-9\-_.]*[a-z0-9]",
                                    "storage ID '{value}' contains illegal characters", re.I),
    "pve-bridge-id": _regex_format(r"[-_.\w\d]+", "invalid bridge ID '{value}'"),
    "pve-tag": _regex_format(r"[a-z0-9_][a-z0-9_\-+.]*", "invalid characters in tag", re.I),
    "pve-poolid": _regex_format(r"[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+){0,2}", "invalid pool ID '{value}'"),
    "pve-realm": _regex_format(r"[A-Za-z][A-Za-z0-9.\-_]+", "invalid realm ID '{value}'"),
    "pve-storage-content": _regex_format(r"images|rootdir|vztmpl|iso|backup|snippets|import|none",
                                         "invalid content type '{value}'"),
    "mac-addr": _regex_format(r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}",
                              "value does not look like a valid unicast MAC address", re.I),
    "disk-size": _regex_format(r"\d+(\.\d+)?[KMGT]?", "value does not look like a valid disk size: {value}"),
    "dns-name": _check_dns_name,
    "address": _check_address,
    "ipv4": lambda v: _check_ip(v, 4),
    "ipv6": lambda v: _check_ip(v, 6),
    "ip": lambda v: _check_ip(v, None),
    "CIDRv4": lambda v: _check_cidr(v, 4),
    "CIDRv6": lambda v: _check_cidr(v, 6),
    "CIDR": _check_any_cidr,
    "pve-ipv4-config": _check_ipv4_config,
    "pve-ipv6-config": _check_ipv6_config,
    "pve-volume-id": _check_volume_id,
    "pve-volume-id-or-absolute-path": _check_volume_or_path,
    "pve-volume-id-or-qm-path": _check_volume_or_qm_path,
    "pve-lxc-mp-string": _check_lxc_mp_string,
    "pve-startup-order": _check_startup_order,
}

# Named formats that are property strings themselves; the schema dump names them without their keys.
NAMED_PROPERTY_FORMATS = {
    # qemu-server PVE/QemuServer/Cloudinit.pm ($ipconfig_fmt)
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
        "gw": {"type": "string", "format": "ipv4", "optional": 1},
        "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
        "gw6": {"type": "string", "format": "ipv6", "optional": 1},
    },
}

# Named formats the fake accepts without checking (rarely sent by the platform, complex to mirror).
UNCHECKED_FORMATS = frozenset({
    "pve-cpuset", "pve-ct-timezone", "pve-hotplug-features", "pve-qemu-sev-fmt", "pve-qemu-tdx-fmt",
    "pve-qm-boot", "pve-qm-bootdisk", "pve-qm-cicustom", "pve-qm-hostpci", "pve-qm-ide", "pve-qm-rng",
    "pve-qm-smbios1", "pve-qm-watchdog", "pve-vm-cpu-conf", "pve-priv", "lxc-ip-with-ll-iface",
    "pve-lxc-dev-string", "storage-pair",
})


def split_list(text):
    """Split a -list value the way PVE::Tools::split_list does."""
    if "\0" in text:
        return text.split("\0")
    return text.replace(",", " ").replace(";", " ").split()


def parse_boolean(text):
    """1/0 for the words PVE::JSONSchema::parse_boolean accepts, else None."""
    lowered = str(text).lower()
    if lowered in ("1", "on", "yes", "true"):
        return 1
    if lowered in ("0", "off", "no", "false"):
        return 0
    return None


def parse_property_string(fmt, text):
    """Parse key=value,... into a dict (default_key and alias rules applied); raise FormatError."""
    result = {}
    default_key_used = False
    for part in text.split(","):
        if not part.strip():
            continue
        match = re.fullmatch(r"([^=]+)=(.+)", part, re.DOTALL)
        if match:
            key, value = match.groups()
            if key in result:
                raise FormatError(f"duplicate key in comma-separated list property: {key}")
            schema = fmt.get(key)
            if schema and schema.get("alias"):
                if schema.get("keyAlias"):
                    if schema["keyAlias"] in result:
                        raise FormatError(f"key alias '{schema['keyAlias']}' is already defined")
                    result[schema["keyAlias"]] = key
                key = schema["alias"]
                schema = fmt.get(key)
            if not schema:
                raise FormatError(f"invalid key in comma-separated list property: {key}")
            if schema.get("type") == "boolean":
                parsed = parse_boolean(value)
                value = value if parsed is None else str(parsed)
            result[key] = value
        elif "=" not in part:
            default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
            if default_key is None:
                raise FormatError("value without key, but schema does not define a default key")
            if default_key_used or result.get(default_key):
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            default_key_used = True
            result[default_key] = part
        else:
            raise FormatError("missing key in comma-separated list property")
    return result


def format_property_string(values, fmt=None):
    """Render a dict as a property string, the default key's value first and bare."""
    default_key = next((k for k, s in (fmt or {}).items() if s.get("default_key")), None)
    parts = [str(values[default_key])] if default_key in values else []
    parts += [f"{k}={v}" for k, v in values.items() if k != default_key]
    return ",".join(parts)


# --- the checker ---------------------------------------------------------------------------------

def _is_scalar(value):
    """True for a str/int/float (a JSON bool is handled by the caller)."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _number(value):
    """The float value of a scalar, or None when it is not a number."""
    text = str(value)
    return float(text) if NUMBER.match(text) else None


def check_type(prop_type, value):
    """An error message when value does not have the schema type, else None."""
    if isinstance(value, bool):
        return None if prop_type == "boolean" else f"type check ('{prop_type}') failed - got JSON::PP::Boolean"
    if not _is_scalar(value):
        return f"type check ('{prop_type}') failed - got {type(value).__name__.upper()}"
    text = str(value)
    if prop_type == "boolean" and text not in ("0", "1"):
        return f"type check ('boolean') failed - got '{text}'"
    if prop_type == "integer" and not INTEGER.match(text):
        return f"type check ('integer') failed - got '{text}'"
    if prop_type == "number" and not NUMBER.match(text):
        return f"type check ('number') failed - got '{text}'"
    return None


def check_format(fmt, value, path):
    """Raise FormatError when value does not satisfy a named or property-string format."""
    if isinstance(fmt, dict):
        return check_property_string(fmt, value, path)
    if fmt in NAMED_PROPERTY_FORMATS:
        return check_property_string(NAMED_PROPERTY_FORMATS[fmt], value, path)
    name, kind = FORMAT_NAME.match(fmt).groups()
    checker = NAMED_FORMATS.get(name)
    if checker is None:
        return None  # UNCHECKED_FORMATS and formats the subset does not use
    if kind == "list":
        for item in split_list(value):
            checker(item)
    elif kind == "opt":
        if value:
            checker(value)
    else:
        checker(value)
    return None


def check_property_string(fmt, value, path):
    """Parse and check a property string against its key schema; raise FormatError."""
    parsed = parse_property_string(fmt, value)
    required = [k for k, p in fmt.items() if not p.get("optional") and not p.get("alias")]
    errors = {}
    check_values(parsed, fmt.get, required, errors, prefix=f"{path}.")
    if errors:
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        raise FormatError(f"format error - {detail}")


def check_value(prop, value, path):
    """The error message for one present value against its property schema, or None."""
    problem = check_type(prop.get("type"), value)
    if problem:
        return problem
    if isinstance(value, bool):
        return None
    text = str(value)
    if prop.get("format"):
        try:
            check_format(prop["format"], text, path)
        except FormatError as exc:
            return f"invalid format - {exc}"
    pattern = prop.get("pattern")
    if pattern and not anchored_regex(pattern).match(text):
        return "value does not match the regex pattern"
    if prop.get("maxLength") is not None and len(text) > int(prop["maxLength"]):
        return f"value may only be {prop['maxLength']} characters long"
    if prop.get("minLength") is not None and len(text) < int(prop["minLength"]):
        return f"value must be at least {prop['minLength']} characters long"
    number = _number(text)
    if number is not None:
        if prop.get("maximum") is not None and number > float(prop["maximum"]):
            return f"value must have a maximum value of {prop['maximum']}"
        if prop.get("minimum") is not None and number < float(prop["minimum"]):
            return f"value must have a minimum value of {prop['minimum']}"
    if prop.get("enum") and text not in [str(e) for e in prop["enum"]]:
        return f"value '{text}' does not have a value in the enumeration '{', '.join(map(str, prop['enum']))}'"
    return None


def check_values(values, lookup, required, errors, prefix=""):
    """Check present values (lookup: name -> property or None) and required names; fill errors."""
    for name in required:
        if name not in values:
            errors[f"{prefix}{name}"] = "property is missing and it is not optional"
    for name, value in values.items():
        prop = lookup(name)
        if prop is None:
            errors[f"{prefix}{name}"] = ("property is not defined in schema and the schema does not allow "
                                         "additional properties")
            continue
        problem = check_value(prop, value, f"{prefix}{name}")
        if problem:
            errors[f"{prefix}{name}"] = problem
            continue
        requires = prop.get("requires")
        if isinstance(requires, str) and requires not in values:
            errors[f"{prefix}{requires}"] = f"missing property - '{prefix}{name}' requires this property"


@cache
def anchored_regex(pattern):
    """Compile a schema pattern as the server applies it (m/^$pattern$/), Perl idioms translated."""
    python = re.sub(r"\(\?\^([a-z]*):", lambda m: f"(?{m.group(1)}:" if m.group(1) else "(?:", pattern)
    return re.compile(f"^{python}$")


# --- endpoints -----------------------------------------------------------------------------------

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
