"""Subtitles from recognised words: caption lines, SRT and WebVTT files, styled ASS.

Words are grouped into short caption lines (cues) that never span a pause. Cues are
written as SRT and WebVTT with pysubs2, and as an ASS script that ffmpeg's ``ass``
filter (libass) burns into the picture. An ASS caption is drawn in up to three layers
of the same text: an optional background box, an optional soft drop shadow, and the
text itself, which can highlight the word being spoken (``colored``), enlarge it
(``scaling``) or fill the words as they are said (``karaoke``).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

import pysubs2

from tilework.media.asr import Word

logger = logging.getLogger(__name__)

HighlightStyle = Literal["colored", "scaling", "karaoke"]

MAX_PAUSE = 0.7
"""A silence longer than this (seconds) always ends a caption line."""
LINGER = 0.4
"""Seconds a line stays up after its last word, unless the next line starts."""
SENTENCE_ENDS = (".", "?", "!", "…")
SCALE_UP = 125
SCALE_MS = 100
FONT_LIST_TIMEOUT = 10.0
GHOST = "&HFE&"
"""Alpha of the text in the shadow layer: libass draws no shadow for fully
transparent text, and one step short of it is invisible."""

_FILTER_VALUE_SPECIAL = re.compile(r"([\\':])")
_FILTER_GRAPH_SPECIAL = re.compile(r"([\\'\[\],;])")
_HEX_COLOR = re.compile(r"^#([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})$")
_ASS_UNSAFE = str.maketrans({"{": "(", "}": ")", "\\": "/", "\n": " ", "\r": " "})


@dataclass(frozen=True)
class Cue:
    """One caption line: consecutive words shown together from ``start`` to ``end``.

    ``breaks`` holds the indices of words that begin a new row of the line.
    """

    words: tuple[Word, ...]
    start: float
    end: float
    breaks: frozenset[int] = field(default_factory=frozenset)

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


def group_words(
    words: Sequence[Word],
    *,
    min_words: int = 1,
    max_words: int = 4,
    max_chars: int = 32,
    max_pause: float = MAX_PAUSE,
) -> list[Cue]:
    """Split words into caption lines of ``min_words``..``max_words`` words.

    A pause longer than ``max_pause`` always ends a line, even a short one; a
    sentence ends a line once it has ``min_words``. Longer stretches are cut into
    lines of nearly equal length that keep to ``max_words`` and, where
    ``min_words`` allows, to ``max_chars`` characters.
    """
    lines: list[list[Word]] = []
    for phrase in _phrases(words, min_words, max_pause):
        lines.extend(_split_phrase(phrase, min_words, max_words, max_chars))
    return _timed(lines)


def _phrases(
    words: Sequence[Word], min_words: int, max_pause: float
) -> list[list[Word]]:
    phrases: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and _ends_phrase(current, word, min_words, max_pause):
            phrases.append(current)
            current = []
        current.append(word)
    if current:
        phrases.append(current)
    return phrases


def _ends_phrase(
    current: list[Word], following: Word, min_words: int, max_pause: float
) -> bool:
    previous = current[-1]
    if following.start - previous.end > max_pause:
        return True
    return len(current) >= min_words and previous.text.endswith(SENTENCE_ENDS)


def _split_phrase(
    phrase: list[Word], min_words: int, max_words: int, max_chars: int
) -> list[list[Word]]:
    count = len(phrase)
    chars = len(" ".join(word.text for word in phrase))
    by_chars = math.ceil(chars / max(1, max_chars))
    parts = max(1, min(by_chars, count // max(1, min_words)))
    parts = max(parts, math.ceil(count / max_words))

    size, extra = divmod(count, parts)
    lines: list[list[Word]] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        lines.append(phrase[start:end])
        start = end
    return lines


def _timed(lines: list[list[Word]]) -> list[Cue]:
    cues: list[Cue] = []
    for index, line in enumerate(lines):
        start = line[0].start
        end = max(line[-1].end, start + 0.01) + LINGER
        if index + 1 < len(lines):
            end = min(end, lines[index + 1][0].start)
        cues.append(Cue(words=tuple(line), start=start, end=max(end, start + 0.01)))
    return cues


def wrap_rows(cue: Cue, max_chars: int) -> Cue:
    """The cue with row breaks so that rows keep to ``max_chars`` where possible."""
    chars = len(cue.text)
    rows = min(len(cue.words), max(1, math.ceil(chars / max(1, max_chars))))
    if rows == 1:
        return replace(cue, breaks=frozenset())

    target = chars / rows
    breaks: set[int] = set()
    running = 0
    for index, word in enumerate(cue.words):
        if index and running >= target * (len(breaks) + 1) - len(word.text) / 2:
            breaks.add(index)
        running += len(word.text) + 1
        if len(breaks) == rows - 1:
            break
    return replace(cue, breaks=frozenset(breaks))


def write_srt(cues: Sequence[Cue], path: Path) -> Path:
    _plain_document(cues).save(str(path), format_="srt")
    return path


def write_vtt(cues: Sequence[Cue], path: Path) -> Path:
    _plain_document(cues).save(str(path), format_="vtt")
    return path


def _plain_document(cues: Sequence[Cue]) -> pysubs2.SSAFile:
    document = pysubs2.SSAFile()
    for cue in cues:
        text = ass_escape(cue.text)
        document.events.append(
            pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=text)
        )
    return document


def ass_escape(text: str) -> str:
    """Text with the characters that ASS reads as markup replaced by lookalikes."""
    return text.translate(_ASS_UNSAFE)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def parse_hex_color(value: str) -> tuple[int, int, int]:
    """The red, green and blue of ``#RRGGBB``; ValueError for anything else."""
    match = _HEX_COLOR.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a colour of the form #RRGGBB")
    red, green, blue = (int(part, 16) for part in match.groups())
    return red, green, blue


