"""AI Music: a music bed under the video, ducked while the original sound speaks.

The music is an uploaded track (``audio_id``) or, without one, music generated from
``prompt`` by the configured provider. It is looped or cut to the video's length,
faded in and out, and mixed under the original sound; a sidechain compressor keyed
on the original sound lowers it while someone speaks. The picture is copied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tilework.errors import TileError
from tilework.media.probe import MediaInfo, probe
from tilework.media.render import AUDIO_SAMPLE_RATE, encode_args
from tilework.providers import (
    PROVIDER_PROGRESS,
    AudioRequest,
    generate,
    scaled_progress,
    select_provider,
)
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams

logger = logging.getLogger(__name__)

DEFAULT_MUSIC_PROMPT = "calm instrumental background music"
MIN_SIDECHAIN_THRESHOLD = 0.000976563
"""The lowest threshold sidechaincompress accepts (about -60 dB)."""


@dataclass(frozen=True)
class Ducking:
    """A sidechain compressor's settings: how a key signal presses a sound down."""

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float


class AIMusicParams(TileParams):
    audio_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Id of an uploaded music track (an audio upload) to use.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description=(
            "Music to generate when no audio_id is given; needs a generation provider."
        ),
    )
    music_volume_db: float = Field(
        default=-18, ge=-60, le=6, description="Gain applied to the music, dB."
    )
    ducking: bool = Field(
        default=True,
        description="Lower the music while the original sound is loud (speech).",
    )
    duck_threshold_db: float = Field(
        default=-40,
        ge=-60,
        le=0,
        description="Level of the original sound above which the music is lowered.",
    )
    duck_ratio: float = Field(
        default=8,
        ge=1,
        le=20,
        description="How hard the music is lowered: the compressor ratio.",
    )
    duck_attack_ms: float = Field(
        default=20, ge=1, le=2000, description="How fast the music goes down, ms."
    )
    duck_release_ms: float = Field(
        default=300, ge=10, le=9000, description="How fast the music comes back, ms."
    )
    fade_in_seconds: float = Field(
        default=1, ge=0, le=30, description="Fade-in of the music, seconds."
    )
    fade_out_seconds: float = Field(
        default=2, ge=0, le=30, description="Fade-out at the end of the music, seconds."
    )
    loop: bool = Field(
        default=True,
        description="Repeat a track shorter than the video until the video ends.",
    )


@dataclass(frozen=True)
class _MusicPlan:
    video_seconds: float
    music_seconds: float
    length: float
    looped: bool
    fade_in: float
    fade_out: float


