"""Offline speech synthesis with espeak-ng, run as a supervised subprocess."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tilework.errors import Cancelled, TileError
from tilework.media.ffmpeg import CancelToken

logger = logging.getLogger(__name__)

MIN_RATE_WPM = 80
MAX_RATE_WPM = 450
MAX_TEXT_CHARS = 20_000
POLL_SECONDS = 0.05
BASE_TIMEOUT_SECONDS = 30.0
TIMEOUT_SECONDS_PER_1000_CHARS = 10.0
STDERR_TAIL_CHARS = 500
WAV_HEADER_BYTES = 44

VOICE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}(\+[A-Za-z0-9_-]{1,16})?$"
"""An espeak-ng voice: a language or voice name, optionally ``+variant``."""

_VOICE = re.compile(VOICE_PATTERN)


def synthesize(
    text: str,
    out_wav: Path,
    *,
    voice: str = "en-us",
    rate_wpm: int = 165,
    binary: str | None = None,
    cancel: CancelToken | None = None,
    tile: str = "AI Voiceover",
) -> Path:
    """Speak ``text`` into the WAV file ``out_wav`` and return its path.

    ``binary`` is the configured espeak-ng (``settings.espeak_binary``); without it
    ``espeak-ng`` or ``espeak`` is looked up on PATH. ``tile`` names the caller in
    error messages. Raises :class:`Cancelled` soon after ``cancel`` is set.
    """
    spoken = _check_text(text, tile)
    _check_voice(voice, tile)
    _check_rate(rate_wpm, tile)
    program = find_espeak(binary, tile=tile)

    with tempfile.TemporaryDirectory(prefix="tts-", dir=out_wav.parent) as folder:
        script = Path(folder) / "script.txt"
        script.write_text(spoken, encoding="utf-8")
        command = [
            program,
            *("-v", voice, "-s", str(rate_wpm), "-b", "1"),
            *("-w", str(out_wav), "-f", str(script)),
        ]
        started = time.monotonic()
        returncode, stderr = _run(command, cancel, _timeout(spoken), tile)

    logger.debug(
        "espeak-ng spoke %d characters in %.2f s (exit code %d)",
        len(spoken),
        time.monotonic() - started,
        returncode,
    )
    _check_result(returncode, stderr, out_wav, voice, tile)
    return out_wav


def find_espeak(binary: str | None = None, *, tile: str = "AI Voiceover") -> str:
    """The espeak-ng program to run: the configured one, else one on PATH."""
    if binary:
        found = shutil.which(binary)
        if found is None:
            raise TileError(
                f"{tile} cannot run the espeak-ng binary {binary!r} set in "
                "TILEWORK_ESPEAK_BINARY: it does not exist or is not executable; "
                "fix the path or unset it."
            )
        return found

    for name in ("espeak-ng", "espeak"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise TileError(
        f"{tile} needs espeak-ng for offline speech; install it "
        "(apt-get install espeak-ng) or configure a generation provider."
    )


def is_valid_voice(voice: str) -> bool:
    return _VOICE.fullmatch(voice) is not None


def _check_text(text: str, tile: str) -> str:
    spoken = text.replace("\x00", " ").strip()
    if not spoken:
        raise TileError(f"{tile} got an empty script; write the text to speak.")
    if len(spoken) > MAX_TEXT_CHARS:
        raise TileError(
            f"{tile} got a script of {len(spoken)} characters, more than the "
            f"{MAX_TEXT_CHARS} it can speak at once; shorten it."
        )
    return spoken


def _check_voice(voice: str, tile: str) -> None:
    if not is_valid_voice(voice):
        raise TileError(
            f"{tile} got the voice {voice!r}, which is not an espeak-ng voice name; "
            "use a name such as 'en-us', 'fr' or 'en-us+f3'."
        )


def _check_rate(rate_wpm: int, tile: str) -> None:
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise TileError(
            f"{tile} got a speaking rate of {rate_wpm} words per minute; "
            f"use {MIN_RATE_WPM} to {MAX_RATE_WPM}."
        )


def _timeout(text: str) -> float:
    return BASE_TIMEOUT_SECONDS + TIMEOUT_SECONDS_PER_1000_CHARS * len(text) / 1000


def _run(
    command: list[str], cancel: CancelToken | None, timeout: float, tile: str
) -> tuple[int, str]:
    """Run espeak-ng to completion; kill it on cancellation or after ``timeout``."""
    if cancel is not None:
        cancel.raise_if_cancelled()

    with tempfile.TemporaryFile() as stderr_file:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
                start_new_session=True,
            )
        except OSError as exc:
            raise TileError(
                f"{tile} could not start espeak-ng at {command[0]!r} ({exc}); "
                "check the TILEWORK_ESPEAK_BINARY setting."
            ) from exc

        try:
            returncode = _supervise(process, cancel, timeout, tile)
        except BaseException:
            _kill_group(process)
            raise

        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", "replace")
    return returncode, stderr


def _supervise(
    process: subprocess.Popen[bytes],
    cancel: CancelToken | None,
    timeout: float,
    tile: str,
) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.wait(POLL_SECONDS)
        if cancel is not None and cancel.cancelled:
            raise Cancelled("The speech synthesis was cancelled.")
        if time.monotonic() > deadline:
            raise TileError(
                f"{tile}: espeak-ng did not finish speaking within {timeout:.0f} s; "
                "try a shorter script."
            )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _check_result(
    returncode: int, stderr: str, out_wav: Path, voice: str, tile: str
) -> None:
    tail = stderr.strip()[-STDERR_TAIL_CHARS:]
    if returncode != 0:
        if "voice does not exist" in tail:
            raise TileError(
                f"{tile}: espeak-ng has no voice {voice!r}; run "
                "'espeak-ng --voices' to list the installed ones."
            )
        raise TileError(
            f"{tile}: espeak-ng failed (exit code {returncode}): {tail or 'no message'}"
        )

    size = out_wav.stat().st_size if out_wav.is_file() else 0
    if size <= WAV_HEADER_BYTES:
        raise TileError(
            f"{tile}: espeak-ng produced no sound for this script; check that it "
            "holds words in the language of the voice."
        )
