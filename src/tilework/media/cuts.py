"""Cut lists: finding where to cut, and rendering the pieces that stay.

A cut list is a sorted list of :class:`Segment` (seconds in the input, as players
show them: the file starts at 0). :func:`render_segments` joins those pieces in one
ffmpeg pass with one encode, each cut landing on a video frame so that the picture
and the sound are cut at the same instant and stay in sync. The analysis helpers
(:func:`detect_silences`, :func:`speech_energy`, :func:`scene_cuts`) tell the tiles
where pauses, loud passages and shot changes are.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tilework.config import Settings
from tilework.errors import TileError
from tilework.media.asr import Transcriber, Transcript
from tilework.media.probe import MediaInfo
from tilework.media.render import DEFAULT_FPS, constant_rate, encode_args
from tilework.tiles.base import MediaFile, TileContext

logger = logging.getLogger(__name__)

SEEK_MARGIN = 2.0
"""Seconds decoded before the first cut, so the seek never lands past it."""
INPUT_TAIL = 1.0
"""Seconds read after the last cut, so its last frame is never cut short."""


@dataclass(frozen=True, order=True)
class Segment:
    """A stretch of the input, ``start`` to ``end`` seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.end >= self.start:
            raise ValueError(f"a segment cannot end ({self.end}) before its start")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def overlaps(self, other: Segment) -> bool:
        return self.start < other.end and other.start < self.end


# Cut list arithmetic


def frame_seconds(info: MediaInfo) -> float:
    """The length of one frame of ``info`` as it is cut, the shortest piece worth
    keeping."""
    return _Grid.of(info).step


def normalize(
    segments: Iterable[Segment], duration: float, *, min_length: float
) -> list[Segment]:
    """Sorted, clamped to ``0..duration``, overlaps and near-touches merged, and
    pieces shorter than ``min_length`` dropped."""
    clamped = sorted(
        Segment(max(0.0, s.start), min(duration, s.end))
        for s in segments
        if s.end > 0 and s.start < duration
    )

    merged: list[Segment] = []
    for segment in clamped:
        if merged and segment.start - merged[-1].end < min_length:
            last = merged.pop()
            segment = Segment(last.start, max(last.end, segment.end))
        merged.append(segment)

    return [segment for segment in merged if segment.duration >= min_length]


def complement(segments: Sequence[Segment], duration: float) -> list[Segment]:
    """The parts of ``0..duration`` that no segment covers; ``segments`` sorted."""
    gaps: list[Segment] = []
    position = 0.0
    for segment in segments:
        if segment.start > position:
            gaps.append(Segment(position, segment.start))
        position = max(position, segment.end)
    if position < duration:
        gaps.append(Segment(position, duration))
    return gaps


def subtract(segments: Sequence[Segment], holes: Sequence[Segment]) -> list[Segment]:
    """``segments`` with every part that a hole covers taken out."""
    merged = normalize(holes, math.inf, min_length=0.0)
    starts = [hole.start for hole in merged]
    result: list[Segment] = []
    for segment in segments:
        position = segment.start
        index = max(0, bisect.bisect_right(starts, segment.start) - 1)
        for hole in merged[index:]:
            if hole.start >= segment.end:
                break
            if hole.start > position:
                result.append(Segment(position, hole.start))
            position = max(position, hole.end)
        if position < segment.end:
            result.append(Segment(position, segment.end))
    return result


def total_seconds(segments: Iterable[Segment]) -> float:
    return sum(segment.duration for segment in segments)


def cut_metadata(segments: Sequence[Segment], source_duration: float) -> dict[str, Any]:
    """The cut list as the timeline exporter reads it: the kept source ranges."""
    return {
        "cuts": [
            {"source_start": round(s.start, 6), "source_end": round(s.end, 6)}
            for s in segments
        ],
        "source_duration": round(source_duration, 6),
    }


def scaled_progress(
    report: Callable[[float], None], low: float, high: float
) -> Callable[[float], None]:
    """A progress callback that maps 0..100 onto ``low..high`` of ``report``."""

    def scaled(percent: float) -> None:
        report(low + (high - low) * percent / 100.0)

    return scaled


def segments_json(segments: Sequence[Segment]) -> list[dict[str, float]]:
    return [{"start": round(s.start, 3), "end": round(s.end, 3)} for s in segments]


