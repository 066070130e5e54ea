"""The tiles tilework knows, by node type id."""

from __future__ import annotations

import logging
from functools import cache

from tilework.errors import TileworkError
from tilework.tiles.ai_music import AIMusic
from tilework.tiles.audio_enhance import AudioEnhance
from tilework.tiles.base import Tile
from tilework.tiles.captions import Captions
from tilework.tiles.cinematic_captions import CinematicCaptions
from tilework.tiles.clips import Clips
from tilework.tiles.color_correction import ColorCorrection
from tilework.tiles.generation import (
    AIAvatar,
    ContentGeneration,
    ImageGeneration,
    VideoGeneration,
)
from tilework.tiles.generation_edits import BRoll, MotionGraphics, VoiceDubbing
from tilework.tiles.intro_outro import Intro, Outro
from tilework.tiles.mirror import Mirror
from tilework.tiles.reframe import Reframe
from tilework.tiles.rough_cut import RoughCut
from tilework.tiles.silence_removal import SilenceRemoval
from tilework.tiles.video_input import VideoInput
from tilework.tiles.voiceover import AIVoiceover, AudioGeneration
from tilework.tiles.watermark import Watermark

logger = logging.getLogger(__name__)

TILE_TYPES: tuple[type[Tile], ...] = (
    VideoInput,
    Clips,
    Captions,
    CinematicCaptions,
    Reframe,
    RoughCut,
    SilenceRemoval,
    AudioEnhance,
    AIMusic,
    AIVoiceover,
    Watermark,
    Intro,
    Outro,
    Mirror,
    ColorCorrection,
    ContentGeneration,
    AIAvatar,
    VideoGeneration,
    AudioGeneration,
    ImageGeneration,
    VoiceDubbing,
    MotionGraphics,
    BRoll,
)


class UnknownTileType(TileworkError):
    """Raised when no tile has the node type id asked for."""


@cache
def _tiles_by_id() -> dict[str, Tile]:
    tiles: dict[str, Tile] = {}
    for tile_type in TILE_TYPES:
        if tile_type.node_type_id in tiles:
            raise TileworkError(
                f"Two tiles share the node type id {tile_type.node_type_id}; "
                "give each tile its own id."
            )
        tiles[tile_type.node_type_id] = tile_type()
    return tiles


def get_tile(node_type_id: str) -> Tile:
    """The tile with this node type id; raises :class:`UnknownTileType` if none."""
    try:
        return _tiles_by_id()[node_type_id]
    except KeyError:
        raise UnknownTileType(
            f"There is no tile with node type id {node_type_id!r}; "
            "list the tiles to see which ids exist."
        ) from None


def all_tiles() -> list[Tile]:
    """Every tile, in the order they are listed in :data:`TILE_TYPES`."""
    return list(_tiles_by_id().values())
