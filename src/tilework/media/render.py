"""Turning filter fragments into one ffmpeg pass, and the encode settings it uses."""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt
from av.container import InputContainer

from tilework.errors import FFmpegError, MediaError, TileError
from tilework.media.ffmpeg import FFmpeg
from tilework.media.probe import MediaInfo
from tilework.tiles.base import FilterFragment, MediaFile, TileContext

logger = logging.getLogger(__name__)

CRF = 20
AUDIO_BITRATE = "128k"
AUDIO_SAMPLE_RATE = 48000
DEFAULT_FPS = 30
MAX_CFR_FPS = 60
MAX_PLAUSIBLE_FPS = 240
THUMBNAIL_SAMPLES = 12
THUMBNAIL_MARGIN = 0.05
"""Share of the video skipped at each end when choosing the thumbnail frame."""
THUMBNAIL_ANALYSIS_WIDTH = 320
THUMBNAIL_SEEK_GAP = 2.0
"""Without a keyframe index: seconds ahead of the last frame past which to seek."""
THUMBNAIL_SEEK_BACK = 0.001
"""Seconds before the chosen frame that ffmpeg seeks to, so it cannot skip it."""
CLIPPED_DARK = 5
CLIPPED_BRIGHT = 250
MID_GREY = 128.0

_LABEL = re.compile(r"\[([A-Za-z_][A-Za-z0-9_]*)\]")


def encode_args(preset: str, *, audio: bool, copy_video: bool = False) -> list[str]:
    """Codec and container options of every MP4 tilework writes.

    H.264 (``preset``, CRF 20, yuv420p) or a copy of the input video; AAC 128k at
    48 kHz when ``audio``, otherwise no audio; the index up front for streaming.
    """
    if copy_video:
        video = ["-c:v", "copy"]
    else:
        video = ["-c:v", "libx264", "-preset", preset, "-crf", str(CRF)]
        video += ["-pix_fmt", "yuv420p"]

    if audio:
        sound = ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_SAMPLE_RATE)]
    else:
        sound = ["-an"]

    return [*video, *sound, "-movflags", "+faststart"]


def render_fragments(
    source: MediaFile,
    fragments: list[FilterFragment],
    out: Path,
    *,
    ctx: TileContext,
    clip: tuple[float, float] | None = None,
) -> None:
    """Apply every fragment to ``source`` in order, in one ffmpeg pass, into ``out``.

    ``clip`` limits the work to ``(start, end)`` seconds of the source, cut exactly.
    The picture is upright (ffmpeg turns rotated video on decode), has even sides
    and, for variable frame rate input, a constant frame rate.
    """
    info = source.info
    if not info.has_video:
        raise TileError(
            f"{source.path.name} has no video stream; this step needs a video input."
        )

    graph = _video_graph(info, fragments)
    audio_maps, audio_graph = _audio_parts(info, fragments)
    if audio_graph:
        graph = f"{graph};{audio_graph}"

    duration = clip[1] - clip[0] if clip else info.duration
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    args = [
        *_input_args(source.path, clip),
        *("-filter_complex", graph, "-map", "[vout]", *audio_maps),
        *encode_args(ctx.x264_preset, audio=info.has_audio),
        str(partial),
    ]
    _run_to(partial, out, args, ctx=ctx, duration=duration)


def _run_to(
    partial: Path, out: Path, args: list[str], *, ctx: TileContext, duration: float
) -> None:
    try:
        ctx.ffmpeg.run(
            args,
            cancel=ctx.cancel,
            duration=duration,
            on_progress=ctx.report_progress,
            description="Rendering the video",
        )
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    partial.replace(out)


def _input_args(path: Path, clip: tuple[float, float] | None) -> list[str]:
    if clip is None:
        return ["-i", str(path)]
    start, end = clip
    return ["-ss", f"{start:.3f}", "-t", f"{end - start:.3f}", "-i", str(path)]


def _video_graph(info: MediaInfo, fragments: list[FilterFragment]) -> str:
    """The video part of the filter graph: plain chains joined with ``,``, in order.

    Graph fragments are wired in between by labels; the result is labelled ``vout``.
    """
    pieces: list[str] = []
    chain: list[str] = []
    label = "0:V:0"
    for index, fragment in enumerate(fragments):
        if fragment.video is None:
            continue
        if not fragment.graph:
            chain.append(fragment.video)
            continue

        if chain:
            pieces.append(f"[{label}]{','.join(chain)}[c{index}]")
            label, chain = f"c{index}", []
        pieces.append(_relabel(fragment.video, label, f"g{index}", f"g{index}_"))
        label = f"g{index}"

    chain += _finishing_filters(info, *_final_size(info, fragments))
    pieces.append(f"[{label}]{','.join(chain)}[vout]")
    return ";".join(pieces)


