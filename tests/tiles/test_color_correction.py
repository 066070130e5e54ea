"""Color Correction rendered for real, and .cube LUT files checked line by line."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

import media_factory
from media_factory import make_video, run_ffmpeg
from tilework.errors import ProbeError, TileError
from tilework.media.lut import check_cube
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.color_correction import ColorCorrection, ColorCorrectionParams


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "pattern.mp4", seconds=1)


@pytest.fixture(scope="module")
def grey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "grey.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=c=0x808080:s=160x120:d=1"),
        *media_factory.FAST_VIDEO,
        str(path),
    )
    return path


@pytest.fixture
def tile_context(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", [])


def correct(
    path: Path, ctx: TileContext, lut: Path | None = None, **params: object
) -> TileOutput:
    if lut is not None:
        ctx.resolve_asset = lambda asset_id, kind: lut
    source = MediaFile(path=path, info=probe(path))
    return ColorCorrection().run(
        ColorCorrectionParams.model_validate(params), source, ctx
    )[0]


def planes(path: Path) -> tuple[NDArray[np.float64], ...]:
    """Y, U and V of the middle frame, as float arrays."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    picture = frames[len(frames) // 2].to_ndarray(format="yuv444p").astype(float)
    return picture[0], picture[1], picture[2]


def rgb(path: Path) -> NDArray[np.float64]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return frames[len(frames) // 2].to_ndarray(format="rgb24").astype(float)


def write_cube(path: Path, size: int, transform: str = "identity") -> Path:
    steps = [i / (size - 1) for i in range(size)]
    lines = ['TITLE "test"', f"LUT_3D_SIZE {size}"]
    for blue, green, red in itertools.product(steps, repeat=3):
        colour = (red, green, blue)
        if transform == "invert":
            colour = (1 - red, 1 - green, 1 - blue)
        lines.append(" ".join(f"{value:.6f}" for value in colour))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_brightness_raises_the_luma(pattern: Path, tile_context: TileContext) -> None:
    luma_before = planes(pattern)[0].mean()

    output = correct(pattern, tile_context, brightness=0.2)

    assert planes(output.path)[0].mean() > luma_before + 30
    assert output.metadata == {"adjusted": {"brightness": 0.2}, "lut_applied": False}
    assert probe(output.path).has_audio


def test_no_saturation_leaves_grey(pattern: Path, tile_context: TileContext) -> None:
    _, u_before, v_before = planes(pattern)
    assert np.abs(u_before - 128).mean() + np.abs(v_before - 128).mean() > 20

    output = correct(pattern, tile_context, saturation=0)

    _, u, v = planes(output.path)
    assert np.abs(u - 128).mean() < 2 and np.abs(v - 128).mean() < 2


def test_contrast_and_gamma(grey: Path, tile_context: TileContext) -> None:
    flat = correct(grey, tile_context, contrast=0)
    lifted = correct(grey, tile_context, gamma=2)

    assert planes(flat.path)[0].std() < 1
    assert planes(lifted.path)[0].mean() > planes(grey)[0].mean() + 20


@pytest.mark.parametrize(("warmth", "warmer"), [(1.0, True), (-1.0, False)])
def test_temperature_warms_and_cools(
    grey: Path, tile_context: TileContext, warmth: float, warmer: bool
) -> None:
    output = correct(grey, tile_context, temperature=warmth)

    red, _, blue = rgb(output.path).reshape(-1, 3).mean(axis=0)
    assert (red - blue > 40) if warmer else (blue - red > 15)


def test_neutral_settings_change_nothing(
    pattern: Path, tile_context: TileContext
) -> None:
    output = correct(pattern, tile_context)

    assert np.abs(rgb(output.path) - rgb(pattern)).mean() < 2
    assert output.metadata["adjusted"] == {}


def test_identity_lut_keeps_the_pixels(
    pattern: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    cube = write_cube(tmp_path / "identity.cube", 17)

    output = correct(pattern, tile_context, lut=cube, lut_id="lut-1")

    assert np.abs(rgb(output.path) - rgb(pattern)).mean() < 3
    assert output.metadata["lut_applied"] is True


def test_inverting_lut_inverts(
    pattern: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    folder = tmp_path / "odd: it's [a], b; ü"
    folder.mkdir()
    cube = write_cube(folder / "invert.cube", 2, transform="invert")

    output = correct(pattern, tile_context, lut=cube, lut_id="lut-2")

    assert np.abs(rgb(output.path) - (255 - rgb(pattern))).mean() < 6


def test_unknown_lut_id_is_a_clear_error(
    pattern: Path, tile_context: TileContext
) -> None:
    with pytest.raises(TileError, match="lut-404"):
        correct(pattern, tile_context, lut_id="lut-404")


def test_malformed_lut_upload_fails_the_tile(
    pattern: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    cube = tmp_path / "bad.cube"
    cube.write_text("LUT_3D_SIZE 2\n0 0 0\n")

    with pytest.raises(TileError, match=r"lut-3 cannot be used.*needs 8 rows"):
        correct(pattern, tile_context, lut=cube, lut_id="lut-3")


def test_the_chain_alone_refuses_a_lut(pattern: Path) -> None:
    params = ColorCorrectionParams(lut_id="lut-1")

    with pytest.raises(TileError, match="LUT"):
        ColorCorrection().fragment(params, probe(pattern))


def test_a_well_formed_cube_passes(tmp_path: Path) -> None:
    cube = write_cube(tmp_path / "ok.cube", 5)
    text = cube.read_text().replace(
        "LUT_3D_SIZE", "# a comment\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\nLUT_3D_SIZE"
    )
    cube.write_text(text)

    check_cube(cube)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0 0\n", "data before LUT_3D_SIZE"),
        ('TITLE "x"\n', "no LUT_3D_SIZE"),
        ("LUT_3D_SIZE 1\n0 0 0\n", "outside 2 to 256"),
        ("LUT_3D_SIZE 300\n", "outside 2 to 256"),
        ("LUT_3D_SIZE two\n", "no whole number"),
        ("LUT_1D_SIZE 4\n", "1D LUT"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7, "needs 8 rows"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 9, "needs 8 rows"),
        ("LUT_3D_SIZE 2\n" + "0 0\n" * 8, "line 2 should hold three numbers"),
        ("LUT_3D_SIZE 2\n" + "0 0 x\n" * 8, "line 2 holds something that is no number"),
        ("LUT_3D_SIZE 2\n" + "0 0 nan\n" * 8, "not finite"),
        ("LUT_3D_SIZE 2\n" + "0 0 1.5\n" * 8, "1.5 is outside the domain 0 to 1"),
        (
            "LUT_3D_SIZE 2\nDOMAIN_MAX 1 0 1\n" + "0 0 0\n" * 8,
            "DOMAIN_MAX must be above",
        ),
        (
            "LUT_3D_SIZE 2\n0 0 0\nDOMAIN_MAX 2 2 2\n",
            "must come before the colour rows",
        ),
    ],
)
def test_malformed_cubes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    cube = tmp_path / "bad.cube"
    cube.write_text(text)

    with pytest.raises(ProbeError, match=message) as caught:
        check_cube(cube)

    assert "bad.cube is not a usable .cube LUT" in str(caught.value)


def test_binary_file_is_not_a_cube(tmp_path: Path) -> None:
    cube = tmp_path / "image.cube"
    cube.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")

    with pytest.raises(ProbeError, match="not a text file"):
        check_cube(cube)


def test_wider_domain_is_respected(tmp_path: Path) -> None:
    cube = tmp_path / "wide.cube"
    rows = "0 0 0\n4 4 4\n" * 4
    cube.write_text(f"DOMAIN_MIN 0 0 0\nDOMAIN_MAX 4 4 4\nLUT_3D_SIZE 2\n{rows}")

    check_cube(cube)
