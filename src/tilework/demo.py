"""``tilework demo``: the whole job on one machine, end to end.

It starts an embedded server on a free loopback port and a webhook receiver beside
it, makes a short clip with speech-like audio and a silent gap, uploads it, runs a
three-tile agent (Video Input → Reframe 9:16 → Audio Enhance), shows live progress,
downloads the result and checks it, then prints the outputs and the webhooks.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from tilework.accounts import bootstrap, create_key
from tilework.api.app import create_app
from tilework.client import Client, agent_body, follow_run
from tilework.config import Settings
from tilework.media.ffmpeg import FFmpeg
from tilework.media.probe import probe_video
from tilework.service import Tilework
from tilework.store.models import Organization

DEMO_SECRET = "demo-webhook-secret"
CLIP_SECONDS = 6
SPEECH_LIKE = (
    "(0.35*sin(2*PI*180*t)+0.2*sin(2*PI*360*t)+0.1*sin(2*PI*720*t))"
    "*(0.55+0.45*sin(2*PI*4*t))*gt(abs(t-3),0.6)"
)
AGENT = {
    "name": "Demo: vertical with clean audio",
    "description": "Reframes to 9:16 and normalises loudness.",
    "nodes": [
        {"ref": "input", "type": "Video Input"},
        {"ref": "reframe", "type": "Reframe", "params": {"aspect_ratio": "9:16"}},
        {"ref": "audio", "type": "Audio Enhance", "params": {"target_lufs": -14}},
    ],
    "connections": [["input", "reframe"], ["reframe", "audio"]],
}


@dataclass
class Receiver:
    """A webhook receiver on loopback that keeps what it is sent."""

    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.events.append(json.loads(body))
                receiver.headers.append(dict(self.headers.items()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def flags(self) -> list[str]:
        return [
            event["flag"] for event in sorted(self.events, key=lambda e: e["sequence"])
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_sample(path: Path, ffmpeg: FFmpeg) -> Path:
    """A 640x360 test picture with speech-like audio and a silent gap at 2.4-3.6 s."""
    picture = f"testsrc2=size=640x360:rate=25:duration={CLIP_SECONDS}"
    sound = f"aevalsrc='{SPEECH_LIKE}':s=48000:d={CLIP_SECONDS}"
    ffmpeg.run(
        [
            "-f", "lavfi", "-i", picture,
            "-f", "lavfi", "-i", sound,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        description="making the demo clip",
    )  # fmt: skip
    return path


def start_server(settings: Settings) -> tuple[uvicorn.Server, Tilework]:
    tw = Tilework.build(settings)
    tw.db.migrate()
    bootstrap(tw.db, settings.data_dir, configured_key=None)
    config = uvicorn.Config(
        create_app(tw), host=settings.host, port=settings.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the embedded server did not start within 30 s")
        time.sleep(0.05)
    return server, tw


def demo_key(tw: Tilework) -> str:
    with tw.db.write() as session:
        organization = session.scalars(
            select(Organization).order_by(Organization.created_at)
        ).first()
        assert organization is not None
        _, key = create_key(session, organization.id, name="demo")
    return key


def run_demo(*, data_dir: Path | None, keep: bool, console: Console) -> int:
    data_dir = (data_dir or Path("tilework-data") / "demo").resolve()
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        webhook_allow_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        webhook_coalesce_seconds=0.25,
    )
    receiver = Receiver()
    callback = receiver.start()
    server, tw = start_server(settings)
    console.print(
        f"[bold]tilework[/bold] serving on {settings.base_url} (data in {data_dir})"
    )
    console.print(f"webhook receiver on {callback}")

    try:
        return _drive(tw, settings, receiver, callback, console, keep)
    finally:
        server.should_exit = True
        time.sleep(0.3)
        receiver.stop()


def _drive(
    tw: Tilework,
    settings: Settings,
    receiver: Receiver,
    callback: str,
    console: Console,
    keep: bool,
) -> int:
    key = demo_key(tw)
    sample = make_sample(settings.data_dir / "demo-input.mp4", tw.ffmpeg)
    console.print(f"made a {CLIP_SECONDS} s sample clip: {sample}")

    with Client(settings.base_url, key) as client:
        client.post("/webhooks/settings", {"secret": DEMO_SECRET})
        agent = client.post("/agent/create", agent_body(AGENT))
        console.print(
            f"created agent {agent['agent_id']} ({len(AGENT['nodes'])} tiles)"
        )
        video_id = client.upload(sample, "video")
        console.print(f"uploaded the clip as video {video_id}")

        started = time.monotonic()
        run_id = client.post(
            f"/agent/{agent['agent_id']}/run",
            {"video_ids": [video_id], "callback_url": callback},
        )["run_id"]
        run = follow_run(client, run_id, console, poll=0.25)
        elapsed = time.monotonic() - started

    _wait_for_finish(receiver)
    ok = _report(run, receiver, settings, console, elapsed)
    if keep:
        console.print(f"serving on {settings.base_url} with key {key}; Ctrl-C to stop")
        _wait_forever()
    return 0 if ok else 1


def _wait_for_finish(receiver: Receiver, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "RUN_FINISHED" not in receiver.flags():
        time.sleep(0.05)


def _report(
    run: dict[str, Any],
    receiver: Receiver,
    settings: Settings,
    console: Console,
    elapsed: float,
) -> bool:
    console.print(
        f"\nrun {run['run_id']}: [bold]{run['status']}[/bold] in {elapsed:.1f} s"
    )
    problems: list[str] = []
    if run["status"] != "completed":
        problems.append(f"the run ended {run['status']}: {run['status_message']}")

    for output in run["outputs"]:
        console.print(f"  output {output['id']}\n    video:     {output['video_url']}")
        console.print(f"    thumbnail: {output['thumbnail_url']}")
        problems += _check_output(
            output["video_url"], settings.data_dir / "demo-output.mp4", console
        )
    if not run["outputs"]:
        problems.append("the run produced no outputs")

    problems += _show_webhooks(receiver, console)
    for problem in problems:
        console.print(f"[red]problem:[/red] {problem}")
    if not problems:
        console.print(
            "[green]demo finished: the run completed and every webhook arrived[/green]"
        )
    return not problems


def _check_output(url: str, dest: Path, console: Console) -> list[str]:
    response = httpx.get(url, timeout=60)
    if response.status_code != 200:
        return [f"downloading the output answered {response.status_code}"]
    dest.write_bytes(response.content)
    info = probe_video(dest)
    width, height = info.display_width or 0, info.display_height or 0
    console.print(
        f"    downloaded {len(response.content)} bytes: {width}x{height}, "
        f"{info.duration:.2f} s, audio={'yes' if info.has_audio else 'no'} -> {dest}"
    )
    if abs(width / max(height, 1) - 9 / 16) > 0.01:
        return [f"the output is {width}x{height}, not 9:16"]
    return []


def _show_webhooks(receiver: Receiver, console: Console) -> list[str]:
    table = Table(
        "seq", "flag", "status", "X-Mosaic-Signature", title="webhooks received"
    )
    ordered = sorted(
        zip(receiver.events, receiver.headers, strict=True),
        key=lambda p: p[0]["sequence"],
    )
    for event, headers in ordered:
        signature = headers.get("X-Mosaic-Signature") or headers.get(
            "x-mosaic-signature"
        )
        table.add_row(
            str(event["sequence"]),
            event["flag"],
            event["status"],
            "ok" if signature == DEMO_SECRET else "missing",
        )
    console.print(table)

    flags = receiver.flags()
    problems = []
    for wanted in ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED"):
        if wanted not in flags:
            problems.append(f"no {wanted} webhook arrived")
    if flags and (flags[0] != "RUN_STARTED" or flags[-1] != "RUN_FINISHED"):
        problems.append(f"webhooks out of order: {flags}")
    return problems


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
