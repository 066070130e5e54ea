"""Generation tiles that edit the input video: Voice Dubbing, B-Roll, Motion Graphics.

Each asks the configured provider for new media (speech in another language, a
cutaway clip, an animated graphic) and lays it into the input: the speech replaces or
ducks the original, the clip covers part of the picture, the graphic sits on top.
Their node type ids are tilework's own (see :mod:`tilework.tiles.generation`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tilework.errors import TileError
from tilework.media import tts
from tilework.media.probe import MediaInfo
from tilework.media.render import render_fragments
from tilework.providers import (
    PROVIDER_PROGRESS,
    BrollRequest,
    Capability,
    DubRequest,
    MotionGraphicsRequest,
    SelectedProvider,
    escape_filter_value,
    generate,
    scaled_progress,
)
from tilework.tiles.base import (
    FilterFragment,
    MediaFile,
    TileContext,
    TileOutput,
    TileParams,
)
from tilework.tiles.generation import (
    EDGE_MARGIN,
    LANGUAGE_PATTERN,
    LOWER_THIRD_MARGIN,
    MIN_INSERT_SECONDS,
    SHORT_TOLERANCE_SECONDS,
    Position,
    _display_size,
    _even,
    _GenerationTile,
    _prompt,
    _rate,
    _require_input,
    _require_video,
)
from tilework.tiles.voiceover import Placement, lay_sound

logger = logging.getLogger(__name__)


class VoiceDubbingParams(TileParams):
    target_language: str = Field(
        pattern=LANGUAGE_PATTERN,
        description="Language of the dub, a code such as 'fr', 'es' or 'pt-BR'.",
    )
    voice: str | None = Field(
        default=None,
        pattern=tts.VOICE_PATTERN,
        description="Voice to speak with; the provider picks one when unset.",
    )
    transcript: str | None = Field(
        default=None,
        min_length=1,
        max_length=5000,
        description="The words to speak, already translated, when you have them.",
    )
    keep_background: bool = Field(
        default=True,
        description="Keep the original sound under the dub, ducked while it speaks.",
    )
    background_volume_db: float = Field(
        default=-12,
        ge=-60,
        le=0,
        description="Gain of the original sound kept under the dub, dB.",
    )


class _InsertParams(TileParams):
    at_seconds: float = Field(
        default=0, ge=0, le=36000, description="When the insert starts, seconds."
    )
    duration_seconds: float = Field(
        default=3, ge=0.5, le=60, description="How long the insert lasts, seconds."
    )


class BRollParams(_InsertParams):
    prompt: str = _prompt("What the cutaway footage shows.")


class MotionGraphicsParams(_InsertParams):
    prompt: str = _prompt("The text or idea of the graphic.", max_length=500)
    duration_seconds: float = Field(
        default=4, ge=0.5, le=60, description="How long the graphic shows, seconds."
    )
    position: Position = Field(
        default="lower_third", description="Where the graphic sits in the frame."
    )
    width_percent: float = Field(
        default=60, ge=10, le=100, description="Width of the graphic, % of the frame."
    )
    height_percent: float = Field(
        default=20, ge=5, le=100, description="Height of the graphic, % of the frame."
    )


@dataclasses.dataclass(frozen=True)
class _Box:
    x: int
    y: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class _Insert:
    box: _Box
    start: float
    length: float
    notes: tuple[str, ...]


class VoiceDubbing(_GenerationTile):
    node_type_id: ClassVar[str] = "f906fb13-c85c-5e94-9c97-eaf077fd6ff6"
    name: ClassVar[str] = "Voice Dubbing"
    description: ClassVar[str] = (
        "Replaces the speech with a dub in another language made by the configured "
        "provider, keeping the background sound if asked (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = VoiceDubbingParams
    capability: ClassVar[Capability] = "dub"

    def run(
        self, params: VoiceDubbingParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_input(source, self.name)
        selected = self._provider(ctx)
        request = DubRequest(
            source=video.path,
            duration_seconds=video.info.duration,
            target_language=params.target_language,
            voice=params.voice,
            transcript=params.transcript,
        )
        dub, _ = generate(selected, "dub", request, ctx, tile=self.name, needs="audio")

        placement = Placement(
            start_seconds=0.0,
            mix="mix" if params.keep_background else "replace",
            volume_db=0.0,
            original_volume_db=params.background_volume_db,
        )
        output = lay_sound(
            video, dub, placement, ctx, tile=self.name, progress_from=PROVIDER_PROGRESS
        )
        output.metadata.update(
            {"provider": selected.name, "target_language": params.target_language}
        )
        return [output]


class _InsertTile(_GenerationTile):
    """A generation tile whose clip is laid over part of the input."""

    def _lay_over(
        self, video: MediaFile, request: object, insert: _Insert, ctx: TileContext
    ) -> list[TileOutput]:
        """Have the provider make a clip and lay it over ``video`` as ``insert``."""
        selected = self._provider(ctx)
        clip = generate(
            selected, self.capability, request, ctx, tile=self.name, needs="video"
        )
        return [_overlay(video, clip, insert, ctx, selected)]


class BRoll(_InsertTile):
    node_type_id: ClassVar[str] = "33812fe9-91d6-59cd-aece-60e6fc5854c3"
    name: ClassVar[str] = "B-Roll"
    description: ClassVar[str] = (
        "Cuts away to generated footage over part of the video while its sound "
        "goes on (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = BRollParams
    capability: ClassVar[Capability] = "broll"

    def run(
        self, params: BRollParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_video(source, self.name)
        width, height = _display_size(video.info)
        insert = _insert(params, _Box(0, 0, width, height), video.info, self.name)
        request = BrollRequest(
            prompt=params.prompt,
            duration_seconds=insert.length,
            width=_even(width),
            height=_even(height),
            fps=_rate(video.info),
        )
        return self._lay_over(video, request, insert, ctx)


class MotionGraphics(_InsertTile):
    node_type_id: ClassVar[str] = "7b20121a-e678-5b82-911b-18a0a0753f06"
    name: ClassVar[str] = "Motion Graphics"
    description: ClassVar[str] = (
        "Lays an animated graphic made by the configured provider over part of the "
        "video (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = MotionGraphicsParams
    capability: ClassVar[Capability] = "motion_graphics"

    def run(
        self, params: MotionGraphicsParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_video(source, self.name)
        box = graphic_box(params, *_display_size(video.info))
        insert = _insert(params, box, video.info, self.name)
        request = MotionGraphicsRequest(
            prompt=params.prompt,
            duration_seconds=insert.length,
            width=_even(box.width),
            height=_even(box.height),
            fps=_rate(video.info),
        )
        return self._lay_over(video, request, insert, ctx)


def graphic_box(params: MotionGraphicsParams, width: int, height: int) -> _Box:
    """Where a graphic of the asked size sits in a ``width`` x ``height`` frame."""
    if params.position == "full_frame":
        return _Box(0, 0, width, height)

    box_w = min(width, _even(width * params.width_percent / 100))
    box_h = min(height, _even(height * params.height_percent / 100))
    centred_x = (width - box_w) // 2
    margin = round(height * EDGE_MARGIN)
    places = {
        "lower_third": (
            round(width * EDGE_MARGIN),
            height - box_h - round(height * LOWER_THIRD_MARGIN),
        ),
        "top": (centred_x, margin),
        "center": (centred_x, (height - box_h) // 2),
        "bottom": (centred_x, height - box_h - margin),
    }
    x, y = places[params.position]
    x = max(0, min(x, width - box_w))
    y = max(0, min(y, height - box_h))
    return _Box(x, y, box_w, box_h)


def _overlay(
    video: MediaFile,
    clip: tuple[Path, MediaInfo],
    insert: _Insert,
    ctx: TileContext,
    selected: SelectedProvider,
) -> TileOutput:
    """Lay ``clip`` over ``video`` in the box and time window of ``insert``."""
    path, info = clip
    width, height = _display_size(video.info)
    end = insert.start + insert.length
    out = ctx.scratch / "output.mp4"
    fragment = overlay_fragment(path, insert.box, insert.start, end, width, height)
    progress = scaled_progress(ctx.report_progress, PROVIDER_PROGRESS, 100.0)
    render_fragments(
        video, [fragment], out, ctx=dataclasses.replace(ctx, report_progress=progress)
    )

    notes = list(insert.notes)
    if info.duration < insert.length - SHORT_TOLERANCE_SECONDS:
        notes.append(
            f"The provider's clip lasts {info.duration:.2f} s of the "
            f"{insert.length:.2f} s asked for; the video shows again after it."
        )
    metadata: dict[str, Any] = {
        "provider": selected.name,
        "start_seconds": round(insert.start, 3),
        "end_seconds": round(end, 3),
        "box": dataclasses.asdict(insert.box),
    }
    if notes:
        metadata["notes"] = notes
    logger.debug("laid a clip from %s over %s: %s", selected.name, video.path, metadata)
    return TileOutput(path=out, metadata=metadata)


def overlay_fragment(
    clip: Path, box: _Box, start: float, end: float, width: int, height: int
) -> FilterFragment:
    """A graph fragment laying ``clip`` in ``box`` from ``start`` to ``end``."""
    enable = f"between(t,{start:.3f},{end:.3f})"
    graph = ";".join(
        [
            f"movie=filename={escape_filter_value(str(clip))},"
            f"setpts=PTS-STARTPTS+{start:.3f}/TB,"
            f"scale={box.width}:{box.height},setsar=1,format=yuva420p[clip]",
            f"[in][clip]overlay=x={box.x}:y={box.y}:eof_action=pass"
            f":enable='{enable}'[out]",
        ]
    )
    return FilterFragment(
        video=graph, audio=None, width=width, height=height, graph=True
    )


def _insert(params: _InsertParams, box: _Box, info: MediaInfo, tile: str) -> _Insert:
    """Start and length of an insert that fits in the video, and notes if moved."""
    duration = info.duration
    length = min(params.duration_seconds, duration)
    if length < MIN_INSERT_SECONDS:
        raise TileError(
            f"The video lasts {duration:.2f} s, too short for {tile} to insert "
            "anything; use a longer video."
        )
    start = min(params.at_seconds, duration - length)

    notes: list[str] = []
    if length < params.duration_seconds:
        notes.append(
            f"The video lasts {duration:.2f} s, so the insert lasts that long "
            f"instead of {params.duration_seconds:.2f} s."
        )
    if start < params.at_seconds:
        notes.append(
            f"An insert at {params.at_seconds:.2f} s would run past the end, so it "
            f"starts at {start:.2f} s."
        )
    return _Insert(box=box, start=start, length=length, notes=tuple(notes))
