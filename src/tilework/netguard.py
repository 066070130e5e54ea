"""The address guard for every connection tilework opens to a URL a user gave it.

A target is checked once: a literal address directly, a hostname by resolving it
once and checking every address it resolves to. Any address that is not public
(loopback, private, link-local, cloud metadata, ...) blocks the target unless an
operator allowed its network. The connection then goes to exactly the address that
was checked, through :class:`PinnedTransport`, so a second DNS answer can never
redirect it; the ``Host`` header, TLS SNI and certificate check keep the hostname.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from tilework.config import IPNetwork
from tilework.errors import AddressResolutionError, BlockedAddress, InvalidTargetUrl

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WEBHOOK_SWITCH = "TILEWORK_WEBHOOK_ALLOW_NETWORKS"
FETCH_SWITCH = "TILEWORK_FETCH_ALLOW_NETWORKS"

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_V4_METADATA = ipaddress.IPv4Address("169.254.169.254")
_V6_METADATA = ipaddress.IPv6Address("fd00:ec2::254")

_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "this network (0.0.0.0/8)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("192.88.99.0/24"), "reserved (6to4 relay anycast)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "private (local-use NAT64)"),
    (_V6("100::/64"), "reserved (discard-only)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)

_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")
_V4_COMPATIBLE = _V6("::/96")
_V6_LOOPBACK = ipaddress.IPv6Address("::1")


def classify(address: IPAddress) -> str | None:
    """Say why ``address`` must not be connected to, or return None if it is public."""
    if isinstance(address, ipaddress.IPv4Address):
        return _classify_v4(address)
    return _classify_v6(address)


def _classify_v4(address: ipaddress.IPv4Address) -> str | None:
    if address == _V4_METADATA:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"

    for network, reason in _V4_RULES:
        if address in network:
            return reason

    if not address.is_global:
        return "reserved"
    return None


def _classify_v6(address: ipaddress.IPv6Address) -> str | None:
    plain = ipaddress.IPv6Address(address.packed)
    if plain == _V6_METADATA:
        return "metadata"
    if plain.is_unspecified:
        return "unspecified"

    embedding = _embedding(plain)
    if embedding is not None:
        return _classify_embedded(*embedding)

    for network, reason in _V6_RULES:
        if plain in network:
            return reason

    if plain.is_reserved or not plain.is_global:
        return "reserved"
    return None


def _embedding(
    address: ipaddress.IPv6Address,
) -> tuple[str, tuple[ipaddress.IPv4Address, ...], str | None] | None:
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return "IPv4-mapped IPv6", (address.ipv4_mapped,), None
    if address in _V4_COMPATIBLE and address != _V6_LOOPBACK:
        return "IPv4-compatible IPv6", (low32,), "reserved (IPv4-compatible IPv6)"
    if address in _NAT64:
        return "NAT64", (low32,), None
    if address.sixtofour is not None:
        return "6to4", (address.sixtofour,), None
    if address.teredo is not None:
        server, client = address.teredo
        return "Teredo", (client, server), "reserved (Teredo)"
    return None


def _classify_embedded(
    kind: str, embedded: tuple[ipaddress.IPv4Address, ...], public: str | None
) -> str | None:
    for v4 in embedded:
        reason = _classify_v4(v4)
        if reason is not None:
            return f"{kind} of {v4}, which is {reason}"
    return public


def parse_literal_host(host: str) -> IPAddress | None:
    """Read ``host`` as an IP address the way resolvers and browsers would.

    Accepts dotted IPv4 with one to four parts, each decimal, octal (leading ``0``)
    or hex (``0x``), an optional trailing dot, and IPv6 with or without brackets and
    a zone id. Returns None when ``host`` is a name rather than an address.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        return _parse_v6(text[1:-1])
    if ":" in text:
        return _parse_v6(text)
    return _parse_v4(text)


def _parse_v6(text: str) -> ipaddress.IPv6Address | None:
    address, percent, zone = text.partition("%")
    if zone.startswith("25"):
        zone = zone[2:]
    try:
        return ipaddress.IPv6Address(f"{address}%{zone}" if percent else address)
    except ValueError:
        return None


