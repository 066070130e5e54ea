"""Video Input on local files: whole videos, clips, and ranges that make no sense."""

from __future__ import annotations

from pathlib import Path

import pytest

import media_factory
from media_factory import count_video_frames, make_audio_only, make_video
from tilework.errors import ProbeError, TileError
from tilework.media.probe import probe_video
from tilework.tiles.base import SourceSpec, TileContext, TileParams
from tilework.tiles.registry import UnknownTileType, all_tiles, get_tile
from tilework.tiles.video_input import VideoInput


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "in.mp4", seconds=4.0)


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def run(source: SourceSpec, ctx: TileContext) -> tuple[Path, dict[str, object]]:
    outputs = VideoInput().run(TileParams(), source, ctx)
    assert len(outputs) == 1
    return outputs[0].path, outputs[0].metadata


def test_whole_file_is_linked_not_encoded(
    video: Path, tile_context: TileContext
) -> None:
    out, metadata = run(SourceSpec(path=video), tile_context)

    assert out.parent == tile_context.scratch
    assert out.suffix == ".mp4"
    assert out.read_bytes() == video.read_bytes()
    assert metadata == {"source_duration": pytest.approx(4.0, abs=0.1), "clip": None}


def test_clip_is_cut_exactly(
    video: Path, tile_context: TileContext, progress: list[float]
) -> None:
    source = SourceSpec(path=video, clip_start_ms=1000, clip_end_ms=2500)

    out, metadata = run(source, tile_context)

    info = probe_video(out)
    assert info.duration == pytest.approx(1.5, abs=0.1)
    assert count_video_frames(out) == pytest.approx(45, abs=2)
    assert info.has_audio
    assert metadata["clip"] == [1000, 2500]
    assert progress and progress[-1] == 100


def test_clip_end_past_the_video_is_clamped(
    video: Path, tile_context: TileContext
) -> None:
    source = SourceSpec(path=video, clip_start_ms=3000, clip_end_ms=60_000)

    out, metadata = run(source, tile_context)

    assert probe_video(out).duration == pytest.approx(1.0, abs=0.1)
    assert metadata["clip"] == [3000, 4000]


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "message"),
    [
        (1000, 1000, "not after the clip start"),
        (2000, 1000, "not after the clip start"),
        (-5, 1000, "negative"),
        (5000, 6000, "past the end of the video"),
        (5000, None, "past the end of the video"),
    ],
    ids=["zero-length", "inverted", "negative", "start-past-end", "open-end"],
)
def test_impossible_clip_ranges(
    video: Path,
    tile_context: TileContext,
    start_ms: int,
    end_ms: int | None,
    message: str,
) -> None:
    source = SourceSpec(path=video, clip_start_ms=start_ms, clip_end_ms=end_ms)

    with pytest.raises(TileError, match=message) as caught:
        run(source, tile_context)

    assert str(start_ms) in str(caught.value)


def test_range_left_empty_after_clamping(
    video: Path, tile_context: TileContext
) -> None:
    end_of_video = round(probe_video(video).duration * 1000)
    source = SourceSpec(path=video, clip_start_ms=end_of_video - 10, clip_end_ms=9000)

    with pytest.raises(TileError, match="holds no frames") as caught:
        run(source, tile_context)

    assert str(end_of_video - 10) in str(caught.value)
    assert "9000" in str(caught.value)


def test_audio_only_file_is_refused(tmp_path: Path, tile_context: TileContext) -> None:
    path = make_audio_only(tmp_path / "voice.m4a")

    with pytest.raises(ProbeError, match="has no video stream"):
        run(SourceSpec(path=path), tile_context)


def test_too_long_input_is_refused(video: Path, tile_context: TileContext) -> None:
    tile_context.max_input_seconds = 2

    with pytest.raises(TileError, match="more than the 2 s"):
        run(SourceSpec(path=video), tile_context)


def test_label_names_the_output(video: Path, tile_context: TileContext) -> None:
    outputs = VideoInput().run(
        TileParams(), SourceSpec(path=video, label="../Holiday.MOV"), tile_context
    )

    assert outputs[0].name == "Holiday.mp4"


def test_url_is_downloaded_into_scratch_first(
    video: Path, tile_context: TileContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []

    def fake_download(url: str, dest: Path, **options: object) -> Path:
        calls.append({"url": url, "dest": dest, **options})
        dest.write_bytes(video.read_bytes())
        return dest

    monkeypatch.setattr("tilework.media.fetch.download", fake_download)
    tile_context.max_input_bytes = 10**6

    out, metadata = run(SourceSpec(url="https://example.test/v"), tile_context)

    assert calls[0]["url"] == "https://example.test/v"
    assert Path(str(calls[0]["dest"])).parent == tile_context.scratch
    assert calls[0]["max_bytes"] == 10**6
    assert calls[0]["cancel"] is tile_context.cancel
    assert out.suffix == ".mp4"
    assert metadata["clip"] is None


def test_tiles_are_registered_by_id() -> None:
    assert isinstance(get_tile(VideoInput.node_type_id), VideoInput)
    ids = [tile.node_type_id for tile in all_tiles()]
    assert len(ids) == len(set(ids)) == 23

    with pytest.raises(UnknownTileType, match="no-such-tile"):
        get_tile("no-such-tile")
