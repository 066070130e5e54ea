"""Small media files made with ffmpeg's built-in sources, for tests."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import av

from tilework.media.ffmpeg import CancelToken, FFmpeg, find_ffmpeg
from tilework.tiles.base import TileContext

FAST_VIDEO = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


@cache
def ffmpeg_binary() -> str:
    return find_ffmpeg()


def tile_context(scratch: Path, progress: list[float]) -> TileContext:
    """A context for running tiles on a real ffmpeg, recording progress in a list."""
    scratch.mkdir(parents=True, exist_ok=True)
    return TileContext(
        run_id="run-1",
        node_id="node-1",
        task_id="task-1",
        scratch=scratch,
        ffmpeg=FFmpeg(ffmpeg_binary()),
        cancel=CancelToken(),
        report_progress=progress.append,
        x264_preset="ultrafast",
    )


def run_ffmpeg(*args: str) -> str:
    """Run ffmpeg directly (not through tilework) and return its stderr."""
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-y", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 30,
    audio: bool = True,
    faststart: bool = False,
) -> Path:
    """A test-pattern video with a 440 Hz tone, or without audio.

    Odd sizes are kept by encoding 4:4:4, which H.264 allows at any size.
    """
    odd = any(int(side) % 2 for side in size.split("x"))
    pattern = "testsrc" if odd else "testsrc2"
    inputs = ["-f", "lavfi", "-i", f"{pattern}=size={size}:rate={fps}:d={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:d={seconds}"]

    video = [*FAST_VIDEO, "-pix_fmt", "yuv444p"] if odd else FAST_VIDEO
    sound = ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    flags = ["-movflags", "+faststart"] if faststart else []
    run_ffmpeg(*inputs, *video, *sound, *flags, str(path))
    return path


def make_audio_only(path: Path, *, seconds: float = 2.0) -> Path:
    run_ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:d={seconds}", str(path))
    return path


def make_rotated(source: Path, path: Path, *, clockwise: int = 90) -> Path:
    """A copy of ``source`` that players show turned ``clockwise`` degrees."""
    counter_clockwise = str((360 - clockwise) % 360)
    run_ffmpeg(
        "-display_rotation",
        counter_clockwise,
        "-i",
        str(source),
        "-c",
        "copy",
        str(path),
    )
    return path


def make_vfr(path: Path, *, seconds: float = 2.0) -> Path:
    """A video whose frames come in irregular pairs (two shown, two skipped)."""
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-vf", "select='lt(mod(n,4),2)'", "-fps_mode", "vfr"),
        *FAST_VIDEO,
        str(path),
    )
    return path


def make_quiet_speech_like(path: Path, *, seconds: float = 3.0) -> Path:
    """A video whose audio is a tone over noise at about -35 LUFS."""
    tone = f"sine=frequency=300:d={seconds}:sample_rate=48000"
    noise = f"anoisesrc=color=pink:amplitude=0.3:d={seconds}:sample_rate=48000"
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", tone, "-f", "lavfi", "-i", noise),
        *("-filter_complex", "[1:a][2:a]amix=inputs=2,volume=-9dB[a]"),
        *("-map", "0:v", "-map", "[a]", *FAST_VIDEO, "-c:a", "aac", "-b:a", "128k"),
        str(path),
    )
    return path


def make_silent_audio(path: Path, *, seconds: float = 2.0) -> Path:
    """A video whose audio track holds only digital silence."""
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", "anullsrc=sample_rate=48000:channel_layout=stereo"),
        *FAST_VIDEO,
        *("-c:a", "aac", "-t", str(seconds)),
        str(path),
    )
    return path


def integrated_loudness(path: Path) -> float:
    """Integrated loudness (LUFS) of the first audio track, measured by ebur128."""
    stderr = run_ffmpeg(
        "-i", str(path), "-map", "0:a:0", "-af", "ebur128", "-f", "null", "-"
    )
    summary = stderr[stderr.rfind("Summary:") :]
    match = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    assert match is not None, summary
    return float(match.group(1))


def count_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


ESPEAK = shutil.which("espeak-ng")


def speech_missing() -> str | None:
    """Why spoken test media cannot be made or recognised here, or None."""
    if ESPEAK is None:
        return "espeak-ng is not installed"
    if importlib.util.find_spec("faster_whisper") is None:
        return "faster-whisper is not installed"
    return None


def speak(text: str, path: Path, *, rate: int = 150) -> Path:
    """``text`` spoken by espeak-ng into the WAV file ``path``."""
    assert ESPEAK is not None, "espeak-ng is not installed"
    subprocess.run([ESPEAK, "-s", str(rate), "-w", str(path), text], check=True)
    return path
