"""Reframe: change a video's aspect ratio by cropping or by padding with a blur.

In crop mode the window follows the main face through the shot when there is one
(see :mod:`tilework.media.tracking`), and stays centred otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import Field

from tilework.errors import TileError
from tilework.media.probe import MediaInfo
from tilework.media.render import render_fragments
from tilework.media.tracking import CropPath, FaceTrack, find_faces, plan_crop_path
from tilework.tiles.base import (
    FilterFragment,
    FilterTile,
    MediaFile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

AspectRatio = Literal["9:16", "1:1", "4:5", "16:9"]

BLUR_DOWNSCALE = 4
BLUR_SIGMA = 12
ANALYSIS_SHARE = 30.0
"""Percent of the progress bar given to finding the subject before the render."""
NO_SUBJECT = "no subject found; centred"


class ReframeParams(TileParams):
    aspect_ratio: AspectRatio = Field(
        default="9:16", description="Shape of the output, width:height."
    )
    mode: Literal["crop", "pad_blur"] = Field(
        default="crop",
        description=(
            "crop cuts a region out of the frame, around the main face or in the "
            "middle; pad_blur keeps the whole frame and fills the rest with a "
            "blurred, enlarged copy of it."
        ),
    )
    max_height: int = Field(
        default=1920,
        ge=16,
        le=4320,
        description="Limit of the output's long side in pixels; smaller input stays.",
    )
    track_subject: bool = Field(
        default=True,
        description=(
            "In crop mode, move the crop to follow the main face through the video; "
            "the crop stays centred when no face is found. pad_blur ignores this."
        ),
    )


class Reframe(FilterTile):
    node_type_id: ClassVar[str] = "0e3a90e4-173f-42fc-b7ef-0df6a062e26c"
    name: ClassVar[str] = "Reframe"
    description: ClassVar[str] = (
        "Changes the aspect ratio to 9:16, 1:1, 4:5 or 16:9 by cropping around the "
        "main face (or the centre) or by fitting the whole frame over a blurred "
        "background."
    )
    Params: ClassVar[type[TileParams]] = ReframeParams
    credits_per_minute: ClassVar[int] = 2

    def fragment(self, params: ReframeParams, info: MediaInfo) -> FilterFragment:
        """The centred version of the work, which needs no look at the pictures."""
        width, height = _display_size(info)
        ratio = _ratio(params.aspect_ratio)
        if params.mode == "crop":
            return crop_fragment(width, height, ratio, params.max_height)
        return pad_blur_fragment(width, height, ratio, params.max_height)

    def run(
        self, params: ReframeParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        fragment, metadata = self.tracked_fragment(params, source, ctx)

        out = ctx.scratch / "output.mp4"
        start = ANALYSIS_SHARE if "frames_sampled" in metadata else 0.0
        render_progress = _scaled(ctx.report_progress, start, 100.0)
        render_ctx = replace(ctx, report_progress=render_progress)
        render_fragments(source, [fragment], out, ctx=render_ctx)
        return [TileOutput(path=out, metadata=metadata)]

    def tracked_fragment(
        self, params: ReframeParams, source: MediaFile, ctx: TileContext
    ) -> tuple[FilterFragment, dict[str, Any]]:
        """The work with the crop following the subject, and what was found.

        The returned chain places the crop by the time of each frame from the start
        of ``source``, so it only fits a pass that starts at the source's start.
        """
        centred = self.fragment(params, source.info)
        if params.mode != "crop":
            return centred, {"tracking": "not needed; pad_blur keeps the whole frame"}
        if not params.track_subject:
            return centred, {"tracking": "off; centred"}

        width, height = _display_size(source.info)
        crop = _crop_size(width, height, centred.width, centred.height)
        if crop == (width, height):
            return centred, {"tracking": "not needed; the frame already has the shape"}

        track = find_faces(
            source.path,
            source.info,
            cancel=ctx.cancel,
            on_progress=_scaled(ctx.report_progress, 0.0, ANALYSIS_SHARE),
        )
        path = plan_crop_path(track, (width, height), crop)
        ratio = _ratio(params.aspect_ratio)
        fragment = crop_fragment(width, height, ratio, params.max_height, path=path)
        return fragment, _tracking_metadata(path, track)


def _ratio(aspect_ratio: str) -> tuple[int, int]:
    across, down = aspect_ratio.split(":")
    return int(across), int(down)


def _display_size(info: MediaInfo) -> tuple[int, int]:
    width, height = info.display_width, info.display_height
    if width is None or height is None:
        raise TileError("Reframe needs a video with a known picture size.")
    return width, height


def _tracking_metadata(path: CropPath | None, track: FaceTrack) -> dict[str, Any]:
    found = {
        "frames_sampled": len(track.times),
        "faces_found": track.found,
        "face_finder": track.detector,
    }
    if path is None:
        return {"tracking": NO_SUBJECT, **found}
    return {
        "tracking": "followed the main face",
        **found,
        "crop_window": {"width": path.width, "height": path.height},
        "crop_path": path.to_list(),
    }


def _scaled(
    report: Callable[[float], None], low: float, high: float
) -> Callable[[float], None]:
    def scaled(percent: float) -> None:
        report(low + (high - low) * percent / 100.0)

    return scaled


def crop_fragment(
    width: int,
    height: int,
    ratio: tuple[int, int],
    max_long_side: int,
    *,
    path: CropPath | None = None,
) -> FilterFragment:
    """Cut the largest region of ``ratio`` out of the frame, centred or on ``path``.

    ``path`` moves the region over time; its window must be the region's size.
    """
    region = _fit(width, height, ratio)
    out_w, out_h = output_size(region, ratio, max_long_side)

    crop_w, crop_h = _crop_size(width, height, out_w, out_h)
    if path is None:
        filters = [f"crop={crop_w}:{crop_h}"]
    else:
        x, y = path.expressions()
        filters = [f"crop=w={crop_w}:h={crop_h}:x='{x}':y='{y}'"]
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
