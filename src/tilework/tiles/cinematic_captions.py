"""Cinematic Captions: calm, animated subtitles placed anywhere on the frame.

Speech recognition times the words; each caption line is animated in and out with
libass override tags (fade, pop, slide, typewriter letters, or the spoken word
highlighted), drawn at one of nine places or, with ``auto``, in the third of the frame
that has the least detail and motion, optionally over a translucent box. SRT and
WebVTT files of the same lines come with the render.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from tilework.errors import TileError
from tilework.media.asr import Transcript, Word
from tilework.media.subtitles import (
    AssScript,
    Box,
    Cue,
    Look,
    WordsText,
    colored_words,
    group_words,
    plain_words,
    typed_words,
    wrap_rows,
)
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams
from tilework.tiles.captions import (
    SCRIPT_NAME,
    FontName,
    FontWeight,
    HexColor,
    auto_font_size,
    burn_in,
    caption_canvas,
    caption_metadata,
    row_chars,
    transcribe,
    write_sidecars,
)

logger = logging.getLogger(__name__)

Animation = Literal["fade", "pop", "slide", "typewriter", "highlight"]
Position = Literal[
    "top_left",
    "top_center",
    "top_right",
    "center_left",
    "center",
    "center_right",
    "bottom_left",
    "bottom_center",
    "bottom_right",
    "auto",
]

AUTO_SIZE_OF_HEIGHT = 0.055
AUTO_SIZE_OF_WIDTH = 0.065
MAX_ROWS = 2
MARGIN_OF_WIDTH = 0.05
MARGIN_OF_HEIGHT = 0.06
BOX_PADDING_EM = 0.3
SLIDE_DISTANCE_EM = 0.8
POP_START_SCALE = 70
POP_PEAK_SCALE = 108
POP_PEAK_SHARE = 0.6
SHORTEST_ANIMATION_SHARE = 3
"""An animation takes at most a third of its caption's time on screen."""

SAMPLES = 5
"""Moments of the video looked at to place captions automatically."""
GLIMPSE_GAP = 0.5
"""Seconds between the two frames of a moment, for measuring motion."""
SAMPLE_SIZE = 160
CANNY_LOW, CANNY_HIGH = 80, 160
BANDS = ("top", "middle", "bottom")
BAND_PREFERENCE = {"bottom": 1.0, "top": 1.1, "middle": 1.35}
"""Weights on each third's busyness, also breaking ties: the middle usually holds
the subject, and captions are most at home at the bottom."""
BAND_POSITIONS: dict[str, Position] = {
    "top": "top_center",
    "middle": "center",
    "bottom": "bottom_center",
}

_ALIGNMENT = {"top": (7, 8, 9), "center": (4, 5, 6), "bottom": (1, 2, 3)}


class CinematicCaptionsParams(TileParams):
    animation: Animation = Field(
        default="fade",
        description=(
            "How each caption appears: fade in and out, pop (grow in), slide up, "
            "typewriter (letters appear as the words are said), or highlight (the "
            "spoken word in the highlight colour)."
        ),
    )
    position: Position = Field(
        default="bottom_center",
        description=(
            "Where captions sit on a 3x3 grid; auto picks the top, middle or "
            "bottom third with the least detail and motion."
        ),
    )
    font: FontName = Field(
        default="DejaVu Serif",
        description="Font family name; a similar installed font stands in if absent.",
    )
    font_weight: FontWeight = Field(
        default="400", description="Font weight from 100 (thin) to 900 (black)."
    )
    font_size_px: int | None = Field(
        default=None,
        ge=6,
        le=400,
        description="Font size in video pixels; null picks one from the video size.",
    )
    text_color: HexColor = Field(
        default="#FFFFFF", description="Colour of the text, #RRGGBB."
    )
    highlight_color: HexColor = Field(
        default="#F2C14E",
        description="Colour of the spoken word in the highlight animation, #RRGGBB.",
    )
    uppercase: bool = Field(default=False, description="Set captions in capitals.")
    stroke_enabled: bool = Field(
        default=False, description="Draw an outline around the letters."
    )
    stroke_color: HexColor = Field(
        default="#000000", description="Colour of the outline, #RRGGBB."
    )
    stroke_width: float = Field(
        default=2.0, ge=0, le=40, description="Width of the outline in video pixels."
    )
    background_enabled: bool = Field(
        default=True, description="Draw a box behind each caption."
    )
    background_color: HexColor = Field(
        default="#000000", description="Colour of the box, #RRGGBB."
    )
    background_opacity: float = Field(
        default=0.55,
        ge=0,
        le=1,
        description="Opacity of the box, from 0 (invisible) to 1 (solid).",
    )
    min_words: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Fewest words on a caption, unless a pause ends it sooner.",
    )
    max_words: int = Field(
        default=8, ge=1, le=20, description="Most words on a caption."
    )
    animation_ms: int = Field(
        default=300,
        ge=0,
        le=2000,
        description=(
            "Length of the way in and out, in milliseconds; shortened for brief "
            "captions."
        ),
    )

    @field_validator("font_weight", mode="before")
    @classmethod
    def _weight_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _words_in_order(self) -> CinematicCaptionsParams:
        if self.min_words > self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) is more than max_words "
                f"({self.max_words}); make the minimum no larger than the maximum."
            )
        return self


