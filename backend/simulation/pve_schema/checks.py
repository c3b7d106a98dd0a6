"""Checking one value against its property schema, in the order PVE::JSONSchema does: type, named format,
pattern (anchored at both ends), maxLength/minLength, minimum/maximum, enum; and a set of values against
their schemas and the required names."""
import re
from functools import cache

from backend.simulation.pve_schema.formats import NAMED_FORMATS, NAMED_PROPERTY_FORMATS, FormatError
from backend.simulation.pve_schema.property_strings import parse_property_string, split_list

INTEGER = re.compile(r"^[+-]?\d+$")
NUMBER = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
FORMAT_NAME = re.compile(r"^(.*?)(?:-(list|opt))?$")


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

