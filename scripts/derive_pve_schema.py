#!/usr/bin/env python3
"""Derive the platform's subset of the official Proxmox VE API schema into backend/simulation.

Reads the API viewer dump of Proxmox VE 9.1 (a tree of path nodes, each with an `info` of
method entries), keeps the method entries the platform calls, strips them to what a request
validator needs, and writes backend/simulation/pve-api-subset.json. It then checks every kept entry
against the 8.4 dump and prints each difference, so a change between releases is seen before
the platform trips on it.

    python scripts/derive_pve_schema.py [--schema-dir ../shared/pve-api] [--output PATH]
    python scripts/derive_pve_schema.py --check-only     # compare, write nothing

Exit status: 0 when written (differences are printed, not fatal), 1 when an endpoint is
missing from either release or an indexed key has no known upper bound.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA_DIR = Path(os.environ.get("PVE_API_SCHEMA_DIR", REPO_ROOT.parent / "shared" / "pve-api"))
DEFAULT_OUTPUT = REPO_ROOT / "backend" / "simulation" / "pve-api-subset.json"
BASE_RELEASE = ("9.1", "9.1.3")
COMPARE_RELEASE = ("8.4", "8.4.2")

GUEST_ACTIONS = ("start", "stop", "shutdown", "reboot")

# (method, templated path) for every call the platform makes.
ENDPOINTS = [
    ("GET", "/version"),
    ("POST", "/access/ticket"),
    ("GET", "/cluster/nextid"),
    ("GET", "/cluster/resources"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/lxc"),
    ("POST", "/nodes/{node}/lxc"),
    ("GET", "/nodes/{node}/lxc/{vmid}"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("GET", "/nodes/{node}/lxc/{vmid}/rrddata"),
    *[("POST", f"/nodes/{{node}}/lxc/{{vmid}}/status/{action}") for action in GUEST_ACTIONS],
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"),
    ("GET", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("GET", "/nodes/{node}/qemu/{vmid}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("GET", "/nodes/{node}/qemu/{vmid}/rrddata"),
    *[("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{action}") for action in GUEST_ACTIONS],
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"),
    ("POST", "/nodes/{node}/qemu"),
    *[entry for kind in ("lxc", "qemu") for entry in (
        ("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"),
        ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"),
        ("DELETE", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot/{{snapname}}"),
        ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot/{{snapname}}/rollback"),
    )],
    ("POST", "/nodes/{node}/vzdump"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("GET", "/nodes/{node}/storage/{storage}/prunebackups"),
    ("DELETE", "/nodes/{node}/storage/{storage}/prunebackups"),
]

PROPERTY_KEYS = ("type", "optional", "enum", "pattern", "minimum", "maximum", "maxLength", "minLength",
                 "format", "typetext", "default", "requires")
FORMAT_KEYS = ("type", "optional", "enum", "pattern", "minimum", "maximum", "maxLength", "minLength",
               "format", "default", "default_key", "alias", "keyAlias")
COMPARED_KEYS = ("type", "optional", "enum", "pattern", "minimum", "maximum", "maxLength", "minLength",
                 "format", "requires", "default_key", "alias", "keyAlias")

# The dump collapses net0..net31 into `net[n]`. Where the description does not say "(n is 0 to N)",
# the bound comes from the Proxmox sources: pve-container ($MAX_LXC_NETWORKS 32, $MAX_MOUNT_POINTS 256,
# $MAX_DEVICES 256, unused = mount points) and qemu-server ($MAX_NETS 32, $MAX_HOSTPCI_DEVICES 16,
# $MAX_NUMA 8, $MAX_UNUSED_DISKS 256, $MAX_VIRTIOFS 10, $MAX_USB_DEVICES 14).
KNOWN_MAX_INDEX = {
    ("lxc", "net"): 31, ("lxc", "mp"): 255, ("lxc", "unused"): 255, ("lxc", "dev"): 255,
    ("qemu", "net"): 31, ("qemu", "ipconfig"): 31, ("qemu", "hostpci"): 15, ("qemu", "numa"): 7,
    ("qemu", "unused"): 255, ("qemu", "virtiofs"): 9, ("qemu", "usb"): 13,
}
INDEXED_KEY = re.compile(r"^([a-z]+)\[n\]$")
DESCRIBED_RANGE = re.compile(r"\(n is 0 to (\d+)")


def load_tree(path):
    """Index a schema dump by (method, path) -> method entry."""
    with open(path, encoding="utf-8") as handle:
        roots = json.load(handle)
    entries = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        for method, entry in (node.get("info") or {}).items():
            entries[(method, node["path"])] = entry
        stack.extend(node.get("children") or [])
    return entries


def guest_kind(path):
    """'lxc' or 'qemu' for a guest path, else None."""
    match = re.match(r"^/nodes/\{node\}/(lxc|qemu)\b", path)
    return match.group(1) if match else None


def max_index_for(name, prop, path):
    """The highest n allowed for an indexed key such as net[n], or None when unknown."""
    found = [int(n) for n in DESCRIBED_RANGE.findall(prop.get("description", ""))]
    if found:
        return max(found)
    return KNOWN_MAX_INDEX.get((guest_kind(path), INDEXED_KEY.match(name).group(1)))


def strip_format(fmt):
    """Keep a property-string format's keys with only their validation attributes."""
    return {key: {k: sub[k] for k in FORMAT_KEYS if k in sub} for key, sub in sorted(fmt.items())}


