"""Cinematic Captions on narrated video: each animation, the grid, auto placement."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pydantic
import pysubs2
import pytest

import media_factory
from media_factory import make_rotated, make_video, run_ffmpeg
from tilework.errors import TileError
from tilework.media.probe import probe, probe_video
from tilework.media.subtitles import Box, Look
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.cinematic_captions import (
    CinematicCaptions,
    CinematicCaptionsParams,
    anchor,
    band_scores,
    calmest_band,
)

SENTENCE = "Every frame tells a story when the words arrive on time."
BACKGROUND = "0x3060A0"
CHANGED = 60
"""A pixel differing by more than this in some channel was drawn on."""


SPEECH_MISSING = media_factory.speech_missing()
needs_speech = pytest.mark.skipif(
    SPEECH_MISSING is not None, reason=SPEECH_MISSING or ""
)


def make_talking_video(folder: Path, *, busy_bottom: bool = False) -> Path:
    """A flat blue picture with narration; optionally a moving pattern at the bottom."""
    speech = media_factory.speak(SENTENCE, folder / "speech.wav")
    picture = f"color=c={BACKGROUND}:s=320x240:r=30"
    graph = "[0:v]null[v]"
    if busy_bottom:
        graph = "[0:v][2:v]overlay=0:160:shortest=1[v]"
    video = folder / ("busy.mp4" if busy_bottom else "talk.mp4")
    run_ffmpeg(
        *("-f", "lavfi", "-i", picture, "-i", str(speech)),
        *("-f", "lavfi", "-i", "testsrc2=s=320x80:r=30"),
        *("-filter_complex", graph, "-map", "[v]", "-map", "1:a", "-shortest"),
        *media_factory.FAST_VIDEO,
        *("-c:a", "aac", str(video)),
    )
    return video


def frame_at(video: Path, seconds: float, out: Path) -> npt.NDArray[np.int16]:
    run_ffmpeg("-ss", f"{seconds:.3f}", "-i", str(video), "-frames:v", "1", str(out))
    image = cv2.imread(str(out))
    assert image is not None
    return image.astype(np.int16)


def first_caption_middle(scratch: Path) -> float:
    events = pysubs2.load(str(scratch / "captions.srt"))
    return (events[0].start + events[0].end) / 2000


def compare(
    source: Path, output: TileOutput, scratch: Path, tmp_path: Path
) -> tuple[npt.NDArray, npt.NDArray]:
    """Changed pixels and the output frame in the middle of the first caption."""
    moment = first_caption_middle(scratch)
    before = frame_at(source, moment, tmp_path / "before.png")
    after = frame_at(output.path, moment, tmp_path / "after.png")
    return np.abs(before - after).max(axis=2) > CHANGED, after


def media(path: Path) -> MediaFile:
    return MediaFile(path=path, info=probe(path))


@pytest.fixture(scope="module")
def talking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if media_factory.ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    return make_talking_video(tmp_path_factory.mktemp("speech"))


@pytest.fixture
def tile_context(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch é: 'x' [y], z;", [])


def cinematic(source: Path, ctx: TileContext, **params: object) -> TileOutput:
    params_model = CinematicCaptionsParams.model_validate(params)
    outputs = CinematicCaptions().run(params_model, media(source), ctx)
    assert len(outputs) == 1
    return outputs[0]


@needs_speech
@pytest.mark.parametrize(
    "animation", ["fade", "pop", "slide", "typewriter", "highlight"]
)
def test_each_animation_draws_at_the_bottom(
    talking: Path, tile_context: TileContext, tmp_path: Path, animation: str
) -> None:
    output = cinematic(talking, tile_context, animation=animation)

    changed, _ = compare(talking, output, tile_context.scratch, tmp_path)
    assert changed[160:].mean() > 0.03
    assert changed[:120].mean() < 0.002
    assert output.metadata["animation"] == animation
    assert output.metadata["position"] == "bottom_center"
    assert output.metadata["subtitle_files"] == {
        "srt": "captions.srt",
        "vtt": "captions.vtt",
    }
    vtt = pysubs2.load(str(tile_context.scratch / "captions.vtt"))
    assert len(vtt) == output.metadata["caption_count"] >= 1


@needs_speech
def test_top_corner_with_a_coloured_box(
    talking: Path, tile_context: TileContext, tmp_path: Path
) -> None:
    output = cinematic(
        talking,
        tile_context,
        position="top_left",
        background_color="#FF00FF",
        background_opacity=1.0,
        uppercase=True,
    )

    changed, frame = compare(talking, output, tile_context.scratch, tmp_path)
    assert changed[:80].mean() > 0.03
    assert changed[120:].mean() < 0.002
    assert changed[:80, :160].sum() > changed[:80, 160:].sum()
    magenta = np.abs(frame[:80] - np.array([255, 0, 255])).max(axis=2) < 60
    assert magenta.sum() > 200
    srt = pysubs2.load(str(tile_context.scratch / "captions.srt"))
    assert all(event.plaintext == event.plaintext.upper() for event in srt)


@needs_speech
def test_auto_avoids_the_busy_bottom(tile_context: TileContext, tmp_path: Path) -> None:
    busy = make_talking_video(tmp_path, busy_bottom=True)

    output = cinematic(busy, tile_context, position="auto")

    scores = output.metadata["position_scores"]
    assert output.metadata["position"] == "top_center"
    assert scores["bottom"] > scores["top"]
    changed, _ = compare(busy, output, tile_context.scratch, tmp_path)
    assert changed[:80].mean() > 0.03
    assert changed[80:150].mean() < 0.002
    assert not (tile_context.scratch / "position-samples.gray").exists()


@needs_speech
def test_rotated_phone_video_is_captioned_upright(
    talking: Path, tile_context: TileContext, tmp_path: Path
) -> None:
    portrait = make_rotated(talking, tmp_path / "portrait.mp4", clockwise=90)

    output = cinematic(portrait, tile_context, animation="typewriter")

    info = probe_video(output.path)
    assert (info.display_width, info.display_height) == (240, 320)
    assert info.rotation == 0 and info.has_audio
    changed, _ = compare(portrait, output, tile_context.scratch, tmp_path)
    assert changed[220:].mean() > 0.02
    assert changed[:180].mean() < 0.002


def test_video_without_audio_is_a_clear_error(
    tile_context: TileContext, tmp_path: Path
) -> None:
    mute = make_video(tmp_path / "mute.mp4", audio=False)

    with pytest.raises(TileError, match=r"no audio track.*Cinematic Captions"):
        cinematic(mute, tile_context)


def test_the_calmest_third_wins_and_ties_go_to_the_bottom() -> None:
    rng = np.random.default_rng(7)
    glimpses = []
    for count in (2, 2, 1):
        frames = np.full((count, 160, 160), 90, dtype=np.uint8)
        for band in (slice(0, 53), slice(107, 160)):
            frames[:, band] = rng.integers(0, 255, size=(count, 53, 160))
        glimpses.append(frames)

    scores = band_scores(glimpses)

    assert scores["middle"] < 0.01 < min(scores["top"], scores["bottom"])
    assert calmest_band(scores) == "middle"
    assert calmest_band({"top": 0.0, "middle": 0.0, "bottom": 0.0}) == "bottom"
    assert calmest_band({"top": 0.1, "middle": 0.12, "bottom": 0.3}) == "top"


def test_grid_positions_anchor_at_the_edges() -> None:
    look = Look(
        font="DejaVu Serif",
        weight=400,
        size=20,
        color="#FFFFFF",
        highlight_color="#FFFF00",
        box=Box(color="#000000", opacity=0.5, padding=6),
    )

    assert anchor("top_left", (320, 240), look) == (7, 6 + 16.0, 6 + 14.4)
    assert anchor("center", (320, 240), look) == (5, 160.0, 120.0)
    alignment, x, y = anchor("bottom_right", (320, 240), look)
    assert alignment == 3 and x == pytest.approx(298.0) and y == pytest.approx(219.6)
    assert anchor("center_left", (320, 240), look)[0] == 4


@pytest.mark.parametrize(
    "params",
    [
        {"animation": "bounce"},
        {"position": "left"},
        {"text_color": "#GGGGGG"},
        {"min_words": 9, "max_words": 2},
        {"background_opacity": -0.1},
        {"font": "A{b}"},
    ],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CinematicCaptionsParams.model_validate(params)
