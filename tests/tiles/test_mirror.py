"""Mirror rendered for real: each direction flips the pixels, sizes and sound kept."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

import media_factory
from media_factory import make_rotated, make_video
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.mirror import Mirror, MirrorParams

FLIPS = {
    "horizontal": np.fliplr,
    "vertical": np.flipud,
    "both": lambda picture: np.flipud(np.fliplr(picture)),
}


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "landscape.mp4", seconds=1)


@pytest.fixture
def tile_context(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", [])


def mirror(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    tile = Mirror()
    source = MediaFile(path=path, info=probe(path))
    return tile.run(MirrorParams.model_validate(params), source, ctx)[0]


def first_frame(path: Path) -> NDArray[np.int16]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24").astype(np.int16)


def difference(a: NDArray[np.int16], b: NDArray[np.int16]) -> float:
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("direction", list(FLIPS))
def test_each_direction_flips_the_pixels(
    landscape: Path, tile_context: TileContext, direction: str
) -> None:
    before = first_frame(landscape)

    output = mirror(landscape, tile_context, direction=direction)

    after = first_frame(output.path)
    assert after.shape == before.shape
    assert difference(after, FLIPS[direction](before)) < 4
    assert difference(after, before) > 10


def test_sound_and_length_are_kept(landscape: Path, tile_context: TileContext) -> None:
    info = probe(mirror(landscape, tile_context).path)

    assert info.has_audio
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(1.0, abs=0.1)


def test_rotated_video_is_flipped_as_displayed(
    landscape: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    portrait = make_rotated(landscape, tmp_path / "portrait.mp4", clockwise=90)
    upright = np.rot90(first_frame(landscape), k=-1)

    output = mirror(portrait, tile_context, direction="horizontal")

    after = first_frame(output.path)
    assert probe(output.path).rotation == 0
    assert after.shape == (320, 240, 3)
    assert difference(after, np.fliplr(upright)) < 4


def test_odd_size_without_audio(tmp_path: Path, tile_context: TileContext) -> None:
    odd = make_video(tmp_path / "odd.mp4", size="321x241", audio=False, seconds=1)

    info = probe(mirror(odd, tile_context, direction="vertical").path)

    assert (info.width, info.height) == (320, 240)
    assert not info.has_audio


def test_unknown_direction_is_refused() -> None:
    with pytest.raises(ValidationError, match="direction"):
        MirrorParams.model_validate({"direction": "diagonal"})
