"""Watermark rendered for real: placement, transparency, opacity and bad uploads."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

import media_factory
from media_factory import make_rotated, run_ffmpeg
from tilework.errors import TileError
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.watermark import Watermark, WatermarkParams

GREY = 128
RED = (255, 0, 0)


@pytest.fixture(scope="module")
def grey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat grey 320x240 video with a tone."""
    path = tmp_path_factory.mktemp("media") / "grey.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=c=0x808080:s=320x240:d=1"),
        *("-f", "lavfi", "-i", "sine=frequency=440:d=1"),
        *media_factory.FAST_VIDEO,
        *("-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def mark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x32 PNG: the left half opaque red, the right half fully transparent."""
    folder = tmp_path_factory.mktemp("marks") / "logo: it's [ü], b;"
    folder.mkdir()
    picture = np.zeros((32, 64, 4), np.uint8)
    picture[:, :32] = (0, 0, 255, 255)
    picture[:, 32:] = (255, 255, 255, 0)
    path = folder / "mark.png"
    assert cv2.imwrite(str(path), picture)
    return path


@pytest.fixture
def tile_context(tmp_path: Path, mark: Path) -> TileContext:
    ctx = media_factory.tile_context(tmp_path / "scratch", [])
    ctx.resolve_asset = lambda asset_id, kind: mark
    return ctx


def watermark(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    params = {"image_id": "img-1", **params}
    return Watermark().run(WatermarkParams.model_validate(params), source, ctx)[0]


def frame(path: Path) -> NDArray[np.float64]:
    with av.open(str(path)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return picture.astype(float)


def mean_colour(
    picture: NDArray[np.float64], x: int, y: int, w: int, h: int
) -> NDArray[np.float64]:
    """The mean colour of a box, two pixels in from its edges."""
    return picture[y + 2 : y + h - 2, x + 2 : x + w - 2].reshape(-1, 3).mean(axis=0)


def blend(opacity: float) -> NDArray[np.float64]:
    return opacity * np.array(RED) + (1 - opacity) * GREY


def test_mark_lands_in_its_corner(grey: Path, tile_context: TileContext) -> None:
    output = watermark(grey, tile_context, position="bottom_right")

    placed = output.metadata["watermark"]
    assert placed == {"x": 265, "y": 209, "width": 48, "height": 24}
    picture = frame(output.path)
    opaque = mean_colour(picture, 265, 209, 24, 24)
    clear = mean_colour(picture, 289, 209, 24, 24)
    opposite = mean_colour(picture, 7, 7, 48, 24)
    assert np.abs(opaque - blend(0.8)).max() < 15
    assert np.abs(clear - GREY).max() < 4
    assert np.abs(opposite - GREY).max() < 4
    assert probe(output.path).has_audio


@pytest.mark.parametrize("opacity", [0.3, 1.0])
def test_opacity_is_respected(
    grey: Path, tile_context: TileContext, opacity: float
) -> None:
    output = watermark(grey, tile_context, position="top_left", opacity=opacity)

    picture = frame(output.path)
    assert output.metadata["watermark"]["x"] == 7
    opaque = mean_colour(picture, 7, 7, 24, 24)
    assert np.abs(opaque - blend(opacity)).max() < 15
    assert np.abs(mean_colour(picture, 265, 209, 48, 24) - GREY).max() < 4


def test_centre_and_size(grey: Path, tile_context: TileContext) -> None:
    output = watermark(grey, tile_context, position="center", size_percent=50)

    assert output.metadata["watermark"] == {
        "x": 80,
        "y": 80,
        "width": 160,
        "height": 80,
    }
    picture = frame(output.path)
    assert np.abs(mean_colour(picture, 80, 80, 80, 80) - blend(0.8)).max() < 15
    assert np.abs(mean_colour(picture, 160, 80, 80, 80) - GREY).max() < 4


def test_rotated_video_uses_its_display_size(
    grey: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    portrait = make_rotated(grey, tmp_path / "portrait.mp4", clockwise=90)

    output = watermark(portrait, tile_context, position="top_right", margin_percent=0)

    info = probe(output.path)
    assert (info.width, info.height, info.rotation) == (240, 320, 0)
    assert output.metadata["watermark"] == {"x": 204, "y": 0, "width": 36, "height": 18}
    picture = frame(output.path)
    assert np.abs(mean_colour(picture, 204, 0, 18, 18) - blend(0.8)).max() < 15


def test_silent_odd_video(tmp_path: Path, tile_context: TileContext) -> None:
    odd = media_factory.make_video(
        tmp_path / "odd.mp4", size="321x241", audio=False, seconds=1
    )

    info = probe(watermark(odd, tile_context).path)

    assert (info.width, info.height) == (320, 240)
    assert not info.has_audio


def test_unknown_image_id_is_a_clear_error(grey: Path, tmp_path: Path) -> None:
    ctx = media_factory.tile_context(tmp_path / "scratch", [])

    with pytest.raises(TileError, match="img-404"):
        watermark(grey, ctx, image_id="img-404")


def test_upload_that_is_no_image(
    grey: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    tile_context.resolve_asset = lambda asset_id, kind: text

    with pytest.raises(TileError, match="img-1 cannot be used"):
        watermark(grey, tile_context)
