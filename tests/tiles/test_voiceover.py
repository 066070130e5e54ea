"""AI Voiceover and Audio Generation: speech where asked, mixed or alone, no cuts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

import media_factory
from media_factory import (
    count_video_frames,
    make_audio_only,
    make_rotated,
    make_vfr,
    make_video,
    run_ffmpeg,
)
from tilework.config import Settings
from tilework.errors import Cancelled, NeedsProvider, TileError
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.voiceover import (
    AIVoiceover,
    AudioGeneration,
    AudioGenerationParams,
    VoiceoverParams,
)

RATE = 48000
TONE_HZ = 440
HUM_HZ = 60
"""An original sound below the voice's range, so ducking can be measured apart."""
SPEECH_BAND = (500, 3500)
"""Where espeak-ng's voice has energy and the test videos' 440 Hz tone has none."""

SHORT_SCRIPT = "Hello world, this is a short test."
LONG_SCRIPT = (
    "This narration is deliberately much longer than the video it is laid on, "
    "so the last frame has to be held."
)


def decode_mono(path: Path) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        frames = [
            out
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    frames += resampler.resample(None)
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def band_db(
    samples: np.ndarray, window: tuple[float, float], low: float, high: float
) -> float:
    """Mean power (dB) of ``samples`` between ``low`` and ``high`` Hz in ``window``."""
    start, end = window
    segment = samples[int(start * RATE) : int(end * RATE)]
    spectrum = np.fft.rfft(segment * np.hanning(len(segment)))
    freqs = np.fft.rfftfreq(len(segment), 1 / RATE)
    power = np.sum(np.abs(spectrum[(freqs >= low) & (freqs <= high)]) ** 2)
    return float(10 * np.log10(power / len(segment) + 1e-20))


def speech_db(samples: np.ndarray, window: tuple[float, float]) -> float:
    return band_db(samples, window, *SPEECH_BAND)


def tone_db(samples: np.ndarray, window: tuple[float, float]) -> float:
    return band_db(samples, window, TONE_HZ - 30, TONE_HZ + 30)


def hum_db(samples: np.ndarray, window: tuple[float, float]) -> float:
    return band_db(samples, window, HUM_HZ - 10, HUM_HZ + 10)


def make_hum(path: Path, *, seconds: float = 3.0) -> Path:
    """A video whose sound is a steady 60 Hz hum."""
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency={HUM_HZ}:sample_rate={RATE}"),
        *("-map", "0:v", "-map", "1:a", *media_factory.FAST_VIDEO),
        *("-c:a", "aac", "-t", str(seconds)),
        str(path),
    )
    return path


def last_frames(path: Path, count: int = 2) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = [
            frame.to_ndarray(format="gray") for frame in container.decode(video=0)
        ]
    return frames[-count:]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voiceover-media")
    video = make_video(folder / "video.mp4", seconds=3.0)
    brief = make_video(folder / "brief.mp4", seconds=1.0)
    return {
        "video": video,
        "hum": make_hum(folder / "hum.mp4"),
        "short": make_video(folder / "short.mp4", seconds=2.0),
        "mute": make_video(folder / "mute.mp4", seconds=3.0, audio=False),
        "odd": make_video(folder / "odd.mp4", seconds=1.0, size="321x241"),
        "vfr": make_vfr(folder / "vfr.mp4", seconds=1.0),
        "rotated": make_rotated(brief, folder / "rotated.mp4", clockwise=90),
        "sound": make_audio_only(folder / "sound.m4a", seconds=3.0),
    }


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def voice_over(path: Path | None, ctx: TileContext, **params: object) -> TileOutput:
    source = None if path is None else MediaFile(path=path, info=probe(path))
    outputs = AIVoiceover().run(VoiceoverParams.model_validate(params), source, ctx)
    assert len(outputs) == 1
    return outputs[0]


def generate_audio(path: Path | None, ctx: TileContext, **params: object) -> TileOutput:
    source = None if path is None else MediaFile(path=path, info=probe(path))
    params_model = AudioGenerationParams.model_validate(params)
    outputs = AudioGeneration().run(params_model, source, ctx)
    assert len(outputs) == 1
    return outputs[0]


def test_voice_mixed_over_ducked_original(
    media: dict[str, Path], tile_context: TileContext, progress: list[float]
) -> None:
    output = voice_over(media["hum"], tile_context, script=SHORT_SCRIPT)

    samples = decode_mono(output.path)
    voice_end = output.metadata["sound_seconds"]
    assert 1.0 < voice_end < 2.6
    during, after = (0.2, 1.0), (voice_end + 0.15, 2.95)
    assert speech_db(samples, during) > speech_db(samples, after) + 20
    assert hum_db(samples, during) < hum_db(samples, after) - 8
    assert output.metadata["original_audio"] == "mixed_ducked"
    assert output.metadata["speech_engine"] == "espeak-ng"
    assert progress == sorted(progress) and progress[-1] == 100