def strip_property(name, prop, path, problems):
    """Keep a parameter's validation attributes (and the bound of an indexed key)."""
    kept = {k: prop[k] for k in PROPERTY_KEYS if k in prop}
    if isinstance(kept.get("format"), dict):
        kept["format"] = strip_format(kept["format"])
    if INDEXED_KEY.match(name):
        bound = max_index_for(name, prop, path)
        if bound is None:
            problems.append(f"{path}: no known upper bound for indexed key {name}")
        kept["max_index"] = bound
    return kept


def derive(entries, problems):
    """The stripped method entries for ENDPOINTS, in ENDPOINTS order."""
    subset = []
    for method, path in ENDPOINTS:
        entry = entries.get((method, path))
        if entry is None:
            problems.append(f"{method} {path}: not in the {BASE_RELEASE[0]} schema")
            continue
        params = entry.get("parameters") or {}
        properties = params.get("properties") or {}
        subset.append({
            "method": method,
            "path": path,
            "parameters": {
                "additionalProperties": params.get("additionalProperties", 0),
                "properties": {name: strip_property(name, prop, path, problems)
                               for name, prop in sorted(properties.items())},
            },
        })
    return subset


def describe(prop):
    """A short text of a property's compared attributes, for difference lines."""
    shown = {k: prop[k] for k in COMPARED_KEYS if k in prop}
    if isinstance(shown.get("format"), dict):
        shown["format"] = "<property string>"
    if "enum" in shown and len(shown["enum"]) > 6:
        shown["enum"] = f"<{len(shown['enum'])} values>"
    return json.dumps(shown, sort_keys=True)


def presence(prop):
    """'optional', 'REQUIRED' or 'alias of X', for a property only one release has."""
    if prop.get("alias"):
        return f"alias of {prop['alias']}"
    return "optional" if prop.get("optional") else "REQUIRED"


def compare_props(where, new, old, lines, noun="parameter"):
    """Append a line per difference between two property maps (new = base release)."""
    for name in sorted(set(new) - set(old)):
        lines.append(f"{where}: {noun} '{name}' only in {BASE_RELEASE[0]} ({presence(new[name])})")
    for name in sorted(set(old) - set(new)):
        lines.append(f"{where}: {noun} '{name}' only in {COMPARE_RELEASE[0]} ({presence(old[name])})")
    for name in sorted(set(new) & set(old)):
        a, b = new[name], old[name]
        for key in COMPARED_KEYS:
            va, vb = a.get(key), b.get(key)
            if key == "format" and isinstance(va, dict) and isinstance(vb, dict):
                compare_props(f"{where} {name}=<property string>", va, vb, lines, noun="key")
            elif key == "enum" and va != vb and va and vb:
                added, removed = sorted(set(va) - set(vb)), sorted(set(vb) - set(va))
                lines.append(f"{where}: '{name}' enum: +{added} -{removed}")
            elif va != vb:
                shown_a = "<property string>" if isinstance(va, dict) else va
                shown_b = "<property string>" if isinstance(vb, dict) else vb
                lines.append(f"{where}: '{name}' {key}: {COMPARE_RELEASE[0]}={shown_b!r} "
                             f"{BASE_RELEASE[0]}={shown_a!r}")


def compare(subset, old_entries, problems):
    """Difference lines between the subset (base release) and the same entries of the older one."""
    lines = []
    for entry in subset:
        method, path = entry["method"], entry["path"]
        old = old_entries.get((method, path))
        if old is None:
            problems.append(f"{method} {path}: not in the {COMPARE_RELEASE[0]} schema")
            continue
        old_props = (old.get("parameters") or {}).get("properties") or {}
        stripped_old = {name: strip_property(name, prop, path, []) for name, prop in old_props.items()}
        compare_props(f"{method} {path}", entry["parameters"]["properties"], stripped_old, lines)
    return lines


def main(argv=None):
    """Write the subset and print the differences against the older release."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema-dir", type=Path, default=DEFAULT_SCHEMA_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check-only", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)

    problems = []
    base = load_tree(args.schema_dir / f"pve-{BASE_RELEASE[0]}-apischema.json")
    older = load_tree(args.schema_dir / f"pve-{COMPARE_RELEASE[0]}-apischema.json")
    subset = derive(base, problems)
    differences = compare(subset, older, problems)

    if not args.check_only:
        document = {
            "source": f"pve-{BASE_RELEASE[0]}-apischema.json (Proxmox VE {BASE_RELEASE[1]}, "
                      "pve-docs api-viewer/apidata.js, AGPL-3.0-or-later)",
            "generated_by": "scripts/derive_pve_schema.py",
            "checked_against": f"pve-{COMPARE_RELEASE[0]}-apischema.json (Proxmox VE {COMPARE_RELEASE[1]})",
            "endpoints": subset,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        print(f"wrote {len(subset)} method entries to {args.output}")

    print(f"{len(differences)} difference(s) between {COMPARE_RELEASE[0]} and {BASE_RELEASE[0]} "
          "for the subset:")
    for line in differences:
        print(f"  {line}")
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
