"""Probing real files, and refusing the ones users upload by mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from media_factory import (
    make_audio_only,
    make_rotated,
    make_vfr,
    make_video,
    run_ffmpeg,
)
from tilework.errors import ProbeError
from tilework.media.probe import probe, probe_audio, probe_image, probe_video


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "plain.mp4")


def test_plain_video(video: Path) -> None:
    info = probe_video(video)

    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert (info.width, info.height) == (320, 240)
    assert (info.display_width, info.display_height) == (320, 240)
    assert info.rotation == 0
    assert info.fps == pytest.approx(30)
    assert not info.vfr
    assert info.has_video and info.has_audio
    assert info.video_codec == "h264"
    assert info.audio_codec == "aac"
    assert info.audio_sample_rate == 44100
    assert info.audio_channels == 1
    assert "mp4" in info.format_name
    assert info.size_bytes == video.stat().st_size
    assert json.loads(json.dumps(info.to_dict()))["display_width"] == 320


def test_video_without_audio(tmp_path: Path) -> None:
    path = make_video(tmp_path / "silent.mp4", audio=False)

    info = probe_video(path)

    assert info.has_video and not info.has_audio
    assert info.audio_codec is None
    with pytest.raises(ProbeError, match="has no audio stream"):
        probe_audio(path)


def test_audio_only_file_is_not_a_video(tmp_path: Path) -> None:
    path = make_audio_only(tmp_path / "voice.m4a")

    assert probe_audio(path).has_audio
    with pytest.raises(ProbeError, match="has no video stream; Video Input needs"):
        probe_video(path)


def test_html_page_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_text("<!doctype html><html><body>Sign in to view</body></html>")

    with pytest.raises(ProbeError, match="is not a video or audio file ffmpeg can"):
        probe(path)


@pytest.mark.parametrize("faststart", [False, True], ids=["index-last", "index-first"])
def test_mp4_cut_in_half_is_damaged(tmp_path: Path, faststart: bool) -> None:
    whole = make_video(tmp_path / "whole.mp4", seconds=3.0, faststart=faststart)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(ProbeError, match="damaged or cut short"):
        probe_video(cut)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()

    with pytest.raises(ProbeError, match="is empty"):
        probe(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="does not exist"):
        probe(tmp_path / "gone.mp4")


def test_rotated_phone_video(video: Path, tmp_path: Path) -> None:
    path = make_rotated(video, tmp_path / "portrait.mp4", clockwise=90)

    info = probe_video(path)

    assert (info.width, info.height) == (320, 240)
    assert info.rotation == 90
    assert (info.display_width, info.display_height) == (240, 320)
    assert info.to_dict()["display_height"] == 320


def test_upside_down_video_keeps_its_size(video: Path, tmp_path: Path) -> None:
    path = make_rotated(video, tmp_path / "upside-down.mp4", clockwise=180)

    info = probe_video(path)

    assert info.rotation == 180
    assert (info.display_width, info.display_height) == (320, 240)


def test_variable_frame_rate_is_flagged(tmp_path: Path) -> None:
    info = probe_video(make_vfr(tmp_path / "vfr.mp4"))

    assert info.vfr
    assert info.fps is not None and info.fps < 20


def test_non_ascii_file_name(tmp_path: Path) -> None:
    path = make_video(tmp_path / "vidéo 日本.mp4", audio=False)

    assert probe_video(path).duration == pytest.approx(2.0, abs=0.1)


def test_duration_missing_from_the_container_is_measured(tmp_path: Path) -> None:
    path = tmp_path / "raw.h264"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:d=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", str(path)),
    )

    info = probe_video(path)

    assert info.duration > 1.5


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_still_images(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"picture{suffix}"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", str(path)
    )

    info = probe_image(path)

    assert (info.width, info.height) == (320, 240)
    assert info.duration == 0
    with pytest.raises(ProbeError, match="still image, not a video"):
        probe_video(path)


def test_video_is_not_an_image(video: Path) -> None:
    with pytest.raises(ProbeError, match="is not a still image"):
        probe_image(video)
