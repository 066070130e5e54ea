"""The address guard: classification, literal spellings and checked resolution.

Nothing here connects anywhere; names other than ``localhost`` never reach DNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from fakedns import FakeDns, install
from tilework.errors import AddressResolutionError, BlockedAddress, InvalidTargetUrl
from tilework.netguard import (
    FETCH_SWITCH,
    WEBHOOK_SWITCH,
    PinnedTransport,
    check_url,
    classify,
    is_allowed,
    parse_literal_host,
    redact,
    resolve_checked,
)

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_network("::1/128")


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDns]:
    yield install(monkeypatch)


BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("2130706433", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network (0.0.0.0/8)"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 of 127.0.0.1, which is loopback"),
    ("::ffff:7f00:1", "IPv4-mapped IPv6 of 127.0.0.1, which is loopback"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd00:ec2::254", "metadata"),
    ("2001:db8::1", "documentation"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1, which is private"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1, which is loopback"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("169.254.1.1", "link-local"),
    ("::127.0.0.1", "IPv4-compatible IPv6 of 127.0.0.1, which is loopback"),
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize(("spelling", "reason"), BLOCKED)
def test_non_public_addresses_are_classified_with_their_reason(
    spelling: str, reason: str
) -> None:
    address = parse_literal_host(spelling)

    assert address is not None
    assert classify(address) == reason


@pytest.mark.parametrize("spelling", PUBLIC)
def test_public_addresses_are_not_classified(spelling: str) -> None:
    address = parse_literal_host(spelling)

    assert address is not None
    assert classify(address) is None


@pytest.mark.parametrize(
    "spelling",
    [
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_embedded_public_ipv4_follows_the_embedded_address(spelling: str) -> None:
    address = ipaddress.ip_address(spelling)

    assert classify(address) is None


def test_teredo_with_a_private_client_is_blocked() -> None:
    client = int(ipaddress.IPv4Address("10.1.2.3")) ^ 0xFFFFFFFF
    address = ipaddress.IPv6Address((0x2001 << 112) | (0x08080808 << 64) | client)

    assert classify(address) == "Teredo of 10.1.2.3, which is private"


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "0x7f000001",
        "0X7F000001",
        "2130706433",
        "0177.0.0.1",
        "0177.0.0.01",
        "0x7f.1",
        "0x7f.0.0x0.1",
        "0x7f.0.1",
        "017700000001",
        "127.0.0.1.",
        " 127.0.0.1 ",
    ],
)
def test_every_ipv4_spelling_of_loopback_is_recognised(spelling: str) -> None:
    assert parse_literal_host(spelling) == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]", "fe80::1%eth0"),
        ("[fe80::1%eth0]", "fe80::1%eth0"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
    ],
)
def test_other_literals_are_parsed(spelling: str, expected: str) -> None:
    assert parse_literal_host(spelling) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "example.com",
        "1.2.3.example",
        "0x7f.example",
        "",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.65536",
        "4294967296",
        "08.0.0.1",
        "0xg.0.0.1",
        "1..2",
        "[not-an-address]",
        "١٢٧.0.0.1",
    ],
)
def test_names_and_invalid_numbers_are_not_literals(host: str) -> None:
    assert parse_literal_host(host) is None


def test_literal_hosts_are_checked_without_any_lookup(dns: FakeDns) -> None:
    with pytest.raises(BlockedAddress) as caught:
        resolve_checked("0x7f000001", 80, allow=())

    assert dns.lookups == []
    assert caught.value.address == "127.0.0.1"
    assert caught.value.reason == "loopback"
    assert "0x7f000001" in str(caught.value)


def test_blocked_message_names_the_operator_switch() -> None:
    with pytest.raises(BlockedAddress) as webhook:
        resolve_checked("10.0.0.1", 443, allow=(), switch=WEBHOOK_SWITCH)
    with pytest.raises(BlockedAddress) as neutral:
        resolve_checked("10.0.0.1", 443, allow=())

    assert "TILEWORK_WEBHOOK_ALLOW_NETWORKS" in str(webhook.value)
    assert "private" in str(webhook.value)
    assert WEBHOOK_SWITCH in str(neutral.value)
    assert FETCH_SWITCH in str(neutral.value)


def test_allow_list_lets_loopback_through() -> None:
    addresses = resolve_checked("127.0.0.1", 80, allow=[LOOPBACK_V4])

    assert addresses == [ipaddress.IPv4Address("127.0.0.1")]


def test_allow_list_covers_mapped_ipv6_of_an_allowed_ipv4() -> None:
    mapped = ipaddress.IPv6Address("::ffff:127.0.0.1")

    assert is_allowed(mapped, [LOOPBACK_V4])
    assert not is_allowed(mapped, [ipaddress.ip_network("10.0.0.0/8")])
    assert is_allowed(ipaddress.IPv6Address("::1"), [LOOPBACK_V6])
    assert not is_allowed(ipaddress.IPv6Address("::1"), [LOOPBACK_V4])


def test_localhost_resolves_to_loopback_and_is_blocked(dns: FakeDns) -> None:
    with pytest.raises(BlockedAddress) as caught:
        resolve_checked("localhost", 80, allow=())

    assert caught.value.reason == "loopback"
    assert "'localhost' resolves to" in str(caught.value)
    assert dns.lookups == ["localhost"]


def test_localhost_passes_when_loopback_is_allowed() -> None:
    addresses = resolve_checked("localhost", 80, allow=[LOOPBACK_V4, LOOPBACK_V6])

    assert addresses
    assert all(address.is_loopback for address in addresses)


def test_one_blocked_address_among_public_ones_blocks_the_name(dns: FakeDns) -> None:
    dns.answers["mixed.test"] = ["8.8.8.8", "10.0.0.1", "1.1.1.1"]

    with pytest.raises(BlockedAddress) as caught:
        resolve_checked("mixed.test", 443, allow=())

    assert caught.value.address == "10.0.0.1"
    assert dns.lookups == ["mixed.test"]


def test_public_answers_are_returned_in_resolver_order(dns: FakeDns) -> None:
    dns.answers["public.test"] = ["2606:4700:4700::1111", "1.1.1.1", "1.1.1.1"]

    addresses = resolve_checked("public.test", 443, allow=())

    assert addresses == [
        ipaddress.ip_address("2606:4700:4700::1111"),
        ipaddress.ip_address("1.1.1.1"),
    ]


def test_a_failed_lookup_is_a_resolution_error() -> None:
    with pytest.raises(AddressResolutionError) as caught:
        resolve_checked("no-such-host.invalid", 443, allow=())

    assert caught.value.host == "no-such-host.invalid"
    assert "no-such-host.invalid" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "//x"]
)
def test_check_url_accepts_only_absolute_http_urls(url: str, dns: FakeDns) -> None:
    with pytest.raises(InvalidTargetUrl):
        check_url(url, allow=())

    assert dns.lookups == []


def test_check_url_reports_the_default_port_and_host() -> None:
    target = check_url("https://[::1]/hook", allow=[LOOPBACK_V6])

    assert (target.scheme, target.host, target.port) == ("https", "::1", 443)
    assert target.addresses == (ipaddress.IPv6Address("::1"),)


def test_pinned_transport_refuses_another_host() -> None:
    transport = PinnedTransport("a.test", ipaddress.IPv4Address("127.0.0.1"))

    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(InvalidTargetUrl),
    ):
        client.get("http://b.test/")


def test_redact_drops_credentials_and_query() -> None:
    shown = redact("https://user:hunter2@example.com/v.mp4?token=abc#frag")

    assert shown == "https://example.com/v.mp4?…"
    assert "hunter2" not in shown
    assert "abc" not in shown
