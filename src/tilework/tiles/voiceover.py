"""AI Voiceover and Audio Generation: speech (or generated sound) laid on a video.

The script is spoken offline with espeak-ng, or by the configured generation
provider when it can speak. The speech starts at ``start_seconds`` and either
replaces the original sound or is mixed over it with the original ducked beneath.
When the speech runs past the end of the video, the last frame is held until it
ends, so no word is cut. Without a video input the result is an audio file (M4A).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from tilework.errors import TileError
from tilework.media import tts
from tilework.media.probe import MediaInfo, probe
from tilework.media.render import constant_rate, encode_args
from tilework.providers import (
    PROVIDER_PROGRESS,
    AudioKind,
    AudioRequest,
    SelectedProvider,
    generate,
    load_provider,
    scaled_progress,
    select_provider,
)
from tilework.tiles.ai_music import Ducking, sidechain_duck, stereo_48k
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams

logger = logging.getLogger(__name__)

MAX_SCRIPT_CHARS = 5000
MAX_START_SECONDS = 3600.0
HOLD_TOLERANCE_SECONDS = 0.05
DEFAULT_GENERATED_SECONDS = 10.0
VOICE_DUCKING = Ducking(threshold_db=-40, ratio=6, attack_ms=20, release_ms=400)
"""How the original sound is pressed down while the voice speaks."""

ESPEAK = "espeak-ng"

MixMode = Literal["replace", "mix"]


class _SoundParams(TileParams):
    voice: str = Field(
        default="en-us",
        pattern=tts.VOICE_PATTERN,
        description=(
            "espeak-ng voice: a language such as 'en-us', 'fr' or 'de', optionally "
            "with a variant such as 'en-us+f3'."
        ),
    )
    speed_wpm: int = Field(
        default=165,
        ge=tts.MIN_RATE_WPM,
        le=tts.MAX_RATE_WPM,
        description="Speaking rate in words per minute.",
    )
    mix: MixMode = Field(
        default="mix",
        description=(
            "replace drops the original sound; mix keeps it under the new sound "
            "(ducked while a voice speaks)."
        ),
    )
    voice_volume_db: float = Field(
        default=0, ge=-30, le=12, description="Gain applied to the new sound, dB."
    )
    original_volume_db: float = Field(
        default=0,
        ge=-60,
        le=6,
        description="Gain applied to the original sound when mixing, dB.",
    )
    start_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_START_SECONDS,
        description=(
            "When the new sound starts, seconds from the start of the video. If it "
            "ends after the video, the last frame is held until it ends."
        ),
    )


class VoiceoverParams(_SoundParams):
    script: str = Field(
        min_length=1,
        max_length=MAX_SCRIPT_CHARS,
        description="The text to speak, in the language of the voice.",
    )


class AudioGenerationParams(_SoundParams):
    mode: Literal["voiceover", "sound_effects", "music"] = Field(
        default="voiceover",
        description=(
            "voiceover speaks the script (offline with espeak-ng); sound_effects "
            "and music are generated from the prompt by the configured provider."
        ),
    )
    script: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SCRIPT_CHARS,
        description="The text to speak in voiceover mode.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="What to generate in sound_effects and music modes.",
    )
    duration_seconds: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description=(
            "Length of generated sound effects or music; by default the rest of "
            "the video after start_seconds, or 10 s without a video."
        ),
    )

    @model_validator(mode="after")
    def _text_for_mode(self) -> AudioGenerationParams:
        if self.mode == "voiceover" and not self.script:
            raise ValueError("voiceover mode needs a script to speak")
        if self.mode != "voiceover" and not self.prompt:
            raise ValueError(f"{self.mode} mode needs a prompt describing the sound")
        return self


@dataclass(frozen=True)
class Placement:
    """Where new sound goes and how it meets the original."""

    start_seconds: float
    mix: MixMode
    volume_db: float
    original_volume_db: float
    duck_original: bool = True
    max_seconds: float | None = None


@dataclass(frozen=True)
class _Timeline:
    sound_seconds: float
    end: float
    total: float
    hold: float


class AIVoiceover(Tile):
    node_type_id: ClassVar[str] = "9570c960-b32b-4e4d-8871-5775d886f7cb"
    name: ClassVar[str] = "AI Voiceover"
    description: ClassVar[str] = (
        "Speaks a script over the video, replacing the original sound or mixing it "
        "beneath; the last frame is held if the voice outlasts the video."
    )
    Params: ClassVar[type[TileParams]] = VoiceoverParams
    credits_per_minute: ClassVar[int] = 2

    def run(
        self, params: VoiceoverParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        return [voice_over(params.script, params, source, ctx, tile=self.name)]


class AudioGeneration(Tile):
    node_type_id: ClassVar[str] = "14687f30-5fd0-468f-8239-2784d83df95b"
    name: ClassVar[str] = "Audio Generation"
    takes_input: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Makes a voiceover from a script offline, or sound effects or music from a "
        "prompt with a provider, laid on the video or returned as an audio file."
    )
    Params: ClassVar[type[TileParams]] = AudioGenerationParams
    credits_per_minute: ClassVar[int] = 5

    def run(
        self, params: AudioGenerationParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        if params.mode == "voiceover":
            script = params.script or ""
            output = voice_over(script, params, source, ctx, tile=self.name)
            output.metadata["mode"] = params.mode
            return [output]

        seconds = _generated_seconds(params, source)
        sound, engine = self._generate(params, seconds, ctx)
        placement = _placement(params, duck=False, max_seconds=seconds)
        output = lay_sound(
            source,
            sound,
            placement,
            ctx,
            tile=self.name,
            progress_from=PROVIDER_PROGRESS,
        )
        output.metadata.update({"mode": params.mode, "generated_by": engine})
        return [output]

    def _generate(
        self, params: AudioGenerationParams, seconds: float, ctx: TileContext
    ) -> tuple[Path, str]:
        selected = select_provider(ctx.settings, tile=self.name, capability="audio")
        kind: AudioKind = "music" if params.mode == "music" else "sound_effects"
        request = AudioRequest(
            prompt=params.prompt or "", kind=kind, duration_seconds=seconds
        )
        path, _ = generate(
            selected, "audio", request, ctx, tile=self.name, needs="audio"
        )
        return path, f"provider:{selected.name}"


def voice_over(
    script: str,
    params: _SoundParams,
    source: MediaFile | None,
    ctx: TileContext,
    *,
    tile: str,
) -> TileOutput:
    """Speak ``script`` with the voice in ``params`` and lay it on ``source``."""
    speech, engine = speak(
        script, voice=params.voice, rate_wpm=params.speed_wpm, ctx=ctx, tile=tile
    )

    start = 0.0 if engine == ESPEAK else PROVIDER_PROGRESS
    output = lay_sound(
        source, speech, _placement(params), ctx, tile=tile, progress_from=start
    )
    output.metadata["speech_engine"] = engine
    return output


def speak(
    script: str, *, voice: str, rate_wpm: int, ctx: TileContext, tile: str
) -> tuple[Path, str]:
    """Speech of ``script`` as a file, and which engine spoke it.

    The configured generation provider speaks when it supports audio; otherwise
    espeak-ng does, offline.
    """
    selected = _speaking_provider(ctx, tile)
    if selected is None:
        out = tts.synthesize(
            script,
            ctx.scratch / "speech.wav",
            voice=voice,
            rate_wpm=rate_wpm,
            binary=ctx.settings.espeak_binary,
            cancel=ctx.cancel,
            tile=tile,
        )
        return out, ESPEAK

    request = AudioRequest(prompt=script, kind="speech", voice=voice, rate_wpm=rate_wpm)
    path, _ = generate(selected, "audio", request, ctx, tile=tile, needs="audio")
    return path, f"provider:{selected.name}"


def _speaking_provider(ctx: TileContext, tile: str) -> SelectedProvider | None:
    name = ctx.settings.generation_provider
    if not name:
        return None
    provider = load_provider(name, tile=tile)
    return SelectedProvider(name, provider) if provider.supports("audio") else None


def lay_sound(
    source: MediaFile | None,
    sound: Path,
    placement: Placement,
    ctx: TileContext,
    *,
    tile: str,
    progress_from: float = 0.0,
) -> TileOutput:
    """Put ``sound`` on ``source`` as ``placement`` says; an M4A when no video.

    A video whose new sound ends after it has its last frame held until the end.
    """
    sound_info = probe(sound)
    if not sound_info.has_audio:
        raise TileError(f"{tile} made a sound file without audio; try again.")
    timeline = _timeline(source, sound_info, placement)
    has_video = source is not None and source.info.has_video

    out = ctx.scratch / ("output.mp4" if has_video else "output.m4a")
    args = _inputs(source, sound) + _maps(source, placement, timeline, ctx)
    args += ["-t", _seconds(timeline.total), str(out)]
    ctx.ffmpeg.run(
        args,
        cancel=ctx.cancel,
        duration=timeline.total,
        on_progress=scaled_progress(ctx.report_progress, progress_from, 100.0),
        description=f"{tile}: laying the sound",
    )

    metadata = _metadata(source, placement, timeline)
    logger.debug("%s wrote %s: %s", tile, out.name, metadata)
    return TileOutput(path=out, metadata=metadata)


def _placement(
    params: _SoundParams,
    *,
    duck: bool = True,
    max_seconds: float | None = None,
) -> Placement:
    return Placement(
        start_seconds=params.start_seconds,
        mix=params.mix,
        volume_db=params.voice_volume_db,
        original_volume_db=params.original_volume_db,
        duck_original=duck,
        max_seconds=max_seconds,
    )


def _generated_seconds(
    params: AudioGenerationParams, source: MediaFile | None
) -> float:
    if params.duration_seconds is not None:
        return params.duration_seconds
    if source is None:
        return DEFAULT_GENERATED_SECONDS
    remaining = source.info.duration - params.start_seconds
    return remaining if remaining > 1 else DEFAULT_GENERATED_SECONDS


def _timeline(
    source: MediaFile | None, sound: MediaInfo, placement: Placement
) -> _Timeline:
    length = sound.duration
    if placement.max_seconds is not None:
        length = min(length, placement.max_seconds)
    end = placement.start_seconds + length

    if source is None:
        return _Timeline(sound_seconds=length, end=end, total=end, hold=0.0)
    duration = source.info.duration
    if not source.info.has_video:
        return _Timeline(length, end, total=max(duration, end), hold=0.0)
    if end - duration < HOLD_TOLERANCE_SECONDS:
        return _Timeline(length, end, total=duration, hold=0.0)
    return _Timeline(length, end, total=end, hold=end - duration)


def _inputs(source: MediaFile | None, sound: Path) -> list[str]:
    if source is None:
        return ["-i", str(sound)]
    return ["-i", str(source.path), "-i", str(sound)]


def _maps(
    source: MediaFile | None,
    placement: Placement,
    timeline: _Timeline,
    ctx: TileContext,
) -> list[str]:
    """Filter graph, ``-map`` and codec options for the output."""
    sound_index = 0 if source is None else 1
    keep_original = (
        source is not None and source.info.has_audio and placement.mix == "mix"
    )
    label = "snd" if keep_original else "aout"
    graph = [f"{_sound_chain(sound_index, placement, timeline)}[{label}]"]
    if keep_original:
        graph += _original_chains(placement, timeline)

    if source is None or not source.info.has_video:
        maps = ["-map", "[aout]"]
        codecs = ["-vn", *encode_args(ctx.x264_preset, audio=True)]
        return ["-filter_complex", ";".join(graph), *maps, *codecs]
    if timeline.hold > 0:
        graph.append(_held_video(source.info, timeline))
        maps = ["-map", "[vout]", "-map", "[aout]"]
        codecs = encode_args(ctx.x264_preset, audio=True)
    else:
        maps = ["-map", "0:V:0", "-map", "[aout]"]
        codecs = encode_args(ctx.x264_preset, audio=True, copy_video=True)
    return ["-filter_complex", ";".join(graph), *maps, *codecs]


def _sound_chain(index: int, placement: Placement, timeline: _Timeline) -> str:
    delay_ms = round(placement.start_seconds * 1000)
    filters = [
        stereo_48k(),
        f"atrim=end={_seconds(timeline.sound_seconds)}",
        "asetpts=N/SR/TB",
        f"volume={placement.volume_db}dB",
        f"adelay=delays={delay_ms}:all=1",
        f"apad=whole_dur={_seconds(timeline.total)}",
        f"atrim=end={_seconds(timeline.total)}",
    ]
    return f"[{index}:a:0]{','.join(filters)}"


def _original_chains(placement: Placement, timeline: _Timeline) -> list[str]:
    """The original sound, ducked under the new one, and the two mixed."""
    total = _seconds(timeline.total)
    original = (
        f"[0:a:0]{stereo_48k()},volume={placement.original_volume_db}dB,"
        f"apad=whole_dur={total},atrim=end={total}[orig]"
    )
    mix = "amix=inputs=2:duration=longest:normalize=0[aout]"
    if not placement.duck_original:
        return [original, f"[snd][orig]{mix}"]
    return [
        original,
        "[snd]asplit=2[voice][key]",
        f"[orig][key]{sidechain_duck(VOICE_DUCKING)}[bed]",
        f"[bed][voice]{mix}",
    ]


def _held_video(info: MediaInfo, timeline: _Timeline) -> str:
    """The picture with its last frame held, made encodable as H.264."""
    filters: list[str] = []
    rate = constant_rate(info)
    if rate is not None:
        filters.append(f"fps={rate}")
    filters.append(f"tpad=stop_mode=clone:stop_duration={_seconds(timeline.total)}")
    filters += ["crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0", "format=yuv420p"]
    return f"[0:V:0]{','.join(filters)}[vout]"


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _metadata(
    source: MediaFile | None, placement: Placement, timeline: _Timeline
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "mix": placement.mix,
        "start_seconds": placement.start_seconds,
        "sound_seconds": round(timeline.sound_seconds, 3),
        "output_seconds": round(timeline.total, 3),
        "held_last_frame_seconds": round(timeline.hold, 3),
        "original_audio": _original_fate(source, placement),
    }
    notes: list[str] = []
    if timeline.hold > 0:
        notes.append(
            f"The new sound ends at {timeline.end:.2f} s, after the video, so the "
            f"last frame is held for {timeline.hold:.2f} s."
        )
    if source is not None and not source.info.has_audio:
        notes.append("The video had no sound; the new sound is its only audio.")
    if source is None:
        notes.append("There was no video input, so the result is audio only.")
    if notes:
        metadata["notes"] = notes
    return metadata


def _original_fate(source: MediaFile | None, placement: Placement) -> str:
    if source is None or not source.info.has_audio:
        return "none"
    if placement.mix == "replace":
        return "replaced"
    return "mixed_ducked" if placement.duck_original else "mixed"
