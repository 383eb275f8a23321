"""The SSRF guard: which addresses a URL fetch may connect to (no network needed)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from indexing.url_fetch import fetch_url
from indexing.url_guard import ForbiddenURLError, check_address, resolve_allowed


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "not globally routable"),
])
def test_non_public_addresses_are_refused_with_their_kind(address, reason):
    assert check_address(ip_address(address)) == reason


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
                                     "::127.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1"])
def test_ipv4_inside_ipv6_is_judged_by_the_ipv4_address(address):
    assert "inside IPv6" in (check_address(ip_address(address)) or "")


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert check_address(ip_address(address)) is None


def test_localhost_is_refused_unless_private_addresses_are_allowed():
    with pytest.raises(ForbiddenURLError, match=r"localhost \(.*\): the address is loopback"):
        resolve_allowed("localhost", 80)
    assert all(ip.is_loopback for ip in resolve_allowed("localhost", 80, allow_private=True))


def test_every_resolved_address_is_checked():
    def resolve(host, port):
        return {"mixed.test": ["93.184.216.34", "10.0.0.7"], "public.test": ["93.184.216.34"]}[host]

    with pytest.raises(ForbiddenURLError, match=r"mixed\.test \(10\.0\.0\.7\).*private"):
        resolve_allowed("mixed.test", 443, resolve=resolve)
    assert [str(ip) for ip in resolve_allowed("public.test", 443, resolve=resolve)] == ["93.184.216.34"]


def test_explicitly_allowed_networks_pass_and_others_stay_refused():
    assert resolve_allowed("10.1.2.3", 80, allowed_networks=["10.0.0.0/8"])
    with pytest.raises(ForbiddenURLError, match=r"192\.168\.0\.1.*private"):
        resolve_allowed("192.168.0.1", 80, allowed_networks=["10.0.0.0/8"])


def test_multicast_stays_refused_even_when_private_is_allowed():
    with pytest.raises(ForbiddenURLError, match="multicast"):
        resolve_allowed("224.0.0.1", 80, allow_private=True)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:9200/_cat/indices", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/", "http://2130706433/", "http://0x7f.1/", "https://10.0.0.1/",
])
def test_fetching_a_forbidden_url_is_refused_before_connecting(url):
    with pytest.raises(ForbiddenURLError, match="refusing to fetch"):
        fetch_url(url, timeout_s=5)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "http:///nohost"])
def test_only_http_and_https_urls_with_a_host_are_fetched(url):
    with pytest.raises(ForbiddenURLError, match="cannot fetch"):
        fetch_url(url, timeout_s=5)


def test_guard_errors_are_value_errors():
    assert issubclass(ForbiddenURLError, ValueError)