def test_picture_copied_when_the_voice_fits(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = voice_over(media["video"], tile_context, script=SHORT_SCRIPT)

    info = probe(output.path)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert count_video_frames(output.path) == count_video_frames(media["video"])
    assert info.audio_codec == "aac" and info.audio_sample_rate == RATE
    assert output.metadata["held_last_frame_seconds"] == 0


def test_replace_drops_the_original(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = voice_over(
        media["video"], tile_context, script=SHORT_SCRIPT, mix="replace"
    )

    samples = decode_mono(output.path)
    assert tone_db(samples, (2.6, 2.95)) < -80
    assert speech_db(samples, (0.2, 1.0)) > -40
    assert output.metadata["original_audio"] == "replaced"


def test_voice_starts_when_asked(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = voice_over(
        media["video"], tile_context, script="Later words.", start_seconds=1.5
    )

    samples = decode_mono(output.path)
    assert speech_db(samples, (1.6, 2.3)) > speech_db(samples, (0.2, 1.3)) + 20


def test_long_voice_holds_the_last_frame(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = voice_over(media["short"], tile_context, script=LONG_SCRIPT)

    info = probe(output.path)
    end = output.metadata["output_seconds"]
    assert end > 4
    assert info.duration == pytest.approx(end, abs=0.1)
    assert count_video_frames(output.path) == pytest.approx(end * 30, abs=3)
    assert output.metadata["held_last_frame_seconds"] == pytest.approx(end - 2, abs=0.1)
    assert "held" in output.metadata["notes"][0]
    before_last, last = last_frames(output.path)
    assert np.abs(before_last.astype(int) - last.astype(int)).mean() < 1
    samples = decode_mono(output.path)
    assert speech_db(samples, (end - 1.5, end - 0.2)) > -45


def test_video_without_sound(media: dict[str, Path], tile_context: TileContext) -> None:
    output = voice_over(media["mute"], tile_context, script=SHORT_SCRIPT)

    info = probe(output.path)
    assert info.has_audio and info.has_video
    assert speech_db(decode_mono(output.path), (0.2, 1.0)) > -40
    assert output.metadata["original_audio"] == "none"


@pytest.mark.parametrize(
    ("name", "size"),
    [("odd", (320, 240)), ("vfr", (320, 240)), ("rotated", (240, 320))],
)
def test_held_frame_on_awkward_inputs(
    media: dict[str, Path], tile_context: TileContext, name: str, size: tuple[int, int]
) -> None:
    output = voice_over(media[name], tile_context, script=LONG_SCRIPT, speed_wpm=400)

    info = probe(output.path)
    assert (info.width, info.height) == size and info.rotation == 0
    assert not info.vfr
    assert info.duration == pytest.approx(output.metadata["output_seconds"], abs=0.1)
    assert output.metadata["held_last_frame_seconds"] > 0.5


def test_rotation_kept_when_copied(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = voice_over(media["rotated"], tile_context, script="Hi.")

    info = probe(output.path)
    assert info.rotation == 90
    assert (info.display_width, info.display_height) == (240, 320)


def test_non_ascii_script_and_file_name(
    tmp_path: Path, media: dict[str, Path], tile_context: TileContext
) -> None:
    path = tmp_path / "vidéo ü.mp4"
    path.write_bytes(media["video"].read_bytes())

    output = voice_over(
        path, tile_context, script="Ça va très bien, merci !", voice="fr"
    )

    assert speech_db(decode_mono(output.path), (0.2, 1.0)) > -40


def test_audio_generation_without_video(
    tile_context: TileContext, progress: list[float]
) -> None:
    output = generate_audio(None, tile_context, script=SHORT_SCRIPT, start_seconds=0.5)

    info = probe(output.path)
    assert output.path.suffix == ".m4a"
    assert info.has_audio and not info.has_video
    assert info.duration == pytest.approx(
        0.5 + output.metadata["sound_seconds"], abs=0.1
    )
    samples = decode_mono(output.path)
    assert speech_db(samples, (0.6, 1.4)) > speech_db(samples, (0.0, 0.4)) + 20
    assert output.metadata["mode"] == "voiceover"
    assert progress[-1] == 100


def test_audio_generation_on_audio_only_input(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = generate_audio(media["sound"], tile_context, script=SHORT_SCRIPT)

    info = probe(output.path)
    assert output.path.suffix == ".m4a" and not info.has_video
    assert info.duration == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("mode", ["sound_effects", "music"])
def test_generated_modes_need_a_provider(
    media: dict[str, Path], tile_context: TileContext, mode: str
) -> None:
    with pytest.raises(NeedsProvider) as caught:
        generate_audio(media["video"], tile_context, mode=mode, prompt="rain")

    assert str(caught.value).startswith("no provider configured for Audio Generation")


def test_configured_espeak_missing(
    tmp_path: Path, media: dict[str, Path], tile_context: TileContext
) -> None:
    settings = Settings(espeak_binary=str(tmp_path / "no-espeak"))
    ctx = dataclasses.replace(tile_context, settings=settings)

    with pytest.raises(TileError, match="TILEWORK_ESPEAK_BINARY"):
        voice_over(media["video"], ctx, script=SHORT_SCRIPT)


def test_espeak_not_installed(
    tmp_path: Path,
    media: dict[str, Path],
    tile_context: TileContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(TileError, match=r"^AI Voiceover needs espeak-ng for offline"):
        voice_over(media["video"], tile_context, script=SHORT_SCRIPT)


def test_cancelled(media: dict[str, Path], tile_context: TileContext) -> None:
    tile_context.cancel.cancel()

    with pytest.raises(Cancelled):
        voice_over(media["video"], tile_context, script=SHORT_SCRIPT)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"script": ""},
        {"script": "x" * 5001},
        {"script": "hi", "voice": "en; rm -rf /"},
        {"script": "hi", "speed_wpm": 10},
        {"script": "hi", "mix": "blend"},
        {"script": "hi", "start_seconds": -1},
        {"script": "hi", "language": "en"},
    ],
)
def test_voiceover_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        VoiceoverParams.model_validate(params)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mode": "music"},
        {"mode": "sound_effects", "script": "hi"},
        {"mode": "singing", "script": "hi"},
        {"mode": "music", "prompt": "x", "duration_seconds": 0},
    ],
)
def test_audio_generation_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AudioGenerationParams.model_validate(params)