def _relabel(graph: str, source: str, target: str, prefix: str) -> str:
    """Wire a fragment's graph from ``[in]`` and ``[out]`` to labels of the whole."""

    def relabel(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "in":
            return f"[{source}]"
        if name == "out":
            return f"[{target}]"
        return f"[{prefix}{name}]"

    return _LABEL.sub(relabel, graph)


def _final_size(
    info: MediaInfo, fragments: list[FilterFragment]
) -> tuple[int | None, int | None]:
    for fragment in reversed(fragments):
        if fragment.video is not None:
            return fragment.width, fragment.height
    return info.display_width, info.display_height


def _finishing_filters(
    info: MediaInfo, width: int | None, height: int | None
) -> list[str]:
    """Filters that make any picture encodable and playable as H.264 in MP4."""
    filters: list[str] = []
    if width is None or height is None or width % 2 or height % 2:
        filters.append("crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0")

    rate = constant_rate(info)
    if rate is not None:
        filters.append(f"fps={rate}")

    filters.append("format=yuv420p")
    return filters


def constant_rate(info: MediaInfo) -> int | None:
    """The frame rate to force on this input, or None when its own rate is fine."""
    fps = info.fps
    if not info.vfr and fps is not None and 0 < fps <= MAX_PLAUSIBLE_FPS:
        return None
    if fps is None or fps <= 0 or fps > MAX_PLAUSIBLE_FPS:
        return DEFAULT_FPS
    return max(1, min(MAX_CFR_FPS, round(fps)))


def _audio_parts(
    info: MediaInfo, fragments: list[FilterFragment]
) -> tuple[list[str], str | None]:
    """The ``-map`` options for audio, and the audio part of the graph if any."""
    if not info.has_audio:
        return [], None

    chains = [fragment.audio for fragment in fragments if fragment.audio]
    if not chains:
        return ["-map", "0:a:0"], None
    return ["-map", "[aout]"], f"[0:a:0]{','.join(chains)}[aout]"


@dataclass(frozen=True)
class _Sample:
    """A frame considered for the thumbnail: its presentation time, its score."""

    time: float
    score: float


def make_thumbnail(
    video: Path, out: Path, *, ffmpeg: FFmpeg, max_width: int = 640
) -> Path:
    """Write a JPEG of the sharpest, best-exposed of a dozen frames of ``video``.

    The frames are spread over the video but its first and last 5 %. The picture
    is shown as players show it (turned, square pixels), at most ``max_width`` wide.
    """
    seconds = _thumbnail_time(video)
    out.unlink(missing_ok=True)
    if seconds > 0:
        try:
            _write_jpeg(video, out, seconds, ffmpeg=ffmpeg, max_width=max_width)
        except FFmpegError as exc:
            logger.debug("no frame at %.3f s of %s: %s", seconds, video, exc)
        if _has_content(out):
            return out

    _write_jpeg(video, out, 0.0, ffmpeg=ffmpeg, max_width=max_width)
    return out


def _thumbnail_time(video: Path) -> float:
    """Seconds into ``video`` of the best sampled frame; 0 when none decodes.

    A decoding error ends the sampling; the frames scored until then still count.
    """
    samples: list[_Sample] = []
    start = 0.0
    try:
        with av.open(str(video), mode="r", metadata_errors="replace") as container:
            start = container.start_time / av.time_base if container.start_time else 0.0
            for sample in _samples(container, start):
                samples.append(sample)
    except (av.error.FFmpegError, MediaError) as exc:
        logger.debug("cannot sample all of %s for its thumbnail: %s", video, exc)

    if not samples:
        return 0.0
    best = max(samples, key=lambda sample: sample.score)
    logger.debug("thumbnail of %s at %.3f s (score %.2f)", video, best.time, best.score)
    return max(0.0, best.time - start - THUMBNAIL_SEEK_BACK)


def _samples(container: InputContainer, start: float) -> Iterator[_Sample]:
    """Decode and score one frame in each of a dozen windows spread over the video.

    In each window the last keyframe the container's index lists is taken, as it
    decodes alone; else the frame at the window's start. Sampling seeks only when
    that skips frames it would otherwise decode.
    """
    stream = _picture_stream(container)
    stream.thread_type = "AUTO"
    keyframes = _keyframe_times(stream)

    frames: Iterator[av.VideoFrame] | None = None
    position = -math.inf
    for earliest, latest in _sample_windows(_seconds(container, stream)):
        wanted = _wanted_time(keyframes, start + earliest, start + latest)
        if frames is None or _seek_pays(keyframes, position, wanted):
            _seek(container, stream, wanted)
            frames = container.decode(stream)
        frame = _frame_from(frames, wanted)
        if frame is None:
            return
        position = frame.time if frame.time is not None else wanted
        yield _Sample(position, _frame_score(_analysis_grey(frame)))


def _seek(container: InputContainer, stream: av.VideoStream, seconds: float) -> None:
    """Seek to the last keyframe at or before ``seconds``, counted in stream ticks
    rounded up so that a keyframe at ``seconds`` itself is never missed."""
    base = stream.time_base
    if base is None:
        container.seek(math.ceil(seconds * av.time_base))
    else:
        container.seek(math.ceil(seconds / base), stream=stream)


def _keyframe_times(stream: av.VideoStream) -> list[float]:
    """Seconds of the keyframes in the container's index; empty without an index."""
    base = stream.time_base
    if base is None:
        return []
    entries = stream.index_entries
    return sorted(
        float(entry.timestamp * base) for entry in entries if entry.is_keyframe
    )


def _wanted_time(keyframes: list[float], earliest: float, latest: float) -> float:
    """The last keyframe from ``earliest`` to ``latest``, or else ``earliest``."""
    index = bisect.bisect_right(keyframes, latest)
    if index and keyframes[index - 1] >= earliest:
        return keyframes[index - 1]
    return earliest


def _seek_pays(keyframes: list[float], position: float, wanted: float) -> bool:
    """Whether seeking to ``wanted`` skips frames that decoding on would decode."""
    if not keyframes:
        return wanted - position > THUMBNAIL_SEEK_GAP
    index = bisect.bisect_right(keyframes, wanted)
    return index > 0 and keyframes[index - 1] > position


def _picture_stream(container: InputContainer) -> av.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise MediaError("The file has no video stream to take a thumbnail from.")


def _seconds(container: InputContainer, stream: av.VideoStream) -> float:
    if container.duration and container.duration > 0:
        return float(container.duration / av.time_base)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _sample_windows(duration: float) -> list[tuple[float, float]]:
    """Where to sample: half an interval up to each instant spread evenly from 5 %
    to 95 % of ``duration``, never before the 5 % mark."""
    if duration <= 0:
        return [(0.0, 0.0)]

    lead_in = duration * THUMBNAIL_MARGIN
    interval = duration * (1.0 - 2 * THUMBNAIL_MARGIN) / (THUMBNAIL_SAMPLES - 1)
    instants = [lead_in + interval * i for i in range(THUMBNAIL_SAMPLES)]
    return [(max(lead_in, instant - interval / 2), instant) for instant in instants]


def _frame_from(
    frames: Iterator[av.VideoFrame], seconds: float
) -> av.VideoFrame | None:
    """The first frame at or after ``seconds``, or the last one before the end."""
    last: av.VideoFrame | None = None
    for frame in frames:
        if frame.time is None or frame.time >= seconds:
            return frame
        last = frame
    return last


def _analysis_grey(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame in grey levels, at most 320 pixels wide, for scoring."""
    width = min(THUMBNAIL_ANALYSIS_WIDTH, frame.width)
    height = max(1, round(frame.height * width / frame.width))
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _frame_score(grey: npt.NDArray[np.uint8]) -> float:
    """How good a thumbnail the frame makes: sharp, near mid-grey, little clipped.

    Sharpness is the variance of the Laplacian, on a log scale so that exposure
    still counts between two detailed frames.
    """
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    exposure = 1.0 - abs(float(grey.mean()) - MID_GREY) / MID_GREY
    clipped = float(np.mean((grey <= CLIPPED_DARK) | (grey >= CLIPPED_BRIGHT)))
    return math.log1p(sharpness) * (0.5 + 0.5 * exposure) * (1.0 - clipped)


def _write_jpeg(
    video: Path, out: Path, seconds: float, *, ffmpeg: FFmpeg, max_width: int
) -> None:
    display = "scale=w=iw*sar:h=ih,setsar=1"
    scale = f"scale=w='min({max_width},iw)':h=-2"
    args = [
        *("-ss", f"{seconds:.6f}", "-i", str(video), "-map", "0:V:0"),
        *("-vf", f"{display},{scale}", "-frames:v", "1"),
        *("-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1", str(out)),
    ]
    ffmpeg.run(args, description="Making the thumbnail")


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
