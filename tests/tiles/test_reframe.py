"""Reframe rendered for real: each shape and mode, rotated, odd and silent input."""

from __future__ import annotations

from pathlib import Path

import pytest

import media_factory
from media_factory import make_rotated, make_vfr, make_video
from tilework.errors import Cancelled
from tilework.media.probe import MediaInfo, probe, probe_image, probe_video
from tilework.media.render import make_thumbnail, render_fragments
from tilework.tiles.base import FilterFragment, MediaFile, TileContext
from tilework.tiles.reframe import Reframe, ReframeParams, output_size
from tilework.tiles.registry import get_tile

RATIOS = ["9:16", "1:1", "4:5", "16:9"]
MODES = ["crop", "pad_blur"]


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "landscape.mp4")


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def reframe(path: Path, ctx: TileContext, **params: object) -> MediaInfo:
    tile = get_tile(Reframe.node_type_id)
    outputs = tile.run(ReframeParams.model_validate(params), media(path), ctx)
    return probe_video(outputs[0].path)


def media(path: Path) -> MediaFile:
    return MediaFile(path=path, info=probe(path))


def assert_shape(info: MediaInfo, aspect_ratio: str) -> tuple[int, int]:
    across, down = (int(part) for part in aspect_ratio.split(":"))
    width, height = info.display_width, info.display_height
    assert width is not None and height is not None
    assert width % 2 == 0 and height % 2 == 0
    assert (
        min(abs(width - height * across / down), abs(height - width * down / across))
        <= 1
    )
    assert info.rotation == 0
    return width, height


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("aspect_ratio", RATIOS)
def test_each_shape_and_mode(
    landscape: Path, tile_context: TileContext, aspect_ratio: str, mode: str
) -> None:
    info = reframe(landscape, tile_context, aspect_ratio=aspect_ratio, mode=mode)

    width, height = assert_shape(info, aspect_ratio)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.has_audio
    if mode == "crop":
        assert width <= 320 and height <= 240
    else:
        assert width >= 318 and height >= 238


def test_crop_keeps_the_source_resolution(
    landscape: Path, tile_context: TileContext
) -> None:
    info = reframe(landscape, tile_context, aspect_ratio="9:16", mode="crop")

    assert (info.width, info.height) == (134, 240)


def test_long_side_limit(landscape: Path, tile_context: TileContext) -> None:
    info = reframe(
        landscape, tile_context, aspect_ratio="9:16", mode="pad_blur", max_height=320
    )

    assert (info.width, info.height) == (180, 320)


@pytest.mark.parametrize("mode", MODES)
def test_rotated_phone_video(
    landscape: Path, tmp_path: Path, tile_context: TileContext, mode: str
) -> None:
    portrait = make_rotated(landscape, tmp_path / "portrait.mp4", clockwise=90)

    info = reframe(portrait, tile_context, aspect_ratio="9:16", mode=mode)

    width, height = assert_shape(info, "9:16")
    if mode == "crop":
        assert (width, height) == (180, 320)
    else:
        assert (width, height) == (240, 426)


@pytest.mark.parametrize("mode", MODES)
def test_odd_source_size(tmp_path: Path, tile_context: TileContext, mode: str) -> None:
    odd = make_video(tmp_path / "odd.mp4", size="321x241", audio=False)
    assert (probe(odd).width, probe(odd).height) == (321, 241)

    info = reframe(odd, tile_context, aspect_ratio="1:1", mode=mode)

    assert_shape(info, "1:1")


def test_input_without_audio(tmp_path: Path, tile_context: TileContext) -> None:
    silent = make_video(tmp_path / "silent.mp4", audio=False)

    info = reframe(silent, tile_context, aspect_ratio="4:5")

    assert_shape(info, "4:5")
    assert not info.has_audio


def test_variable_frame_rate_comes_out_constant(
    tmp_path: Path, tile_context: TileContext
) -> None:
    vfr = make_vfr(tmp_path / "vfr.mp4")

    info = reframe(vfr, tile_context, aspect_ratio="1:1")

    assert not info.vfr
    assert info.fps is not None and 10 <= info.fps <= 30


def test_fragments_join_into_one_pass(
    landscape: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    tile = Reframe()
    source = media(landscape)
    square = tile.fragment(ReframeParams(aspect_ratio="1:1"), source.info)
    shrink = FilterFragment(
        video="scale=120:120", audio="volume=0.5", width=120, height=120
    )
    padded = tile.fragment(
        ReframeParams(aspect_ratio="9:16", mode="pad_blur"),
        MediaInfo(duration=2.0, width=120, height=120, has_video=True),
    )
    out = tmp_path / "joined.mp4"

    render_fragments(source, [square, shrink, padded, padded], out, ctx=tile_context)

    info = probe_video(out)
    assert (info.width, info.height) == (padded.width, padded.height)
    assert info.has_audio


@pytest.mark.parametrize("aspect_ratio", RATIOS)
def test_output_size_never_exceeds_the_region(aspect_ratio: str) -> None:
    across, down = (int(part) for part in aspect_ratio.split(":"))
    for region in [(135.0, 240.0), (1080.0, 1920.0), (3840.0, 2160.0), (241.0, 241.0)]:
        fitted = (region[1] * across / down, region[1])
        if fitted[0] > region[0]:
            fitted = (region[0], region[0] * down / across)

        width, height = output_size(fitted, (across, down), 1920)

        assert width % 2 == 0 and height % 2 == 0
        assert width <= max(fitted[0], 2) + 0.5 and height <= max(fitted[1], 2) + 0.5
        assert max(width, height) <= 1920


def test_cancelled_render_leaves_no_file(
    landscape: Path, tile_context: TileContext
) -> None:
    tile_context.cancel.cancel()

    with pytest.raises(Cancelled):
        Reframe().run(ReframeParams(), media(landscape), tile_context)

    assert list(tile_context.scratch.iterdir()) == []


def test_thumbnail_is_an_upright_jpeg(
    landscape: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    portrait = make_rotated(landscape, tmp_path / "portrait.mp4", clockwise=90)

    thumb = make_thumbnail(
        portrait, tmp_path / "thumb.jpg", ffmpeg=tile_context.ffmpeg, max_width=120
    )

    info = probe_image(thumb)
    assert thumb.read_bytes()[:2] == b"\xff\xd8"
    assert (info.width, info.height) == (120, 160)
