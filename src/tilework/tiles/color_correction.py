"""Color Correction: brightness, contrast, saturation, gamma, warmth and a LUT.

``temperature`` is a warmth slider from -1 to 1 rather than a Kelvin figure: 0 leaves
the colours alone, 1 blends fully into ffmpeg's ``colortemperature`` at 3000 K (the
orange of tungsten light) and -1 into 12000 K (the blue of shade), with the
lightness of each pixel kept. A slider has an exact neutral point, where a Kelvin
value of 6500 would still tint the picture slightly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tilework.errors import ProbeError, TileError
from tilework.media.lut import check_cube, filter_path
from tilework.media.probe import MediaInfo
from tilework.media.render import render_fragments
from tilework.tiles.base import (
    FilterFragment,
    FilterTile,
    MediaFile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

WARM_KELVIN = 3000
COOL_KELVIN = 12000


class ColorCorrectionParams(TileParams):
    brightness: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description="Added to every pixel's lightness; 0 leaves it, 1 is white.",
    )
    contrast: float = Field(
        default=1.0, ge=0, le=3, description="Contrast factor; 1 leaves it, 0 is flat."
    )
    saturation: float = Field(
        default=1.0,
        ge=0,
        le=3,
        description="Colour intensity factor; 1 leaves it, 0 is black and white.",
    )
    gamma: float = Field(
        default=1.0,
        ge=0.1,
        le=10,
        description="Gamma; above 1 lifts the shadows and mid-tones, below 1 darkens.",
    )
    temperature: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description=(
            "Warmth: 0 leaves the colours, up to 1 warms them towards 3000 K light, "
            "down to -1 cools them towards 12000 K; lightness is kept."
        ),
    )
    lut_id: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "An uploaded 3D LUT (.cube) applied after the other corrections, "
            "for a finished look; none by default."
        ),
    )


class ColorCorrection(FilterTile):
    node_type_id: ClassVar[str] = "8254e1f8-dfea-42f9-90d8-aa91ec859bec"
    name: ClassVar[str] = "Color Correction"
    description: ClassVar[str] = (
        "Adjusts brightness, contrast, saturation, gamma and warmth, and can apply "
        "an uploaded .cube LUT; the sound is unchanged."
    )
    Params: ClassVar[type[TileParams]] = ColorCorrectionParams

    def fragment(
        self, params: ColorCorrectionParams, info: MediaInfo
    ) -> FilterFragment:
        """The work without a LUT; a LUT upload is only found when the tile runs."""
        if params.lut_id is not None:
            raise TileError(
                "Color Correction with a LUT has to resolve the upload first; "
                "run the tile rather than its filter chain."
            )
        return correction_fragment(params, info, lut=None)

    def run(
        self, params: ColorCorrectionParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        lut = _lut_file(params.lut_id, ctx) if params.lut_id else None
        fragment = correction_fragment(params, source.info, lut=lut)

        out = ctx.scratch / "output.mp4"
        render_fragments(source, [fragment], out, ctx=ctx)
        metadata = {"adjusted": _adjusted(params), "lut_applied": lut is not None}
        return [TileOutput(path=out, metadata=metadata)]


def correction_fragment(
    params: ColorCorrectionParams, info: MediaInfo, *, lut: Path | None
) -> FilterFragment:
    """The filter chain for ``params``, with the checked .cube file ``lut`` if any."""
    width, height = info.display_width, info.display_height
    if width is None or height is None:
        raise TileError("Color Correction needs a video with a known picture size.")

    filters = [*_eq(params), *_warmth(params.temperature)]
    if lut is not None:
        filters.append(f"lut3d=file={filter_path(lut)}:interp=tetrahedral")
    chain = ",".join(filters) or None
    return FilterFragment(video=chain, audio=None, width=width, height=height)


def _eq(params: ColorCorrectionParams) -> list[str]:
    settings = _eq_settings(params)
    changed = [f"{k}={v:g}" for k, (v, neutral) in settings.items() if v != neutral]
    return [f"eq={':'.join(changed)}"] if changed else []


def _eq_settings(params: ColorCorrectionParams) -> dict[str, tuple[float, float]]:
    """Each ``eq`` setting with its value and the value that changes nothing."""
    return {
        "brightness": (params.brightness, 0.0),
        "contrast": (params.contrast, 1.0),
        "saturation": (params.saturation, 1.0),
        "gamma": (params.gamma, 1.0),
    }


def _adjusted(params: ColorCorrectionParams) -> dict[str, float]:
    settings = _eq_settings(params) | {"temperature": (params.temperature, 0.0)}
    return {k: v for k, (v, neutral) in settings.items() if v != neutral}


def _warmth(warmth: float) -> list[str]:
    if warmth == 0:
        return []
    kelvin = WARM_KELVIN if warmth > 0 else COOL_KELVIN
    return [f"colortemperature=temperature={kelvin}:mix={abs(warmth):g}:pl=1"]


def _lut_file(lut_id: str, ctx: TileContext) -> Path:
    path = ctx.resolve_asset(lut_id, "lut")
    try:
        check_cube(path)
    except ProbeError as exc:
        raise TileError(
            f"The LUT upload {lut_id} cannot be used: {exc} Upload a valid .cube file."
        ) from exc
    return path
