"""Captions burned into narrated video: where they land, each style, the sidecars."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pydantic
import pysubs2
import pytest

import media_factory
from media_factory import make_rotated, make_silent_audio, make_video, run_ffmpeg
from tilework.config import Settings
from tilework.errors import Cancelled, TileError
from tilework.media.probe import probe, probe_video
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.captions import Captions, CaptionsParams

SENTENCE = "Captions help people follow every word of a video."
BACKGROUND = "0x3060A0"
CHANGED = 60
"""A pixel differing by more than this in some channel was drawn on."""
SETTLE = 0.15
"""Seconds for a highlight to finish changing (scaling takes 0.1 s)."""


SPEECH_MISSING = media_factory.speech_missing()
needs_speech = pytest.mark.skipif(
    SPEECH_MISSING is not None, reason=SPEECH_MISSING or ""
)


def make_talking_video(folder: Path, name: str = "talk.mp4") -> Path:
    """A flat blue picture with a sentence spoken by espeak-ng."""
    speech = media_factory.speak(SENTENCE, folder / "speech.wav")
    video = folder / name
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"color=c={BACKGROUND}:s=320x240:r=30"),
        *("-i", str(speech), "-shortest"),
        *media_factory.FAST_VIDEO,
        *("-c:a", "aac", str(video)),
    )
    return video


def frame_at(video: Path, seconds: float, out: Path) -> npt.NDArray[np.int16]:
    run_ffmpeg("-ss", f"{seconds:.3f}", "-i", str(video), "-frames:v", "1", str(out))
    image = cv2.imread(str(out))
    assert image is not None
    return image.astype(np.int16)


def drawn(before: npt.NDArray[np.int16], after: npt.NDArray[np.int16]) -> npt.NDArray:
    """Which pixels changed, as a boolean mask of rows and columns."""
    return np.asarray(np.abs(before - after).max(axis=2) > CHANGED)


def colour_mask(image: npt.NDArray[np.int16], bgr: tuple[int, int, int]) -> npt.NDArray:
    return np.asarray(np.abs(image - np.array(bgr)).max(axis=2) < 60)


def caption_time(output: TileOutput) -> float:
    """A moment inside the first caption, just after its second word has started."""
    words = output.metadata["transcript"]["words"]
    return float(words[1]["start"]) + SETTLE


def media(path: Path) -> MediaFile:
    return MediaFile(path=path, info=probe(path))


@pytest.fixture(scope="module")
def talking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if media_factory.ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    return make_talking_video(tmp_path_factory.mktemp("speech"))


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch ü: it's [1], a;b", progress)


def captions(source: Path, ctx: TileContext, **params: object) -> TileOutput:
    outputs = Captions().run(CaptionsParams.model_validate(params), media(source), ctx)
    assert len(outputs) == 1
    return outputs[0]


def bands(
    source: Path, output: TileOutput, tmp_path: Path
) -> tuple[npt.NDArray, npt.NDArray]:
    """The changed-pixel mask and the output frame at a moment with a caption."""
    moment = caption_time(output)
    before = frame_at(source, moment, tmp_path / "before.png")
    after = frame_at(output.path, moment, tmp_path / "after.png")
    return drawn(before, after), after


@needs_speech
@pytest.mark.parametrize("style", ["colored", "scaling", "karaoke"])
def test_each_style_draws_in_the_bottom_band(
    talking: Path, tile_context: TileContext, tmp_path: Path, style: str
) -> None:
    output = captions(
        talking, tile_context, caption_style=style, highlight_color="#00FF00"
    )

    changed, frame = bands(talking, output, tmp_path)
    assert changed[170:].mean() > 0.03
    assert changed[:150].mean() < 0.002
    assert colour_mask(frame[170:], (0, 255, 0)).sum() > 20
    assert output.metadata["caption_style"] == style


@needs_speech
def test_sidecars_transcript_and_output(
    talking: Path, tile_context: TileContext, progress: list[float]
) -> None:
    output = captions(talking, tile_context)

    metadata = output.metadata
    assert metadata["subtitle_files"] == {"srt": "captions.srt", "vtt": "captions.vtt"}
    srt = pysubs2.load(str(tile_context.scratch / "captions.srt"))
    vtt = pysubs2.load(str(tile_context.scratch / "captions.vtt"))
    assert len(srt) == len(vtt) == metadata["caption_count"] > 1
    spoken = " ".join(word["text"] for word in metadata["transcript"]["words"])
    assert " ".join(event.plaintext for event in srt) == spoken
    assert "follow" in spoken.lower()
    assert metadata["language"] == "en" and "note" not in metadata
    assert all(len(event.plaintext.split()) <= 4 for event in srt)

    info = probe_video(output.path)
    source = probe(talking)
    assert info.has_audio and (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(source.duration, abs=0.15)
    assert progress[-1] == pytest.approx(100.0)
    assert progress == sorted(progress)


@needs_speech
def test_top_position_and_a_font_that_is_not_installed(
    talking: Path, tile_context: TileContext, tmp_path: Path
) -> None:
    output = captions(
        talking,
        tile_context,
        caption_vertical_position=10,
        caption_font="No Such Font Family",
        caption_font_size_px=28,
    )

    changed, _ = bands(talking, output, tmp_path)
    assert changed[:70].mean() > 0.03
    assert changed[100:].mean() < 0.002
    assert output.metadata["font_installed"] is False
    assert "No Such Font Family" in output.metadata["note"]


@needs_speech
def test_shadow_is_drawn_in_its_colour(
    talking: Path, tile_context: TileContext, tmp_path: Path
) -> None:
    output = captions(
        talking,
        tile_context,
        stroke_enabled=False,
        shadow_enabled=True,
        shadow_color="#FF0000",
        shadow_opacity=1.0,
        shadow_blur=0,
        caption_font_size_px=40,
    )

    _, frame = bands(talking, output, tmp_path)
    assert colour_mask(frame[150:], (0, 0, 255)).sum() > 30


@needs_speech
def test_rotated_phone_video_is_captioned_upright(
    talking: Path, tile_context: TileContext, tmp_path: Path
) -> None:
    portrait = make_rotated(talking, tmp_path / "portrait.mp4", clockwise=90)

    output = captions(portrait, tile_context)

    info = probe_video(output.path)
    assert (info.display_width, info.display_height) == (240, 320)
    assert info.rotation == 0
    changed, _ = bands(portrait, output, tmp_path)
    assert changed[230:].mean() > 0.02
    assert changed[:200].mean() < 0.002


@needs_speech
def test_silent_video_gets_no_captions_and_says_so(
    tile_context: TileContext, tmp_path: Path
) -> None:
    silent = make_silent_audio(tmp_path / "silent.mp4")

    output = captions(silent, tile_context)

    assert output.metadata["caption_count"] == 0
    assert output.metadata["transcript"]["words"] == []
    assert "No speech was found" in output.metadata["note"]
    srt = tile_context.scratch / "captions.srt"
    vtt = pysubs2.load(str(tile_context.scratch / "captions.vtt"))
    assert srt.read_text() == "" and vtt.events == []
    assert probe_video(output.path).duration == pytest.approx(2.0, abs=0.15)


def test_video_without_audio_is_a_clear_error(
    tile_context: TileContext, tmp_path: Path
) -> None:
    mute = make_video(tmp_path / "mute.mp4", audio=False)

    with pytest.raises(TileError, match=r"mute\.mp4 has no audio track.*Captions"):
        captions(mute, tile_context)
    assert not (tile_context.scratch / "output.mp4").exists()


def test_missing_model_is_a_clear_error(
    tile_context: TileContext, tmp_path: Path
) -> None:
    video = make_video(tmp_path / "tone.mp4")
    ctx = replace(tile_context, settings=Settings(asr_model=str(tmp_path / "none")))

    with pytest.raises(TileError, match="TILEWORK_ASR_MODEL"):
        captions(video, ctx)


@pytest.mark.parametrize(
    "params",
    [
        {"base_color": "white"},
        {"highlight_color": "#12345"},
        {"caption_min_words": 5, "caption_max_words": 3},
        {"caption_font": "Bad, Font"},
        {"caption_font_weight": "750"},
        {"caption_vertical_position": 101},
        {"shadow_opacity": 2},
        {"unknown": 1},
    ],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CaptionsParams.model_validate(params)


def test_numeric_font_weight_is_accepted() -> None:
    params = CaptionsParams.model_validate({"caption_font_weight": 600})

    assert params.caption_font_weight == "600"
    assert CaptionsParams().caption_font_size_px is None


@needs_speech
def test_cancelled_run_leaves_no_render(
    talking: Path, tile_context: TileContext
) -> None:
    tile_context.cancel.cancel()

    with pytest.raises(Cancelled):
        captions(talking, tile_context)
    assert not (tile_context.scratch / "output.mp4").exists()
