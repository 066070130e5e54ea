"""Intro and Outro: put an uploaded clip or a generated title card before or after.

The added part is conformed to the main video (display size, frame rate, sample
rate and channel layout) and joined to it in one ffmpeg pass, with a hard cut or a
crossfade of picture and sound. The output has sound exactly when the main video
does; an added clip without sound gets silence.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from tilework.errors import ProbeError, TileError
from tilework.media.lut import filter_path, filter_value
from tilework.media.probe import MediaInfo, probe_video
from tilework.media.render import (
    AUDIO_SAMPLE_RATE,
    DEFAULT_FPS,
    constant_rate,
    encode_args,
)
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams

logger = logging.getLogger(__name__)

Kind = Literal["intro", "outro"]

HEX_COLOR = r"^#[0-9A-Fa-f]{6}$"
TITLE_HEIGHT_SHARE = 0.09
SUBTITLE_HEIGHT_SHARE = 0.045
WIDTH_PER_CHARACTER = 1.5
"""Font size limit times characters per line, as a multiple of the picture width."""
MIN_FONT_SIZE = 8
MAX_CROSSFADE_SHARE = 0.5
"""The crossfade may take at most this share of the shorter of the two parts."""
FONT_LOOKUP_SECONDS = 10


class IntroOutroParams(TileParams):
    video_id: str | None = Field(
        default=None,
        min_length=1,
        description="An uploaded clip to add. Set this or title, not both.",
    )
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="Text of a generated title card. Set this or video_id.",
    )
    subtitle: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A smaller second line under the title on the card.",
    )
    background_color: str = Field(
        default="#000000", pattern=HEX_COLOR, description="Card colour, #RRGGBB."
    )
    text_color: str = Field(
        default="#FFFFFF", pattern=HEX_COLOR, description="Card text colour, #RRGGBB."
    )
    duration_seconds: float = Field(
        default=3.0,
        ge=0.5,
        le=30,
        description="How long the title card shows; an uploaded clip plays in full.",
    )
    crossfade_seconds: float = Field(
        default=0.0,
        ge=0,
        le=5,
        description=(
            "Length of the crossfade between the added part and the video; 0 is a "
            "hard cut. At most half the shorter part is used."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> IntroOutroParams:
        if self.video_id is None and self.title is None:
            raise ValueError(
                "set video_id (an uploaded clip) or title (a generated title card)"
            )
        if self.video_id is not None and self.title is not None:
            raise ValueError(
                "set either video_id or title, not both: a clip is added as it is"
            )
        if self.subtitle is not None and self.title is None:
            raise ValueError("subtitle needs a title to go under")
        return self


@dataclass(frozen=True)
class _Frame:
    """What the joined video must look and sound like: the main video's format."""

    width: int
    height: int
    rate: str
    audio: bool
    sample_rate: int
    layout: str


@dataclass(frozen=True)
class _Part:
    """One input of the join as graph labels, and how long it lasts."""

    video: str
    audio: str | None
    duration: float


