"""A generation provider that renders real media offline, with ffmpeg and espeak-ng.

It shows the shape of a provider rather than any model: pictures are moving colour
gradients with the prompt written on them, music is a few sine tones, speech is
espeak-ng. Make it available in a process and select it:

    from tilework import providers
    from provider_example import ExampleProvider

    providers.register("example", ExampleProvider)
    # then TILEWORK_GENERATION_PROVIDER=example

A package would declare it as an entry point instead (see docs/providers.md).
"""

from __future__ import annotations

import logging
import textwrap
import zlib
from pathlib import Path
from typing import ClassVar

from tilework.errors import TileError
from tilework.media import tts
from tilework.media.probe import probe
from tilework.providers import (
    CAPABILITIES,
    AudioRequest,
    AvatarRequest,
    BrollRequest,
    ContentRequest,
    DubRequest,
    ImageRequest,
    MotionGraphicsRequest,
    ProviderBase,
    ProviderContext,
    VideoRequest,
    escape_filter_value,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
MAX_CAPTION_LINES = 6
CHAR_WIDTH = 0.6
"""Average width of a character of the default font, in font sizes."""

VIDEO_COLOURS = ("0x1d3557", "0x457b9d", "0xa8dadc", "0xe63946")
BROLL_COLOURS = ("0x264653", "0x2a9d8f", "0x1b4965", "0x5fa8d3")
BANNER_COLOUR = "0x1e3a8a@0.85"
MUSIC_ROOTS_HZ = (196.0, 220.0, 246.94, 261.63, 293.66)
MAJOR_TRIAD = (1.0, 1.26, 1.498)
FALLBACK_VOICE = "en-us"
SLIDE_SECONDS = 0.5
DEFAULT_RATE_WPM = 165


class ExampleProvider(ProviderBase):
    """Every capability, rendered with lavfi sources, drawtext and espeak-ng."""

    capabilities: ClassVar[frozenset[str]] = frozenset(CAPABILITIES)

    def generate_video(self, request: VideoRequest, ctx: ProviderContext) -> Path:
        out = ctx.scratch / "video.mp4"
        size = (request.width, request.height)
        _moving_picture(ctx, out, request.prompt, size, request, VIDEO_COLOURS)
        return out

    def generate_image(self, request: ImageRequest, ctx: ProviderContext) -> Path:
        out = ctx.scratch / f"image-{request.index}.png"
        colours = VIDEO_COLOURS[request.index % 2 :] + VIDEO_COLOURS
        source = _gradient((request.width, request.height), 1, 1.0, colours[:2])
        caption = _caption(ctx, "image", request.prompt, request.width, request.height)
        args = ["-f", "lavfi", "-i", source, "-vf", caption, "-frames:v", "1"]
        _ffmpeg(ctx, [*args, "-update", "1", str(out)], "drawing the image")
        return out

    def generate_audio(self, request: AudioRequest, ctx: ProviderContext) -> Path:
        if request.kind == "speech":
            voice = request.voice or FALLBACK_VOICE
            return _speak(ctx, request.prompt, voice, request.rate_wpm)

        seconds = request.duration_seconds or 10.0
        out = ctx.scratch / f"{request.kind}.wav"
        if request.kind == "music":
            source = _chord(request.prompt, seconds)
        else:
            source = f"anoisesrc=color=brown:amplitude=0.6:d={seconds:.3f}"
        shape = f"afade=t=in:d=0.05,afade=t=out:st={max(0.0, seconds - 0.5):.3f}"
        args = ["-f", "lavfi", "-i", source, "-af", shape, "-ar", str(SAMPLE_RATE)]
        _ffmpeg(ctx, [*args, str(out)], f"making {request.kind}", seconds)
        return out

    def generate_content(self, request: ContentRequest, ctx: ProviderContext) -> Path:
        picture = ctx.scratch / "content-picture.mp4"
        size = (request.width, request.height)
        _moving_picture(ctx, picture, request.prompt, size, request, VIDEO_COLOURS)
        if not request.narration:
            return picture

        speech = _speak(ctx, request.prompt, request.voice or FALLBACK_VOICE)
        out = ctx.scratch / "content.mp4"
        seconds = f"{request.duration_seconds:.3f}"
        args = [
            *("-i", str(picture), "-i", str(speech), "-map", "0:v", "-map", "1:a"),
            *("-af", f"apad=whole_dur={seconds}", "-t", seconds),
            *("-c:v", "copy", "-c:a", "aac", str(out)),
        ]
        _ffmpeg(ctx, args, "adding the narration", request.duration_seconds)
        return out

    def avatar(self, request: AvatarRequest, ctx: ProviderContext) -> Path:
        speech = _speak(ctx, request.script, request.voice or FALLBACK_VOICE)
        out = ctx.scratch / "avatar.mp4"
        width, height = request.width, request.height
        background = f"color=c=0x2b3a55:s={width}x{height}:r={request.fps}"
        args = [
            *("-f", "lavfi", "-i", background, "-i", str(speech)),
            *("-filter_complex", _face(ctx, request, width, height)),
            *("-map", "[v]", "-map", "1:a", "-shortest"),
            *_x264(ctx),
            *("-c:a", "aac", str(out)),
        ]
        _ffmpeg(ctx, args, "drawing the avatar")
        return out

    def dub(self, request: DubRequest, ctx: ProviderContext) -> Path:
        language = request.target_language.lower()
        words = request.transcript or f"This video, dubbed into {language}."
        voice = request.voice or language
        try:
            speech = _speak(ctx, words, voice)
        except TileError:
            logger.info("espeak-ng has no voice %s; dubbing in English", voice)
            speech = _speak(ctx, words, FALLBACK_VOICE)

        out = ctx.scratch / "dub.wav"
        fit = _fit_to(speech, request.duration_seconds)
        args = ["-i", str(speech), "-af", fit, "-t", f"{request.duration_seconds:.3f}"]
        _ffmpeg(ctx, [*args, str(out)], "fitting the dub", request.duration_seconds)
        return out

    def broll(self, request: BrollRequest, ctx: ProviderContext) -> Path:
        out = ctx.scratch / "broll.mp4"
        size = (request.width, request.height)
        _moving_picture(ctx, out, request.prompt, size, request, BROLL_COLOURS)
        return out

    def motion_graphics(
        self, request: MotionGraphicsRequest, ctx: ProviderContext
    ) -> Path:
        out = ctx.scratch / "graphic.mov"
        width, height = request.width, request.height
        clear = (
            f"color=c=black@0.0:s={width}x{height}:r={request.fps}"
            f":d={request.duration_seconds:.3f},format=rgba"
        )
        banner = (
            f"drawbox=x=0:y=ih*0.15:w=iw:h=ih*0.7:color={BANNER_COLOUR}:t=fill"
            ":replace=1"
        )
        slide_in = f"(w-tw)/2*min(1\\,t/{SLIDE_SECONDS})"
        caption = _caption(ctx, "graphic", request.prompt, width, height, x=slide_in)
        args = [
            *("-f", "lavfi", "-i", clear, "-vf", f"{banner},{caption}"),
            *("-c:v", "qtrle", "-pix_fmt", "argb", str(out)),
        ]
        _ffmpeg(ctx, args, "animating the graphic", request.duration_seconds)
        return out


def _moving_picture(
    ctx: ProviderContext,
    out: Path,
    prompt: str,
    size: tuple[int, int],
    request: VideoRequest | ContentRequest | BrollRequest,
    colours: tuple[str, ...],
) -> None:
    seconds = request.duration_seconds
    source = _gradient(size, request.fps, seconds, colours)
    caption = _caption(ctx, out.stem, prompt, *size)
    args = ["-f", "lavfi", "-i", source, "-vf", f"{caption},format=yuv420p"]
    _ffmpeg(ctx, [*args, *_x264(ctx), str(out)], "rendering the picture", seconds)


def _gradient(
    size: tuple[int, int], fps: int, seconds: float, colours: tuple[str, ...]
) -> str:
    width, height = size
    picked = ":".join(f"c{index}={colour}" for index, colour in enumerate(colours))
    return (
        f"gradients=s={width}x{height}:r={fps}:d={seconds:.3f}:speed=0.05"
        f":nb_colors={len(colours)}:{picked}"
    )


def _caption(
    ctx: ProviderContext,
    name: str,
    text: str,
    width: int,
    height: int,
    *,
    x: str = "(w-tw)/2",
    y: str = "(h-th)/2",
) -> str:
    """A drawtext filter writing ``text``, wrapped, across the frame at ``y``."""
    font_size = max(10, min(height // 12, width // 16))
    per_line = max(8, int(width * 0.9 / (font_size * CHAR_WIDTH)))
    lines = textwrap.wrap(" ".join(text.split()), per_line)[:MAX_CAPTION_LINES]
    path = ctx.scratch / f"{name}-caption.txt"
    path.write_text("\n".join(lines) or " ", encoding="utf-8")
    return (
        f"drawtext=textfile={escape_filter_value(str(path))}:expansion=none"
        f":fontsize={font_size}:fontcolor=white:box=1:boxcolor=black@0.35"
        f":boxborderw=6:line_spacing=4:x={x}:y={y}"
    )


def _chord(prompt: str, seconds: float) -> str:
    """A slowly pulsing major chord whose root depends on the prompt."""
    root = MUSIC_ROOTS_HZ[zlib.crc32(prompt.encode("utf-8")) % len(MUSIC_ROOTS_HZ)]
    tones = "+".join(f"0.12*sin(2*PI*{root * ratio:.2f}*t)" for ratio in MAJOR_TRIAD)
    expression = f"({tones})*(0.7+0.3*sin(2*PI*0.5*t))"
    return f"aevalsrc='{expression}':s={SAMPLE_RATE}:d={seconds:.3f}"


def _face(ctx: ProviderContext, request: AvatarRequest, width: int, height: int) -> str:
    """A flat face whose mouth is the waveform of the speech."""
    face_w, face_h = width * 2 // 5, height * 2 // 5
    face_x, face_y = (width - face_w) // 2, height // 5
    eye = max(2, face_w // 8)
    mouth_w, mouth_h = _even(face_w * 0.6), _even(max(8, face_h // 5))
    name = _caption(ctx, "avatar", request.avatar, width, height // 3, y="h*0.75")
    return ";".join(
        [
            f"[0:v]drawbox=x={face_x}:y={face_y}:w={face_w}:h={face_h}"
            ":color=0xf2c9a0:t=fill,"
            f"drawbox=x={face_x + face_w // 4 - eye // 2}:y={face_y + face_h // 4}"
            f":w={eye}:h={eye}:color=0x1b1b1b:t=fill,"
            f"drawbox=x={face_x + 3 * face_w // 4 - eye // 2}:y={face_y + face_h // 4}"
            f":w={eye}:h={eye}:color=0x1b1b1b:t=fill[face]",
            f"[1:a]showwaves=s={mouth_w}x{mouth_h}:mode=cline:colors=0xa03030"
            f":r={request.fps}[mouth]",
            f"[face][mouth]overlay=x={face_x + (face_w - mouth_w) // 2}"
            f":y={face_y + face_h * 2 // 3}:shortest=1,{name},format=yuv420p[v]",
        ]
    )


def _speak(
    ctx: ProviderContext, text: str, voice: str, rate_wpm: int | None = None
) -> Path:
    out = ctx.scratch / f"speech-{zlib.crc32(text.encode('utf-8')):08x}.wav"
    return tts.synthesize(
        text,
        out,
        voice=voice,
        rate_wpm=rate_wpm or DEFAULT_RATE_WPM,
        binary=ctx.espeak_binary,
        cancel=ctx.cancel,
        tile="The example provider",
    )


def _fit_to(speech: Path, seconds: float) -> str:
    """Speed speech up to fit in ``seconds``, or pad it with silence to fill them."""
    length = probe(speech).duration
    filters = [f"aresample={SAMPLE_RATE}"]
    if length > seconds:
        filters.append(f"atempo={min(100.0, length / seconds):.4f}")
    filters.append(f"apad=whole_dur={seconds:.3f}")
    return ",".join(filters)


def _x264(ctx: ProviderContext) -> list[str]:
    return ["-c:v", "libx264", "-preset", ctx.x264_preset, "-pix_fmt", "yuv420p"]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _ffmpeg(
    ctx: ProviderContext, args: list[str], what: str, seconds: float | None = None
) -> None:
    ctx.ffmpeg.run(
        args,
        cancel=ctx.cancel,
        duration=seconds,
        on_progress=ctx.report_progress,
        description=f"Example provider: {what}",
    )
