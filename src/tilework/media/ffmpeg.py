"""Finding and running the ffmpeg binary, with progress and cancellation."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO

from tilework.errors import Cancelled, FFmpegError, MediaError

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
STDERR_TAIL_LINES = 8
STDERR_TAIL_CHARS = 1500
STDERR_KEEP_BYTES = 2 * 1024**2
NOISE_PREFIXES = ("frame=", "size=", "video:", "Press [q]")


def find_ffmpeg(configured: str | None = None) -> str:
    """Return the ffmpeg to use: the configured one, $FFMPEG_BINARY, bundled, PATH."""
    if configured:
        return _resolve(configured, "the tilework setting TILEWORK_FFMPEG_BINARY")

    from_env = os.environ.get("FFMPEG_BINARY")
    if from_env:
        return _resolve(from_env, "the environment variable FFMPEG_BINARY")

    bundled = _bundled_ffmpeg()
    if bundled is not None:
        return bundled

    on_path = shutil.which("ffmpeg")
    if on_path is not None:
        return on_path

    raise MediaError(
        "No ffmpeg binary was found: install imageio-ffmpeg, put ffmpeg on PATH, "
        "or set TILEWORK_FFMPEG_BINARY to its path."
    )


def _resolve(candidate: str, origin: str) -> str:
    found = shutil.which(candidate)
    if found is None:
        raise MediaError(
            f"The ffmpeg binary {candidate!r} named by {origin} does not exist or "
            "is not executable; fix the path or unset it."
        )
    return found


def _bundled_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        logger.debug("no bundled ffmpeg: %s", exc)
        return None


class CancelToken:
    """A flag that one thread sets and the threads doing the work check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` passes; return whether cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("The work was cancelled.")


class _Progress:
    """Turns ``-progress`` output into percentages for a callback."""

    def __init__(
        self, duration: float | None, on_progress: Callable[[float], None] | None
    ) -> None:
        self._duration = duration if duration and duration > 0 else None
        self._on_progress = on_progress
        self._pending = b""
        self._last = -1.0

    def feed(self, chunk: bytes) -> None:
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            self._handle(line.decode("ascii", "replace").strip())

    def _handle(self, line: str) -> None:
        key, _, value = line.partition("=")
        if key == "progress" and value == "end":
            self._emit(100.0)
        elif key == "out_time_us" and value.lstrip("-").isdigit() and self._duration:
            seconds = int(value) / 1_000_000
            self._emit(min(100.0, max(0.0, 100.0 * seconds / self._duration)))

    def _emit(self, percent: float) -> None:
        if self._on_progress is None or self._duration is None:
            return
        if percent > self._last:
            self._last = percent
            self._on_progress(percent)


class FFmpeg:
    """Runs ffmpeg commands; one instance can serve many threads at once."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def run(
        self,
        args: list[str],
        *,
        cancel: CancelToken | None = None,
        duration: float | None = None,
        on_progress: Callable[[float], None] | None = None,
        description: str = "ffmpeg",
    ) -> str:
        """Run ``ffmpeg <args>`` to completion and return what it wrote to stderr.

        ``duration`` (seconds of media the command produces) turns ffmpeg's progress
        into 0..100 percentages for ``on_progress``. Raises :class:`Cancelled` soon
        after ``cancel`` is set and :class:`FFmpegError` when ffmpeg fails.
        """
        command = [
            self.binary,
            *("-hide_banner", "-nostdin", "-y", "-nostats", "-progress", "pipe:1"),
            *args,
        ]
        if cancel is not None:
            cancel.raise_if_cancelled()
        logger.debug("%s: running %s", description, shlex.join(command))
        started = time.monotonic()

        with tempfile.TemporaryFile() as stderr_file:
            returncode = self._execute(
                command, stderr_file, cancel, _Progress(duration, on_progress)
            )
            stderr = _read_tail(stderr_file)

        logger.debug(
            "%s: finished in %.2f s with exit code %d",
            description,
            time.monotonic() - started,
            returncode,
        )
        if returncode != 0:
            raise FFmpegError(
                f"{description} failed",
                returncode=returncode,
                stderr_tail=stderr_tail(stderr),
            )
        return stderr

    def _execute(
        self,
        command: list[str],
        stderr_file: IO[bytes],
        cancel: CancelToken | None,
        progress: _Progress,
    ) -> int:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                start_new_session=True,
            )
        except OSError as exc:
            raise MediaError(
                f"Could not start ffmpeg at {self.binary!r}: {exc}; check the "
                "TILEWORK_FFMPEG_BINARY setting."
            ) from exc

        try:
            return _supervise(process, cancel, progress)
        except BaseException:
            _kill_group(process)
            raise


def _supervise(
    process: subprocess.Popen[bytes], cancel: CancelToken | None, progress: _Progress
) -> int:
    assert process.stdout is not None
    stdout_fd = process.stdout.fileno()
    os.set_blocking(stdout_fd, False)

    with selectors.DefaultSelector() as selector:
        selector.register(stdout_fd, selectors.EVENT_READ)
        while process.poll() is None:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("The ffmpeg command was cancelled.")
            _pump(selector, stdout_fd, progress)

    _read_available(stdout_fd, progress)
    process.stdout.close()
    return process.returncode


def _pump(
    selector: selectors.BaseSelector, stdout_fd: int, progress: _Progress
) -> None:
    """Wait up to one poll interval for progress output and consume it."""
    if not selector.get_map():
        time.sleep(POLL_SECONDS)
    elif selector.select(POLL_SECONDS) and not _read_available(stdout_fd, progress):
        selector.unregister(stdout_fd)


def _read_available(fd: int, progress: _Progress) -> bool:
    """Feed whatever stdout holds to ``progress``; return False at end of file."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        progress.feed(chunk)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _read_tail(stderr_file: IO[bytes]) -> str:
    size = stderr_file.seek(0, os.SEEK_END)
    stderr_file.seek(max(0, size - STDERR_KEEP_BYTES))
    return stderr_file.read().decode("utf-8", "replace")


def stderr_tail(stderr: str) -> str:
    """The last few meaningful lines of ffmpeg's stderr, short enough for a message."""
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines()]
    meaningful = [line for line in lines if line and not _is_noise(line)]
    tail = "\n".join(meaningful[-STDERR_TAIL_LINES:])
    return tail[-STDERR_TAIL_CHARS:]


def _is_noise(line: str) -> bool:
    return line.startswith(NOISE_PREFIXES)
