"""Every function-local import carries its reason beside it: `# noqa: PLC0415 - why` (or `(why)`).

ruff finds the function-local imports (PLC0415) and a `noqa` silences one; this check makes sure no
silenced one is left without the reason the house rules ask for. Prints each offender; exits 1 if any.
"""
import re
import subprocess
import sys

NOQA = re.compile(r"#\s*noqa:[^#]*\bPLC0415\b(?P<rest>.*)$")


def main():
    tracked = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for path in tracked:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                match = NOQA.search(line)
                if match and not re.search(r"[A-Za-z]{3}", match.group("rest")):
                    offenders.append(f"{path}:{number}: {line.strip()}")
    for offender in offenders:
        print(f"function-local import without a reason: {offender}")
    print(f"function-local imports: {len(offenders)} without a reason")
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main())
