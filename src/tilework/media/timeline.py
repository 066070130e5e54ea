"""Editable timelines of a render: cut lists mapped to the source, and NLE exports.

:func:`export_timeline` writes a zip an editor opens on any machine: FCP 7 XML
(what Premiere Pro imports), an OpenTimelineIO file, a CMX 3600 EDL and the media.
Every media reference is the relative URL ``media/<percent-encoded name>``, so the
timeline finds its media wherever the zip is extracted, as long as the ``media``
folder stays next to the timeline files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote

import opentimelineio as otio

from tilework.errors import MediaError
from tilework.media.probe import MediaInfo

logger = logging.getLogger(__name__)

MEDIA_DIR = "media"
XML_NAME = "timeline.xml"
OTIO_NAME = "timeline.otio"
EDL_NAME = "timeline.edl"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
RATE_SNAP = 0.01
"""How close (frames per second) a rate must be to a standard rate to become it."""
EDL_REEL_LENGTH = 8
DEFAULT_AUDIO_RATE = 48000
DEFAULT_AUDIO_CHANNELS = 2
AUDIO_DEPTH = 16
EMPTY_SPAN = 1e-9

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_NOT_REEL = re.compile(r"[^A-Za-z0-9]")

FrameRange = tuple[int, int]
"""A cut as frame numbers of the source: the first frame in, the first frame out."""


@dataclass(frozen=True)
class Span:
    """A stretch of a source, ``start`` to ``end`` seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"a span needs finite times, not {self.start}..{self.end}")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"a span starts at 0 or later and ends after: {self}")

    @property
    def duration(self) -> float:
        return self.end - self.start


def compose(parent: Sequence[Span], child: Sequence[Span]) -> list[Span]:
    """Map ``child`` (a cut list in the time of a render) onto that render's source.

    ``parent`` lists the pieces of the source, in order, joined to make the render.
    A child span crossing a join becomes one span per parent piece it covers; the
    parts of child spans past the end of the render are dropped.
    """
    offsets = _offsets(parent)

    composed: list[Span] = []
    for span in child:
        composed += _map_span(span, parent, offsets)
    return composed


def _offsets(spans: Sequence[Span]) -> list[float]:
    """Where each span starts once the spans are joined end to end."""
    offsets: list[float] = []
    position = 0.0
    for span in spans:
        offsets.append(position)
        position += span.duration
    return offsets


def _map_span(span: Span, parent: Sequence[Span], offsets: list[float]) -> list[Span]:
    pieces: list[Span] = []
    for piece, offset in zip(parent, offsets, strict=True):
        start = max(span.start, offset)
        end = min(span.end, offset + piece.duration)
        if end - start > EMPTY_SPAN:
            shift = piece.start - offset
            pieces.append(Span(start + shift, end + shift))
    return pieces


def export_timeline(
    *,
    name: str,
    media: Path,
    info: MediaInfo,
    spans: Sequence[Span],
    out_zip: Path,
    media_name: str | None = None,
) -> Path:
    """Write ``out_zip``: the cuts ``spans`` of ``media`` as an editable timeline.

    The zip holds ``timeline.xml`` (FCP 7 XML), ``timeline.otio``, ``timeline.edl``
    (video only) and the media as ``media/<media_name>``. Each span is its own clip,
    on one video track and, when the media has sound, one audio track; in and out
    points are rounded to whole frames of the media.
    """
    if not info.has_video:
        raise MediaError(
            f"{media.name} has no video stream; a timeline export needs a video."
        )

    rate = frame_rate(info.fps)
    cuts = _frame_ranges(spans, rate, total_frames=_nearest_frame(info.duration, rate))
    file_name = _file_name(media_name or media.name, fallback=media.name)
    url = f"{MEDIA_DIR}/{quote(file_name, safe='')}"
    title = _printable(name) or Path(file_name).stem

    def reference() -> otio.schema.ExternalReference:
        return _media_reference(url, file_name, info, rate)

    timeline = _timeline(title, rate, _tracks(cuts, rate, reference, info.has_audio))
    timeline.metadata["fcp_xml"] = _sequence_metadata(info, rate)
    edl = _edl(title, rate, _tracks(cuts, rate, reference, False), _reel(file_name))

    texts = {
        XML_NAME: _fcp_xml(timeline),
        OTIO_NAME: otio.adapters.write_to_string(timeline, "otio_json"),
        EDL_NAME: edl,
    }
    _write_zip(out_zip, texts, media, f"{MEDIA_DIR}/{file_name}")
    logger.info("exported a timeline of %d cuts to %s", len(cuts), out_zip)
    return out_zip


