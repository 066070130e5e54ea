"""How fast a cancel reaches ffmpeg: from the API call to the encoder being gone.

Starts ``tilework serve`` on a free loopback port with a fresh data folder, runs a
slow Reframe encode, cancels it once ffmpeg is working, and times how long ffmpeg
lives on after the cancel call was sent. The baseline, measured in the same
invocation, is an ffmpeg process killed directly with SIGKILL on its process group:
the floor any cancel path can reach.

    python bench/cancel.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tilework.media.ffmpeg import find_ffmpeg

KEY = "tw_bench_cancel_key_0123456789abcdef0123456789"
VIDEO_INPUT = "9451e6ff-ac7f-4317-9055-a2f35f641b29"
REFRAME = "0e3a90e4-173f-42fc-b7ef-0df6a062e26c"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ffmpeg_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text.split("(", 1)[1].split(")", 1)[0]
        parent = int(text.rsplit(")", 1)[1].split()[1])
        if parent == pid and "ffmpeg" in name:
            found.append(int(stat.parent.name))
    return found


def wait_gone(pid: int, started: float, timeout: float = 10.0) -> float:
    while ffmpeg_children(pid) and time.monotonic() - started < timeout:
        time.sleep(0.002)
    return time.monotonic() - started


def make_clip(folder: Path) -> Path:
    clip = folder / "long.mp4"
    subprocess.run(
        [
            find_ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:d=30",
            "-f", "lavfi", "-i", "sine=d=30",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip),
        ],
        check=True,
    )  # fmt: skip
    return clip


def baseline(runs: int) -> list[float]:
    """SIGKILL on a busy ffmpeg's process group, timed to its disappearance."""
    times = []
    for _ in range(runs):
        process = subprocess.Popen(
            [find_ffmpeg(), "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=d=60",
             "-f", "null", "-"],
            start_new_session=True,
        )  # fmt: skip
        time.sleep(0.5)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        times.append(time.monotonic() - started)
    return times


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TILEWORK_DATA_DIR": str(folder / "data"),
           "TILEWORK_BOOTSTRAP_API_KEY": KEY, "TILEWORK_X264_PRESET": "slow",
           "TILEWORK_BILLING_UNLIMITED": "true"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "tilework", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/whoami", timeout=1)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def upload(api: httpx.Client, clip: Path) -> str:
    grant = api.post("/uploads/video/get_upload_url").json()
    with clip.open("rb") as handle:
        httpx.post(
            grant["upload_url"], data=grant["upload_fields"], files={"file": handle}
        )
    api.post("/uploads/video/finalize_upload", json={"video_id": grant["video_id"]})
    return str(grant["video_id"])


def through_api(runs: int, folder: Path) -> list[float]:
    server, url = start_server(folder)
    api = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    try:
        operations = [
            {"op": "create_node", "temp_ref_id": "in", "node_type_id": VIDEO_INPUT},
            {"op": "create_node", "temp_ref_id": "f", "node_type_id": REFRAME,
             "params_used": {"mode": "pad_blur", "track_subject": False}},
            {"op": "create_connection", "source_temp_ref_id": "in",
             "target_temp_ref_id": "f"},
        ]  # fmt: skip
        agent = api.post(
            "/agent/create", json={"name": "bench", "operations": operations}
        )
        agent_id = agent.json()["agent_id"]
        video_id = upload(api, make_clip(folder))
        return [cancel_once(api, server.pid, agent_id, video_id) for _ in range(runs)]
    finally:
        api.close()
        server.terminate()
        server.wait(timeout=30)


def cancel_once(api: httpx.Client, pid: int, agent_id: str, video_id: str) -> float:
    run_id = api.post(f"/agent/{agent_id}/run", json={"video_ids": [video_id]}).json()[
        "run_id"
    ]
    while len(ffmpeg_children(pid)) == 0:
        time.sleep(0.01)
    time.sleep(0.5)
    started = time.monotonic()
    api.post(f"/agent_run/{run_id}/cancel")
    return wait_gone(pid, started)


def describe(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return (
        f"{name:<26} n={len(ms)}  p50 {statistics.median(ms):7.1f} ms  "
        f"max {ms[-1]:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        floor = baseline(args.runs)
        measured = through_api(args.runs, Path(folder))

    print(f"command: python bench/cancel.py --runs {args.runs}")
    print(describe("baseline: killpg directly", floor))
    print(describe("cancel through the API", measured))
    ratio = statistics.median(measured) / max(statistics.median(floor), 1e-6)
    print(f"p50 ratio to baseline: {ratio:.1f}x; target: every cancel under 1000 ms")
    if max(measured) >= 1.0:
        sys.exit(1)


if __name__ == "__main__":
    main()