class _Bookend(Tile):
    kind: ClassVar[Kind]
    Params: ClassVar[type[TileParams]] = IntroOutroParams

    def run(
        self, params: IntroOutroParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        frame = _target_frame(source)
        added, added_pieces, added_inputs = _added_part(params, frame, ctx)
        main, main_pieces = _main_part(source.info, frame)

        first, second = (added, main) if self.kind == "intro" else (main, added)
        fade, note = _crossfade(params.crossfade_seconds, first, second)
        joined = _join(first, second, fade, frame.audio)
        graph = ";".join([*added_pieces, *main_pieces, *joined])

        out = ctx.scratch / "output.mp4"
        args = [
            *("-i", str(source.path), *added_inputs, "-filter_complex", graph),
            *("-map", "[vout]", *(["-map", "[aout]"] if frame.audio else [])),
            *encode_args(ctx.x264_preset, audio=frame.audio),
        ]
        total = first.duration + second.duration - fade
        _render(
            args, out, ctx=ctx, duration=total, description=f"Adding the {self.kind}"
        )

        metadata = _metadata(self.kind, first, second, fade, note)
        return [TileOutput(path=out, metadata=metadata)]


class Intro(_Bookend):
    node_type_id: ClassVar[str] = "ef3f8d59-26be-4ea0-b655-9a08b10577cc"
    name: ClassVar[str] = "Intro"
    description: ClassVar[str] = (
        "Puts an uploaded clip or a generated title card before the video, with a "
        "hard cut or a crossfade."
    )
    kind: ClassVar[Kind] = "intro"


class Outro(_Bookend):
    node_type_id: ClassVar[str] = "cf517f33-3f78-4d55-88c2-a7d8478f8ef9"
    name: ClassVar[str] = "Outro"
    description: ClassVar[str] = (
        "Puts an uploaded clip or a generated title card after the video, with a "
        "hard cut or a crossfade."
    )
    kind: ClassVar[Kind] = "outro"


def _target_frame(source: MediaFile) -> _Frame:
    info = source.info
    width, height = info.display_width, info.display_height
    if not info.has_video or width is None or height is None:
        raise TileError(
            f"{source.path.name} has no video stream; an intro or outro needs a video."
        )
    return _Frame(
        width=max(2, width // 2 * 2),
        height=max(2, height // 2 * 2),
        rate=frame_rate(info),
        audio=info.has_audio,
        sample_rate=info.audio_sample_rate or AUDIO_SAMPLE_RATE,
        layout="mono" if info.audio_channels == 1 else "stereo",
    )


def frame_rate(info: MediaInfo) -> str:
    """The main video's frame rate as an exact fraction for ffmpeg."""
    forced = constant_rate(info)
    if forced is not None:
        return str(forced)
    rate = Fraction(info.fps or DEFAULT_FPS).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def _main_part(info: MediaInfo, frame: _Frame) -> tuple[_Part, list[str]]:
    video = f"[0:V:0]{_conform_video(frame, info.duration)}[mainv]"
    pieces = [video]
    audio = None
    if frame.audio:
        pieces.append(f"[0:a:0]{_conform_audio(frame, info.duration)}[maina]")
        audio = "maina"
    return _Part("mainv", audio, info.duration), pieces


def _added_part(
    params: IntroOutroParams, frame: _Frame, ctx: TileContext
) -> tuple[_Part, list[str], list[str]]:
    """The clip or card to add: its part, its graph pieces, its ffmpeg inputs."""
    if params.video_id is None:
        return (*_card_part(params, frame), [])

    clip = _uploaded_clip(params.video_id, ctx)
    return (*_clip_part(clip.info, frame), ["-i", str(clip.path)])


def _uploaded_clip(video_id: str, ctx: TileContext) -> MediaFile:
    path = ctx.resolve_asset(video_id, "video")
    try:
        return MediaFile(path, probe_video(path))
    except ProbeError as exc:
        raise TileError(f"The upload {video_id} cannot be added: {exc}") from exc


def _clip_part(info: MediaInfo, frame: _Frame) -> tuple[_Part, list[str]]:
    fit = (
        f"scale={frame.width}:{frame.height}:force_original_aspect_ratio=decrease,"
        f"pad={frame.width}:{frame.height}:-1:-1:color=black"
    )
    pieces = [f"[1:V:0]{fit},{_conform_video(frame, info.duration)}[addv]"]
    if not frame.audio:
        return _Part("addv", None, info.duration), pieces

    if info.has_audio:
        pieces.append(f"[1:a:0]{_conform_audio(frame, info.duration)}[adda]")
    else:
        pieces.append(_silence(frame, info.duration, "adda"))
    return _Part("addv", "adda", info.duration), pieces


def _card_part(params: IntroOutroParams, frame: _Frame) -> tuple[_Part, list[str]]:
    seconds = params.duration_seconds
    background = _hex(params.background_color)
    card = (
        f"color=c={background}:s={frame.width}x{frame.height}:r={frame.rate}"
        f":d={seconds:g},format=yuv420p,{_card_text(params, frame)},setsar=1"
    )
    pieces = [f"{card}[addv]"]
    if not frame.audio:
        return _Part("addv", None, seconds), pieces
    pieces.append(_silence(frame, seconds, "adda"))
    return _Part("addv", "adda", seconds), pieces


def _card_text(params: IntroOutroParams, frame: _Frame) -> str:
    font = filter_path(find_font())
    color = _hex(params.text_color)
    title = _one_line(params.title or "")
    lines = [(title, TITLE_HEIGHT_SHARE, "(h-text_h)/2")]
    if params.subtitle:
        subtitle = _one_line(params.subtitle)
        lines = [
            (title, TITLE_HEIGHT_SHARE, "h*0.44-text_h/2"),
            (subtitle, SUBTITLE_HEIGHT_SHARE, "h*0.6-text_h/2"),
        ]

    draws = []
    for text, share, y in lines:
        size = _font_size(text, share, frame)
        draws.append(
            f"drawtext=fontfile={font}:text={filter_value(text)}:expansion=none"
            f":fontcolor={color}:fontsize={size}:x=(w-text_w)/2:y={y}"
        )
    return ",".join(draws)


def _font_size(text: str, share: float, frame: _Frame) -> int:
    by_height = frame.height * share
    by_width = WIDTH_PER_CHARACTER * frame.width / max(1, len(text))
    return max(MIN_FONT_SIZE, round(min(by_height, by_width)))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _hex(color: str) -> str:
    return f"0x{color.removeprefix('#').upper()}"


def _conform_video(frame: _Frame, seconds: float) -> str:
    """Even size, the main frame rate and format, exactly ``seconds`` long."""
    return (
        f"crop={frame.width}:{frame.height}:0:0,setsar=1,fps={frame.rate},"
        f"format=yuv420p,tpad=stop_mode=clone:stop_duration={seconds:.3f},"
        f"trim=duration={seconds:.6f},setpts=PTS-STARTPTS"
    )


def _conform_audio(frame: _Frame, seconds: float) -> str:
    """The main sample rate and layout, exactly ``seconds`` long."""
    return (
        f"aresample={frame.sample_rate},"
        f"aformat=sample_fmts=fltp:sample_rates={frame.sample_rate}"
        f":channel_layouts={frame.layout},"
        f"apad=whole_dur={seconds:.6f},atrim=duration={seconds:.6f},"
        "asetpts=PTS-STARTPTS"
    )


def _silence(frame: _Frame, seconds: float, label: str) -> str:
    return (
        f"anullsrc=r={frame.sample_rate}:cl={frame.layout},"
        f"aformat=sample_fmts=fltp,atrim=duration={seconds:.6f}[{label}]"
    )


def _crossfade(wanted: float, first: _Part, second: _Part) -> tuple[float, str | None]:
    """The crossfade length to use, and a note when it had to be shortened."""
    limit = MAX_CROSSFADE_SHARE * min(first.duration, second.duration)
    if wanted <= limit:
        return wanted, None
    note = (
        f"The crossfade was shortened from {wanted:g} s to {limit:.2f} s, half "
        "the shorter of the two parts."
    )
    return round(limit, 3), note


def _join(first: _Part, second: _Part, fade: float, audio: bool) -> list[str]:
    if fade <= 0:
        streams = f"[{first.video}]" + (f"[{first.audio}]" if audio else "")
        streams += f"[{second.video}]" + (f"[{second.audio}]" if audio else "")
        outputs = "[vout][aout]" if audio else "[vout]"
        return [f"{streams}concat=n=2:v=1:a={int(audio)}{outputs}"]

    offset = first.duration - fade
    pieces = [
        f"[{first.video}][{second.video}]xfade=transition=fade"
        f":duration={fade:.3f}:offset={offset:.6f}[vout]"
    ]
    if audio:
        pieces.append(f"[{first.audio}][{second.audio}]acrossfade=d={fade:.3f}[aout]")
    return pieces


def _metadata(
    kind: Kind, first: _Part, second: _Part, fade: float, note: str | None
) -> dict[str, Any]:
    kinds = (kind, "main") if kind == "intro" else ("main", kind)
    second_start = first.duration - fade
    segments = [
        {"kind": kinds[0], "start": 0.0, "end": round(first.duration, 3)},
        {
            "kind": kinds[1],
            "start": round(second_start, 3),
            "end": round(second_start + second.duration, 3),
        },
    ]
    metadata: dict[str, Any] = {"segments": segments, "crossfade_seconds": fade}
    if note:
        metadata["note"] = note
    return metadata


def _render(
    args: list[str], out: Path, *, ctx: TileContext, duration: float, description: str
) -> None:
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        ctx.ffmpeg.run(
            [*args, str(partial)],
            cancel=ctx.cancel,
            duration=duration,
            on_progress=ctx.report_progress,
            description=description,
        )
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    partial.replace(out)


@cache
def find_font() -> Path:
    """A sans-serif font file: fontconfig's choice, or one shipped in a package."""
    for candidate in (_fontconfig_font(), *_packaged_fonts()):
        if candidate is not None and candidate.is_file():
            return candidate
    raise TileError(
        "No font file was found for the title card: install a font (for example "
        "fonts-dejavu-core) or upload a clip with video_id instead of a title."
    )


def _fontconfig_font() -> Path | None:
    binary = shutil.which("fc-match")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "-f", "%{file}", "sans"],
            capture_output=True,
            text=True,
            timeout=FONT_LOOKUP_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("fc-match failed: %s", exc)
        return None
    found = done.stdout.strip()
    return Path(found) if done.returncode == 0 and found else None


def _packaged_fonts() -> list[Path]:
    """TrueType fonts inside installed packages that are known to carry some."""
    fonts: list[Path] = []
    for package, pattern in (
        ("matplotlib", "mpl-data/fonts/ttf/DejaVuSans.ttf"),
        ("cv2", "**/*.ttf"),
    ):
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            fonts += sorted(Path(folder).glob(pattern))
    return fonts
