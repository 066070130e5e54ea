"""Intro and Outro rendered for real: title cards, uploaded clips, fades, no sound."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

import media_factory
from media_factory import make_rotated, make_video, run_ffmpeg
from tilework.errors import TileError
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.intro_outro import Intro, IntroOutroParams, Outro, find_font

CARD = "#2040C0"
CARD_RGB = (0x20, 0x40, 0xC0)


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "main.mp4", seconds=2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A square 160x160 clip at 15 fps, silent, in a flat green."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=c=0x00C000:s=160x160:r=15:d=1.5"),
        *media_factory.FAST_VIDEO,
        str(path),
    )
    return path


@pytest.fixture
def tile_context(tmp_path: Path, clip: Path) -> TileContext:
    ctx = media_factory.tile_context(tmp_path / "scratch", [])
    ctx.resolve_asset = lambda asset_id, kind: clip
    return ctx


def add(
    tile: Intro | Outro, path: Path, ctx: TileContext, **params: object
) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    return tile.run(IntroOutroParams.model_validate(params), source, ctx)[0]


def frames(path: Path) -> list[NDArray[np.float64]]:
    with av.open(str(path)) as container:
        return [
            f.to_ndarray(format="rgb24").astype(float)
            for f in container.decode(video=0)
        ]


def corner(picture: NDArray[np.float64]) -> NDArray[np.float64]:
    return picture[4:20, 4:20].reshape(-1, 3).mean(axis=0)


def loudness_between(path: Path, start: float, end: float) -> float:
    """The peak sample value of the first audio track between two times."""
    peak = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            if frame.time is not None and start <= frame.time < end:
                peak = max(peak, float(np.abs(frame.to_ndarray()).max()))
    return peak


def test_intro_card_with_crossfade(main: Path, tile_context: TileContext) -> None:
    output = add(
        Intro(),
        main,
        tile_context,
        title="Hello, it's «tilework»: 100%",
        subtitle="A subtitle; with [brackets]",
        background_color=CARD,
        duration_seconds=3,
        crossfade_seconds=0.5,
    )

    info = probe(output.path)
    assert info.duration == pytest.approx(3 + 2 - 0.5, abs=0.1)
    assert (info.width, info.height) == (320, 240) and info.has_audio
    pictures = frames(output.path)
    assert np.abs(corner(pictures[0]) - CARD_RGB).max() < 12
    assert np.abs(pictures[0] - pictures[0][10, 10]).max() > 100, "no text drawn"
    assert np.abs(corner(pictures[-1]) - CARD_RGB).max() > 40
    assert output.metadata["segments"] == [
        {"kind": "intro", "start": 0.0, "end": 3.0},
        {"kind": "main", "start": 2.5, "end": 4.5},
    ]
    assert loudness_between(output.path, 0.1, 2.4) < 0.001
    assert loudness_between(output.path, 3.2, 4.3) > 0.1


def test_outro_card_hard_cut(main: Path, tile_context: TileContext) -> None:
    output = add(Outro(), main, tile_context, title="The end", background_color=CARD)

    info = probe(output.path)
    assert info.duration == pytest.approx(2 + 3, abs=0.1)
    pictures = frames(output.path)
    assert len(pictures) == pytest.approx(150, abs=2)
    assert np.abs(corner(pictures[-1]) - CARD_RGB).max() < 12
    assert np.abs(corner(pictures[0]) - CARD_RGB).max() > 40
    assert output.metadata["segments"][1] == {"kind": "outro", "start": 2.0, "end": 5.0}


def test_uploaded_clip_is_conformed(main: Path, tile_context: TileContext) -> None:
    output = add(Intro(), main, tile_context, video_id="clip-1")

    info = probe(output.path)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(30, abs=0.1) and not info.vfr
    assert info.has_audio and info.audio_sample_rate == 48000
    assert info.duration == pytest.approx(1.5 + 2, abs=0.1)
    first = frames(output.path)[0]
    assert first[120, 10].max() < 20, "the square clip is pillarboxed"
    assert np.abs(first[120, 160] - (0, 192, 0)).max() < 15
    assert loudness_between(output.path, 0.0, 1.4) < 0.001
    assert loudness_between(output.path, 1.6, 3.4) > 0.1


def test_main_without_audio_gives_silent_output(
    tmp_path: Path, tile_context: TileContext
) -> None:
    silent = make_video(tmp_path / "silent.mp4", seconds=1, audio=False)
    with_sound = make_video(tmp_path / "sound.mp4", seconds=1, size="160x120")
    tile_context.resolve_asset = lambda asset_id, kind: with_sound

    output = add(
        Outro(), silent, tile_context, video_id="clip-2", crossfade_seconds=0.4
    )

    info = probe(output.path)
    assert not info.has_audio
    assert info.duration == pytest.approx(1 + 1 - 0.4, abs=0.1)


def test_rotated_odd_main(tmp_path: Path, tile_context: TileContext) -> None:
    odd = make_video(tmp_path / "odd.mp4", size="321x241", seconds=1)
    turned = make_rotated(odd, tmp_path / "turned.mp4", clockwise=90)

    output = add(Intro(), turned, tile_context, title="Up", duration_seconds=0.5)

    info = probe(output.path)
    assert (info.width, info.height, info.rotation) == (240, 320, 0)
    assert info.duration == pytest.approx(1.5, abs=0.1)


def test_crossfade_longer_than_a_part_is_shortened(
    main: Path, tile_context: TileContext
) -> None:
    output = add(
        Intro(), main, tile_context, title="Hi", duration_seconds=1, crossfade_seconds=5
    )

    assert output.metadata["crossfade_seconds"] == 0.5
    assert "shortened" in output.metadata["note"]
    assert probe(output.path).duration == pytest.approx(1 + 2 - 0.5, abs=0.1)


def test_neither_clip_nor_title_names_both() -> None:
    with pytest.raises(ValidationError) as caught:
        IntroOutroParams.model_validate({"duration_seconds": 2})

    assert "video_id" in str(caught.value) and "title" in str(caught.value)


def test_both_clip_and_title_is_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        IntroOutroParams.model_validate({"video_id": "v", "title": "t"})


@pytest.mark.parametrize("colour", ["red", "#12345", "#GGGGGG"])
def test_colours_must_be_hex(colour: str) -> None:
    with pytest.raises(ValidationError, match="background_color"):
        IntroOutroParams.model_validate({"title": "t", "background_color": colour})


def test_unknown_clip_is_a_clear_error(main: Path, tmp_path: Path) -> None:
    ctx = media_factory.tile_context(tmp_path / "scratch", [])

    with pytest.raises(TileError, match="clip-404"):
        add(Intro(), main, ctx, video_id="clip-404")


def test_a_font_is_found() -> None:
    assert find_font().is_file()
