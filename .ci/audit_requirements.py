"""pip-audit over the pinned requirements, with a fallback for registries without per-version JSON.

    .venv-security/bin/python .ci/audit_requirements.py requirements.txt [requirements-dev.txt ...]

pip-audit asks PyPI's JSON API for each pinned version (/pypi/<name>/<version>/json). A mirror that
only serves the project-level document (/pypi/<name>/json) makes pip-audit skip every package as
"not found". For each skipped package this script reads the project-level document instead: its
`vulnerabilities` apply to the latest release, so a pin equal to it is audited.

A check fails on a finding, never because time passed: the run fails on a known vulnerability of a
pinned version, and on nothing else. A pin this registry cannot audit (behind the latest release, or
the registry did not answer) is reported by name, without failing, with the reason when HELD_BACK
gives one; a new upstream release is not a finding.
"""
import json
import subprocess  # nosec B404 - runs pip-audit with an argument list
import sys
import tempfile
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/pypi"
# Pins that cannot be the latest release, and why (re-check these when the reasons change).
HELD_BACK = {
    "deprecated": "3.x needs Python 3.12; the platform supports 3.11 (pulled in by limits/Flask-Limiter)",
    "python-dateutil": "celery 5.7.0 pins python-dateutil==2.9.0.post0",
}


def canonical(name):
    return name.strip().lower().replace("_", "-").replace(".", "-")


def pins(path):
    """{canonical name: version} of every `name[extras]==version` in path itself (an included file, -r, is
    audited on its own: .ci/run names each file)."""
    found = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[canonical(name.split("[", 1)[0])] = version.strip()
    return found


def run_pip_audit(requirements):
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "-r", requirements, "--no-deps", "--disable-pip",
                   "--progress-spinner", "off", "-f", "json", "-o", str(report)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # nosec B603
        if not report.exists():
            sys.exit(f"pip-audit did not run:\n{result.stderr[-2000:]}")
        return json.loads(report.read_text())


def project_vulnerabilities(name, version):
    """(audited, [vulnerability ids]) from the project-level JSON document."""
    with urllib.request.urlopen(f"{INDEX}/{name}/json", timeout=30) as response:  # nosec B310 - fixed https URL
        document = json.load(response)
    if document["info"]["version"] != version:
        return False, []
    return True, [v.get("id") or v.get("aliases", ["?"])[0] for v in document.get("vulnerabilities") or []]


def main(*requirement_files):
    files = requirement_files or ("requirements.txt",)
    failed = False
    for requirements in files:
        failed |= audit_file(requirements)
    return 1 if failed else 0


def audit_file(requirements):
    """Audit one requirements file; True when it pins a version with a known vulnerability."""
    pinned = pins(requirements)
    audit = run_pip_audit(requirements)
    vulnerable, audited, unaudited = [], [], []
    for dependency in audit["dependencies"]:
        name = dependency["name"]
        if "skip_reason" not in dependency:
            audited.append(name)
            vulnerable += [f"{name} {dependency['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or '-'})"
                           for v in dependency.get("vulns", [])]
            continue
        version = pinned.get(canonical(name))
        try:
            checked, ids = project_vulnerabilities(name, version)
        except OSError as exc:
            unaudited.append(f"{name} {version}: the registry did not answer ({exc.__class__.__name__})")
            continue
        if checked:
            audited.append(name)
            vulnerable += [f"{name} {version}: {vid}" for vid in ids]
        else:
            why = HELD_BACK.get(canonical(name), "a newer release exists; this registry has no per-version data")
            unaudited.append(f"{name} {version} ({why})")
    print(f"pip-audit {requirements}: {len(audited)} of {len(pinned)} pinned packages audited, "
          f"{len(vulnerable)} known vulnerabilities, {len(unaudited)} not auditable from this registry")
    for line in unaudited:
        print(f"  not audited: {line}")
    for line in vulnerable:
        print(f"  VULNERABLE: {line}")
    return bool(vulnerable)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
