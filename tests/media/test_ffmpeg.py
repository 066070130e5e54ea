"""The ffmpeg runner against the real binary: failures, progress, cancellation."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from tilework.errors import Cancelled, FFmpegError, MediaError
from tilework.media.ffmpeg import CancelToken, FFmpeg, find_ffmpeg, stderr_tail


@pytest.fixture(scope="module")
def ffmpeg() -> FFmpeg:
    return FFmpeg(find_ffmpeg())


def fake_binary(folder: Path, name: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def find_pid(marker: str, timeout: float = 5.0) -> int:
    """The pid of the running process whose command line contains ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and b"ffmpeg" in cmdline:
                return int(entry.name)
        time.sleep(0.02)
    raise AssertionError(f"no process with {marker!r} started")


def test_failure_carries_exit_code_and_stderr_tail(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.mp4"

    with pytest.raises(FFmpegError) as caught:
        ffmpeg.run(["-i", str(missing), str(tmp_path / "out.mp4")], description="Cut")

    error = caught.value
    assert error.returncode != 0
    assert "No such file or directory" in error.stderr_tail
    assert str(error).startswith("Cut failed (ffmpeg exit code")
    assert len(error.stderr_tail) <= 1500


def test_success_returns_stderr_and_reports_progress(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    percents: list[float] = []
    source = "sine=frequency=440:d=2"

    stderr = ffmpeg.run(
        ["-f", "lavfi", "-i", source, "-af", "volumedetect", "-f", "null", "-"],
        duration=2.0,
        on_progress=percents.append,
    )

    assert "mean_volume" in stderr
    assert percents
    assert percents == sorted(percents)
    assert all(0 <= percent <= 100 for percent in percents)
    assert percents[-1] == 100


def test_cancel_kills_the_process_group_within_a_second(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    marker = f"testsrc=size=64x64:rate=10:d=60.{os.getpid()}5"
    token = CancelToken()
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            ffmpeg.run(
                ["-re", "-f", "lavfi", "-i", marker, "-f", "null", "-"], cancel=token
            )
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    pid = find_pid(marker)
    assert os.getpgid(pid) == pid

    cancelled_at = time.monotonic()
    token.cancel()
    thread.join(timeout=5)
    elapsed = time.monotonic() - cancelled_at

    assert not thread.is_alive()
    assert elapsed < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_cancelled_token_stops_before_starting(ffmpeg: FFmpeg) -> None:
    token = CancelToken()
    token.cancel()

    with pytest.raises(Cancelled):
        ffmpeg.run(
            ["-f", "lavfi", "-i", "anullsrc", "-t", "1", "-f", "null", "-"],
            cancel=token,
        )


def test_cancel_token_basics() -> None:
    token = CancelToken()
    assert not token.cancelled
    assert token.wait(0.01) is False
    token.raise_if_cancelled()

    threading.Timer(0.05, token.cancel).start()

    assert token.wait(2) is True
    assert token.cancelled
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()


def test_missing_binary_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="Could not start ffmpeg"):
        FFmpeg(str(tmp_path / "no-ffmpeg")).run(["-version"])


def test_stderr_tail_keeps_the_last_meaningful_lines() -> None:
    lines = [f"line {n}" for n in range(20)]
    text = "\n".join([*lines, "", "frame=  10 fps=0.0", "   "]) + "\n"

    tail = stderr_tail(text)

    assert tail.splitlines() == lines[-8:]
    assert len(stderr_tail("x" * 5000)) == 1500


def test_lookup_prefers_the_configured_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = fake_binary(tmp_path, "configured-ffmpeg")
    monkeypatch.setenv("FFMPEG_BINARY", fake_binary(tmp_path, "env-ffmpeg"))

    assert find_ffmpeg(configured) == configured


def test_lookup_uses_the_environment_before_the_bundled_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = fake_binary(tmp_path, "env-ffmpeg")
    monkeypatch.setenv("FFMPEG_BINARY", from_env)

    assert find_ffmpeg() == from_env


def test_lookup_uses_the_bundled_binary_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = fake_binary(tmp_path, "bundled-ffmpeg")
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: bundled)
    monkeypatch.setattr(shutil, "which", lambda name: f"/path/{name}")

    assert find_ffmpeg() == bundled


def test_lookup_falls_back_to_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_binary(tmp_path, "ffmpeg")
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", _no_bundled_binary)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_ffmpeg() == on_path


def test_lookup_without_any_binary_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", _no_bundled_binary)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(MediaError, match="TILEWORK_FFMPEG_BINARY"):
        find_ffmpeg()


def test_lookup_rejects_a_configured_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "ffmpeg")

    with pytest.raises(MediaError, match="does not exist"):
        find_ffmpeg(missing)


def _no_bundled_binary() -> str:
    raise RuntimeError("no ffmpeg bundled")
