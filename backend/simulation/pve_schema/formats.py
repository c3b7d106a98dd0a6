"""The named formats a schema property may give (pve-common JSONSchema.pm, pve-storage, pve-container,
qemu-server): a checker per name that raises FormatError with the server's wording, the named formats that are
property strings, and the ones the fake leaves unchecked."""
import ipaddress
import re


class FormatError(ValueError):
    """A value that does not satisfy a named format; the message is the server's wording."""


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
    # pve-storage PVE/Storage/Plugin.pm ($prune_backups_format; its validator, validate_prune_backups, refuses
    # keep-all=1 beside another option: the fake's prune handlers check that)
    "prune-backups": {
        "keep-all": {"type": "boolean", "optional": 1},
        **{f"keep-{period}": {"type": "integer", "minimum": 0, "optional": 1}
           for period in ("last", "hourly", "daily", "weekly", "monthly", "yearly")},
    },
}

# Named formats the fake accepts without checking (rarely sent by the platform, complex to mirror).
UNCHECKED_FORMATS = frozenset({
    "pve-cpuset", "pve-ct-timezone", "pve-hotplug-features", "pve-qemu-sev-fmt", "pve-qemu-tdx-fmt",
    "pve-qm-boot", "pve-qm-bootdisk", "pve-qm-cicustom", "pve-qm-hostpci", "pve-qm-ide", "pve-qm-rng",
    "pve-qm-smbios1", "pve-qm-watchdog", "pve-vm-cpu-conf", "pve-priv", "lxc-ip-with-ll-iface",
    "pve-lxc-dev-string", "storage-pair", "backup-fleecing", "backup-performance", "email-or-username-list",
})
