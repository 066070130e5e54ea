"""Reading what a media file holds, and refusing files that cannot be decoded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import av
import av.error
from av.container import InputContainer
from av.stream import Stream

from tilework.errors import ProbeError

logger = logging.getLogger(__name__)

MAX_PACKETS_FOR_FIRST_FRAME = 500
VFR_TOLERANCE = 0.01
TAIL_SECONDS = 0.5
STILL_MAX_SECONDS = 0.1
CONTAINER_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"FLV")
INDEXED_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
"""Formats whose header states the duration, so a shorter body means a cut file."""


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds. Sizes are coded sizes; see ``display_width``."""

    duration: float
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    """Clockwise degrees (0, 90, 180, 270) the picture is turned for display."""
    fps: float | None = None
    vfr: bool = False
    has_video: bool = False
    has_audio: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    format_name: str = ""
    size_bytes: int = 0

    @property
    def display_width(self) -> int | None:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int | None:
        return self.width if self.rotation in (90, 270) else self.height

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["display_width"] = self.display_width
        data["display_height"] = self.display_height
        return data


def probe(path: Path) -> MediaInfo:
    """Describe a video or audio file, checking that it decodes from start to end."""
    with _open(path) as container:
        info = _inspect(path, container, require_duration=True)
    logger.debug("probed %s: %s", path, info)
    return info


def probe_video(path: Path) -> MediaInfo:
    """Like :func:`probe`, and the file must be a video, not audio or a still."""
    info = probe(path)
    if not info.has_video:
        raise ProbeError(
            f"{path.name} has no video stream; Video Input needs a video, "
            "so upload a file with a picture track."
        )
    if _is_still_format(info.format_name):
        raise ProbeError(
            f"{path.name} is a still image, not a video; Video Input needs a video."
        )
    return info


def probe_audio(path: Path) -> MediaInfo:
    """Like :func:`probe`, and the file must have an audio stream."""
    info = probe(path)
    if not info.has_audio:
        raise ProbeError(
            f"{path.name} has no audio stream; upload a file with a sound track."
        )
    return info


def probe_image(path: Path) -> MediaInfo:
    """Describe a still image (PNG, JPEG, WebP, ...) that ffmpeg can decode."""
    with _open(path) as container:
        info = _inspect(path, container, require_duration=False)

    single_frame = info.duration <= STILL_MAX_SECONDS
    if not info.has_video or info.has_audio or not single_frame:
        raise ProbeError(
            f"{path.name} is not a still image; upload a PNG, JPEG or WebP picture."
        )
    return replace(info, duration=0.0, fps=None)


def _is_still_format(format_name: str) -> bool:
    return format_name == "image2" or format_name.endswith("_pipe")


@contextmanager
def _open(path: Path) -> Iterator[InputContainer]:
    head = _read_head(path)
    if not head:
        raise ProbeError(f"{path.name} is empty; upload the file again.")

    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        if _has_container_signature(head):
            raise _damaged(path) from exc
        raise _not_media(path) from exc

    try:
        yield container
    except av.error.FFmpegError as exc:
        raise _damaged(path) from exc
    finally:
        container.close()


def _read_head(path: Path) -> bytes:
    """The first bytes of the file, which also proves it exists and can be read."""
    if not path.is_file():
        raise ProbeError(f"The file {path} does not exist; check the path.")
    try:
        with path.open("rb") as file:
            return file.read(12)
    except OSError as exc:
        raise ProbeError(
            f"{path.name} cannot be read ({exc.strerror}); check its permissions."
        ) from exc


def _has_container_signature(head: bytes) -> bool:
    """Whether the bytes start an MP4/MOV, Matroska, RIFF, Ogg or FLV file."""
    return head[4:8] == b"ftyp" or head.startswith(CONTAINER_SIGNATURES)


def _not_media(path: Path) -> ProbeError:
    return ProbeError(
        f"{path.name} is not a video or audio file ffmpeg can decode; "
        "check that the upload is the media file itself and not a web page or archive."
    )


def _damaged(path: Path) -> ProbeError:
    return ProbeError(
        f"{path.name} is damaged or cut short and cannot be decoded; "
        "upload the complete file again."
    )