def frame_rate(fps: float | None) -> Fraction:
    """The exact frame rate of a video whose measured rate is ``fps``.

    Within 0.01 of a whole number or of an NTSC rate (n * 1000/1001), it is that
    rate; otherwise ``fps`` itself as a fraction.
    """
    if fps is None or not math.isfinite(fps) or fps <= 0:
        raise MediaError("The video has no frame rate; it cannot be put on a timeline.")

    whole = round(fps)
    if whole > 0 and abs(fps - whole) <= RATE_SNAP:
        return Fraction(whole)
    ntsc = Fraction(math.ceil(fps) * 1000, 1001)
    if abs(fps - ntsc) <= RATE_SNAP:
        return ntsc

    logger.warning("%.4f fps is not a standard rate; FCP XML will round it", fps)
    return Fraction(fps).limit_denominator(1001)


def _frame_ranges(
    spans: Sequence[Span], rate: Fraction, *, total_frames: int
) -> list[FrameRange]:
    """The spans as whole frames of the media; spans shorter than a frame go."""
    cuts: list[FrameRange] = []
    for span in spans:
        first = min(_nearest_frame(span.start, rate), total_frames)
        end = min(_nearest_frame(span.end, rate), total_frames)
        if end > first:
            cuts.append((first, end))
        else:
            logger.warning("dropping %s: it holds no whole frame of the media", span)

    if not cuts:
        raise ValueError("none of the spans holds a whole frame of the media")
    return cuts


def _nearest_frame(seconds: float, rate: Fraction) -> int:
    """The frame boundary nearest to ``seconds``; the earlier one on a tie."""
    return math.ceil(Fraction(seconds) * rate - Fraction(1, 2))


def _file_name(name: str, *, fallback: str) -> str:
    """A plain file name for the media inside the zip: no folders, no controls."""
    cleaned = _printable(name.replace("/", "_").replace("\\", "_")).strip()
    if cleaned.strip(".") == "":
        return fallback
    return cleaned


def _printable(text: str) -> str:
    """``text`` without the control characters XML 1.0 and EDL lines cannot hold."""
    return _UNPRINTABLE.sub(" ", text).strip()


def _reel(file_name: str) -> str:
    """An EDL reel name: the file's letters and digits, at most 8 characters."""
    reel = _NOT_REEL.sub("", Path(file_name).stem).upper()
    return reel[:EDL_REEL_LENGTH] or "AX"


def _time(frames: int, rate: Fraction) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, float(rate))


def _range(first: int, end: int, rate: Fraction) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_time(first, rate), _time(end - first, rate))


def _media_reference(
    url: str, file_name: str, info: MediaInfo, rate: Fraction
) -> otio.schema.ExternalReference:
    reference = otio.schema.ExternalReference(
        target_url=url,
        available_range=_range(0, _nearest_frame(info.duration, rate), rate),
    )
    reference.name = file_name
    reference.metadata["fcp_xml"] = {"media": _file_media(info, rate)}
    return reference


def _tracks(
    cuts: list[FrameRange],
    rate: Fraction,
    reference: Callable[[], otio.schema.ExternalReference],
    audio: bool,
) -> list[otio.schema.Track]:
    """V1 and, with ``audio``, A1: one clip per cut, back to back.

    Clip names differ between the tracks: the FCP XML writer turns a clip equal
    to one written before into a back-reference that its own reader cannot read.
    """
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for number, (first, end) in enumerate(cuts, start=1):
        video.append(
            otio.schema.Clip(
                name=f"V1 cut {number}",
                media_reference=reference(),
                source_range=_range(first, end, rate),
            )
        )
    if not audio:
        return [video]

    sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    for number, (first, end) in enumerate(cuts, start=1):
        clip = otio.schema.Clip(
            name=f"A1 cut {number}",
            media_reference=reference(),
            source_range=_range(first, end, rate),
        )
        clip.metadata["fcp_xml"] = {
            "sourcetrack": {"mediatype": "audio", "trackindex": 1}
        }
        sound.append(clip)
    return [video, sound]


