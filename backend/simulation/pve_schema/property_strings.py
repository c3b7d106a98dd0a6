"""How the server reads the values inside a parameter: -list values, booleans, and property strings
(`net0=name=eth0,bridge=vmbr0,ip=dhcp`: comma-separated key=value lists, a default key's value bare)."""
import re

from backend.simulation.pve_schema.formats import FormatError


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

