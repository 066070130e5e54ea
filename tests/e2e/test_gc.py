"""Retention: ``tilework gc`` against a server with a run still going."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import Api, ServerProcess
from media_factory import make_video
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput

RETENTION = 3


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        env={
            "TILEWORK_RENDER_RETENTION_SECONDS": str(RETENTION),
            "TILEWORK_UPLOAD_RETENTION_SECONDS": str(RETENTION),
            "TILEWORK_X264_PRESET": "slow",
        },
    )
    yield process.start()
    process.stop()


def reframe_agent(api: Api) -> str:
    agent_id, _ = api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {"mode": "pad_blur"}),
        ],
        [("in", "frame")],
    )
    return agent_id


def test_gc_deletes_what_expired_and_spares_a_live_run(
    short_lived: ServerProcess, tmp_path: Path
) -> None:
    api = short_lived.client()
    agent_id = reframe_agent(api)
    short = make_video(tmp_path / "short.mp4", seconds=1)
    long = make_video(tmp_path / "long.mp4", seconds=8, size="640x480")

    # Given a finished run whose renders have expired
    done = api.wait(
        api.ok(api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(short)]}))[
            "run_id"
        ]
    )
    old_link = done["outputs"][0]["video_url"]
    assert httpx.get(old_link).status_code == 200

    # And a run still encoding, whose upload and first render have expired too
    live_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(long)]})
    )["run_id"]
    deadline = time.monotonic() + 60
    while (
        api.ok(api.get(f"/agent_run/{live_id}"))["node_status_counts"]["completed"] < 1
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(RETENTION + 0.5)

    # When the operator collects garbage
    report = short_lived.cli("gc")

    # Then the finished run's files are gone and its links with them
    assert "kept 2 that live runs need" in report, report
    assert httpx.get(old_link).status_code in (403, 404)
    after = api.ok(api.get(f"/agent_run/{done['run_id']}"))
    assert after["outputs"][0]["video_url"] is None
    assert not list(
        (short_lived.data_dir / "media" / "renders" / done["run_id"]).rglob("*.mp4")
    )

    # And the live run finishes on the files it needed
    live = api.wait(live_id, timeout=240)
    assert live["status"] == "completed", live
    chained = api.post(
        f"/agent/{agent_id}/run", {"node_render_ids": [done["outputs"][0]["id"]]}
    )
    assert chained.status_code == 404
