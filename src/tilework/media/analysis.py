"""Listening and looking at media: silences, loudness over time, and shot changes.

These measures feed the cut tiles: Silence Removal and Rough Cut cut where it is quiet,
Clips scores windows by loudness and speech and snaps them to shot changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from tilework.errors import ProbeError
from tilework.media.cuts import Segment
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import probe

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

ENERGY_RATE = 8000
ENERGY_WINDOW = 0.1
SPEECH_BAND_HZ = (300.0, 3400.0)
SILENT_POWER = 1e-10
SCENE_THRESHOLD = 10.0
SCENE_ANALYSIS_WIDTH = 256
CANCEL_CHECK_FRAMES = 200
_SILENCE_START = re.compile(r"silence_start:\s*(-?[\d.]+(?:e-?\d+)?)")
_SILENCE_END = re.compile(r"silence_end:\s*(-?[\d.]+(?:e-?\d+)?)")
_SCENE_TIME = re.compile(r"lavfi\.scd\.time:\s*(-?[\d.]+)")


def detect_silences(
    path: Path,
    *,
    threshold_db: float,
    min_silence: float,
    ffmpeg: FFmpeg,
    cancel: CancelToken | None = None,
    duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[Segment]:
    """Stretches of the first audio track quieter than ``threshold_db`` (dBFS) for
    at least ``min_silence`` seconds, from ffmpeg's ``silencedetect``.

    A silence still open at the end of the file ends at ``duration`` (the file's
    duration when not given).
    """
    detector = f"silencedetect=noise={threshold_db:g}dB:d={min_silence:g}"
    args = [
        *("-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn"),
        *("-af", detector, "-f", "null", "-"),
    ]
    stderr = ffmpeg.run(
        args,
        cancel=cancel,
        duration=duration,
        on_progress=on_progress,
        description="Finding the silences",
    )

    if duration is None:
        duration = probe(path).duration
    return parse_silences(stderr, duration)


def parse_silences(stderr: str, duration: float) -> list[Segment]:
    """The silences ``silencedetect`` reported in ``stderr``."""
    silences: list[Segment] = []
    start: float | None = None
    for line in stderr.splitlines():
        if (match := _SILENCE_START.search(line)) is not None:
            start = max(0.0, float(match.group(1)))
        elif (match := _SILENCE_END.search(line)) is not None and start is not None:
            end = min(duration, float(match.group(1)))
            if end > start:
                silences.append(Segment(start, end))
            start = None
    if start is not None and start < duration:
        silences.append(Segment(start, duration))
    return silences


def scene_cuts(
    path: Path,
    *,
    ffmpeg: FFmpeg,
    cancel: CancelToken | None = None,
    threshold: float = SCENE_THRESHOLD,
    duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[float]:
    """Seconds at which the picture changes shot, from ffmpeg's ``scdet``.

    ``threshold`` (0-100) is how different two frames must be; the picture is
    scaled down first, which changes little in the scores and saves most of the time.
    """
    scale = f"scale=w='min({SCENE_ANALYSIS_WIDTH},iw)':h=-2"
    args = [
        *("-i", str(path), "-map", "0:V:0", "-an", "-sn", "-dn"),
        *("-vf", f"{scale},scdet=threshold={threshold:g}", "-f", "null", "-"),
    ]
    stderr = ffmpeg.run(
        args,
        cancel=cancel,
        duration=duration,
        on_progress=on_progress,
        description="Finding the shot changes",
    )
    return sorted({float(match) for match in _SCENE_TIME.findall(stderr)})


@dataclass(frozen=True)
class EnergyTrack:
    """Sound power of the first audio track in windows of ``window`` seconds.

    ``power`` is the mean square level of each window, ``speech_power`` the part
    of it in the band of the voice (300-3400 Hz).
    """

    window: float
    power: FloatArray
    speech_power: FloatArray

    @property
    def duration(self) -> float:
        return len(self.power) * self.window

    def level_db(self, start: float, end: float) -> float:
        """Mean level between ``start`` and ``end``, dBFS."""
        return _decibels(float(np.mean(self._slice(self.power, start, end))))

    def speech_share(self, start: float, end: float) -> float:
        """The share (0-1) of the sound between ``start`` and ``end`` that is in the
        voice band."""
        total = float(np.sum(self._slice(self.power, start, end)))
        if total <= SILENT_POWER:
            return 0.0
        return float(np.sum(self._slice(self.speech_power, start, end))) / total

    def window_levels_db(self) -> FloatArray:
        return 10.0 * np.log10(np.maximum(self.power, SILENT_POWER))

    def _slice(self, values: FloatArray, start: float, end: float) -> FloatArray:
        if len(values) == 0:
            return np.zeros(1)
        first = min(len(values) - 1, max(0, int(start / self.window)))
        last = max(first + 1, min(len(values), int(np.ceil(end / self.window))))
        return values[first:last]


def _decibels(power: float) -> float:
    return 10.0 * float(np.log10(max(power, SILENT_POWER)))


def speech_energy(
    path: Path, *, cancel: CancelToken | None = None, window: float = ENERGY_WINDOW
) -> EnergyTrack:
    """Measure the loudness and voice-band share of the first audio track, window
    by window, decoding it with PyAV."""
    meter = _WindowMeter(round(ENERGY_RATE * window))
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            _decode_into(container, meter, cancel)
    except av.error.FFmpegError as exc:
        raise ProbeError(
            f"The audio of {path.name} cannot be decoded ({exc}); "
            "check that the file plays to the end."
        ) from exc

    power, speech = meter.finish()
    return EnergyTrack(window=window, power=power, speech_power=speech)


def _decode_into(
    container: av.container.InputContainer,
    meter: _WindowMeter,
    cancel: CancelToken | None,
) -> None:
    stream = container.streams.audio[0]
    base = container.start_time / av.time_base if container.start_time else 0.0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=ENERGY_RATE)

    for index, frame in enumerate(container.decode(stream)):
        if cancel is not None and index % CANCEL_CHECK_FRAMES == 0:
            cancel.raise_if_cancelled()
        if index == 0 and frame.time is not None and frame.time > base:
            meter.feed(np.zeros(round((frame.time - base) * ENERGY_RATE)))
        for resampled in resampler.resample(frame):
            meter.feed(resampled.to_ndarray().reshape(-1))
    for resampled in resampler.resample(None):
        meter.feed(resampled.to_ndarray().reshape(-1))


class _WindowMeter:
    """Turns a stream of mono samples into per-window power, a block at a time."""

    BLOCK_WINDOWS = 256

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._pending = np.zeros(0, dtype=np.float64)
        self._power: list[FloatArray] = []
        self._speech: list[FloatArray] = []
        frequencies = np.fft.rfftfreq(self.size, 1.0 / ENERGY_RATE)
        low, high = SPEECH_BAND_HZ
        self._band = (frequencies >= low) & (frequencies <= high)

    def feed(self, samples: npt.NDArray[Any]) -> None:
        self._pending = np.concatenate([self._pending, samples.astype(np.float64)])
        block = self.size * self.BLOCK_WINDOWS
        while len(self._pending) >= block:
            self._measure(self._pending[:block])
            self._pending = self._pending[block:]

    def finish(self) -> tuple[FloatArray, FloatArray]:
        whole = len(self._pending) // self.size * self.size
        if whole:
            self._measure(self._pending[:whole])
        empty = np.zeros(0, dtype=np.float64)
        power = np.concatenate(self._power) if self._power else empty
        speech = np.concatenate(self._speech) if self._speech else empty
        return power, speech

    def _measure(self, samples: FloatArray) -> None:
        windows = samples.reshape(-1, self.size)
        power = np.mean(windows**2, axis=1)
        spectrum = np.abs(np.fft.rfft(windows, axis=1)) ** 2
        total = np.maximum(np.sum(spectrum, axis=1), SILENT_POWER)
        share = np.sum(spectrum[:, self._band], axis=1) / total
        self._power.append(power)
        self._speech.append(power * share)
