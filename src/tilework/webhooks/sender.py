"""Sending one webhook request and judging the answer.

A :class:`Sender` posts exact bytes to a callback URL and returns a
:class:`SendResult` that says what to do next: nothing (``delivered``), try again
later (``retry``), stop sending to this URL (``gone``) or give up because the guard
refused the target (``blocked``).
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from tilework.config import IPNetwork
from tilework.errors import AddressResolutionError, BlockedAddress, InvalidTargetUrl
from tilework.netguard import (
    WEBHOOK_SWITCH,
    IPAddress,
    parse_url,
    redact,
    resolve_checked,
)
from tilework.webhooks.pinned import PinnedPool, tls_context

logger = logging.getLogger(__name__)

Outcome = Literal["delivered", "retry", "gone", "blocked"]

_MAX_CLIENTS = 64
_MAX_DRAIN_BYTES = 64 * 1024
_MANAGED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection"}
)


@dataclass(frozen=True)
class SendResult:
    """What came of one attempt to deliver a webhook."""

    status_code: int | None
    duration_ms: float
    error: str | None
    retry_after: float | None
    outcome: Outcome


@dataclass(frozen=True)
class SentWebhook:
    """One call recorded by :class:`MemorySender`."""

    url: str
    body: bytes
    headers: dict[str, str]


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Post ``body`` to ``url`` once and report the outcome.

        Nothing the receiver, the network or the guard does raises; it is reported.
        """
        ...


def judge_response(
    status_code: int,
    headers: Mapping[str, str],
    *,
    duration_ms: float,
    now: float | None = None,
) -> SendResult:
    """Turn a receiver's status and headers into a :class:`SendResult`."""
    if 200 <= status_code < 300:
        return SendResult(status_code, duration_ms, None, None, "delivered")
    if status_code == 410:
        error = "the receiver answered HTTP 410 Gone, so nothing more is sent to it"
        return SendResult(status_code, duration_ms, error, None, "gone")
    if 300 <= status_code < 400:
        location = headers.get("location") or "nowhere"
        error = f"redirects are not followed (got {status_code} to {location})"
        return SendResult(status_code, duration_ms, error, None, "retry")

    retry_after = None
    if status_code in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    error = f"the receiver answered HTTP {status_code}"
    return SendResult(status_code, duration_ms, error, retry_after, "retry")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a Retry-After value, in seconds or as an HTTP date, as seconds from now."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)

    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, moment.timestamp() - current)


class HttpSender:
    """Posts webhooks over HTTP(S) to addresses the guard has checked.

    Every send resolves the URL's host once and checks it; connections are kept
    alive per checked (scheme, host, address, port), so a host that starts
    resolving elsewhere never reuses a connection to its old address.
    """

    def __init__(
        self,
        *,
        allow: Sequence[IPNetwork],
        timeout: float = 15.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._allow = tuple(allow)
        self._timeout = timeout
        self._tls = tls_context(verify)
        self._pools: OrderedDict[tuple[str, str, str, int], PinnedPool] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.monotonic()
        try:
            return self._send(url, body, headers, started)
        except (BlockedAddress, InvalidTargetUrl) as exc:
            return _failed(started, str(exc), "blocked")
        except AddressResolutionError as exc:
            return _failed(started, str(exc), "retry")
        except TimeoutError:
            error = f"the receiver did not answer within {self._timeout:g} seconds"
            return _failed(started, error, "retry")
        except ssl.SSLError as exc:
            error = f"the TLS handshake with {redact(url)} failed: {exc}"
            return _failed(started, error, "retry")
        except OSError as exc:
            error = f"could not connect to {redact(url)}: {exc}"
            return _failed(started, error, "retry")
        except http.client.HTTPException as exc:
            error = f"the request failed: {type(exc).__name__}: {exc}"
            return _failed(started, error, "retry")

    def _send(
        self, url: str, body: bytes, headers: Mapping[str, str], started: float
    ) -> SendResult:
        parsed = _parts(url)
        host, port, target = parsed.host, parsed.port, parsed.target
        addresses = resolve_checked(
            host, port, allow=self._allow, switch=WEBHOOK_SWITCH
        )
        request_headers = _request_headers(headers)
        request_headers["Host"] = parsed.netloc

        last = len(addresses) - 1
        for index, address in enumerate(addresses):
            pool = self._pool(parsed.scheme, host, address, port)
            try:
                reply = pool.post(target, body, request_headers)
            except (ConnectionRefusedError, ConnectionAbortedError):
                if index == last:
                    raise
                continue
            duration_ms = (time.monotonic() - started) * 1000
            result = judge_response(
                reply.status, reply.headers, duration_ms=duration_ms
            )
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "webhook to %s: HTTP %s, %s",
                    redact(url),
                    reply.status,
                    result.outcome,
                )
            return result

        raise InvalidTargetUrl(f"{redact(url)!r} has no checked address.")

    def _pool(
        self, scheme: str, host: str, address: IPAddress, port: int
    ) -> PinnedPool:
        key = (scheme, host.lower(), str(address), port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool

            tls = self._tls if scheme == "https" else None
            pool = PinnedPool(host, address, port, timeout=self._timeout, tls=tls)
            self._pools[key] = pool
            evicted = self._evict()

        for old in evicted:
            old.close()
        return pool

    def _evict(self) -> list[PinnedPool]:
        evicted = []
        while len(self._pools) > _MAX_CLIENTS:
            _key, old = self._pools.popitem(last=False)
            evicted.append(old)
        return evicted

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()


@dataclass(frozen=True)
class _UrlParts:
    scheme: str
    host: str
    port: int
    netloc: str
    target: str


@functools.lru_cache(maxsize=1024)
def _parts(url: str) -> _UrlParts:
    """The pieces of a callback URL a send needs; parsing is pure, so it is cached.

    The host is still resolved and checked on every send.
    """
    parsed = parse_url(url)
    return _UrlParts(
        scheme=parsed.scheme,
        host=parsed.raw_host.decode("ascii"),
        port=parsed.port or (443 if parsed.scheme == "https" else 80),
        netloc=parsed.netloc.decode("ascii"),
        target=parsed.raw_path.decode("ascii") or "/",
    )


def _request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {
        name: value
        for name, value in headers.items()
        if name.lower() not in _MANAGED_HEADERS
    }
    return {**kept, "Content-Type": "application/json"}


def _failed(started: float, error: str, outcome: Outcome) -> SendResult:
    duration_ms = (time.monotonic() - started) * 1000
    logger.info("webhook not delivered (%s): %s", outcome, error)
    return SendResult(None, duration_ms, error, None, outcome)


class MemorySender:
    """A :class:`Sender` that records calls and answers with scripted results.

    Results given to the constructor or :meth:`script` are returned in order; once
    they run out, every call gets ``default`` (delivered with HTTP 200 unless set).
    """

    def __init__(
        self,
        results: Iterable[SendResult] = (),
        *,
        default: SendResult | None = None,
    ) -> None:
        self.calls: list[SentWebhook] = []
        self._results = list(results)
        self._default = default or SendResult(200, 0.0, None, None, "delivered")
        self._lock = threading.Lock()

    def script(self, *results: SendResult) -> None:
        """Queue ``results`` to be returned by the next calls, in order."""
        with self._lock:
            self._results.extend(results)

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        with self._lock:
            self.calls.append(SentWebhook(url, bytes(body), dict(headers)))
            return self._results.pop(0) if self._results else self._default

    def close(self) -> None:
        """Do nothing; present so it can stand in for :class:`HttpSender`."""