# Rendering


@dataclass(frozen=True)
class _Grid:
    """The frame times of the video as it is cut: every ``step`` seconds from 0,
    the last frame ending at ``duration``. Variable frame rate video is put on
    such a grid first (``fps`` filter), so every piece is whole frames."""

    step: float
    duration: float
    forced_rate: int | None

    @classmethod
    def of(cls, info: MediaInfo) -> _Grid:
        forced = constant_rate(info)
        fps = forced or info.fps or DEFAULT_FPS
        return cls(step=1.0 / fps, duration=info.duration, forced_rate=forced)

    def snap(self, instant: float) -> float:
        """The frame time nearest ``instant``, or the end of the video."""
        if instant >= self.duration - self.step / 2:
            return self.duration
        return max(0.0, math.floor(instant / self.step + 0.5) * self.step)

    def floor(self, instant: float) -> float:
        return max(0.0, math.floor(instant / self.step) * self.step)

    def threshold(self, snapped: float) -> float:
        """A quarter frame before ``snapped``: far enough from both neighbouring
        frames that no time base rounding moves a split past a frame; past the
        end for the end."""
        if snapped >= self.duration:
            return self.duration + INPUT_TAIL
        return max(0.0, snapped - self.step / 4)


def render_segments(
    source: MediaFile,
    segments: Sequence[Segment],
    out: Path,
    *,
    ctx: TileContext,
    on_progress: Callable[[float], None] | None = None,
) -> list[Segment]:
    """Render the ``segments`` of ``source`` joined, into ``out``, in one pass.

    Each cut is moved to the nearest video frame so the sound is cut where the
    picture is; returns the segments as rendered, which is the cut list to report.
    Raises :class:`TileError` when nothing of at least one frame is left.
    """
    info = source.info
    if not info.has_video:
        raise TileError(
            f"{source.path.name} has no video stream; this step needs a video input."
        )

    grid = _Grid.of(info)
    kept = _snap(grid, normalize(segments, info.duration, min_length=grid.step), info)
    if not kept:
        raise TileError(
            f"Nothing of {source.path.name} is left to render: every piece to keep "
            "is shorter than one frame; keep a longer part of the video."
        )

    offset = grid.floor(kept[0].start - SEEK_MARGIN)
    script = out.with_name(f".{out.stem}.filtergraph")
    script.write_text(_cut_graph(info, grid, kept, offset), encoding="utf-8")
    try:
        _encode(source, script, offset, kept, out, ctx, on_progress)
    finally:
        script.unlink(missing_ok=True)

    logger.debug("rendered %d segments of %s into %s", len(kept), source.path, out)
    return kept


def _snap(grid: _Grid, wanted: list[Segment], info: MediaInfo) -> list[Segment]:
    """The pieces moved onto frames; pieces that snapping made touch are joined.

    Without sound a piece needs two frames, as the join measures a piece's
    picture by its frames' spacing.
    """
    frames = 1 if info.has_audio else 2
    snapped: list[Segment] = []
    for segment in wanted:
        piece = Segment(grid.snap(segment.start), grid.snap(segment.end))
        if snapped and piece.start <= snapped[-1].end + grid.step / 2:
            piece = Segment(snapped.pop().start, piece.end)
        snapped.append(piece)
    return [piece for piece in snapped if piece.duration > (frames - 0.5) * grid.step]


def _encode(
    source: MediaFile,
    script: Path,
    offset: float,
    kept: list[Segment],
    out: Path,
    ctx: TileContext,
    on_progress: Callable[[float], None] | None,
) -> None:
    length = kept[-1].end - offset + INPUT_TAIL
    read = ["-ss", f"{offset:.6f}"] if offset > 0 else []
    read += ["-t", f"{length:.6f}", "-i", str(source.path)]
    audio_map = ["-map", "[aout]"] if source.info.has_audio else []
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    args = [
        *read,
        *("-/filter_complex", str(script), "-map", "[vout]", *audio_map),
        *encode_args(ctx.x264_preset, audio=source.info.has_audio),
        str(partial),
    ]
    try:
        ctx.ffmpeg.run(
            args,
            cancel=ctx.cancel,
            duration=total_seconds(kept),
            on_progress=on_progress or ctx.report_progress,
            description="Rendering the cut",
        )
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    partial.replace(out)