def _inspect(
    path: Path, container: InputContainer, *, require_duration: bool
) -> MediaInfo:
    video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
    audio = container.streams.audio[0] if container.streams.audio else None
    first: Stream | None = video or audio
    if first is None:
        raise _not_media(path)

    rotation = _check_first_frame(path, container, first)
    duration = _duration(container)
    if require_duration:
        duration = _require_duration(path, container, duration)

    return MediaInfo(
        duration=round(duration, 6),
        rotation=rotation,
        **_video_fields(video),
        **_audio_fields(audio),
        format_name=container.format.name,
        size_bytes=path.stat().st_size,
    )


def _is_cover_art(stream: Stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _video_fields(stream: av.VideoStream | None) -> dict[str, Any]:
    if stream is None:
        return {}

    average = float(stream.average_rate) if stream.average_rate else None
    base = float(stream.base_rate) if stream.base_rate else None
    vfr = bool(average and base and abs(average - base) > VFR_TOLERANCE * base)
    return {
        "has_video": True,
        "width": stream.codec_context.width or None,
        "height": stream.codec_context.height or None,
        "fps": average or base,
        "vfr": vfr,
        "video_codec": stream.codec_context.codec.canonical_name,
    }


def _audio_fields(stream: av.AudioStream | None) -> dict[str, Any]:
    if stream is None:
        return {}

    context = stream.codec_context
    return {
        "has_audio": True,
        "audio_codec": context.codec.canonical_name,
        "audio_sample_rate": context.sample_rate or None,
        "audio_channels": context.layout.nb_channels or None,
    }


def _check_first_frame(path: Path, container: InputContainer, stream: Stream) -> int:
    """Decode the first frame of ``stream``; return the video rotation it carries."""
    for count, packet in enumerate(container.demux(stream)):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                return _rotation(frame, stream)
            return 0
        if count >= MAX_PACKETS_FOR_FIRST_FRAME:
            break
    raise _damaged(path)


def _rotation(frame: av.VideoFrame, stream: Stream) -> int:
    counter_clockwise = frame.rotation
    if not counter_clockwise:
        tag = stream.metadata.get("rotate", "0")
        counter_clockwise = -int(float(tag)) if _is_number(tag) else 0
    return (-round(counter_clockwise / 90) * 90) % 360


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _duration(container: InputContainer) -> float:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base

    stream_durations = [
        float(stream.duration * stream.time_base)
        for stream in container.streams
        if stream.duration and stream.time_base
    ]
    return max(stream_durations, default=0.0)


def _require_duration(path: Path, container: InputContainer, stated: float) -> float:
    """Check the media really lasts ``stated`` seconds, or measure it when unknown."""
    if stated <= 0:
        return _measure_duration(path)

    start = container.start_time / av.time_base if container.start_time else 0.0
    try:
        container.seek(
            int((start + stated - TAIL_SECONDS) * av.time_base), any_frame=True
        )
    except av.error.FFmpegError as exc:
        logger.debug("cannot seek in %s (%s); trusting its duration", path, exc)
        return stated

    reached = _packets_end(container) - start
    if reached >= stated - max(TAIL_SECONDS, 0.05 * stated):
        return stated
    logger.debug("%s ends at %.3f s, not %.3f s", path, reached, stated)
    if container.format.name in INDEXED_FORMATS or reached <= 0:
        raise _damaged(path)
    return reached


def _measure_duration(path: Path) -> float:
    """Read every packet of a file whose container does not state its duration."""
    with av.open(str(path), mode="r", metadata_errors="replace") as container:
        start = container.start_time / av.time_base if container.start_time else 0.0
        measured = _packets_end(container) - start
    if measured <= 0:
        raise ProbeError(
            f"{path.name} has zero duration; upload a file that plays for "
            "at least a moment."
        )
    return measured


def _packets_end(container: InputContainer) -> float:
    """Seconds at which the remaining packets end; summed when they lack times."""
    end = 0.0
    summed: dict[int, float] = {}
    for packet in container.demux():
        if not packet.size or packet.time_base is None:
            continue
        length = float((packet.duration or 0) * packet.time_base)
        if packet.pts is None:
            index = packet.stream.index
            summed[index] = summed.get(index, 0.0) + length
        else:
            end = max(end, float(packet.pts * packet.time_base) + length)
    return max(end, *summed.values()) if summed else end
