"""Audio Enhance: loudness measured independently, picture untouched, odd inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import media_factory
from media_factory import (
    count_video_frames,
    integrated_loudness,
    make_audio_only,
    make_quiet_speech_like,
    make_silent_audio,
    make_video,
)
from tilework.errors import TileError
from tilework.media.probe import probe
from tilework.tiles.audio_enhance import AudioEnhance, AudioEnhanceParams
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.registry import get_tile


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    return make_quiet_speech_like(folder / "quiet.mp4", seconds=3.0)


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def enhance(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    tile = get_tile(AudioEnhance.node_type_id)
    source = MediaFile(path=path, info=probe(path))
    outputs = tile.run(AudioEnhanceParams.model_validate(params), source, ctx)
    assert len(outputs) == 1
    return outputs[0]


def test_quiet_audio_reaches_the_target(
    quiet: Path, tile_context: TileContext, progress: list[float]
) -> None:
    assert integrated_loudness(quiet) == pytest.approx(-35, abs=2)

    output = enhance(quiet, tile_context)

    assert integrated_loudness(output.path) == pytest.approx(-14, abs=1.5)
    assert output.metadata["measured_input_lufs"] == pytest.approx(-35, abs=3)
    assert output.metadata["target_lufs"] == -14
    assert output.metadata["normalized"] is True
    assert progress == sorted(progress) and progress[-1] == 100


def test_other_target(quiet: Path, tile_context: TileContext) -> None:
    output = enhance(quiet, tile_context, target_lufs=-23, highpass_hz=0, denoise=False)

    assert integrated_loudness(output.path) == pytest.approx(-23, abs=1.5)


def test_picture_is_copied_unchanged(quiet: Path, tile_context: TileContext) -> None:
    output = enhance(quiet, tile_context)

    before, after = probe(quiet), probe(output.path)
    assert (after.width, after.height) == (before.width, before.height)
    assert count_video_frames(output.path) == count_video_frames(quiet)
    assert after.video_codec == before.video_codec
    assert after.audio_codec == "aac" and after.audio_sample_rate == 48000


def test_video_without_audio_is_refused(
    tmp_path: Path, tile_context: TileContext
) -> None:
    path = make_video(tmp_path / "mute.mp4", audio=False)

    with pytest.raises(TileError, match=r"mute\.mp4 has no audio track; Audio Enhance"):
        enhance(path, tile_context)


def test_silent_audio_is_left_alone(tmp_path: Path, tile_context: TileContext) -> None:
    path = make_silent_audio(tmp_path / "hush.mp4")

    output = enhance(path, tile_context)

    assert output.metadata["normalized"] is False
    assert output.metadata["measured_input_lufs"] is None
    assert "silent" in str(output.metadata["note"])
    assert probe(output.path).has_audio


def test_audio_only_input(tmp_path: Path, tile_context: TileContext) -> None:
    path = make_audio_only(tmp_path / "voice.m4a", seconds=2.0)

    output = enhance(path, tile_context)

    info = probe(output.path)
    assert info.has_audio and not info.has_video


@pytest.mark.parametrize(
    "params",
    [{"target_lufs": -40}, {"target_lufs": 0}, {"highpass_hz": -1}, {"volume": 2}],
)
def test_params_out_of_range(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AudioEnhanceParams.model_validate(params)