def _cut_graph(info: MediaInfo, grid: _Grid, kept: list[Segment], offset: float) -> str:
    """The filter graph: the input split at every cut, the kept pieces joined.

    ``segment`` and ``asegment`` hand each frame and sample to exactly one piece,
    so the work grows with the length of the input, not with the number of cuts.
    """
    instants = [instant for piece in kept for instant in (piece.start, piece.end)]
    video = _Pieces("vs", [grid.threshold(instant) - offset for instant in instants])
    audio = _Pieces("as", [instant - offset for instant in instants])

    regular = f"fps={grid.forced_rate}:start_time=0," if grid.forced_rate else ""
    chains = [f"[0:V:0]{regular}{video.splitter('segment')}"]
    chains += [f"[{label}]nullsink" for label in video.dropped()]
    if info.has_audio:
        chains.append(f"[0:a:0]{audio.splitter('asegment')}")
        chains += [f"[{label}]anullsink" for label in audio.dropped()]

    joined: list[str] = []
    for index, piece in enumerate(kept):
        start = _ts(piece.start - offset)
        chains.append(f"[{video.kept(index)}]setpts=PTS-{start}/TB[v{index}]")
        joined.append(f"[v{index}]")
        if info.has_audio:
            chains.append(f"[{audio.kept(index)}]asetpts=PTS-{start}/TB[a{index}]")
            joined.append(f"[a{index}]")

    streams, audio_count = ("[vc][aout]", 1) if info.has_audio else ("[vc]", 0)
    chains.append(f"{''.join(joined)}concat=n={len(kept)}:v=1:a={audio_count}{streams}")
    chains.append(f"[vc]{','.join(_finishing_filters(info))}[vout]")
    return ";\n".join(chains)


class _Pieces:
    """The outputs of a (a)segment filter that splits at ``points``: start and end
    of each kept piece in turn. A first point at 0 is left out, as no piece comes
    before it."""

    def __init__(self, prefix: str, points: list[float]) -> None:
        self.prefix = prefix
        self.lead = 1 if points[0] > 0 else 0
        self.points = points if self.lead else points[1:]

    @property
    def count(self) -> int:
        return len(self.points) + 1

    def splitter(self, name: str) -> str:
        times = "|".join(_ts(point) for point in self.points)
        labels = "".join(f"[{self.prefix}{index}]" for index in range(self.count))
        return f"{name}=timestamps={times}{labels}"

    def kept(self, index: int) -> str:
        return f"{self.prefix}{2 * index + self.lead}"

    def dropped(self) -> list[str]:
        kept = {self.kept(index) for index in range((self.count - self.lead) // 2)}
        names = (f"{self.prefix}{index}" for index in range(self.count))
        return [name for name in names if name not in kept]


def _ts(seconds: float) -> str:
    return f"{max(0.0, seconds):.6f}"


def _finishing_filters(info: MediaInfo) -> list[str]:
    """Even sides and yuv420p."""
    width, height = info.display_width, info.display_height
    filters = []
    if width is None or height is None or width % 2 or height % 2:
        filters.append("crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0")
    filters.append("format=yuv420p")
    return filters


# Transcripts


class TranscriberFactory(Protocol):
    """Makes the speech recognizer from the settings, like ``get_transcriber``;
    ``tile`` names the step in its errors."""

    def __call__(self, settings: Settings, *, tile: str | None = None) -> Transcriber:
        """The recognizer; raises TileError when there is none."""
        ...


def try_transcribe(
    factory: TranscriberFactory,
    source: MediaFile,
    ctx: TileContext,
    *,
    tile: str,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[Transcript | None, str | None]:
    """The transcript of ``source``, or None and the reason speech recognition
    could not give one (for instance, it is not installed)."""
    try:
        transcriber = factory(ctx.settings, tile=tile)
        transcript = transcriber.transcribe(
            source.path, ffmpeg=ctx.ffmpeg, cancel=ctx.cancel, on_progress=on_progress
        )
    except TileError as exc:
        logger.info("no transcript of %s: %s", source.path.name, exc)
        return None, str(exc)
    return transcript, None


_NOT_WORD = re.compile(r"[^\w']+")


def plain_word(text: str) -> str:
    """A word as spoken, for matching: lowercase, without punctuation."""
    return _NOT_WORD.sub("", text.lower()).strip("'")