def ass_color(value: str) -> str:
    """``#RRGGBB`` as an ASS override colour, ``&HBBGGRR&``."""
    red, green, blue = parse_hex_color(value)
    return f"&H{blue:02X}{green:02X}{red:02X}&"


def ass_alpha(opacity: float) -> str:
    """An opacity of 0..1 as an ASS override alpha (``&H00&`` is opaque)."""
    transparency = round((1.0 - min(1.0, max(0.0, opacity))) * 255)
    return f"&H{transparency:02X}&"


def _style_color(value: str, opacity: float = 1.0) -> pysubs2.Color:
    red, green, blue = parse_hex_color(value)
    transparency = round((1.0 - min(1.0, max(0.0, opacity))) * 255)
    return pysubs2.Color(red, green, blue, transparency)


@dataclass(frozen=True)
class Shadow:
    color: str
    opacity: float
    blur: float
    offset: float


@dataclass(frozen=True)
class Box:
    color: str
    opacity: float
    padding: float


@dataclass(frozen=True)
class Look:
    """How caption text is drawn; colours are ``#RRGGBB``, sizes in video pixels."""

    font: str
    weight: int
    size: int
    color: str
    highlight_color: str
    stroke_color: str = "#000000"
    stroke_width: float = 0.0
    shadow: Shadow | None = None
    box: Box | None = None


@dataclass(frozen=True)
class Paint:
    """How one layer colours words and makes them visible or invisible."""

    fill: str
    highlight: str
    shown: str
    hidden: str


WordsText = Callable[[Cue, Paint], str]
"""Builds the text of a cue, with per-word override tags, for one layer."""


