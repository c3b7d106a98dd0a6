"""What every part of the real guests needs from this machine: root and the tools (require_capabilities),
running a command (_run), and the error both raise."""
import os
import shutil
import subprocess  # nosec B404 - argument lists only, never a shell with outside input


class ContainerError(RuntimeError):
    """A real guest could not be made, started or removed; the message says what and why."""


def require_capabilities():
    """Refuse plainly when this machine cannot run real guests (not root, or a tool missing)."""
    if os.geteuid() != 0:
        raise ContainerError("real guests need root (network namespaces, overlay mounts, cgroups, systemd-nspawn); "
                             "run as root, or use the sandbox simulation")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "mount", "umount")
               if shutil.which(tool) is None]
    if missing:
        raise ContainerError(f"real guests need {', '.join(missing)}: apt-get install debootstrap systemd-container "
                             "iproute2")


def _run(argv, timeout=120, check=True, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,  # nosec B603
                            **kwargs)
    if check and result.returncode != 0:
        raise ContainerError(f"{' '.join(argv[:3])} failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()[-500:]}")
    return result
