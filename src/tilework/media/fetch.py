"""Downloading an input video from an http(s) URL a user gave.

Every hop goes through the address guard: the host is resolved once, checked, and
connected to at the checked address. Redirects are followed by hand, at most
:data:`MAX_REDIRECTS` of them, and each new location is checked again. The body is
streamed to disk under a byte cap and the file appears at ``dest`` only when whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tilework.config import IPNetwork
from tilework.errors import (
    AddressResolutionError,
    BlockedAddress,
    FetchError,
    InvalidTargetUrl,
)
from tilework.netguard import FETCH_SWITCH, guarded_request, redact

if TYPE_CHECKING:
    from tilework.media.ffmpeg import CancelToken

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_YOUTUBE_HOSTS = ("youtube.com", "youtu.be", "youtube-nocookie.com")
_CHUNK_BYTES = 64 * 1024


def download(
    url: str,
    dest: Path,
    *,
    allow_networks: Sequence[IPNetwork],
    max_bytes: int,
    cancel: CancelToken | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``; raise FetchError on failure."""
    current = _source_url(url)
    logger.info("downloading %s", redact(current))

    for _hop in range(MAX_REDIRECTS + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        with _translated(current, timeout):
            location = _fetch_once(
                current, dest, allow_networks, max_bytes, cancel, timeout
            )
        if location is None:
            return dest
        current = _source_url(location)

    raise FetchError(
        f"{redact(url)} redirected more than {MAX_REDIRECTS} times; give the final "
        "link to the video instead."
    )


def _fetch_once(
    url: httpx.URL,
    dest: Path,
    allow_networks: Sequence[IPNetwork],
    max_bytes: int,
    cancel: CancelToken | None,
    timeout: float,
) -> httpx.URL | None:
    response = guarded_request(
        "GET",
        url,
        allow=allow_networks,
        timeout=timeout,
        headers={"Accept-Encoding": "identity"},
        stream=True,
        switch=FETCH_SWITCH,
    )
    try:
        location = _redirect_location(response, url)
        if location is None:
            _check_response(response, url, max_bytes)
            _save(response, url, dest, max_bytes, cancel)
        return location
    finally:
        response.close()


def _source_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(
            f"{redact(str(url))!r} is not a valid URL ({exc}); give a direct "
            "http:// or https:// link to the video."
        ) from exc

    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "(none)"
        raise FetchError(
            f"Cannot download {redact(parsed)}: the scheme {scheme!r} is not "
            "supported; give an http:// or https:// link."
        )
    if _is_youtube(parsed.host):
        raise FetchError(
            "YouTube links need a YouTube downloader, which this server does not "
            "have; upload the video or pass a direct link"
        )
    return parsed


def _is_youtube(host: str) -> bool:
    name = host.lower().rstrip(".")
    return any(name == base or name.endswith("." + base) for base in _YOUTUBE_HOSTS)


def _redirect_location(response: httpx.Response, url: httpx.URL) -> httpx.URL | None:
    if response.status_code not in _REDIRECTS:
        return None

    location = response.headers.get("location")
    if not location:
        raise FetchError(
            f"{redact(url)} answered HTTP {response.status_code} without saying where "
            "to; give a direct link to the video."
        )
    try:
        return url.join(location)
    except httpx.InvalidURL as exc:
        raise FetchError(
            f"{redact(url)} redirected to an invalid URL ({exc}); give a direct "
            "link to the video."
        ) from exc


def _check_response(response: httpx.Response, url: httpx.URL, max_bytes: int) -> None:
    status = response.status_code
    if status >= 400:
        raise FetchError(
            f"{redact(url)} answered HTTP {status} {response.reason_phrase}; check "
            "that the link is right and publicly readable."
        )
    if not 200 <= status < 300:
        raise FetchError(
            f"{redact(url)} answered HTTP {status}, which carries no file; give a "
            "direct link to the video."
        )

    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    if media_type.lower() in _HTML_TYPES:
        raise FetchError(
            f"{redact(url)} served an HTML page, not a video; link to the video file "
            "itself, or upload it."
        )

    length = _content_length(response)
    if length is not None and length > max_bytes:
        raise _too_large(url, max_bytes, f"it is {length} bytes")


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _save(
    response: httpx.Response,
    url: httpx.URL,
    dest: Path,
    max_bytes: int,
    cancel: CancelToken | None,
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part")

    try:
        received = _write_body(response, url, partial, max_bytes, cancel)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("downloaded %d bytes from %s", received, redact(url))


def _write_body(
    response: httpx.Response,
    url: httpx.URL,
    partial: Path,
    max_bytes: int,
    cancel: CancelToken | None,
) -> int:
    received = 0
    with partial.open("wb") as file:
        for chunk in response.iter_bytes(_CHUNK_BYTES):
            if cancel is not None:
                cancel.raise_if_cancelled()
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(url, max_bytes, "it kept coming past the limit")
            file.write(chunk)
    return received


def _too_large(url: httpx.URL, max_bytes: int, detail: str) -> FetchError:
    return FetchError(
        f"{redact(url)} is larger than the {max_bytes}-byte limit ({detail}); use a "
        "smaller file or ask the operator to raise the limit."
    )


@contextmanager
def _translated(url: httpx.URL, timeout: float) -> Iterator[None]:
    shown = redact(url)
    try:
        yield
    except (BlockedAddress, AddressResolutionError, InvalidTargetUrl) as exc:
        raise FetchError(f"Cannot download {shown}: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise FetchError(
            f"{shown} did not respond within {timeout:g} seconds; try again later "
            "or upload the video."
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            f"Could not download {shown} ({type(exc).__name__}: {exc}); check the "
            "link or upload the video."
        ) from exc