class AssScript:
    """An ASS document sized to the video, gathering captions in layers."""

    def __init__(self, width: int, height: int, look: Look) -> None:
        self.look = look
        self.count = 0
        self._document = pysubs2.SSAFile()
        self._document.info.update(
            {
                "PlayResX": str(width),
                "PlayResY": str(height),
                "WrapStyle": "0",
                "ScaledBorderAndShadow": "yes",
            }
        )
        self._document.styles = {"Text": _text_style(look)}
        if look.box is not None:
            self._document.styles["Box"] = _box_style(look, look.box)

    def add(self, cue: Cue, *, line_tags: str, words_text: WordsText) -> None:
        """Add one caption; ``line_tags`` (position, motion) apply to every layer."""
        start, end = _ms(cue.start), _ms(cue.end)
        common = f"\\b{self.look.weight}{line_tags}"

        if self.look.box is not None:
            text = f"{{{common}\\1a&HFF&\\2a&HFF&}}{plain_rows(cue)}"
            self._event(0, "Box", start, end, text)
        if self.look.shadow is not None:
            shadow = self.look.shadow
            ghost = f"\\1a{GHOST}\\2a{GHOST}\\3a{GHOST}"
            prefix = (
                f"{common}{ghost}\\4c{ass_color(shadow.color)}"
                f"\\4a{ass_alpha(shadow.opacity)}\\shad{shadow.offset:g}"
                f"\\blur{shadow.blur:g}"
            )
            text = f"{{{prefix}}}{words_text(cue, shadow_paint(shadow))}"
            self._event(1, "Text", start, end, text)
        text = f"{{{common}}}{words_text(cue, text_paint(self.look))}"
        self._event(2, "Text", start, end, text)
        self.count += 1

    def _event(self, layer: int, style: str, start: int, end: int, text: str) -> None:
        self._document.events.append(
            pysubs2.SSAEvent(start=start, end=end, layer=layer, style=style, text=text)
        )

    def save(self, path: Path) -> Path:
        self._document.save(str(path), format_="ass")
        return path


def _text_style(look: Look) -> pysubs2.SSAStyle:
    return pysubs2.SSAStyle(
        fontname=look.font,
        fontsize=look.size,
        primarycolor=_style_color(look.color),
        secondarycolor=_style_color(look.color),
        outlinecolor=_style_color(look.stroke_color),
        backcolor=_style_color("#000000", 0.0),
        bold=look.weight >= 600,
        borderstyle=1,
        outline=look.stroke_width,
        shadow=0,
        alignment=pysubs2.Alignment.MIDDLE_CENTER,
        marginl=0,
        marginr=0,
        marginv=0,
    )


def _box_style(look: Look, box: Box) -> pysubs2.SSAStyle:
    style = _text_style(look)
    style.borderstyle = 3
    style.outline = box.padding
    style.outlinecolor = _style_color(box.color, box.opacity)
    return style


def text_paint(look: Look) -> Paint:
    return Paint(
        fill=ass_color(look.color),
        highlight=ass_color(look.highlight_color),
        shown="\\1a&H00&\\3a&H00&",
        hidden="\\1a&HFF&\\3a&HFF&",
    )


def shadow_paint(shadow: Shadow) -> Paint:
    """Paint for the shadow layer, where only the shadow itself is ever visible."""
    color = ass_color(shadow.color)
    return Paint(
        fill=color,
        highlight=color,
        shown=f"\\4a{ass_alpha(shadow.opacity)}",
        hidden="\\4a&HFF&",
    )


def plain_rows(cue: Cue) -> str:
    """The cue's words as ASS text, with ``\\N`` at its row breaks."""
    return _joined(cue, [ass_escape(word.text) for word in cue.words])


def _joined(cue: Cue, pieces: Sequence[str]) -> str:
    text = ""
    for index, piece in enumerate(pieces):
        if index:
            text += "\\N" if index in cue.breaks else " "
        text += piece
    return text


def _word_times(cue: Cue) -> list[tuple[int, int]]:
    """Each word's (from, to) in ms from the cue start; a word lasts until the next."""
    times: list[tuple[int, int]] = []
    length = _ms(cue.end - cue.start)
    for index, word in enumerate(cue.words):
        begin = max(0, _ms(word.start - cue.start))
        if index + 1 < len(cue.words):
            until = _ms(cue.words[index + 1].start - cue.start)
        else:
            until = length
        times.append((begin, max(begin, until)))
    return times