def _timeline(
    title: str, rate: Fraction, tracks: list[otio.schema.Track]
) -> otio.schema.Timeline:
    timeline = otio.schema.Timeline(name=title, global_start_time=_time(0, rate))
    for track in tracks:
        timeline.tracks.append(track)
    return timeline


def _fcp_rate(rate: Fraction) -> dict[str, Any]:
    """An FCP XML ``<rate>``: 29.97 is timebase 30 with NTSC set."""
    timebase = math.ceil(rate)
    return {"timebase": timebase, "ntsc": "FALSE" if timebase == rate else "TRUE"}


def _sequence_metadata(info: MediaInfo, rate: Fraction) -> dict[str, Any]:
    """What the FCP XML writer puts in the sequence: the picture and sound format."""
    video = {
        "format": {
            "samplecharacteristics": {
                "width": info.display_width,
                "height": info.display_height,
                "rate": _fcp_rate(rate),
                "pixelaspectratio": "square",
                "anamorphic": "FALSE",
                "fielddominance": "none",
            }
        }
    }
    media: dict[str, Any] = {"video": video}
    if info.has_audio:
        media["audio"] = {
            "numOutputChannels": info.audio_channels or DEFAULT_AUDIO_CHANNELS,
            "format": {"samplecharacteristics": _audio_characteristics(info)},
        }
    return {"media": media}


def _file_media(info: MediaInfo, rate: Fraction) -> dict[str, Any]:
    """The ``<media>`` of the FCP XML ``<file>``: which streams it has, and how."""
    media: dict[str, Any] = {
        "video": {
            "samplecharacteristics": {
                "width": info.display_width,
                "height": info.display_height,
                "rate": _fcp_rate(rate),
            }
        }
    }
    if info.has_audio:
        media["audio"] = {
            "samplecharacteristics": _audio_characteristics(info),
            "channelcount": info.audio_channels or DEFAULT_AUDIO_CHANNELS,
        }
    return media


def _audio_characteristics(info: MediaInfo) -> dict[str, Any]:
    return {
        "depth": AUDIO_DEPTH,
        "samplerate": info.audio_sample_rate or DEFAULT_AUDIO_RATE,
    }


def _fcp_xml(timeline: otio.schema.Timeline) -> str:
    """The timeline as FCP 7 XML, declared UTF-8 with the ``xmeml`` doctype."""
    text: str = otio.adapters.write_to_string(timeline, "fcp_xml")
    declaration, _, body = text.partition("\n")
    if not declaration.startswith("<?xml"):
        body = text
    return f"{XML_DECLARATION}\n<!DOCTYPE xmeml>\n{body}"


def _edl(title: str, rate: Fraction, tracks: list[otio.schema.Track], reel: str) -> str:
    """A CMX 3600 EDL of the video track, with its frame-code mode stated."""
    for clip in tracks[0]:
        clip.metadata["cmx_3600"] = {"reel": reel}
    timeline = _timeline(" ".join(title.split()), rate, tracks)
    text: str = otio.adapters.write_to_string(timeline, "cmx_3600", rate=float(rate))

    events = [line for line in text.splitlines() if line[:1].isdigit()]
    drop_frame = any(";" in line for line in events)
    mode = f"FCM: {'DROP FRAME' if drop_frame else 'NON-DROP FRAME'}\n"
    if not text.startswith("TITLE:"):
        return mode + text
    title_line, _, rest = text.partition("\n")
    return f"{title_line}\n{mode}{rest}"


def _write_zip(out_zip: Path, texts: dict[str, str], media: Path, arcname: str) -> None:
    """Write the zip under a temporary name, then move it into place."""
    partial = out_zip.with_name(f".{out_zip.stem}.partial{out_zip.suffix}")
    try:
        with zipfile.ZipFile(partial, "w", strict_timestamps=False) as archive:
            for entry, text in texts.items():
                archive.writestr(entry, text, compress_type=zipfile.ZIP_DEFLATED)
            archive.write(media, arcname, compress_type=zipfile.ZIP_STORED)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    partial.replace(out_zip)
