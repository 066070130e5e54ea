"""AI Music: music under speech is ducked, looped, faded; the picture is copied."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

import media_factory
from media_factory import count_video_frames, make_rotated, make_video, run_ffmpeg
from tilework import providers
from tilework.config import Settings
from tilework.errors import NeedsProvider, TileError
from tilework.media.probe import probe
from tilework.tiles.ai_music import AIMusic, AIMusicParams
from tilework.tiles.base import MediaFile, TileContext, TileOutput

RATE = 48000
MUSIC_HZ = 1000
VOICE_HZ = 200
SPEECH_WINDOWS = ((0.3, 0.9), (2.3, 2.9))
GAP_WINDOWS = ((1.3, 1.9), (3.3, 3.8))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "provider_example.py"


def make_gated_voice(path: Path, *, seconds: float = 4.0) -> Path:
    """A video whose "voice" is a 200 Hz tone: on for a second, off for a second."""
    gate = "volume='if(lt(mod(t,2),1),1,0)':eval=frame,volume=6dB"
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency={VOICE_HZ}:sample_rate={RATE}"),
        *("-filter_complex", f"[1:a]{gate}[a]", "-map", "0:v", "-map", "[a]"),
        *(*media_factory.FAST_VIDEO, "-c:a", "aac", "-t", str(seconds)),
        str(path),
    )
    return path


def make_tone(path: Path, *, seconds: float, frequency: int = MUSIC_HZ) -> Path:
    source = f"sine=frequency={frequency}:sample_rate={RATE}:d={seconds}"
    run_ffmpeg("-f", "lavfi", "-i", source, "-c:a", "aac", str(path))
    return path


def decode_mono(path: Path) -> np.ndarray:
    """The first audio track as mono floats at 48 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        frames = [
            out
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    frames += resampler.resample(None)
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def band_db(samples: np.ndarray, window: tuple[float, float], frequency: int) -> float:
    """Level (dB) of the part of ``samples`` within 40 Hz of ``frequency``."""
    start, end = window
    segment = samples[int(start * RATE) : int(end * RATE)]
    spectrum = np.fft.rfft(segment * np.hanning(len(segment)))
    freqs = np.fft.rfftfreq(len(segment), 1 / RATE)
    power = np.sum(np.abs(spectrum[np.abs(freqs - frequency) < 40]) ** 2)
    return float(10 * np.log10(power / len(segment) + 1e-20))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("music-media")
    return {
        "voice": make_gated_voice(folder / "voice.mp4"),
        "music": make_tone(folder / "music.m4a", seconds=3.0),
        "short": make_tone(folder / "short.m4a", seconds=1.5),
        "mute": make_video(folder / "mute.mp4", seconds=4.0, audio=False),
        "picture": make_video(folder / "picture-only.mp4", seconds=1.0, audio=False),
    }


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def tile_context(
    tmp_path: Path, progress: list[float], media: dict[str, Path]
) -> TileContext:
    def resolve(asset_id: str, kind: str) -> Path:
        assert kind == "audio"
        if asset_id not in media:
            raise TileError(f"No audio upload {asset_id} is available to this tile.")
        return media[asset_id]

    ctx = media_factory.tile_context(tmp_path / "scratch", progress)
    return dataclasses.replace(ctx, resolve_asset=resolve)


@pytest.fixture
def example_provider() -> Iterator[str]:
    spec = importlib.util.spec_from_file_location("provider_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    providers.register("music-example", module.ExampleProvider)
    yield "music-example"
    providers.unregister("music-example")


def add_music(path: Path, ctx: TileContext, **params: object) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    outputs = AIMusic().run(AIMusicParams.model_validate(params), source, ctx)
    assert len(outputs) == 1
    return outputs[0]


def no_fades(**params: object) -> dict[str, object]:
    return {"audio_id": "music", "fade_in_seconds": 0, "fade_out_seconds": 0, **params}


def test_music_is_ducked_under_speech(
    media: dict[str, Path], tile_context: TileContext, progress: list[float]
) -> None:
    output = add_music(media["voice"], tile_context, **no_fades())

    samples = decode_mono(output.path)
    speech = [band_db(samples, window, MUSIC_HZ) for window in SPEECH_WINDOWS]
    gaps = [band_db(samples, window, MUSIC_HZ) for window in GAP_WINDOWS]
    assert min(gaps) - max(speech) > 6
    assert band_db(samples, (0.3, 0.9), VOICE_HZ) > band_db(samples, (1.3, 1.9), 200)
    assert output.metadata["ducked"] is True
    assert output.metadata["music_source"] == "upload"
    assert progress == sorted(progress) and progress[-1] == 100


def test_without_ducking_the_music_stays_level(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(media["voice"], tile_context, **no_fades(ducking=False))

    samples = decode_mono(output.path)
    speech = band_db(samples, SPEECH_WINDOWS[1], MUSIC_HZ)
    gap = band_db(samples, GAP_WINDOWS[0], MUSIC_HZ)
    assert abs(gap - speech) < 1.5
    assert output.metadata["ducked"] is False


def test_music_volume(media: dict[str, Path], tile_context: TileContext) -> None:
    quiet = add_music(media["mute"], tile_context, **no_fades(music_volume_db=-24))
    loud_ctx = dataclasses.replace(tile_context, scratch=tile_context.scratch / "loud")
    loud_ctx.scratch.mkdir()
    loud = add_music(media["mute"], loud_ctx, **no_fades(music_volume_db=-12))

    window = (1.0, 2.0)
    difference = band_db(decode_mono(loud.path), window, MUSIC_HZ) - band_db(
        decode_mono(quiet.path), window, MUSIC_HZ
    )
    assert difference == pytest.approx(12, abs=1)


def test_picture_is_copied_and_length_kept(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(media["voice"], tile_context, audio_id="music")

    before, after = probe(media["voice"]), probe(output.path)
    assert after.duration == pytest.approx(before.duration, abs=0.1)
    assert count_video_frames(output.path) == count_video_frames(media["voice"])
    assert (after.width, after.height, after.video_codec) == (320, 240, "h264")
    assert after.audio_codec == "aac" and after.audio_sample_rate == RATE
    assert output.metadata["looped"] is True


def test_short_track_loops_to_the_end(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(media["mute"], tile_context, **no_fades(audio_id="short"))

    samples = decode_mono(output.path)
    start = band_db(samples, (0.2, 0.8), MUSIC_HZ)
    assert band_db(samples, (3.2, 3.8), MUSIC_HZ) == pytest.approx(start, abs=1.5)
    assert output.metadata["music_plays_seconds"] == pytest.approx(4.0, abs=0.05)


def test_without_loop_the_music_stops(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(
        media["mute"], tile_context, **no_fades(audio_id="short", loop=False)
    )

    samples = decode_mono(output.path)
    assert (
        band_db(samples, (2.0, 3.8), MUSIC_HZ)
        < band_db(samples, (0.2, 1.2), MUSIC_HZ) - 40
    )
    assert probe(output.path).duration == pytest.approx(4.0, abs=0.1)
    assert any("loop is off" in note for note in output.metadata["notes"])


def test_fades(media: dict[str, Path], tile_context: TileContext) -> None:
    output = add_music(
        media["mute"],
        tile_context,
        audio_id="music",
        fade_in_seconds=1.5,
        fade_out_seconds=1.5,
    )

    samples = decode_mono(output.path)
    middle = band_db(samples, (1.6, 2.4), MUSIC_HZ)
    assert band_db(samples, (0.0, 0.3), MUSIC_HZ) < middle - 12
    assert band_db(samples, (3.7, 3.95), MUSIC_HZ) < middle - 12


def test_fades_longer_than_the_music_are_shortened(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(
        media["picture"],
        tile_context,
        audio_id="music",
        fade_in_seconds=30,
        fade_out_seconds=30,
    )

    assert probe(output.path).duration == pytest.approx(1.0, abs=0.1)
    assert any("fades were shortened" in note for note in output.metadata["notes"])


def test_video_without_sound_gets_the_music(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    output = add_music(media["mute"], tile_context, **no_fades())

    info = probe(output.path)
    assert info.has_audio and info.has_video
    assert band_db(decode_mono(output.path), (1.0, 2.0), MUSIC_HZ) > -40
    assert output.metadata["ducked"] is False
    assert any("no sound" in note for note in output.metadata["notes"])


def test_rotation_is_kept(
    tmp_path: Path, media: dict[str, Path], tile_context: TileContext
) -> None:
    rotated = make_rotated(media["voice"], tmp_path / "turned é.mp4", clockwise=90)

    output = add_music(rotated, tile_context, audio_id="music")

    info = probe(output.path)
    assert info.rotation == 90
    assert (info.display_width, info.display_height) == (240, 320)


def test_without_track_or_provider(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    with pytest.raises(NeedsProvider) as caught:
        add_music(media["voice"], tile_context, prompt="calm piano")

    assert str(caught.value).startswith("no provider configured for AI Music: ")
    assert "audio_id" in str(caught.value)


def test_music_from_a_provider(
    media: dict[str, Path], tile_context: TileContext, example_provider: str
) -> None:
    settings = Settings(generation_provider=example_provider)
    ctx = dataclasses.replace(tile_context, settings=settings)

    output = add_music(media["voice"], ctx, prompt="warm synth pads")

    assert output.metadata["music_source"] == f"provider:{example_provider}"
    assert probe(output.path).duration == pytest.approx(4.0, abs=0.1)


def test_unknown_upload(media: dict[str, Path], tile_context: TileContext) -> None:
    with pytest.raises(TileError, match="No audio upload nope"):
        add_music(media["voice"], tile_context, audio_id="nope")


def test_upload_without_sound(
    media: dict[str, Path], tile_context: TileContext
) -> None:
    with pytest.raises(TileError, match="has no audio track"):
        add_music(media["voice"], tile_context, audio_id="picture")


def test_no_input(tile_context: TileContext) -> None:
    with pytest.raises(TileError, match="AI Music puts music under a video"):
        AIMusic().run(AIMusicParams(audio_id="music"), None, tile_context)


@pytest.mark.parametrize(
    "params",
    [
        {"music_volume_db": 10},
        {"duck_ratio": 0.5},
        {"duck_threshold_db": -90},
        {"fade_in_seconds": -1},
        {"audio_id": ""},
        {"volume": 1},
    ],
)
def test_params_out_of_range(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AIMusicParams.model_validate(params)
