"""Captions: transcribe the speech and burn word-by-word captions into the video.

Speech recognition gives every word with its timing; the words are grouped into short
lines and drawn with libass in one ffmpeg pass, the word being spoken highlighted in
colour, enlarged, or filled karaoke-style. The same lines are also written as SRT and
WebVTT files, and the transcript is returned in the output's metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tilework.errors import TileError
from tilework.media.asr import Transcript, get_transcriber
from tilework.media.render import render_fragments
from tilework.media.subtitles import (
    HIGHLIGHTS,
    AssScript,
    Cue,
    Look,
    Shadow,
    ass_filter,
    group_words,
    installed_font_families,
    wrap_rows,
    write_srt,
    write_vtt,
)
from tilework.tiles.base import (
    FilterFragment,
    MediaFile,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

HEX_COLOR_PATTERN = r"^#[0-9A-Fa-f]{6}$"
FONT_NAME_PATTERN = r"^[^,{}\\\r\n]+$"
"""A font family name that fits in an ASS style line."""

FontWeight = Literal["100", "200", "300", "400", "500", "600", "700", "800", "900"]
HexColor = Annotated[str, Field(pattern=HEX_COLOR_PATTERN)]
FontName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=FONT_NAME_PATTERN)
]

AUTO_SIZE_OF_HEIGHT = 0.07
AUTO_SIZE_OF_WIDTH = 0.09
MIN_FONT_SIZE = 8
TEXT_WIDTH_SHARE = 0.9
"""Part of the frame width a caption row may fill."""
CHAR_WIDTH_EM = 0.6
"""Average width of a character in a bold sans font, in font sizes."""
ROW_HEIGHT_EM = 1.25
SHADOW_OFFSET_EM = 0.06
TRANSCRIBE_SHARE = 50.0
"""Percent of the progress bar spent on speech recognition; rendering has the rest."""
SCRIPT_NAME = "captions.ass"
SRT_NAME = "captions.srt"
VTT_NAME = "captions.vtt"


class CaptionsParams(TileParams):
    caption_style: Literal["colored", "scaling", "karaoke"] = Field(
        default="colored",
        description=(
            "colored shows the word being spoken in the highlight colour; scaling "
            "also enlarges it; karaoke fills each word with the highlight colour as "
            "it is said."
        ),
    )
    base_color: HexColor = Field(
        default="#FFFFFF", description="Colour of the caption text, #RRGGBB."
    )
    highlight_color: HexColor = Field(
        default="#FFD400", description="Colour of the word being spoken, #RRGGBB."
    )
    stroke_color: HexColor = Field(
        default="#000000", description="Colour of the outline around letters, #RRGGBB."
    )
    stroke_width: float = Field(
        default=3.0, ge=0, le=40, description="Width of the outline in video pixels."
    )
    stroke_enabled: bool = Field(
        default=True, description="Draw an outline around the letters."
    )
    caption_font: FontName = Field(
        default="DejaVu Sans",
        description=(
            "Font family name; an installed font is used as it is, otherwise a "
            "similar installed font takes its place (the output metadata says so)."
        ),
    )
    caption_font_weight: FontWeight = Field(
        default="700", description="Font weight from 100 (thin) to 900 (black)."
    )
    caption_font_size_px: int | None = Field(
        default=None,
        ge=6,
        le=400,
        description="Font size in video pixels; null picks one from the video size.",
    )
    caption_vertical_position: float = Field(
        default=85,
        ge=0,
        le=100,
        description=(
            "Height of the middle of the captions, in percent of the video height "
            "from the top; kept far enough from the edges for the text to fit."
        ),
    )
    caption_min_words: int = Field(
        default=1,
        ge=1,
        le=10,
        description=(
            "Fewest words on a caption line, unless a pause in the speech ends "
            "it sooner."
        ),
    )
    caption_max_words: int = Field(
        default=4, ge=1, le=20, description="Most words on a caption line."
    )
    shadow_enabled: bool = Field(
        default=False, description="Draw a soft drop shadow behind the text."
    )
    shadow_color: HexColor = Field(
        default="#000000", description="Colour of the shadow, #RRGGBB."
    )
    shadow_blur: float = Field(
        default=4.0, ge=0, le=50, description="Softness of the shadow's edge."
    )
    shadow_opacity: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Opacity of the shadow, from 0 (invisible) to 1 (solid).",
    )

    @field_validator("caption_font_weight", mode="before")
    @classmethod
    def _weight_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _words_in_order(self) -> CaptionsParams:
        if self.caption_min_words > self.caption_max_words:
            raise ValueError(
                f"caption_min_words ({self.caption_min_words}) is more than "
                f"caption_max_words ({self.caption_max_words}); make the minimum "
                "no larger than the maximum."
            )
        return self


class Captions(Tile):
    node_type_id: ClassVar[str] = "cdccb204-168e-4aec-aa72-480b11e74324"
    name: ClassVar[str] = "Captions"
    description: ClassVar[str] = (
        "Transcribes the speech and burns in word-by-word captions that highlight "
        "the spoken word, and writes SRT and WebVTT subtitle files."
    )
    Params: ClassVar[type[TileParams]] = CaptionsParams
    credits_per_minute: ClassVar[int] = 2

    def run(
        self, params: CaptionsParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        width, height = caption_canvas(source, self.name)
        transcript = transcribe(source, ctx, tile=self.name)

        look = _look(params, width, height)
        cues, script = _script(transcript, params, look, (width, height))
        out = burn_in(source, script.save(ctx.scratch / SCRIPT_NAME), ctx)

        sidecars = write_sidecars(cues, ctx.scratch)
        metadata = caption_metadata(transcript, cues, sidecars, look.font)
        metadata["caption_style"] = params.caption_style
        return [TileOutput(path=out, metadata=metadata)]


def _script(
    transcript: Transcript,
    params: CaptionsParams,
    look: Look,
    frame: tuple[int, int],
) -> tuple[list[Cue], AssScript]:
    """The caption lines, and the ASS script that draws them on the frame."""
    width, height = frame
    max_chars = row_chars(width, look.size)
    cues = group_words(
        transcript.words,
        min_words=params.caption_min_words,
        max_words=params.caption_max_words,
        max_chars=max_chars,
    )

    script = AssScript(width, height, look)
    words_text = HIGHLIGHTS[params.caption_style]
    for cue in cues:
        rows = wrap_rows(cue, max_chars)
        tags = _position(rows, look, width, height, params.caption_vertical_position)
        script.add(rows, line_tags=tags, words_text=words_text)
    return cues, script


def _look(params: CaptionsParams, width: int, height: int) -> Look:
    size = params.caption_font_size_px or auto_font_size(
        width, height, of_height=AUTO_SIZE_OF_HEIGHT, of_width=AUTO_SIZE_OF_WIDTH
    )
    shadow = None
    if params.shadow_enabled:
        shadow = Shadow(
            color=params.shadow_color,
            opacity=params.shadow_opacity,
            blur=params.shadow_blur,
            offset=max(1, round(size * SHADOW_OFFSET_EM)),
        )
    return Look(
        font=params.caption_font,
        weight=int(params.caption_font_weight),
        size=size,
        color=params.base_color,
        highlight_color=params.highlight_color,
        stroke_color=params.stroke_color,
        stroke_width=params.stroke_width if params.stroke_enabled else 0.0,
        shadow=shadow,
    )


def _position(cue: Cue, look: Look, width: int, height: int, percent: float) -> str:
    """Centre the cue's rows at ``percent`` of the height, kept inside the frame."""
    rows = len(cue.breaks) + 1
    half = rows * look.size * ROW_HEIGHT_EM / 2 + look.stroke_width
    y = min(max(height * percent / 100, half), height - half)
    return f"\\an5\\pos({width / 2:.1f},{max(y, 0.0):.1f})"


