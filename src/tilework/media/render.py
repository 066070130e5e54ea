"""Turning filter fragments into one ffmpeg pass, and the encode settings it uses."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

from tilework.errors import TileError
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
THUMBNAIL_SECONDS = 5
THUMBNAIL_FRAMES = 60

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


def make_thumbnail(
    video: Path, out: Path, *, ffmpeg: FFmpeg, max_width: int = 640
) -> Path:
    """Write a JPEG of a representative frame from the first seconds of ``video``."""
    scale = f"scale=w='min({max_width},iw)':h=-2"
    args = [
        *("-t", str(THUMBNAIL_SECONDS), "-i", str(video), "-map", "0:V:0"),
        *("-vf", f"thumbnail=n={THUMBNAIL_FRAMES},{scale}", "-frames:v", "1"),
        *("-c:v", "mjpeg", "-q:v", "4", "-f", "image2", "-update", "1", str(out)),
    ]
    ffmpeg.run(args, description="Making the thumbnail")
    return out
