"""Five tiles in a chain on narrated real footage, through a real server."""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import av
import httpx
import opentimelineio as otio
import pytest

from harness import Api
from media_factory import run_ffmpeg, speak
from tilework.media.probe import probe_video
from tilework.tiles.audio_enhance import AudioEnhance
from tilework.tiles.captions import Captions
from tilework.tiles.reframe import Reframe
from tilework.tiles.silence_removal import SilenceRemoval
from tilework.tiles.video_input import VideoInput
from tilework.tiles.watermark import Watermark

FIRST = "Welcome to the studio. Today we cut this video automatically."
SECOND = "The captions follow every word we say."
PAUSE_SECONDS = 1.5


@pytest.fixture(scope="module")
def narrated(tmp_path_factory: pytest.TempPathFactory, shared_media: Path) -> Path:
    """The carphone footage, looped, under two sentences with a pause between them."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed; it speaks the narration")
    folder = tmp_path_factory.mktemp("chain")
    first = speak(FIRST, folder / "first.wav")
    second = speak(SECOND, folder / "second.wav")
    voice = folder / "voice.wav"
    run_ffmpeg(
        *("-i", str(first), "-i", str(second)),
        "-filter_complex",
        f"[0:a]apad=pad_dur={PAUSE_SECONDS}[a];[a][1:a]concat=n=2:v=0:a=1",
        str(voice),
    )
    out = folder / "narrated carphone.mp4"
    run_ffmpeg(
        *("-stream_loop", "-1", "-i", str(shared_media / "carphone.mp4")),
        *("-i", str(voice)),
        *("-map", "0:v", "-map", "1:a", "-shortest"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", str(out)),
    )
    return out


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logo") / "logo.png"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1", str(out))
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def overlap(heard: list[str], said: list[str]) -> float:
    remaining = list(said)
    hits = 0
    for word in heard:
        if word in remaining:
            remaining.remove(word)
            hits += 1
    return hits / len(said)


def test_reframe_silence_captions_watermark_audio_in_one_agent(
    api: Api, narrated: Path, logo: Path, tmp_path: Path
) -> None:
    # Given the five-tile agent and a narrated clip with a pause in the middle
    image_id = api.upload(logo, "image")
    agent_id, refs = api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {"aspect_ratio": "9:16"}),
            ("quiet", SilenceRemoval.node_type_id, {"min_silence_ms": 600}),
            ("words", Captions.node_type_id, {"caption_style": "karaoke"}),
            ("mark", Watermark.node_type_id, {"image_id": image_id}),
            ("sound", AudioEnhance.node_type_id, {}),
        ],
        [
            ("in", "frame"),
            ("frame", "quiet"),
            ("quiet", "words"),
            ("words", "mark"),
            ("mark", "sound"),
        ],
    )

    # When it runs
    run_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(narrated)]})
    )["run_id"]
    run = api.wait(run_id, timeout=300)

    # Then it completes with a playable 9:16 video, shorter by the pause
    assert run["status"] == "completed", run
    (output,) = run["outputs"]
    final = tmp_path / "final.mp4"
    final.write_bytes(httpx.get(output["video_url"], timeout=60).content)
    info = probe_video(final)
    source = probe_video(narrated)
    assert abs(info.display_width / info.display_height - 9 / 16) < 0.02
    assert info.has_audio and info.duration < source.duration - 0.8
    with av.open(str(final)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= int(info.duration * (info.fps or 25) * 0.9)

    # And the captions' words match the narration as well as the bundled model hears it
    nodes = {
        n["original_node_id"]: n
        for n in api.ok(api.get(f"/agent_run/{run_id}/nodes"))["nodes"]
    }
    srt = httpx.get(nodes[refs["words"]]["outputs"][0]["subtitle_urls"]["srt"]).text
    heard = words(
        re.sub(r"\d+:\d+:\d+,\d+ --> \d+:\d+:\d+,\d+|^\d+$", " ", srt, flags=re.M)
    )
    assert overlap(heard, words(FIRST + " " + SECOND)) >= 0.7, heard

    # And the timeline shows the silence cut as separate clips on the reframed media
    archive = zipfile.ZipFile(
        io.BytesIO(httpx.get(output["premiere_prproj_url"]).content)
    )
    timeline = otio.adapters.read_from_string(
        archive.read("timeline.otio").decode(), "otio_json"
    )
    video_clips = [
        c for t in timeline.tracks if t.kind == "Video" for c in t.find_clips()
    ]
    assert len(video_clips) >= 2
