"""Reframe: change a video's aspect ratio by cropping or by padding with a blur."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field

from tilework.errors import TileError
from tilework.media.probe import MediaInfo
from tilework.tiles.base import FilterFragment, FilterTile, TileParams

logger = logging.getLogger(__name__)

AspectRatio = Literal["9:16", "1:1", "4:5", "16:9"]

BLUR_DOWNSCALE = 4
BLUR_SIGMA = 12


class ReframeParams(TileParams):
    aspect_ratio: AspectRatio = Field(
        default="9:16", description="Shape of the output, width:height."
    )
    mode: Literal["crop", "pad_blur"] = Field(
        default="crop",
        description=(
            "crop cuts the middle out of the frame; pad_blur keeps the whole frame "
            "and fills the rest with a blurred, enlarged copy of it."
        ),
    )
    max_height: int = Field(
        default=1920,
        ge=16,
        le=4320,
        description="Limit of the output's long side in pixels; smaller input stays.",
    )


class Reframe(FilterTile):
    node_type_id: ClassVar[str] = "0e3a90e4-173f-42fc-b7ef-0df6a062e26c"
    name: ClassVar[str] = "Reframe"
    description: ClassVar[str] = (
        "Changes the aspect ratio to 9:16, 1:1, 4:5 or 16:9 by cropping the centre "
        "or by fitting the whole frame over a blurred background."
    )
    Params: ClassVar[type[TileParams]] = ReframeParams

    def fragment(self, params: ReframeParams, info: MediaInfo) -> FilterFragment:
        width, height = info.display_width, info.display_height
        if width is None or height is None:
            raise TileError("Reframe needs a video with a known picture size.")

        ratio = _ratio(params.aspect_ratio)
        if params.mode == "crop":
            return crop_fragment(width, height, ratio, params.max_height)
        return pad_blur_fragment(width, height, ratio, params.max_height)


def _ratio(aspect_ratio: str) -> tuple[int, int]:
    across, down = aspect_ratio.split(":")
    return int(across), int(down)


def crop_fragment(
    width: int, height: int, ratio: tuple[int, int], max_long_side: int
) -> FilterFragment:
    """Cut the largest centred region of ``ratio`` out of the frame."""
    region = _fit(width, height, ratio)
    out_w, out_h = output_size(region, ratio, max_long_side)

    # Subject tracking will replace the centred crop position here.
    crop_w, crop_h = _crop_size(width, height, out_w, out_h)
    filters = [f"crop={crop_w}:{crop_h}"]
    if (crop_w, crop_h) != (out_w, out_h):
        filters.append(f"scale={out_w}:{out_h}")
    filters.append("setsar=1")
    chain = ",".join(filters)
    return FilterFragment(video=chain, audio=None, width=out_w, height=out_h)


def pad_blur_fragment(
    width: int, height: int, ratio: tuple[int, int], max_long_side: int
) -> FilterFragment:
    """Fit the whole frame in a ``ratio`` canvas over a blurred, enlarged copy."""
    canvas = _cover(width, height, ratio)
    out_w, out_h = output_size(canvas, ratio, max_long_side)
    front_w, front_h = _fit_inside(width, height, out_w, out_h)

    if (front_w, front_h) == (out_w, out_h):
        chain = f"scale={out_w}:{out_h},setsar=1"
        return FilterFragment(video=chain, audio=None, width=out_w, height=out_h)

    small_w = _even(out_w / BLUR_DOWNSCALE)
    small_h = _even(out_h / BLUR_DOWNSCALE)
    x, y = (out_w - front_w) // 4 * 2, (out_h - front_h) // 4 * 2
    graph = ";".join(
        [
            "[in]split=2[back][front]",
            f"[back]scale={small_w}:{small_h}:force_original_aspect_ratio=increase,"
            f"crop={small_w}:{small_h},gblur=sigma={BLUR_SIGMA},"
            f"scale={out_w}:{out_h},setsar=1[blurred]",
            f"[front]scale={front_w}:{front_h},setsar=1[sharp]",
            f"[blurred][sharp]overlay={x}:{y}[out]",
        ]
    )
    return FilterFragment(
        video=graph, audio=None, width=out_w, height=out_h, graph=True
    )


def _fit(width: int, height: int, ratio: tuple[int, int]) -> tuple[float, float]:
    """The largest region of ``ratio`` inside ``width``x``height``."""
    across, down = ratio
    if width * down > height * across:
        return height * across / down, float(height)
    return float(width), width * down / across


def _cover(width: int, height: int, ratio: tuple[int, int]) -> tuple[float, float]:
    """The smallest region of ``ratio`` that contains ``width``x``height``."""
    across, down = ratio
    if width * down > height * across:
        return float(width), width * down / across
    return height * across / down, float(height)


def output_size(
    region: tuple[float, float], ratio: tuple[int, int], max_long_side: int
) -> tuple[int, int]:
    """Even output sides of ``ratio`` no bigger than ``region`` or ``max_long_side``."""
    across, down = ratio
    region_w, region_h = region
    if across >= down:
        long_side = _even_floor(min(region_w, max_long_side))
        short_side = _even_capped(long_side * down / across, region_h)
        return long_side, short_side
    long_side = _even_floor(min(region_h, max_long_side))
    short_side = _even_capped(long_side * across / down, region_w)
    return short_side, long_side


def _crop_size(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int]:
    """The centred crop of the source with the output's exact shape."""
    if width * out_h > height * out_w:
        return min(width, round(height * out_w / out_h)), height
    return width, min(height, round(width * out_h / out_w))


def _fit_inside(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / width, box_h / height)
    return min(box_w, _even(width * scale)), min(box_h, _even(height * scale))


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _even_capped(value: float, limit: float) -> int:
    """The even number nearest ``value``, but not above ``limit`` when avoidable."""
    nearest = _even(value)
    return nearest if nearest <= limit else _even_floor(limit)
