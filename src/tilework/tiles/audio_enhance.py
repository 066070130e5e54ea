"""Audio Enhance: clean up and level the sound; the picture is left untouched."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tilework.errors import MediaError, TileError
from tilework.media.render import encode_args
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams

logger = logging.getLogger(__name__)

SILENCE_LUFS = -70.0
"""Below this the input is treated as silent: there is nothing to normalise."""

_MEASURED_KEYS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")


class AudioEnhanceParams(TileParams):
    target_lufs: float = Field(
        default=-14, ge=-30, le=-5, description="Integrated loudness to reach, LUFS."
    )
    true_peak: float = Field(
        default=-1.5, ge=-9, le=0, description="Highest true peak allowed, dBTP."
    )
    highpass_hz: int = Field(
        default=80,
        ge=0,
        le=1000,
        description="Cut rumble below this frequency; 0 turns the filter off.",
    )
    denoise: bool = Field(default=True, description="Reduce steady background noise.")
    loudness_range: float = Field(
        default=11, ge=1, le=50, description="Loudness range to aim for, LU."
    )


class AudioEnhance(Tile):
    node_type_id: ClassVar[str] = "425274c9-7735-4cf2-b7cb-46c6a7f0066a"
    name: ClassVar[str] = "Audio Enhance"
    credits_per_minute: ClassVar[int] = 1
    description: ClassVar[str] = (
        "Removes rumble and steady noise and brings the sound to a standard "
        "loudness in two passes; the picture is copied unchanged."
    )
    Params: ClassVar[type[TileParams]] = AudioEnhanceParams

    def run(
        self, params: AudioEnhanceParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        if not source.info.has_audio:
            raise TileError(
                f"{source.path.name} has no audio track; Audio Enhance needs audio "
                "to work on, so remove this step or use a video with sound."
            )

        cleanup = cleanup_filters(params)
        measured = self._measure(source, cleanup, params, ctx)
        input_lufs = measured.get("input_i", -math.inf)
        silent = not input_lufs > SILENCE_LUFS

        filters = list(cleanup)
        if not silent:
            filters.append(_loudnorm(params, measured))
        out = ctx.scratch / "output.mp4"
        stderr = self._apply(source, filters or ["anull"], out, ctx)

        metadata = _metadata(params, input_lufs, silent, _loudnorm_report(stderr))
        return [TileOutput(path=out, metadata=metadata)]

    def _measure(
        self,
        source: MediaFile,
        cleanup: list[str],
        params: AudioEnhanceParams,
        ctx: TileContext,
    ) -> dict[str, float]:
        """Pass one: the loudness of the cleaned-up audio, as loudnorm reports it."""
        measure = (
            f"loudnorm=I={params.target_lufs}:TP={params.true_peak}"
            f":LRA={params.loudness_range}:print_format=json"
        )
        args = [
            *("-i", str(source.path), "-map", "0:a:0", "-vn", "-sn", "-dn"),
            *("-af", ",".join([*cleanup, measure]), "-f", "null", "-"),
        ]
        stderr = ctx.ffmpeg.run(
            args,
            cancel=ctx.cancel,
            duration=source.info.duration,
            on_progress=_scaled(ctx.report_progress, 0.0, 50.0),
            description="Measuring the loudness",
        )

        report = _loudnorm_report(stderr)
        if "input_i" not in report:
            raise MediaError(
                f"Measuring the loudness of {source.path.name} gave no result; "
                "check that its audio track decodes."
            )
        return {key: _number(report.get(key)) for key in _MEASURED_KEYS}

    def _apply(
        self, source: MediaFile, filters: list[str], out: Path, ctx: TileContext
    ) -> str:
        """Pass two: the filtered audio with the video stream copied as it is."""
        args = [
            *("-i", str(source.path), "-map", "0:V:0?", "-map", "0:a:0"),
            *("-af", ",".join(filters)),
            *encode_args(ctx.x264_preset, audio=True, copy_video=True),
            str(out),
        ]
        return ctx.ffmpeg.run(
            args,
            cancel=ctx.cancel,
            duration=source.info.duration,
            on_progress=_scaled(ctx.report_progress, 50.0, 100.0),
            description="Enhancing the audio",
        )


def cleanup_filters(params: AudioEnhanceParams) -> list[str]:
    """The rumble and noise filters that run before loudness is measured."""
    filters: list[str] = []
    if params.highpass_hz > 0:
        filters.append(f"highpass=f={params.highpass_hz}")
    if params.denoise:
        filters.append("afftdn")
    return filters


def _loudnorm(params: AudioEnhanceParams, measured: dict[str, float]) -> str:
    return (
        f"loudnorm=I={params.target_lufs}:TP={params.true_peak}"
        f":LRA={params.loudness_range}"
        f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}"
        f":measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=json"
    )


def _loudnorm_report(stderr: str) -> dict[str, Any]:
    """The JSON block loudnorm prints to stderr, or an empty dict if there is none."""
    marker = stderr.rfind("[Parsed_loudnorm")
    start = stderr.find("{", marker if marker >= 0 else 0)
    end = stderr.find("}", start)
    if start < 0 or end < 0:
        return {}
    try:
        report = json.loads(stderr[start : end + 1])
    except json.JSONDecodeError:
        logger.debug("unreadable loudnorm report: %s", stderr[start : end + 1])
        return {}
    return report if isinstance(report, dict) else {}


def _number(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return math.nan


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def _metadata(
    params: AudioEnhanceParams,
    input_lufs: float,
    silent: bool,
    report: dict[str, Any],
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "measured_input_lufs": _finite(input_lufs),
        "target_lufs": params.target_lufs,
        "normalized": not silent,
    }
    if silent:
        metadata["note"] = "The audio is silent, so its loudness was left as it is."
    else:
        metadata["output_lufs"] = _finite(_number(report.get("output_i")))
        metadata["normalization_type"] = report.get("normalization_type")
    return metadata


def _scaled(
    report: Callable[[float], None], low: float, high: float
) -> Callable[[float], None]:
    def scaled(percent: float) -> None:
        report(low + (high - low) * percent / 100.0)

    return scaled
