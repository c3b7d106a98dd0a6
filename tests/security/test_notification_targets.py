"""Which notification URLs are refused, whatever form the address takes."""
import socket

import pytest

from backend.services.notifications import TargetRefused, check_target


def resolving_to(*addresses):
    def resolve(host, port, type=0):  # noqa: A002 - getaddrinfo's own keyword
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return resolve


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "ftp://example.com/", "https://user:pw@example.com/", "https:///nohost",
    "https://127.0.0.1/", "https://127.1.2.3:8443/", "https://10.0.0.1/", "https://172.16.5.4/",
    "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data", "https://0.0.0.0/", "https://[::1]/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:10.0.0.1]/", "https://[fc00::1]/", "https://[fe80::1]/",
    "https://[fec0::1]/", "https://[2002:7f00:1::]/", "https://[2002:0a00:0001::]/", "https://100.64.0.1/",
    "https://224.0.0.1/", "https://240.0.0.1/", "https://example.com/\nX: y",
])
def test_these_targets_are_refused(url):
    with pytest.raises(TargetRefused):
        check_target(url, resolve=resolving_to("93.184.216.34"))


def test_a_name_resolving_to_any_private_address_is_refused_without_naming_it():
    with pytest.raises(TargetRefused) as refused:
        check_target("https://hooks.example.com/x", resolve=resolving_to("93.184.216.34", "10.9.8.7"))
    assert "10.9.8.7" not in str(refused.value) and "not a public address" in str(refused.value)


def test_public_targets_are_accepted_and_private_ones_when_allowed():
    assert check_target("https://hooks.example.com:8443/x?y=1", resolve=resolving_to("93.184.216.34"))[:2] == (
        "hooks.example.com", 8443)
    assert check_target("https://[2002:5db8:d822::]/", resolve=resolving_to())[0] == "2002:5db8:d822::"
    host, port, addresses = check_target("https://localhost:9/", allow_private=True, resolve=resolving_to("127.0.0.1"))
    assert (host, port, [str(a) for a in addresses]) == ("localhost", 9, ["127.0.0.1"])


def test_a_name_that_does_not_resolve_is_refused():
    def fail(*args, **kwargs):
        raise socket.gaierror("no such name")
    with pytest.raises(TargetRefused, match="does not resolve"):
        check_target("https://nowhere.invalid/", resolve=fail)
