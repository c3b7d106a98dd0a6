"""Proxmox connection and guest settings, parsed from a mapping such as os.environ."""
from dataclasses import dataclass


def _bool(value, default):
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _int(env, name, default):
    value = env.get(name)
    if value is None or str(value).strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class ProxmoxSettings:
    host: str
    port: int = 8006
    user: str = "root@pam"
    token_name: str | None = None
    token_value: str | None = None
    password: str | None = None
    verify_ssl: bool = True
    ca_bundle: str | None = None
    timeout: int = 30
    node: str | None = None
    storage: str = "local-lvm"
    bridge: str = "vmbr0"
    lxc_template: str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    vm_template_id: int | None = None
    full_clone: bool = True
    ssh_public_key: str | None = None
    ci_user: str = "paas"
    ip_pool: str | None = None  # "10.10.0.100-10.10.0.199/24"; empty means DHCP
    gateway: str | None = None
    task_timeout: int = 600
    ip_timeout: int = 300
    retries: int = 4
    # Simulation mode only: guests live at addresses in 127.0.0.0/8 (a real guest never does).
    loopback_guests: bool = False

    @classmethod
    def from_env(cls, env):
        """Settings from PROXMOX_* variables; None when PROXMOX_HOST is not set."""
        host = (env.get("PROXMOX_HOST") or "").strip()
        if not host:
            return None
        template = env.get("PROXMOX_VM_TEMPLATE_ID")
        return cls(
            host=host,
            port=_int(env, "PROXMOX_PORT", 8006),
            user=env.get("PROXMOX_USER") or "root@pam",
            token_name=env.get("PROXMOX_TOKEN_NAME") or None,
            token_value=env.get("PROXMOX_TOKEN_VALUE") or None,
            password=env.get("PROXMOX_PASSWORD") or None,
            verify_ssl=_bool(env.get("PROXMOX_VERIFY_SSL"), True),
            ca_bundle=env.get("PROXMOX_CA_BUNDLE") or None,
            timeout=max(_int(env, "PROXMOX_TIMEOUT", 30), 1),
            node=env.get("PROXMOX_NODE") or None,
            storage=env.get("PROXMOX_STORAGE") or "local-lvm",
            bridge=env.get("PROXMOX_BRIDGE") or "vmbr0",
            lxc_template=env.get("PROXMOX_LXC_TEMPLATE") or cls.lxc_template,
            vm_template_id=int(template) if template else None,
            full_clone=_bool(env.get("PROXMOX_FULL_CLONE"), True),
            ssh_public_key=env.get("PROXMOX_SSH_PUBLIC_KEY") or None,
            ci_user=env.get("PROXMOX_CI_USER") or "paas",
            ip_pool=env.get("PROXMOX_IP_POOL") or None,
            gateway=env.get("PROXMOX_GATEWAY") or None,
            task_timeout=_int(env, "PROXMOX_TASK_TIMEOUT", 600),
            ip_timeout=_int(env, "PROXMOX_IP_TIMEOUT", 300),
        )

    def __repr__(self):
        # Never print the secrets.
        return f"ProxmoxSettings(host={self.host!r}, port={self.port}, user={self.user!r}, node={self.node!r})"
