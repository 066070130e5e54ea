"""Speech synthesis with espeak-ng: real speech, odd scripts, missing programs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tilework.errors import Cancelled, TileError
from tilework.media import tts
from tilework.media.ffmpeg import CancelToken
from tilework.media.probe import probe


def _samples(path: Path) -> np.ndarray:
    """The audio as mono floats in -1..1."""
    resampler = av.AudioResampler(format="flt", layout="mono")
    with av.open(str(path)) as container:
        frames = [
            out
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def _rms_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12))


def fake_espeak(folder: Path, body: str) -> Path:
    """An executable standing in for espeak-ng that runs ``body`` as a shell script."""
    program = folder / "fake-espeak"
    program.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    program.chmod(0o755)
    return program


def test_speech_is_real_audio(tmp_path: Path) -> None:
    out = tts.synthesize(
        "The quick brown fox jumps over the lazy dog.", tmp_path / "a.wav"
    )

    info = probe(out)
    assert info.has_audio and not info.has_video
    assert 1.5 < info.duration < 6
    assert _rms_db(_samples(out)) > -35


def test_faster_rate_is_shorter(tmp_path: Path) -> None:
    text = "Speaking faster makes the same sentence take less time to say."

    slow = probe(tts.synthesize(text, tmp_path / "slow.wav", rate_wpm=120)).duration
    fast = probe(tts.synthesize(text, tmp_path / "fast.wav", rate_wpm=300)).duration

    assert fast < slow * 0.6


def test_non_ascii_script_and_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "voix été"
    folder.mkdir()

    out = tts.synthesize(
        "Ça va très bien, merci beaucoup !", folder / "é.wav", voice="fr"
    )

    assert probe(out).duration > 0.8


def test_script_starting_with_dashes_is_spoken_not_parsed(tmp_path: Path) -> None:
    out = tts.synthesize("--help -w /etc/passwd", tmp_path / "dash.wav")

    assert probe(out).duration > 0.8


def test_long_script(tmp_path: Path) -> None:
    text = " ".join(["This sentence is part of a long narration."] * 60)

    started = time.monotonic()
    out = tts.synthesize(text, tmp_path / "long.wav", rate_wpm=300)

    assert probe(out).duration > 60
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("voice", ["en us", "-x", "en;rm", "../en", "", "en-us+"])
def test_unsafe_voice_names_are_refused(tmp_path: Path, voice: str) -> None:
    with pytest.raises(TileError, match="not an espeak-ng voice name"):
        tts.synthesize("hello", tmp_path / "a.wav", voice=voice)


def test_unknown_voice(tmp_path: Path) -> None:
    with pytest.raises(TileError, match="espeak-ng has no voice 'zz-nowhere'"):
        tts.synthesize("hello", tmp_path / "a.wav", voice="zz-nowhere")


def test_empty_script(tmp_path: Path) -> None:
    with pytest.raises(TileError, match="empty script"):
        tts.synthesize(" \n\t", tmp_path / "a.wav")


def test_rate_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(TileError, match="words per minute"):
        tts.synthesize("hello", tmp_path / "a.wav", rate_wpm=20)


def test_missing_espeak_names_the_tile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(TileError) as caught:
        tts.synthesize("hello", tmp_path / "a.wav", tile="Audio Generation")

    assert str(caught.value) == (
        "Audio Generation needs espeak-ng for offline speech; install it "
        "(apt-get install espeak-ng) or configure a generation provider."
    )


def test_configured_binary_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(TileError, match="TILEWORK_ESPEAK_BINARY"):
        tts.synthesize("hello", tmp_path / "a.wav", binary=str(tmp_path / "nope"))


def test_failing_binary_reports_its_message(tmp_path: Path) -> None:
    program = fake_espeak(tmp_path, "echo 'something broke' >&2; exit 3")

    with pytest.raises(TileError, match=r"exit code 3\): something broke"):
        tts.synthesize("hello", tmp_path / "a.wav", binary=str(program))


def test_binary_that_writes_nothing(tmp_path: Path) -> None:
    program = fake_espeak(tmp_path, "exit 0")

    with pytest.raises(TileError, match="produced no sound"):
        tts.synthesize("hello", tmp_path / "a.wav", binary=str(program))


def test_cancel_stops_the_process(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    program = fake_espeak(tmp_path, f"sleep 20; touch '{marker}'")
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()

    started = time.monotonic()
    with pytest.raises(Cancelled):
        tts.synthesize("hello", tmp_path / "a.wav", binary=str(program), cancel=cancel)

    assert time.monotonic() - started < 2
    assert not marker.exists()


def test_cancelled_before_start(tmp_path: Path) -> None:
    cancel = CancelToken()
    cancel.cancel()

    with pytest.raises(Cancelled):
        tts.synthesize("hello", tmp_path / "a.wav", cancel=cancel)

    assert not (tmp_path / "a.wav").exists()


def test_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = fake_espeak(tmp_path, "sleep 20")
    monkeypatch.setattr(tts, "BASE_TIMEOUT_SECONDS", 0.3)

    started = time.monotonic()
    with pytest.raises(TileError, match="did not finish speaking"):
        tts.synthesize("hello", tmp_path / "a.wav", binary=str(program))

    assert time.monotonic() - started < 2
