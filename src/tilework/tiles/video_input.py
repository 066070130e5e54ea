"""Video Input: the start of every graph, a user's video or a clip of it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import ClassVar

from tilework.errors import TileError
from tilework.media.probe import MediaInfo, probe_video
from tilework.media.render import render_fragments
from tilework.tiles.base import (
    MediaFile,
    SourceSpec,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

MIN_CLIP_SECONDS = 0.04

_SUFFIXES = {
    "mov,mp4,m4a,3gp,3g2,mj2": ".mp4",
    "matroska,webm": ".mkv",
    "avi": ".avi",
    "mpegts": ".ts",
    "flv": ".flv",
}


class VideoInput(Tile):
    node_type_id: ClassVar[str] = "9451e6ff-ac7f-4317-9055-a2f35f641b29"
    name: ClassVar[str] = "Video Input"
    description: ClassVar[str] = (
        "Brings a video into the agent: an upload, an earlier render or a link, "
        "optionally cut to a clip."
    )
    credits_per_minute: ClassVar[int] = 0

    def run(
        self, params: TileParams, source: SourceSpec, ctx: TileContext
    ) -> list[TileOutput]:
        path = _local_file(source, ctx)
        info = probe_video(path)
        if info.duration > ctx.max_input_seconds:
            raise TileError(
                f"{path.name} is {info.duration:.0f} s long, more than the "
                f"{ctx.max_input_seconds:.0f} s an input may last; use a shorter "
                "video or a clip of it."
            )

        clip = clip_range(source, info.duration)
        if clip is None:
            out = _link_into(path, ctx.scratch / f"source{_suffix(path, info)}")
        else:
            out = ctx.scratch / "clip.mp4"
            render_fragments(MediaFile(path, info), [], out, ctx=ctx, clip=clip)

        metadata = {
            "source_duration": info.duration,
            "clip": [round(clip[0] * 1000), round(clip[1] * 1000)] if clip else None,
        }
        name = _output_name(source, path, out)
        return [TileOutput(path=out, name=name, metadata=metadata)]


def _local_file(source: SourceSpec, ctx: TileContext) -> Path:
    if source.url:
        from tilework.media.fetch import download

        return download(
            source.url,
            ctx.scratch / "download",
            allow_networks=ctx.fetch_allow_networks,
            max_bytes=ctx.max_input_bytes,
            cancel=ctx.cancel,
        )
    if source.path is not None:
        return source.path
    raise TileError("Video Input got neither a file nor a URL; give it a video.")


def clip_range(source: SourceSpec, duration: float) -> tuple[float, float] | None:
    """The checked ``(start, end)`` seconds to cut, or None for the whole video."""
    if source.clip_start_ms is None and source.clip_end_ms is None:
        return None

    start_ms = source.clip_start_ms or 0
    end_ms = source.clip_end_ms
    if start_ms < 0:
        raise TileError(
            f"The clip start {start_ms} ms is negative; use 0 or a later time."
        )
    if end_ms is not None and end_ms <= start_ms:
        raise TileError(
            f"The clip end {end_ms} ms is not after the clip start {start_ms} ms; "
            "give an end later than the start."
        )
    if start_ms / 1000 >= duration:
        raise TileError(
            f"The clip start {start_ms} ms is past the end of the video, which "
            f"lasts {duration * 1000:.0f} ms; choose an earlier start."
        )

    start = start_ms / 1000
    end = duration if end_ms is None else min(end_ms / 1000, duration)
    if end - start < MIN_CLIP_SECONDS:
        until = "the end" if end_ms is None else f"{end_ms} ms"
        raise TileError(
            f"The clip from {start_ms} ms to {until} holds no frames of a video "
            f"that lasts {duration * 1000:.0f} ms; choose a longer range."
        )
    return start, end


def _link_into(path: Path, target: Path) -> Path:
    """Put ``path`` at ``target`` without copying data when the filesystem allows."""
    if path.resolve() == target.resolve():
        return target
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError as exc:
        logger.debug("cannot hard-link %s (%s); copying", path, exc)
        shutil.copyfile(path, target)
    return target


def _suffix(path: Path, info: MediaInfo) -> str:
    if path.suffix and len(path.suffix) <= 6:
        return path.suffix.lower()
    return _SUFFIXES.get(info.format_name, "")


def _output_name(source: SourceSpec, path: Path, out: Path) -> str | None:
    """The label or the upload's name, without folders, ending like ``out``."""
    given = source.label or (path.name if source.url is None else None)
    name = Path(given).name if given else ""
    if not name:
        return None
    return f"{Path(name).stem or name}{out.suffix}"
