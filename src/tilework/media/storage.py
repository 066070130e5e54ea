"""Media files kept under one root folder, addressed by relative keys.

A key is a relative POSIX path such as ``uploads/<asset_id>/<filename>`` or
``renders/<run_id>/<node_id>/<task_id>/output.mp4``.
Every write lands in a temporary file next to its target first and is moved into place
with :func:`os.replace`, so readers see either the old file or the whole new one, never
a partial file.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from tilework.errors import NotFound

logger = logging.getLogger(__name__)

_TEMP_PREFIX = ".tmp-"
_MAX_SUFFIX_CHARS = 16


class Storage(Protocol):
    """Where media files live; local disk today, a shared backend later."""

    def path(self, key: str) -> Path: ...

    def put_file(self, src: Path, key: str, *, move: bool = False) -> Path: ...

    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def write_path(self, key: str) -> AbstractContextManager[Path]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...


class LocalStorage:
    """Keeps media files under ``root`` on the local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Return the file path of ``key``; raise ValueError if it leaves the root."""
        check_key(key)

        candidate = self.root / key
        root = self.root.resolve()
        if not candidate.resolve().is_relative_to(root):
            raise ValueError(
                f"The storage key {key!r} leads outside {root} through a symbolic "
                "link; remove the link or use another key."
            )
        return candidate

    def put_file(self, src: Path, key: str, *, move: bool = False) -> Path:
        """Store a copy of ``src`` (or ``src`` itself when ``move``) under ``key``."""
        dest = self.path(key)

        with _staged(dest) as temp:
            if not (move and _rename_within_device(src, temp)):
                shutil.copyfile(src, temp)
            _fsync_path(temp)

        if move:
            src.unlink(missing_ok=True)
        logger.debug("Stored %s as %s", src, key)
        return dest

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Give a file to write; it replaces ``key`` only if the block succeeds."""
        dest = self.path(key)

        with _staged(dest) as temp, temp.open("xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    @contextmanager
    def write_path(self, key: str) -> Iterator[Path]:
        """Give a path to write (e.g. by ffmpeg); it replaces ``key`` on success."""
        dest = self.path(key)

        with _staged(dest) as temp:
            yield temp
            if not temp.is_file():
                raise FileNotFoundError(
                    f"Nothing was written to {temp} for the storage key {key!r}; "
                    "write the file before leaving the block."
                )
            _fsync_path(temp)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        """Remove ``key``; return False if it was not there."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(
                f"There is no stored file with the key {key!r}; check the key or "
                "store the file first."
            ) from None


def check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is a plain relative POSIX path."""
    problem = _key_problem(key)
    if problem:
        raise ValueError(
            f"The storage key {key!r} {problem}; use a relative path made of plain "
            "names separated by '/'."
        )


def _key_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    if key.startswith("/"):
        return "is absolute"
    if "\\" in key:
        return "contains a backslash"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        return "contains a NUL or control character"

    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return "has an empty, '.' or '..' segment"
    return None


@contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = dest.suffix if len(dest.suffix) <= _MAX_SUFFIX_CHARS else ""
    temp = dest.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}{suffix}")

    try:
        yield temp
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

    _fsync_directory(dest.parent)


def _rename_within_device(src: Path, dest: Path) -> bool:
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return False
        raise
    return True


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("Could not fsync the folder %s", path)
    finally:
        os.close(fd)
