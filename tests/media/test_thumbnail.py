"""Thumbnails show a sharp, well-exposed frame, upright, at a bounded size."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from media_factory import (
    FAST_VIDEO,
    ffmpeg_binary,
    make_rotated,
    make_video,
    run_ffmpeg,
)
from tilework.media import render
from tilework.media.ffmpeg import FFmpeg
from tilework.media.render import make_thumbnail

BLACK_UNTIL = 1.5
SHARP_UNTIL = 2.5
Grey = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def ffmpeg() -> FFmpeg:
    return FFmpeg(ffmpeg_binary())


@pytest.fixture(scope="module")
def black_sharp_blurred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Black, then a sharp test pattern, then the same pattern blurred."""
    path = tmp_path_factory.mktemp("thumb") / "mixed.mp4"
    size = "size=320x240:rate=30"
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"color=black:{size}:d={BLACK_UNTIL}"),
        *("-f", "lavfi", "-i", f"testsrc2={size}:d={SHARP_UNTIL - BLACK_UNTIL}"),
        *("-f", "lavfi", "-i", f"testsrc2={size}:d=3.5"),
        *("-filter_complex", "[2]boxblur=8[b];[0][1][b]concat=n=3:v=1:a=0[v]"),
        *("-map", "[v]", *FAST_VIDEO, str(path)),
    )
    return path


def read_grey(path: Path) -> Grey:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"{path} is not an image"
    return np.asarray(image, dtype=np.uint8)


def sharpness(grey: Grey) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def decoded_frames(path: Path) -> list[tuple[float, Grey]]:
    with av.open(str(path)) as container:
        return [
            (
                float(frame.time or 0.0),
                np.asarray(frame.to_ndarray(format="gray8"), np.uint8),
            )
            for frame in container.decode(video=0)
        ]


def test_thumbnail_comes_from_the_sharp_section(
    black_sharp_blurred: Path, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    out = make_thumbnail(black_sharp_blurred, tmp_path / "thumb.jpg", ffmpeg=ffmpeg)

    thumb = read_grey(out)
    assert thumb.shape == (240, 320)
    frames = decoded_frames(black_sharp_blurred)
    sharp = [sharpness(g) for t, g in frames if BLACK_UNTIL <= t < SHARP_UNTIL]
    blurred = [sharpness(g) for t, g in frames if t >= SHARP_UNTIL]
    assert sharpness(thumb) > 0.5 * min(sharp)
    assert sharpness(thumb) > 4 * max(blurred)

    nearest_time, _ = min(
        frames, key=lambda frame: float(np.abs(frame[1] - thumb.astype(float)).mean())
    )
    assert BLACK_UNTIL <= nearest_time < SHARP_UNTIL


def test_rotated_video_gives_a_portrait_thumbnail(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    landscape = make_video(tmp_path / "landscape.mp4", seconds=1.0, audio=False)
    rotated = make_rotated(landscape, tmp_path / "rotated.mp4", clockwise=90)

    thumb = read_grey(make_thumbnail(rotated, tmp_path / "thumb.jpg", ffmpeg=ffmpeg))

    assert thumb.shape == (320, 240)


def test_wide_video_is_scaled_to_max_width(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    video = make_video(tmp_path / "wide.mp4", seconds=1.0, size="1280x720", audio=False)

    thumb = read_grey(make_thumbnail(video, tmp_path / "thumb.jpg", ffmpeg=ffmpeg))
    small = read_grey(
        make_thumbnail(video, tmp_path / "small.jpg", ffmpeg=ffmpeg, max_width=200)
    )

    assert thumb.shape == (360, 640)
    assert small.shape == (112, 200)


def test_one_frame_video_with_longer_sound(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    video = tmp_path / "one.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:d=1"),
        *("-f", "lavfi", "-i", "sine=frequency=440:d=2"),
        *("-frames:v", "1", *FAST_VIDEO, "-c:a", "aac", str(video)),
    )

    thumb = read_grey(make_thumbnail(video, tmp_path / "thumb.jpg", ffmpeg=ffmpeg))

    assert thumb.shape == (240, 320)
    assert sharpness(thumb) > 10


def test_black_video_still_gets_a_thumbnail(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    video = tmp_path / "black.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=black:size=320x240:rate=30:d=2"),
        *FAST_VIDEO,
        str(video),
    )

    thumb = read_grey(make_thumbnail(video, tmp_path / "thumb.jpg", ffmpeg=ffmpeg))

    assert thumb.shape == (240, 320)
    assert thumb.mean() < 20


def test_first_frame_when_the_chosen_instant_yields_none(
    ffmpeg: FFmpeg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = make_video(tmp_path / "short.mp4", seconds=1.0, audio=False)
    monkeypatch.setattr(render, "_thumbnail_time", lambda path: 30.0)

    thumb = read_grey(make_thumbnail(video, tmp_path / "thumb.jpg", ffmpeg=ffmpeg))

    assert thumb.shape == (240, 320)
