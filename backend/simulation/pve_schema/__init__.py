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

The modules: formats.py (the named formats and their checkers), property_strings.py (lists, booleans,
property strings), checks.py (one value and a set of values against their schemas), schema.py (endpoints,
route matching, ApiSchema, the shipped subset).
"""
from backend.simulation.pve_schema.checks import (
    FORMAT_NAME,
    INTEGER,
    NUMBER,
    anchored_regex,
    check_format,
    check_property_string,
    check_type,
    check_value,
    check_values,
)
from backend.simulation.pve_schema.formats import (
    NAMED_FORMATS,
    NAMED_PROPERTY_FORMATS,
    UNCHECKED_FORMATS,
    FormatError,
)
from backend.simulation.pve_schema.property_strings import (
    format_property_string,
    parse_boolean,
    parse_property_string,
    split_list,
)
from backend.simulation.pve_schema.schema import (
    INDEXED_KEY,
    PATH_PARAM,
    SUBSET_PATH,
    ApiSchema,
    CheckResult,
    Endpoint,
    default_schema,
    validate,
)

__all__ = [
    "FORMAT_NAME", "INDEXED_KEY", "INTEGER", "NAMED_FORMATS", "NAMED_PROPERTY_FORMATS", "NUMBER", "PATH_PARAM",
    "SUBSET_PATH", "UNCHECKED_FORMATS", "ApiSchema", "CheckResult", "Endpoint", "FormatError", "anchored_regex",
    "check_format", "check_property_string", "check_type", "check_value", "check_values", "default_schema",
    "format_property_string", "parse_boolean", "parse_property_string", "split_list", "validate",
]
