"""3D colour lookup tables in the .cube format, and file paths inside filter graphs."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tilework.errors import ProbeError

logger = logging.getLogger(__name__)

MIN_SIZE = 2
MAX_SIZE = 256
DOMAIN_SLACK = 0.01
"""Share of the domain's span a value may overshoot it, for rounding in exports."""

_KEYWORDS_WITH_NUMBERS = {"LUT_3D_SIZE", "DOMAIN_MIN", "DOMAIN_MAX"}
_IGNORED_KEYWORDS = {"TITLE", "LUT_3D_INPUT_RANGE"}


@dataclass
class _Header:
    size: int | None = None
    low: tuple[float, float, float] = (0.0, 0.0, 0.0)
    high: tuple[float, float, float] = (1.0, 1.0, 1.0)


def check_cube(path: Path) -> None:
    """Check that ``path`` is a well-formed 3D .cube LUT; raise ProbeError if not.

    It needs ``LUT_3D_SIZE`` (2 to 256) before the data, then exactly size³ rows of
    three numbers each, all within ``DOMAIN_MIN``..``DOMAIN_MAX`` (0..1 by default).
    """
    header = _Header()
    rows = 0
    try:
        for number, line in _meaningful_lines(path):
            if line[0].isalpha():
                _read_keyword(path, number, line, header, data_started=rows > 0)
                continue
            if header.size is None:
                raise _bad(path, f"line {number} has data before LUT_3D_SIZE")
            if rows == 0:
                _check_domain(path, header)
            _check_row(path, number, line, header)
            rows += 1
    except OSError as exc:
        raise ProbeError(f"{path.name} cannot be read ({exc.strerror}).") from exc
    except UnicodeDecodeError as exc:
        raise _bad(path, "it is not a text file") from exc

    if header.size is None:
        raise _bad(path, "it has no LUT_3D_SIZE line, so it is not a 3D LUT")
    if rows != header.size**3:
        raise _bad(
            path,
            f"LUT_3D_SIZE {header.size} needs {header.size**3} rows of colours "
            f"but the file has {rows}",
        )


def _meaningful_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8-sig") as file:
        for number, raw in enumerate(file, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield number, line


def _read_keyword(
    path: Path, number: int, line: str, header: _Header, *, data_started: bool
) -> None:
    keyword, _, rest = line.partition(" ")
    if keyword in _IGNORED_KEYWORDS:
        return
    if keyword == "LUT_1D_SIZE":
        raise _bad(path, "it is a 1D LUT; upload a 3D LUT (LUT_3D_SIZE)")
    if keyword not in _KEYWORDS_WITH_NUMBERS:
        logger.debug("%s line %d: skipping unknown keyword %s", path, number, keyword)
        return
    if data_started:
        raise _bad(path, f"line {number}: {keyword} must come before the colour rows")

    if keyword == "LUT_3D_SIZE":
        header.size = _size(path, number, rest)
    elif keyword == "DOMAIN_MIN":
        header.low = _three_numbers(path, number, rest)
    else:
        header.high = _three_numbers(path, number, rest)


def _check_domain(path: Path, header: _Header) -> None:
    if any(lo >= hi for lo, hi in zip(header.low, header.high, strict=True)):
        raise _bad(path, "DOMAIN_MAX must be above DOMAIN_MIN in every channel")


def _size(path: Path, number: int, text: str) -> int:
    try:
        size = int(text.strip())
    except ValueError:
        shown = text.strip()
        raise _bad(
            path, f"line {number}: LUT_3D_SIZE {shown!r} is no whole number"
        ) from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise _bad(
            path,
            f"line {number}: LUT_3D_SIZE {size} is outside {MIN_SIZE} to {MAX_SIZE}",
        )
    return size


def _three_numbers(path: Path, number: int, text: str) -> tuple[float, float, float]:
    parts = text.split()
    if len(parts) != 3:
        raise _bad(path, f"line {number} should hold three numbers, not {len(parts)}")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise _bad(path, f"line {number} holds something that is no number") from None
    if not all(math.isfinite(value) for value in values):
        raise _bad(path, f"line {number} holds a number that is not finite")
    return values[0], values[1], values[2]


def _check_row(path: Path, number: int, line: str, header: _Header) -> None:
    values = _three_numbers(path, number, line)
    for value, low, high in zip(values, header.low, header.high, strict=True):
        slack = DOMAIN_SLACK * (high - low)
        if not low - slack <= value <= high + slack:
            raise _bad(
                path,
                f"line {number}: {value:g} is outside the domain {low:g} to {high:g}",
            )


def _bad(path: Path, reason: str) -> ProbeError:
    return ProbeError(f"{path.name} is not a usable .cube LUT: {reason}.")


def filter_value(text: str) -> str:
    """``text`` escaped as an option value inside an ffmpeg filter graph.

    Two levels apply: the filter's own option parser (``\\``, ``'``, ``:``) and the
    graph parser (``\\``, ``'``, ``[``, ``]``, ``,``, ``;``). Other characters,
    non-ASCII ones included, pass as they are.
    """
    option = "".join(f"\\{c}" if c in "\\':" else c for c in text)
    return "".join(f"\\{c}" if c in "\\'[],;" else c for c in option)


def filter_path(path: Path) -> str:
    """A file path escaped as an option value inside an ffmpeg filter graph."""
    return filter_value(str(path))
