"""Watermark: lay an uploaded image, transparency kept, over a corner of the video."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from tilework.errors import ProbeError, TileError
from tilework.media.lut import filter_path
from tilework.media.probe import MediaInfo, probe_image
from tilework.media.render import render_fragments
from tilework.tiles.base import (
    FilterFragment,
    MediaFile,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

Position = Literal["top_left", "top_right", "bottom_left", "bottom_right", "center"]


class WatermarkParams(TileParams):
    image_id: str = Field(
        min_length=1,
        description="The uploaded image to lay over the video; PNG alpha is kept.",
    )
    position: Position = Field(
        default="bottom_right", description="Where the image sits on the picture."
    )
    size_percent: float = Field(
        default=15.0,
        ge=1,
        le=100,
        description="Width of the image as a percentage of the video's width.",
    )
    opacity: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="0 is invisible, 1 is as opaque as the image itself.",
    )
    margin_percent: float = Field(
        default=3.0,
        ge=0,
        le=25,
        description=(
            "Gap between the image and the nearest edges, as a percentage of the "
            "video's shorter side."
        ),
    )


class Watermark(Tile):
    node_type_id: ClassVar[str] = "6808af58-2d9a-4e3b-aacb-2d9c143b7729"
    name: ClassVar[str] = "Watermark"
    description: ClassVar[str] = (
        "Places an uploaded logo or image in a corner or the centre of the video, "
        "scaled to its width and with adjustable opacity."
    )
    Params: ClassVar[type[TileParams]] = WatermarkParams

    def run(
        self, params: WatermarkParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        image = ctx.resolve_asset(params.image_id, "image")
        image_size = _image_size(image, params.image_id)
        fragment, placed = watermark_fragment(params, source.info, image, image_size)

        out = ctx.scratch / "output.mp4"
        render_fragments(source, [fragment], out, ctx=ctx)
        return [TileOutput(path=out, metadata={"watermark": placed})]


def watermark_fragment(
    params: WatermarkParams,
    info: MediaInfo,
    image: Path,
    image_size: tuple[int, int],
) -> tuple[FilterFragment, dict[str, Any]]:
    """The overlay as a graph fragment, and where the mark lands in pixels."""
    width, height = info.display_width, info.display_height
    if width is None or height is None:
        raise TileError("Watermark needs a video with a known picture size.")

    mark_w, mark_h = _mark_size(params.size_percent, width, height, image_size)
    x, y = _place(params, width, height, mark_w, mark_h)
    graph = ";".join(
        [
            f"movie=filename={filter_path(image)},format=rgba,"
            f"scale={mark_w}:{mark_h},colorchannelmixer=aa={params.opacity:g}[mark]",
            f"[in][mark]overlay=x={x}:y={y}:eof_action=repeat:format=auto[out]",
        ]
    )
    fragment = FilterFragment(
        video=graph, audio=None, width=width, height=height, graph=True
    )
    placed = {"x": x, "y": y, "width": mark_w, "height": mark_h}
    return fragment, placed


def _image_size(image: Path, image_id: str) -> tuple[int, int]:
    try:
        info = probe_image(image)
    except ProbeError as exc:
        raise TileError(
            f"The watermark upload {image_id} cannot be used: {exc}"
        ) from exc
    if not info.width or not info.height:
        raise TileError(
            f"The watermark upload {image_id} has no picture size; upload a PNG "
            "or JPEG image."
        )
    return info.width, info.height


def _mark_size(
    size_percent: float, width: int, height: int, image_size: tuple[int, int]
) -> tuple[int, int]:
    """The mark's size: ``size_percent`` of the width, shrunk to fit the height."""
    image_w, image_h = image_size
    mark_w = max(1.0, width * size_percent / 100)
    mark_h = mark_w * image_h / image_w
    if mark_h > height:
        mark_w, mark_h = mark_w * height / mark_h, float(height)
    return max(1, round(mark_w)), max(1, round(mark_h))


def _place(
    params: WatermarkParams, width: int, height: int, mark_w: int, mark_h: int
) -> tuple[int, int]:
    margin = round(min(width, height) * params.margin_percent / 100)
    free_x, free_y = width - mark_w, height - mark_h
    left = min(margin, free_x // 2)
    top = min(margin, free_y // 2)
    spots = {
        "top_left": (left, top),
        "top_right": (free_x - left, top),
        "bottom_left": (left, free_y - top),
        "bottom_right": (free_x - left, free_y - top),
        "center": (free_x // 2, free_y // 2),
    }
    return spots[params.position]