class CinematicCaptions(Tile):
    node_type_id: ClassVar[str] = "dfa94b02-6a18-4922-9613-636bd202d69d"
    name: ClassVar[str] = "Cinematic Captions"
    description: ClassVar[str] = (
        "Burns in animated subtitles timed to the speech (fade, pop, slide, "
        "typewriter or highlight) at a chosen or automatically found place, and "
        "writes SRT and WebVTT subtitle files."
    )
    Params: ClassVar[type[TileParams]] = CinematicCaptionsParams
    credits_per_minute: ClassVar[int] = 2

    def run(
        self, params: CinematicCaptionsParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        width, height = caption_canvas(source, self.name)
        transcript = transcribe(source, ctx, tile=self.name)

        position, scores = params.position, None
        if position == "auto":
            position, scores = calmest_position(source, ctx)

        look = _look(params, width, height)
        cues, script = _script(transcript, params, look, position, (width, height))
        out = burn_in(source, script.save(ctx.scratch / SCRIPT_NAME), ctx)

        sidecars = write_sidecars(cues, ctx.scratch)
        metadata = caption_metadata(transcript, cues, sidecars, look.font)
        metadata.update(animation=params.animation, position=position)
        if scores is not None:
            metadata["position_scores"] = scores
        return [TileOutput(path=out, metadata=metadata)]


_WORDS: dict[str, WordsText] = {
    "fade": plain_words,
    "pop": plain_words,
    "slide": plain_words,
    "typewriter": typed_words,
    "highlight": colored_words,
}


def _script(
    transcript: Transcript,
    params: CinematicCaptionsParams,
    look: Look,
    position: str,
    frame: tuple[int, int],
) -> tuple[list[Cue], AssScript]:
    """The caption lines, and the ASS script that animates them on the frame."""
    max_chars = row_chars(frame[0], look.size)
    words = transcript.words
    if params.uppercase:
        words = tuple(_upper(word) for word in words)
    cues = group_words(
        words,
        min_words=params.min_words,
        max_words=params.max_words,
        max_chars=max_chars * MAX_ROWS,
    )

    script = AssScript(*frame, look)
    for cue in cues:
        rows = wrap_rows(cue, max_chars)
        tags = _line_tags(rows, params, look, position, frame)
        script.add(rows, line_tags=tags, words_text=_WORDS[params.animation])
    return cues, script


def _upper(word: Word) -> Word:
    return replace(word, text=word.text.upper())


def _look(params: CinematicCaptionsParams, width: int, height: int) -> Look:
    size = params.font_size_px or auto_font_size(
        width, height, of_height=AUTO_SIZE_OF_HEIGHT, of_width=AUTO_SIZE_OF_WIDTH
    )
    box = None
    if params.background_enabled:
        box = Box(
            color=params.background_color,
            opacity=params.background_opacity,
            padding=max(2, round(size * BOX_PADDING_EM)),
        )
    return Look(
        font=params.font,
        weight=int(params.font_weight),
        size=size,
        color=params.text_color,
        highlight_color=params.highlight_color,
        stroke_color=params.stroke_color,
        stroke_width=params.stroke_width if params.stroke_enabled else 0.0,
        box=box,
    )


def _line_tags(
    cue: Cue,
    params: CinematicCaptionsParams,
    look: Look,
    position: str,
    frame: tuple[int, int],
) -> str:
    """Anchor, place and animate one caption on every layer."""
    alignment, x, y = anchor(position, frame, look)
    length = round((cue.end - cue.start) * 1000)
    ms = min(params.animation_ms, length // SHORTEST_ANIMATION_SHARE)
    place = f"\\an{alignment}\\pos({x:.1f},{y:.1f})"

    if params.animation == "pop":
        peak = round(ms * POP_PEAK_SHARE)
        return (
            f"{place}\\fad({ms // 2},{ms // 2})"
            f"\\fscx{POP_START_SCALE}\\fscy{POP_START_SCALE}"
            f"\\t(0,{peak},\\fscx{POP_PEAK_SCALE}\\fscy{POP_PEAK_SCALE})"
            f"\\t({peak},{ms},\\fscx100\\fscy100)"
        )
    if params.animation == "slide":
        below = y + look.size * SLIDE_DISTANCE_EM
        return (
            f"\\an{alignment}\\move({x:.1f},{below:.1f},{x:.1f},{y:.1f},0,{ms})"
            f"\\fad({ms},{ms // 2})"
        )
    if params.animation == "typewriter":
        return f"{place}\\fad(0,{ms // 2})"
    return f"{place}\\fad({ms},{ms})"


def anchor(
    position: str, frame: tuple[int, int], look: Look
) -> tuple[int, float, float]:
    """The ASS alignment and the point it refers to for a grid ``position``."""
    width, height = frame
    padding = look.box.padding if look.box is not None else 0.0
    edge = padding + look.stroke_width
    vertical, _, horizontal = position.partition("_")
    if position == "center":
        vertical, horizontal = "center", "center"

    column = {"left": 0, "center": 1, "right": 2}[horizontal]
    alignment = _ALIGNMENT[vertical][column]
    x = (
        edge + width * MARGIN_OF_WIDTH,
        width / 2,
        width - edge - width * MARGIN_OF_WIDTH,
    )
    y = {
        "top": edge + height * MARGIN_OF_HEIGHT,
        "center": height / 2,
        "bottom": height - edge - height * MARGIN_OF_HEIGHT,
    }
    return alignment, x[column], y[vertical]


def calmest_position(
    source: MediaFile, ctx: TileContext
) -> tuple[Position, dict[str, float]]:
    """The grid position in the third of the frame with the least detail and motion."""
    glimpses = sample_glimpses(source, ctx)
    if not glimpses:
        raise TileError(
            f"No frames could be read from {source.path.name} to place the "
            "captions automatically; choose a position instead of auto."
        )

    scores = band_scores(glimpses)
    band = calmest_band(scores)
    logger.debug("caption bands %s: chose %s", scores, band)
    return BAND_POSITIONS[band], scores


def calmest_band(scores: dict[str, float]) -> str:
    """The third with the lowest weighted score; ties go to the preferred third."""
    return min(
        BANDS,
        key=lambda name: (scores[name] * BAND_PREFERENCE[name], BAND_PREFERENCE[name]),
    )


def sample_glimpses(source: MediaFile, ctx: TileContext) -> list[npt.NDArray[np.uint8]]:
    """Pairs of small grey upright frames, ``GLIMPSE_GAP`` apart, spread evenly.

    Each glimpse has shape (frames, S, S) with one or two frames; seeking to each
    moment keeps this quick even on long videos.
    """
    raw = ctx.scratch / "position-samples.gray"
    duration = source.info.duration
    glimpses: list[npt.NDArray[np.uint8]] = []
    for index in range(SAMPLES):
        moment = duration * (index + 0.5) / SAMPLES
        _grab(source.path, moment, raw, ctx)
        glimpse = _read_gray(raw)
        if len(glimpse):
            glimpses.append(glimpse)
    raw.unlink(missing_ok=True)
    return glimpses


def _grab(video: Path, moment: float, raw: Path, ctx: TileContext) -> None:
    scale = f"scale={SAMPLE_SIZE}:{SAMPLE_SIZE},format=gray"
    args = [
        *("-ss", f"{moment:.3f}", "-i", str(video), "-map", "0:V:0", "-an", "-sn"),
        *("-vf", f"fps={1 / GLIMPSE_GAP:g},{scale}", "-frames:v", "2"),
        *("-f", "rawvideo", str(raw)),
    ]
    ctx.ffmpeg.run(
        args, cancel=ctx.cancel, description="Sampling frames to place the captions"
    )


def _read_gray(raw: Path) -> npt.NDArray[np.uint8]:
    data = np.fromfile(raw, dtype=np.uint8)
    count = len(data) // (SAMPLE_SIZE * SAMPLE_SIZE)
    frames = data[: count * SAMPLE_SIZE * SAMPLE_SIZE]
    return frames.reshape(count, SAMPLE_SIZE, SAMPLE_SIZE)


def band_scores(glimpses: Sequence[npt.NDArray[np.uint8]]) -> dict[str, float]:
    """Edge density plus change within each glimpse, for each third of the frame."""
    import cv2

    frames = np.concatenate(glimpses)
    edges = np.stack([cv2.Canny(frame, CANNY_LOW, CANNY_HIGH) for frame in frames])
    detail = edges.astype(np.float32) / 255.0
    changes = [
        np.abs(np.diff(glimpse.astype(np.float32), axis=0)) / 255.0
        for glimpse in glimpses
        if len(glimpse) > 1
    ]
    change = np.concatenate(changes) if changes else np.zeros_like(detail[:1])

    size = frames.shape[1]
    bounds = [0, size // 3, 2 * size // 3, size]
    scores: dict[str, float] = {}
    for index, name in enumerate(BANDS):
        rows = slice(bounds[index], bounds[index + 1])
        score = float(detail[:, rows].mean() + change[:, rows].mean())
        scores[name] = round(score, 4)
    return scores
