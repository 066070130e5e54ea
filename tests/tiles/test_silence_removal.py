"""Silence Removal on real media: pauses go, padding stays, odd inputs fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import media_factory
from media_factory import (
    FAST_VIDEO,
    make_audio_only,
    make_silent_audio,
    make_video,
    run_ffmpeg,
)
from tilework.errors import Cancelled, TileError
from tilework.media.analysis import detect_silences
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.silence_removal import SilenceRemoval, SilenceRemovalParams


def make_tone_gaps(path: Path, sounding: str, seconds: float) -> Path:
    """A test-pattern video whose 440 Hz tone plays where ``sounding`` (an
    expression of ``t``) is 1 and is silent elsewhere."""
    tone = f"aevalsrc='0.5*sin(2*PI*440*t)*({sounding})':s=48000:d={seconds}"
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", tone),
        *FAST_VIDEO,
        *("-c:a", "aac", "-shortest", str(path)),
    )
    return path


@pytest.fixture(scope="module")
def tone_gap_tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tone 0-2 s, silence 2-5 s, tone 5-7 s."""
    folder = tmp_path_factory.mktemp("silences")
    return make_tone_gaps(folder / "tone gap tone.mp4", "lt(t,2)+gte(t,5)", 7.0)


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def remove(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    outputs = SilenceRemoval().run(
        SilenceRemovalParams.model_validate(params), source, ctx
    )
    assert len(outputs) == 1
    return outputs[0]


def test_the_pause_goes_and_the_padding_stays(
    tone_gap_tone: Path, ctx: TileContext, progress: list[float]
) -> None:
    output = remove(tone_gap_tone, ctx)

    info = probe(output.path)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(7.0 - (3.0 - 2 * 0.15), abs=0.07)
    assert output.metadata["removed_seconds"] == pytest.approx(2.7, abs=0.07)
    assert output.metadata["output_duration"] == pytest.approx(info.duration, abs=0.04)
    assert progress[-1] == 100.0
    assert progress == sorted(progress)

    left = detect_silences(
        output.path, threshold_db=-35, min_silence=0.25, ffmpeg=ctx.ffmpeg
    )
    assert len(left) == 1
    assert left[0].duration == pytest.approx(0.3, abs=0.07)


def test_cut_metadata_matches_the_removed_range(
    tone_gap_tone: Path, ctx: TileContext
) -> None:
    output = remove(tone_gap_tone, ctx, padding_ms=0)

    cuts = output.metadata["cuts"]
    assert output.metadata["source_duration"] == pytest.approx(7.0, abs=0.05)
    assert len(cuts) == 2
    assert cuts[0]["source_start"] == 0.0
    assert cuts[0]["source_end"] == pytest.approx(2.0, abs=0.05)
    assert cuts[1]["source_start"] == pytest.approx(5.0, abs=0.05)
    assert cuts[1]["source_end"] == pytest.approx(7.0, abs=0.05)
    [removed] = output.metadata["removed"]
    assert (removed["start"], removed["end"]) == (
        pytest.approx(cuts[0]["source_end"], abs=0.001),
        pytest.approx(cuts[1]["source_start"], abs=0.001),
    )
    assert probe(output.path).duration == pytest.approx(4.0, abs=0.07)


def test_silence_at_the_edges_loses_its_outer_side(
    tmp_path: Path, ctx: TileContext
) -> None:
    source = make_tone_gaps(tmp_path / "edges.mp4", "between(t,1.5,3.5)", 5.0)

    output = remove(source, ctx, padding_ms=200)

    [kept] = output.metadata["cuts"]
    assert kept["source_start"] == pytest.approx(1.3, abs=0.05)
    assert kept["source_end"] == pytest.approx(3.7, abs=0.05)
    assert probe(output.path).duration == pytest.approx(2.4, abs=0.07)


def test_short_pauses_stay(tone_gap_tone: Path, ctx: TileContext) -> None:
    output = remove(tone_gap_tone, ctx, min_silence_ms=4000)

    assert output.metadata["removed"] == []
    assert "nothing was removed" in output.metadata["note"]
    assert probe(output.path).duration == pytest.approx(7.0, abs=0.05)


def test_all_silent_input_is_refused(tmp_path: Path, ctx: TileContext) -> None:
    silent = make_silent_audio(tmp_path / "quiet.mp4", seconds=2.0)

    with pytest.raises(TileError, match="silent from start to end at -35 dB"):
        remove(silent, ctx)

    assert not list(ctx.scratch.glob("*.mp4"))


def test_input_without_audio_or_video_is_refused(
    tmp_path: Path, ctx: TileContext
) -> None:
    mute = make_video(tmp_path / "mute.mp4", audio=False)
    sound = make_audio_only(tmp_path / "sound.m4a")

    with pytest.raises(TileError, match="no audio track"):
        remove(mute, ctx)
    with pytest.raises(TileError, match="no video stream"):
        remove(sound, ctx)


def test_cancelled_run_leaves_nothing(tone_gap_tone: Path, ctx: TileContext) -> None:
    ctx.cancel.cancel()

    with pytest.raises(Cancelled):
        remove(tone_gap_tone, ctx)

    assert list(ctx.scratch.iterdir()) == []


@pytest.mark.parametrize(
    "params",
    [{"threshold_db": -5}, {"threshold_db": -90}, {"padding_ms": -1}, {"gap": 1}],
)
def test_bad_params_are_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SilenceRemovalParams.model_validate(params)