def auto_font_size(
    width: int, height: int, *, of_height: float, of_width: float
) -> int:
    """A font size in proportion to the frame, small enough for narrow frames."""
    return max(MIN_FONT_SIZE, round(min(height * of_height, width * of_width)))


def row_chars(width: int, size: int) -> int:
    """About how many characters of ``size`` fit across a row of the frame."""
    return max(4, int(width * TEXT_WIDTH_SHARE / (size * CHAR_WIDTH_EM)))


def caption_canvas(source: MediaFile, tile: str) -> tuple[int, int]:
    """The upright picture size to draw on; TileError without picture or sound."""
    info = source.info
    width, height = info.display_width, info.display_height
    if not info.has_video or width is None or height is None:
        raise TileError(
            f"{source.path.name} has no video stream; {tile} draws on a picture, "
            "so give it a video."
        )
    if not info.has_audio:
        raise TileError(
            f"{source.path.name} has no audio track, so there is no speech to "
            f"caption; give {tile} a video with sound or remove this step."
        )
    return width, height


def transcribe(source: MediaFile, ctx: TileContext, *, tile: str) -> Transcript:
    """The words spoken in ``source``, reporting the first part of the progress."""
    transcriber = get_transcriber(ctx.settings, tile=tile)
    return transcriber.transcribe(
        source.path,
        ffmpeg=ctx.ffmpeg,
        cancel=ctx.cancel,
        on_progress=scaled_progress(ctx.report_progress, 0.0, TRANSCRIBE_SHARE),
    )


