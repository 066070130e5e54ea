"""Signed, expiring URLs.

A signature covers the URL path in its canonical percent-encoded form
(:func:`canonical_path`, the form that appears in the URL), every extra query
parameter sorted by name, and ``expires``. :meth:`UrlSigner.sign` takes the
*decoded* path relative to ``base_url`` (e.g. ``/v1/files/vidéo.mp4``) and encodes it
itself; the URL is ``base_url`` followed by that encoded path.

The verifying route passes the decoded path Starlette routed on and the query::

    signer.verify(request.scope["path"], request.query_params)

When the server runs under a root path (``uvicorn --root-path``), that prefix is cut
from ``scope["path"]`` first; :func:`tilework.api.files.verify_signed_request` does
both. Neither ``request.url.path`` (it re-escapes ``?``, ``#`` and ``\\``, so it is
ambiguous) nor ``raw_path`` (it changes whenever a client or proxy re-encodes the URL)
is used. Checking the decoded path covers exactly the path that picked the route and
its path parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlencode

from tilework.errors import Forbidden

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "signing.key"
RESERVED_PARAMS = frozenset({"expires", "signature"})

_KEY_CONTEXT = b"tilework signed urls v1"
_EXPIRES_PATTERN = re.compile(r"[0-9]{1,12}")
_KEY_FILE_WAIT_SECONDS = 0.5


@runtime_checkable
class _MultiValued(Protocol):
    def multi_items(self) -> list[tuple[str, str]]: ...


class UrlSigner:
    """Makes and checks signed, expiring URLs under ``base_url``."""

    def __init__(self, key: bytes, base_url: str) -> None:
        if not key:
            raise ValueError("The signing key is empty; give at least 32 random bytes.")

        self._key = hmac.new(key, _KEY_CONTEXT, hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    def sign(
        self,
        path: str,
        *,
        ttl_seconds: int,
        now: float | None = None,
        params: Mapping[str, str] | None = None,
    ) -> str:
        """Return the absolute signed URL for the decoded ``path``."""
        extra = dict(params or {})
        _check_sign_arguments(path, ttl_seconds, extra)

        issued = time.time() if now is None else now
        expires = str(int(issued) + ttl_seconds)
        encoded_path = canonical_path(path)
        signature = self._signature(encoded_path, extra, expires)

        query = [*sorted(extra.items()), ("expires", expires), ("signature", signature)]
        return f"{self.base_url}{encoded_path}?{urlencode(query, quote_via=quote)}"

    def verify(
        self, path: str, query: Mapping[str, str], *, now: float | None = None
    ) -> None:
        """Raise Forbidden unless ``query`` holds a valid, unexpired signature."""
        extra = _single_values(query)
        signature = extra.pop("signature", "")
        expires = extra.pop("expires", "")

        expected = self._signature(canonical_path(path), extra, expires)
        valid = hmac.compare_digest(
            signature.encode("utf-8", "replace"), expected.encode("ascii")
        )
        if not valid or not _EXPIRES_PATTERN.fullmatch(expires):
            logger.debug("Rejected a link to %s: its signature does not match", path)
            raise Forbidden(
                "This link's signature is not valid; request a new link instead of "
                "editing this one."
            )

        checked = time.time() if now is None else now
        if checked >= int(expires):
            ended = datetime.fromtimestamp(int(expires), UTC).isoformat()
            raise Forbidden(
                f"This link has expired (it was valid until {ended}); request a new "
                "link."
            )

    def _signature(
        self, encoded_path: str, extra: Mapping[str, str], expires: str
    ) -> str:
        message = "\n".join((encoded_path, urlencode(sorted(extra.items())), expires))
        digest = hmac.new(self._key, message.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def canonical_path(path: str) -> str:
    """Percent-encode a decoded URL path the one way signatures use."""
    return quote(path, safe="/")


def load_or_create_key(data_dir: Path, configured: str | None) -> bytes:
    """Return the configured signing key, else the one kept in the data folder.

    The kept key is 32 random bytes written as 64 hex characters to
    ``data_dir/signing.key`` (mode 0600). Putting that text in ``TILEWORK_SIGNING_KEY``
    gives the same key. A blank configured key counts as not configured.
    """
    if configured is not None and configured.strip():
        return configured.encode("utf-8")

    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_key_file(path)
    return _read_key_file(path)


def _check_sign_arguments(
    path: str, ttl_seconds: int, extra: Mapping[str, str]
) -> None:
    if not path.startswith("/"):
        raise ValueError(f"The path {path!r} must start with '/'; pass the URL path.")
    if ttl_seconds <= 0:
        raise ValueError(
            f"The link lifetime {ttl_seconds} s is not positive; give at least 1 s."
        )
    reserved = sorted(RESERVED_PARAMS.intersection(extra))
    if reserved:
        raise ValueError(
            f"The parameters {reserved} are reserved for the signature; rename them."
        )


def _single_values(query: Mapping[str, str]) -> dict[str, str]:
    items: Iterable[tuple[str, str]] = (
        query.multi_items() if isinstance(query, _MultiValued) else query.items()
    )
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise Forbidden(
                f"This link repeats the parameter {name!r}; request a new link "
                "instead of editing this one."
            )
        values[name] = value
    return values


def _create_key_file(path: Path) -> None:
    text = f"{secrets.token_hex(32)}\n".encode("ascii")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    _write_new_file(temp, text)

    try:
        os.link(temp, path)
    except FileExistsError:
        logger.debug("Another process created %s first; using its key", path)
    except OSError:
        _create_without_link(path, text)
    else:
        logger.info("Created a new URL signing key in %s", path)
    finally:
        temp.unlink(missing_ok=True)


def _create_without_link(path: Path, text: bytes) -> None:
    try:
        _write_new_file(path, text)
    except FileExistsError:
        logger.debug("Another process created %s first; using its key", path)
    else:
        logger.info("Created a new URL signing key in %s", path)


def _write_new_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & 0o077:
        logger.warning(
            "The signing key file %s can be read by other users (mode %o); run "
            "chmod 600 on it.",
            path,
            mode & 0o777,
        )

    deadline = time.monotonic() + _KEY_FILE_WAIT_SECONDS
    key = path.read_bytes().strip()
    while not key and time.monotonic() < deadline:
        time.sleep(0.05)
        key = path.read_bytes().strip()

    if not key:
        raise ValueError(
            f"The signing key file {path} is empty; delete it to get a new key or "
            "set TILEWORK_SIGNING_KEY."
        )
    return key