class AIMusic(Tile):
    node_type_id: ClassVar[str] = "3b281fb9-9eb2-40f6-b05b-4b6f909a3da9"
    name: ClassVar[str] = "AI Music"
    description: ClassVar[str] = (
        "Adds a music track under the video, looped to its length, faded, and "
        "ducked under speech; the picture is copied unchanged."
    )
    Params: ClassVar[type[TileParams]] = AIMusicParams
    credits_per_minute: ClassVar[int] = 1

    def run(
        self, params: AIMusicParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        if source is None:
            raise TileError(
                "AI Music puts music under a video and got none; connect it after "
                "a Video Input, or use Audio Generation for music alone."
            )

        music, origin = self._music(params, source, ctx)
        music_info = _probe_music(music)
        plan = _plan(params, source.info, music_info)
        out = ctx.scratch / ("output.mp4" if source.info.has_video else "output.m4a")
        start = 0.0 if origin == "upload" else PROVIDER_PROGRESS
        self._mix(params, source, music, plan, out, ctx, progress_from=start)

        metadata = _metadata(params, source, plan, origin)
        logger.debug("AI Music wrote %s: %s", out.name, metadata)
        return [TileOutput(path=out, metadata=metadata)]

    def _music(
        self, params: AIMusicParams, source: MediaFile, ctx: TileContext
    ) -> tuple[Path, str]:
        """The music file, and where it came from."""
        if params.audio_id is not None:
            return ctx.resolve_asset(params.audio_id, "audio"), "upload"

        hint = ", or upload a music track and give its id as audio_id"
        selected = select_provider(
            ctx.settings, tile=self.name, capability="audio", hint=hint
        )
        request = AudioRequest(
            prompt=params.prompt or DEFAULT_MUSIC_PROMPT,
            kind="music",
            duration_seconds=source.info.duration,
        )
        path, _ = generate(
            selected, "audio", request, ctx, tile=self.name, needs="audio"
        )
        return path, f"provider:{selected.name}"

    def _mix(
        self,
        params: AIMusicParams,
        source: MediaFile,
        music: Path,
        plan: _MusicPlan,
        out: Path,
        ctx: TileContext,
        *,
        progress_from: float,
    ) -> None:
        loop = ["-stream_loop", "-1"] if plan.looped else []
        video = ["-map", "0:V:0"] if source.info.has_video else ["-vn"]
        args = [
            *("-i", str(source.path), *loop, "-i", str(music)),
            *("-filter_complex", _graph(params, plan, source.info.has_audio)),
            *video,
            *("-map", "[aout]", "-t", f"{plan.video_seconds:.3f}"),
            *encode_args(ctx.x264_preset, audio=True, copy_video=True),
            str(out),
        ]
        ctx.ffmpeg.run(
            args,
            cancel=ctx.cancel,
            duration=plan.video_seconds,
            on_progress=scaled_progress(ctx.report_progress, progress_from, 100.0),
            description="AI Music: mixing the music",
        )


def stereo_48k() -> str:
    """Filters that bring any audio to the sample format the mixes work in."""
    return (
        f"aresample={AUDIO_SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
    )


def sidechain_duck(ducking: Ducking) -> str:
    """A ``sidechaincompress`` filter: first input pressed down by the second."""
    threshold = max(MIN_SIDECHAIN_THRESHOLD, 10 ** (ducking.threshold_db / 20))
    return (
        f"sidechaincompress=threshold={threshold:.6f}:ratio={ducking.ratio}"
        f":attack={ducking.attack_ms}:release={ducking.release_ms}"
    )


def _probe_music(music: Path) -> MediaInfo:
    info = probe(music)
    if not info.has_audio:
        raise TileError(
            f"The music file {music.name} has no audio track; upload a music track."
        )
    return info


def _plan(params: AIMusicParams, video: MediaInfo, music: MediaInfo) -> _MusicPlan:
    """How long the music plays, whether it loops, and fades that fit in it."""
    looped = params.loop and music.duration < video.duration
    length = video.duration if looped else min(music.duration, video.duration)

    fade_in, fade_out = params.fade_in_seconds, params.fade_out_seconds
    if fade_in + fade_out > length:
        scale = length / (fade_in + fade_out)
        fade_in, fade_out = fade_in * scale, fade_out * scale
    return _MusicPlan(
        video_seconds=video.duration,
        music_seconds=music.duration,
        length=length,
        looped=looped,
        fade_in=fade_in,
        fade_out=fade_out,
    )


def _graph(params: AIMusicParams, plan: _MusicPlan, has_audio: bool) -> str:
    total = f"{plan.video_seconds:.3f}"
    music = [
        stereo_48k(),
        f"atrim=end={plan.length:.3f}",
        "asetpts=N/SR/TB",
        f"volume={params.music_volume_db}dB",
    ]
    if plan.fade_in > 0:
        music.append(f"afade=t=in:st=0:d={plan.fade_in:.3f}")
    if plan.fade_out > 0:
        start = plan.length - plan.fade_out
        music.append(f"afade=t=out:st={start:.3f}:d={plan.fade_out:.3f}")
    music += [f"apad=whole_dur={total}", f"atrim=end={total}"]

    if not has_audio:
        return f"[1:a:0]{','.join(music)}[aout]"
    original = f"[0:a:0]{stereo_48k()},apad=whole_dur={total},atrim=end={total}"
    mix = "amix=inputs=2:duration=longest:normalize=0[aout]"
    if not params.ducking:
        return f"{original}[orig];[1:a:0]{','.join(music)}[bed];[orig][bed]{mix}"
    return ";".join(
        [
            f"{original},asplit=2[orig][key]",
            f"[1:a:0]{','.join(music)}[music]",
            f"[music][key]{sidechain_duck(_ducking(params))}[bed]",
            f"[orig][bed]{mix}",
        ]
    )


def _ducking(params: AIMusicParams) -> Ducking:
    return Ducking(
        threshold_db=params.duck_threshold_db,
        ratio=params.duck_ratio,
        attack_ms=params.duck_attack_ms,
        release_ms=params.duck_release_ms,
    )


def _metadata(
    params: AIMusicParams, source: MediaFile, plan: _MusicPlan, origin: str
) -> dict[str, Any]:
    has_audio = source.info.has_audio
    metadata: dict[str, Any] = {
        "music_source": origin,
        "music_seconds": round(plan.music_seconds, 3),
        "music_plays_seconds": round(plan.length, 3),
        "looped": plan.looped,
        "ducked": params.ducking and has_audio,
        "music_volume_db": params.music_volume_db,
    }

    notes: list[str] = []
    if not has_audio:
        notes.append("The video had no sound, so the music is its only audio.")
    if plan.length < plan.video_seconds:
        notes.append(
            f"The music lasts {plan.music_seconds:.2f} s and loop is off, so the "
            f"last {plan.video_seconds - plan.length:.2f} s of the video have none."
        )
    if (plan.fade_in, plan.fade_out) != (
        params.fade_in_seconds,
        params.fade_out_seconds,
    ):
        notes.append("The fades were shortened to fit the time the music plays.")
    if notes:
        metadata["notes"] = notes
    return metadata