def burn_in(source: MediaFile, script: Path, ctx: TileContext) -> Path:
    """Render ``source`` with the ASS ``script`` drawn on it, in one ffmpeg pass."""
    _require_fonts()
    info = source.info
    fragment = FilterFragment(
        video=ass_filter(script),
        audio=None,
        width=info.display_width or 0,
        height=info.display_height or 0,
    )
    out = ctx.scratch / "output.mp4"
    progress = scaled_progress(ctx.report_progress, TRANSCRIBE_SHARE, 100.0)
    render_fragments(
        source, [fragment], out, ctx=replace(ctx, report_progress=progress)
    )
    return out


def _require_fonts() -> None:
    families = installed_font_families()
    if families is not None and not families:
        raise TileError(
            "No fonts are installed on this server, so captions cannot be drawn; "
            "install a font package such as fonts-dejavu-core."
        )


def write_sidecars(cues: Sequence[Cue], scratch: Path) -> dict[str, str]:
    """Write the cues as SRT and WebVTT; their names relative to ``scratch``."""
    write_srt(cues, scratch / SRT_NAME)
    write_vtt(cues, scratch / VTT_NAME)
    return {"srt": SRT_NAME, "vtt": VTT_NAME}


def caption_metadata(
    transcript: Transcript, cues: Sequence[Cue], sidecars: dict[str, str], font: str
) -> dict[str, Any]:
    """What later stages and the executor need to know about the captions."""
    families = installed_font_families()
    installed = None if families is None else font.lower() in families
    metadata: dict[str, Any] = {
        "subtitle_files": sidecars,
        "transcript": transcript.to_dict(),
        "language": transcript.language,
        "caption_count": len(cues),
        "word_count": len(transcript.words),
        "font": font,
        "font_installed": installed,
    }
    notes = _notes(cues, font, installed)
    if notes:
        metadata["note"] = " ".join(notes)
    return metadata


def _notes(cues: Sequence[Cue], font: str, installed: bool | None) -> list[str]:
    notes: list[str] = []
    if not cues:
        notes.append("No speech was found, so the video has no captions.")
    if installed is False:
        notes.append(
            f"The font {font!r} is not installed, so a similar installed font was used."
        )
    return notes


def scaled_progress(
    report: Callable[[float], None], low: float, high: float
) -> Callable[[float], None]:
    def scaled(percent: float) -> None:
        report(low + (high - low) * percent / 100.0)

    return scaled