def _parse_v4(text: str) -> ipaddress.IPv4Address | None:
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None

    numbers = [_parse_v4_part(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]

    *leading, last = values
    if any(value > 0xFF for value in leading):
        return None
    if last >= 256 ** (5 - len(values)):
        return None

    total = last
    for index, value in enumerate(leading):
        total += value << (8 * (3 - index))
    return ipaddress.IPv4Address(total)


def _parse_v4_part(part: str) -> int | None:
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
        if digits == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10

    if digits == "" or not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def resolve_checked(
    host: str,
    port: int,
    *,
    allow: Sequence[IPNetwork],
    switch: str | None = None,
) -> list[IPAddress]:
    """Resolve ``host`` once and check every address; return them in resolver order.

    Raises :class:`BlockedAddress` when any address is not public and not inside an
    ``allow`` network, and :class:`AddressResolutionError` when the name does not
    resolve. ``switch`` names the setting an operator would change to allow it.
    """
    literal = parse_literal_host(host)
    addresses = [literal] if literal is not None else _resolve(host, port)

    for address in addresses:
        _check(host, address, allow, switch, literal=literal is not None)
    return addresses


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        raise AddressResolutionError(
            f"Could not resolve the hostname {host!r} ({exc}); check that it is "
            "spelled right and exists, or try again later.",
            host=host,
        ) from exc

    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise AddressResolutionError(
            f"The hostname {host!r} resolved to no addresses; check its DNS records.",
            host=host,
        )
    return addresses


def _check(
    host: str,
    address: IPAddress,
    allow: Sequence[IPNetwork],
    switch: str | None,
    *,
    literal: bool,
) -> None:
    reason = classify(address)
    if reason is None or is_allowed(address, allow):
        return

    setting = switch or f"{WEBHOOK_SWITCH} (webhooks) or {FETCH_SWITCH} (downloads)"
    subject = f"{host!r} is the address" if literal else f"{host!r} resolves to"
    logger.warning("blocked a connection to %s at %s (%s)", host, address, reason)
    raise BlockedAddress(
        f"{subject} {address}, which is blocked ({reason}): tilework only connects "
        "to public addresses. If this target is trusted, the server operator can "
        f"allow its network in {setting}.",
        host=host,
        address=str(address),
        reason=reason,
    )


def is_allowed(address: IPAddress, allow: Sequence[IPNetwork]) -> bool:
    """Tell whether ``address`` lies in one of the operator-allowed networks."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        candidates.append(ipaddress.IPv6Address(address.packed))
        if address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)

    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in allow
    )


@dataclass(frozen=True)
class CheckedTarget:
    """A URL's origin together with the addresses the guard let through."""

    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def check_url(
    url: str | httpx.URL,
    *,
    allow: Sequence[IPNetwork],
    switch: str | None = None,
) -> CheckedTarget:
    """Parse an http(s) URL and run its host through :func:`resolve_checked`."""
    parsed = parse_url(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)

    addresses = resolve_checked(host, port, allow=allow, switch=switch)
    return CheckedTarget(parsed.scheme, host, port, tuple(addresses))


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """Parse ``url`` and insist that it is an absolute http or https URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidTargetUrl(
            f"{redact(str(url))!r} is not a valid URL ({exc}); give an absolute "
            "http:// or https:// URL."
        ) from exc

    if parsed.scheme not in ("http", "https"):
        raise InvalidTargetUrl(
            f"URLs with the scheme {parsed.scheme or '(none)'!r} are not supported; "
            "give an http:// or https:// URL."
        )
    if not parsed.raw_host:
        raise InvalidTargetUrl(
            f"{redact(str(url))!r} has no host; give an absolute http:// or https:// "
            "URL."
        )
    return parsed


def redact(url: str | httpx.URL) -> str:
    """Show a URL without credentials or query string, which may carry secrets."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        text = str(url).split("?", 1)[0].split("#", 1)[0]
        return re.sub(r"//[^/]*@", "//", text)[:200]
    shown = parsed.copy_with(username=None, password=None, query=None, fragment=None)
    return str(shown) + ("?…" if parsed.query else "")


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that sends every request for one host to one address.

    The request URL keeps its hostname for the ``Host`` header; the connection is
    made to ``address`` and, for https, TLS uses the hostname for SNI and for the
    certificate check. Requests for any other host are refused.
    """

    def __init__(
        self,
        host: str,
        address: IPAddress,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.host = host.lower()
        self.address = address
        self._inner = httpx.HTTPTransport(
            verify=verify,
            trust_env=False,
            limits=limits or httpx.Limits(max_connections=10),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii").lower()
        if host != self.host:
            raise InvalidTargetUrl(
                f"A connection checked for {self.host!r} cannot be used for {host!r}; "
                "check the new host with the address guard first."
            )

        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = self.host.rstrip(".")
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(ipaddress.ip_address(self.address.packed))),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()


class _ClosingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, on_close: Callable[[], None]):
        self._inner = inner
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._on_close()


def guarded_request(
    method: str,
    url: str | httpx.URL,
    *,
    allow: Sequence[IPNetwork],
    timeout: float,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    stream: bool = False,
    switch: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """Check ``url`` with the guard and send one request to the checked address.

    Redirects are never followed. With ``stream=True`` the body is left unread and
    the caller must close the response, which also closes its connection.
    """
    target = check_url(url, allow=allow, switch=switch)
    response = send_pinned(
        target,
        method,
        url,
        timeout=timeout,
        headers=headers,
        content=content,
        verify=verify,
    )

    if not stream:
        try:
            response.read()
        finally:
            response.close()
    return response


def send_pinned(
    target: CheckedTarget,
    method: str,
    url: str | httpx.URL,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """Send to the first of ``target``'s addresses that accepts a connection.

    The response is returned unread; closing it closes the one-off connection.
    """
    last = len(target.addresses) - 1
    for index, address in enumerate(target.addresses):
        client = pinned_client(
            PinnedTransport(target.host, address, verify=verify), timeout=timeout
        )
        try:
            request = client.build_request(
                method, url, headers=headers, content=content
            )
            response = client.send(request, stream=True)
        except httpx.ConnectError as exc:
            client.close()
            if index == last:
                raise
            logger.debug("could not connect to %s at %s: %s", target.host, address, exc)
            continue
        except BaseException:
            client.close()
            raise
        return _close_with(response, client)

    raise InvalidTargetUrl(f"{target.host!r} has no checked address to connect to.")


def _close_with(response: httpx.Response, client: httpx.Client) -> httpx.Response:
    assert isinstance(response.stream, httpx.SyncByteStream)
    response.stream = _ClosingStream(response.stream, client.close)
    return response


def pinned_client(transport: PinnedTransport, *, timeout: float) -> httpx.Client:
    """Wrap ``transport`` in a client that never follows redirects or reads the env."""
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
