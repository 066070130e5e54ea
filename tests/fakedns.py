"""A stand-in for ``socket.getaddrinfo``: answers for made-up names, nothing off-box.

Tests of the address guard and of anything that connects use it so that no lookup
ever leaves the machine: scripted names get scripted answers, ``localhost`` and IP
literals are looked up for real, and every other name fails as a literal would.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

_real_getaddrinfo = socket.getaddrinfo


class FakeDns:
    """Answers for made-up names; real lookups only for localhost and literals."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __call__(
        self,
        host: Any,
        port: Any,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.answers:
            return [_info(address, port) for address in self.answers[name]]
        if name != "localhost":
            flags |= socket.AI_NUMERICHOST
        return _real_getaddrinfo(host, port, family, type, proto, flags)

    def names(self) -> list[str]:
        """Lookups of anything that is not already an IP address."""
        return [name for name in self.lookups if not _is_ip(name)]


def install(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _info(address: str, port: Any) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
