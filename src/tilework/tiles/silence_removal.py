"""Silence Removal: cut out the pauses, keeping a little air around the speech.

Silences are found on the first audio track with ffmpeg's ``silencedetect``; each
one longer than ``min_silence_ms`` is removed except ``padding_ms`` on the sides
that touch sound. The rest is joined in one pass with picture and sound cut on the
same frames, and the kept source ranges are reported as the cut list.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pydantic import Field

from tilework.errors import TileError
from tilework.media.analysis import detect_silences
from tilework.media.cuts import (
    Segment,
    complement,
    cut_metadata,
    frame_seconds,
    normalize,
    render_segments,
    scaled_progress,
    segments_json,
    total_seconds,
)
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams

logger = logging.getLogger(__name__)

DETECT_SHARE = 25.0
"""Percent of the progress bar given to finding the silences."""


class SilenceRemovalParams(TileParams):
    threshold_db: float = Field(
        default=-35,
        ge=-80,
        le=-10,
        description=(
            "Sound quieter than this, in dBFS, counts as silence; lower it for "
            "recordings with quiet speech or background noise."
        ),
    )
    min_silence_ms: int = Field(
        default=500,
        ge=100,
        le=60000,
        description="Only pauses at least this long, in milliseconds, are removed.",
    )
    padding_ms: int = Field(
        default=150,
        ge=0,
        le=5000,
        description="Milliseconds of each pause kept next to the sound around it.",
    )


class SilenceRemoval(Tile):
    node_type_id: ClassVar[str] = "a22d0b93-2bbf-479d-8efd-d446163982e8"
    name: ClassVar[str] = "Silence Removal"
    description: ClassVar[str] = (
        "Removes the pauses from a video, keeping a short margin around the "
        "speech, with picture and sound kept in sync."
    )
    Params: ClassVar[type[TileParams]] = SilenceRemovalParams
    credits_per_minute: ClassVar[int] = 1

    def run(
        self, params: SilenceRemovalParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        if not (source.info.has_audio and source.info.has_video):
            missing = "video stream" if source.info.has_audio else "audio track"
            raise TileError(
                f"{source.path.name} has no {missing}; Silence Removal cuts "
                "the pauses in the sound out of a video, so use a video with sound."
            )

        duration = source.info.duration
        silences = detect_silences(
            source.path,
            threshold_db=params.threshold_db,
            min_silence=params.min_silence_ms / 1000,
            ffmpeg=ctx.ffmpeg,
            cancel=ctx.cancel,
            duration=duration,
            on_progress=scaled_progress(ctx.report_progress, 0.0, DETECT_SHARE),
        )
        padding = params.padding_ms / 1000
        keep = kept_ranges(silences, duration, padding, frame_seconds(source.info))
        if not keep:
            raise TileError(_all_silent(source, params))

        out = ctx.scratch / "output.mp4"
        kept = render_segments(
            source,
            keep,
            out,
            ctx=ctx,
            on_progress=scaled_progress(ctx.report_progress, DETECT_SHARE, 100.0),
        )

        metadata = _metadata(params, silences, kept, duration)
        logger.debug("%s: %d silences removed", source.path.name, len(silences))
        return [TileOutput(path=out, metadata=metadata)]


def kept_ranges(
    silences: list[Segment], duration: float, padding: float, frame: float
) -> list[Segment]:
    """What stays of ``0..duration`` once each silence, less ``padding`` on the
    sides that touch sound, is removed."""
    removed = []
    for silence in silences:
        start = silence.start if silence.start <= 0 else silence.start + padding
        end = silence.end if silence.end >= duration else silence.end - padding
        if end - start >= frame:
            removed.append(Segment(start, end))
    return normalize(complement(removed, duration), duration, min_length=frame)


def _all_silent(source: MediaFile, params: SilenceRemovalParams) -> str:
    return (
        f"{source.path.name} is silent from start to end at {params.threshold_db:g} "
        "dB; nothing would be left. Lower threshold_db (for example to "
        f"{max(-80, params.threshold_db - 15):g}) if the speech is quiet, or "
        "remove this step."
    )


def _metadata(
    params: SilenceRemovalParams,
    silences: list[Segment],
    kept: list[Segment],
    duration: float,
) -> dict[str, Any]:
    removed = complement(kept, duration)
    metadata: dict[str, Any] = {
        **cut_metadata(kept, duration),
        "removed": segments_json(removed),
        "removed_seconds": round(total_seconds(removed), 3),
        "output_duration": round(total_seconds(kept), 3),
        "silences_found": len(silences),
        "threshold_db": params.threshold_db,
        "min_silence_ms": params.min_silence_ms,
        "padding_ms": params.padding_ms,
    }
    if not removed:
        metadata["note"] = (
            f"No pause of {params.min_silence_ms} ms or more below "
            f"{params.threshold_db:g} dB was found, so nothing was removed."
        )
    return metadata
