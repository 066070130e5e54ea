"""Mirror: flip the picture left to right, top to bottom, or both."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field

from tilework.errors import TileError
from tilework.media.probe import MediaInfo
from tilework.tiles.base import FilterFragment, FilterTile, TileParams

logger = logging.getLogger(__name__)

_FLIPS = {"horizontal": "hflip", "vertical": "vflip", "both": "hflip,vflip"}


class MirrorParams(TileParams):
    direction: Literal["horizontal", "vertical", "both"] = Field(
        default="horizontal",
        description=(
            "horizontal swaps left and right, vertical swaps top and bottom, "
            "both does the two (the same as turning the picture half a turn)."
        ),
    )


class Mirror(FilterTile):
    node_type_id: ClassVar[str] = "71156aca-3e21-45b0-8960-099dba07c83a"
    name: ClassVar[str] = "Mirror"
    description: ClassVar[str] = (
        "Flips the picture horizontally, vertically or both; the sound is unchanged."
    )
    Params: ClassVar[type[TileParams]] = MirrorParams

    def fragment(self, params: MirrorParams, info: MediaInfo) -> FilterFragment:
        width, height = info.display_width, info.display_height
        if width is None or height is None:
            raise TileError("Mirror needs a video with a known picture size.")
        return FilterFragment(
            video=_FLIPS[params.direction], audio=None, width=width, height=height
        )