def colored_words(cue: Cue, paint: Paint) -> str:
    """Words in the fill colour; the word being spoken in the highlight colour."""
    pieces = []
    for word, (begin, until) in zip(cue.words, _word_times(cue), strict=True):
        tags = (
            f"\\1c{paint.fill}\\t({begin},{begin + 1},\\1c{paint.highlight})"
            f"\\t({until},{until + 1},\\1c{paint.fill})"
        )
        pieces.append(f"{{{tags}}}{ass_escape(word.text)}")
    return _joined(cue, pieces)


def scaling_words(cue: Cue, paint: Paint) -> str:
    """Like :func:`colored_words`, and the spoken word grows while it is said."""
    pieces = []
    for word, (begin, until) in zip(cue.words, _word_times(cue), strict=True):
        grow = f"\\fscx{SCALE_UP}\\fscy{SCALE_UP}"
        tags = (
            f"\\1c{paint.fill}\\fscx100\\fscy100"
            f"\\t({begin},{begin + SCALE_MS},\\1c{paint.highlight}{grow})"
            f"\\t({until},{until + SCALE_MS},\\1c{paint.fill}\\fscx100\\fscy100)"
        )
        pieces.append(f"{{{tags}}}{ass_escape(word.text)}")
    return _joined(cue, pieces)


def karaoke_words(cue: Cue, paint: Paint) -> str:
    """Words that fill from the fill colour to the highlight colour as they are said."""
    times = _word_times(cue)
    lead = round(times[0][0] / 10) if times else 0
    pieces = []
    for word, (begin, until) in zip(cue.words, times, strict=True):
        centiseconds = max(1, round(until / 10) - round(begin / 10))
        pieces.append(f"{{\\kf{centiseconds}}}{ass_escape(word.text)}")
    wait = f"\\k{lead}" if lead else ""
    return f"{{\\1c{paint.highlight}\\2c{paint.fill}{wait}}}" + _joined(cue, pieces)


def plain_words(cue: Cue, paint: Paint) -> str:
    """The words as they are, in the layer's own colours."""
    return plain_rows(cue)


def typed_words(cue: Cue, paint: Paint) -> str:
    """Letters that appear one by one while their word is being said."""
    pieces = []
    for word, (begin, _) in zip(cue.words, _word_times(cue), strict=True):
        text = ass_escape(word.text)
        spoken = max(1, _ms(word.end - word.start))
        letters = [
            f"{{{paint.hidden}\\t({at},{at + 1},{paint.shown})}}{letter}"
            for at, letter in (
                (begin + spoken * index // len(text), letter)
                for index, letter in enumerate(text)
            )
        ]
        pieces.append("".join(letters))
    return _joined(cue, pieces)


HIGHLIGHTS: dict[str, WordsText] = {
    "colored": colored_words,
    "scaling": scaling_words,
    "karaoke": karaoke_words,
}


def ass_filter(script: Path) -> str:
    """The ffmpeg filter that burns ``script`` in, with the path escaped for a graph.

    The path is escaped twice: once as the filter's option value, once more for the
    filter graph around it, so colons, quotes, brackets and commas are all safe.
    """
    value = _FILTER_VALUE_SPECIAL.sub(r"\\\1", str(script))
    escaped = _FILTER_GRAPH_SPECIAL.sub(r"\\\1", value)
    return f"ass=filename={escaped}"


@cache
def installed_font_families() -> frozenset[str] | None:
    """Font families fontconfig knows (lower case), or None when it cannot be asked."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        done = subprocess.run(
            [fc_list, ":", "family"],
            capture_output=True,
            text=True,
            timeout=FONT_LIST_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("cannot list fonts: %s", exc)
        return None
    if done.returncode != 0:
        return None

    families = {
        name.strip().lower()
        for line in done.stdout.splitlines()
        for name in line.split(",")
        if name.strip()
    }
    return frozenset(families)
