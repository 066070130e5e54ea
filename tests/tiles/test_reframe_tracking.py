"""Reframe following a face: real footage, faceless and rotated video, the path."""

from __future__ import annotations

import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

import media_factory
from media_factory import FAST_VIDEO, make_rotated, make_video, run_ffmpeg
from tilework.media.probe import probe
from tilework.media.render import render_fragments
from tilework.media.tracking import (
    MAX_KEYFRAMES,
    Box,
    CropPath,
    FaceTrack,
    Keyframe,
    face_detector,
    plan_crop_path,
    sample_frames,
)
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.reframe import NO_SUBJECT, Reframe, ReframeParams, crop_fragment

MIN_INSIDE_SHARE = 0.8
CENTRE_TOLERANCE = 6


@pytest.fixture(scope="module")
def carphone(shared_media: Path) -> Path:
    return shared_media / "carphone.mp4"


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "landscape.mp4", seconds=2)


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def reframe(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    return Reframe().run(ReframeParams.model_validate(params), source, ctx)[0]


def crop_path(metadata: dict[str, object]) -> CropPath:
    window = metadata["crop_window"]
    keys = metadata["crop_path"]
    assert isinstance(window, dict) and isinstance(keys, list)
    keyframes = tuple(Keyframe(k["t"], k["x"], k["y"]) for k in keys)
    return CropPath(window["width"], window["height"], keyframes)


def face_inside_share(source: Path, output: TileOutput) -> tuple[float, int]:
    """Share of sampled frames with a face in the input whose face is in the crop.

    A frame counts when the input's face box lies inside the crop window the
    metadata gives for that time, and the detector finds the face in the output
    frame where that window puts it.
    """
    path = crop_path(output.metadata)
    out_info = probe(output.path)
    zoom = (out_info.width or 0) / path.width
    detector = face_detector()
    pairs = zip(
        sample_frames(source, probe(source)),
        sample_frames(output.path, out_info),
        strict=False,
    )

    with_face = inside = 0
    for (time, frame, scale), (_, out_frame, out_scale) in pairs:
        found = detector.detect(frame)
        if found is None:
            continue
        with_face += 1
        face = found.scaled(1 / scale)
        x, y = path.at(time)
        shown = detector.detect(out_frame)
        if shown is not None and _contains(x, y, path, face):
            shown_centre = (shown.x + shown.width / 2) / out_scale / zoom
            expected = face.x + face.width / 2 - x
            inside += abs(shown_centre - expected) <= CENTRE_TOLERANCE
    return inside / max(1, with_face), with_face


def _contains(x: float, y: float, path: CropPath, face: Box) -> bool:
    return (
        x - 0.5 <= face.x
        and face.x + face.width <= x + path.width + 0.5
        and y - 0.5 <= face.y
        and face.y + face.height <= y + path.height + 0.5
    )


def upright_carphone(carphone: Path, folder: Path) -> Path:
    """Carphone stored turned on its side, with rotation metadata that undoes it."""
    sideways = folder / "sideways.mp4"
    run_ffmpeg(
        "-i", str(carphone), "-vf", "transpose=clock", *FAST_VIDEO, str(sideways)
    )
    return make_rotated(sideways, folder / "phone.mp4", clockwise=270)


def test_face_stays_inside_the_crop(
    carphone: Path, tile_context: TileContext, progress: list[float]
) -> None:
    output = reframe(carphone, tile_context, aspect_ratio="9:16")

    info = probe(output.path)
    assert (info.width, info.height) == (80, 144)
    assert output.metadata["tracking"] == "followed the main face"
    share, with_face = face_inside_share(carphone, output)
    assert with_face >= 10
    assert share >= MIN_INSIDE_SHARE
    assert progress[-1] == 100 and any(0 < p < 30 for p in progress)
    assert progress == sorted(progress)


def test_rotated_phone_video_still_tracks(
    carphone: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    phone = upright_carphone(carphone, tmp_path)
    assert (probe(phone).width, probe(phone).rotation) == (144, 270)

    output = reframe(phone, tile_context, aspect_ratio="9:16")

    assert (probe(output.path).width, probe(output.path).height) == (80, 144)
    assert output.metadata["tracking"] == "followed the main face"
    share, with_face = face_inside_share(phone, output)
    assert with_face >= 10 and share >= MIN_INSIDE_SHARE


def test_a_face_crossing_a_wide_frame_is_followed(
    carphone: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    moving = tmp_path / "moving.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=c=0x303840:s=960x360:d=4", "-i", str(carphone)),
        *("-filter_complex", "[1:v]scale=352:288[c];[0:v][c]overlay=x='t*150':y=36"),
        *("-t", "4", *FAST_VIDEO, str(moving)),
    )

    output = reframe(moving, tile_context, aspect_ratio="9:16")

    keyframes = crop_path(output.metadata).keyframes
    assert max(k.x for k in keyframes) - keyframes[0].x > 250
    share, with_face = face_inside_share(moving, output)
    assert with_face >= 10 and share >= MIN_INSIDE_SHARE


def test_no_face_falls_back_to_the_centre(
    landscape: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    tracked = reframe(landscape, tile_context, aspect_ratio="9:16")
    centred_ctx = media_factory.tile_context(tmp_path / "centred", [])
    centred = reframe(landscape, centred_ctx, aspect_ratio="9:16", track_subject=False)

    assert tracked.metadata["tracking"] == NO_SUBJECT
    assert "crop_path" not in tracked.metadata
    assert centred.metadata == {"tracking": "off; centred"}
    assert np.abs(first_frame(tracked.path) - first_frame(centred.path)).max() < 2


def test_pad_blur_stays_centred(landscape: Path, tile_context: TileContext) -> None:
    output = reframe(landscape, tile_context, aspect_ratio="9:16", mode="pad_blur")

    assert output.metadata["tracking"].startswith("not needed")


def test_a_moving_crop_renders_where_the_path_says(
    landscape: Path, tmp_path: Path, tile_context: TileContext
) -> None:
    path = CropPath(134, 240, (Keyframe(0.0, 0, 0), Keyframe(2.0, 186, 0)))
    fragment = crop_fragment(320, 240, (9, 16), 1920, path=path)
    out = tmp_path / "moving.mp4"

    render_fragments(
        MediaFile(landscape, probe(landscape)), [fragment], out, ctx=tile_context
    )

    source, moved = all_frames(landscape), all_frames(out)
    for index in (0, 15, 30, 45):
        x = round(path.at(index / 30)[0]) // 2 * 2
        expected = source[index][:, x : x + 134]
        assert np.abs(moved[index] - expected).mean() < 6, index


@pytest.mark.parametrize("clockwise", [90, 270])
def test_analysis_sees_frames_as_displayed(
    landscape: Path, tmp_path: Path, clockwise: int
) -> None:
    turned = make_rotated(landscape, tmp_path / "turned.mp4", clockwise=clockwise)
    info = probe(turned)

    _, frame, scale = next(sample_frames(turned, info))

    assert scale == 1.0 and frame.shape == (320, 240, 3)
    assert np.abs(frame.astype(float) - first_frame(landscape, turned)).mean() < 3


def test_gaps_hold_then_ease_back_to_the_centre() -> None:
    times = [i / 5 for i in range(50)]
    boxes = [Box(20, 50, 40, 40) if i < 10 else None for i in range(50)]
    track = FaceTrack(tuple(times), tuple(boxes), "test")

    path = plan_crop_path(track, (320, 240), (134, 240))

    assert path is not None
    assert path.at(1.0)[0] == path.at(0.0)[0] == 0
    assert path.at(2.4)[0] < 10
    assert path.at(9.8)[0] == 93
    assert 0 < path.at(3.4)[0] < 93


def test_small_jitter_is_ignored() -> None:
    times = [i / 5 for i in range(40)]
    boxes = [Box(150 + 3 * (-1) ** i, 60, 40, 40) for i in range(40)]
    track = FaceTrack(tuple(times), tuple(boxes), "test")

    path = plan_crop_path(track, (320, 240), (134, 240))

    assert path is not None
    assert len(path.keyframes) <= 2
    assert {k.x for k in path.keyframes} == {path.keyframes[0].x}


def test_a_lone_detection_is_not_followed() -> None:
    boxes = [Box(10, 10, 40, 40) if i in (3, 30) else None for i in range(40)]
    track = FaceTrack(tuple(i / 5 for i in range(40)), tuple(boxes), "test")

    assert plan_crop_path(track, (320, 240), (134, 240)) is None


def test_long_paths_are_thinned_and_their_expression_matches() -> None:
    rng = np.random.default_rng(7)
    count = 5 * 3600
    walk = np.clip(np.cumsum(rng.normal(0, 6, count)) + 900, 0, 1880)
    boxes = tuple(Box(float(x), 300, 80, 80) for x in walk)
    track = FaceTrack(tuple(i / 5 for i in range(count)), boxes, "test")

    path = plan_crop_path(track, (1920, 1080), (608, 1080))

    assert path is not None
    assert len(path.keyframes) <= MAX_KEYFRAMES + 1
    x_expression, y_expression = path.expressions()
    assert y_expression == "0"
    for t in [0.0, 0.1, 17.3, 1800.5, 3599.8, 4000.0]:
        assert evaluate(x_expression, t) == pytest.approx(path.at(t)[0], abs=0.01)


def evaluate(expression: str, t: float) -> float:
    """Evaluate a crop expression the way ffmpeg does, for the functions it uses."""
    assert re.fullmatch(r"[-+*.,()\dtclip]+", expression), expression

    def clip(value: float, low: float, high: float) -> float:
        return min(max(value, low), high)

    result = eval(expression, {"__builtins__": {}}, {"clip": clip, "t": t})
    assert isinstance(result, (int, float)) and math.isfinite(result)
    return float(result)


def first_frame(path: Path, shown_as: Path | None = None) -> NDArray[np.float64]:
    """The first frame of ``path``; turned as ``shown_as`` is displayed, if given."""
    with av.open(str(path)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    if shown_as is not None:
        turns = probe(shown_as).rotation // 90
        picture = np.rot90(picture, k=-turns)
    return picture.astype(float)


def all_frames(path: Path) -> list[NDArray[np.float64]]:
    with av.open(str(path)) as container:
        return [
            f.to_ndarray(format="rgb24").astype(float)
            for f in container.decode(video=0)
        ]


def test_metadata_describes_the_window(
    carphone: Path, tile_context: TileContext
) -> None:
    output = reframe(carphone, tile_context, aspect_ratio="1:1")

    path = crop_path(output.metadata)
    assert (path.width, path.height) == (144, 144)
    assert path.keyframes[0].t == 0.0
    assert all(0 <= k.x <= 176 - 144 and k.y == 0 for k in path.keyframes)
    assert output.metadata["faces_found"] <= output.metadata["frames_sampled"] == 20
