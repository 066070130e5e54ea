"""Cancel, resume, and a server killed mid-run that finishes after restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Api, Receiver, ServerProcess
from media_factory import make_video
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that a slow encode of it takes several seconds."""
    folder = tmp_path_factory.mktemp("long")
    return make_video(folder / "long.mp4", seconds=20, size="640x480")


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose encodes are slow, so a test can act while ffmpeg runs."""
    process = ServerProcess(tmp_path / "data", env={"TILEWORK_X264_PRESET": "slow"})
    yield process.start()
    process.stop()


def reframe_agent(api: Api) -> tuple[str, dict[str, str]]:
    return api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            (
                "frame",
                Reframe.node_type_id,
                {"aspect_ratio": "9:16", "mode": "pad_blur"},
            ),
        ],
        [("in", "frame")],
    )


def tasks_of(api: Api, run_id: str) -> dict[str, list[dict[str, Any]]]:
    progress = api.ok(api.get(f"/agent_run/{run_id}/progress", tasks_per_node=50))
    return {n["original_node_id"]: n["tasks"] for n in progress["nodes"]}


def wait_until_running(api: Api, run_id: str, node: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = tasks_of(api, run_id).get(node, [])
        if any(t["status"] == "running" for t in tasks):
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError(f"node {node} never started running")


def render_ids(api: Api, run_id: str) -> list[str]:
    nodes = api.ok(api.get(f"/agent_run/{run_id}/nodes"))["nodes"]
    return [output["id"] for output in nodes[0]["outputs"]]


def ffmpeg_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.read_text().split("(", 1)[1].split(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and "ffmpeg" in name:
            found.append(int(stat.parent.name))
    return found


def test_cancel_stops_ffmpeg_and_resume_finishes(
    slow_server: ServerProcess, long_clip: Path, receiver: Receiver
) -> None:
    # Given a run whose Reframe encode is under way
    api = slow_server.client()
    agent_id, refs = reframe_agent(api)
    body = {"video_ids": [api.upload(long_clip)], "callback_url": receiver.url}
    run_id = api.ok(api.post(f"/agent/{agent_id}/run", body))["run_id"]
    wait_until_running(api, run_id, refs["frame"])
    assert slow_server.process is not None
    assert ffmpeg_children(slow_server.process.pid)

    # When it is cancelled
    answer = api.ok(api.post(f"/agent_run/{run_id}/cancel"))

    # Then the ffmpeg process is gone and the run says cancelled everywhere
    assert (
        answer["success"]
        and answer["tasks_cancelled"] == 1
        and answer["nodes_reset"] == 1
    )
    deadline = time.monotonic() + 5
    while ffmpeg_children(slow_server.process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ffmpeg_children(slow_server.process.pid)
    run = api.ok(api.get(f"/agent_run/{run_id}"))
    assert run["status"] == "cancelled"
    finished = receiver.wait_for("RUN_FINISHED", run_id)[0]
    assert finished["status"] == "cancelled"
    again = api.ok(api.post(f"/agent_run/{run_id}/cancel"))
    assert again["success"] is False and "cancelled" in again["message"]

    # And resuming runs only the unfinished tile, then reports a second RUN_FINISHED
    resumed = api.ok(api.post(f"/agent_run/{run_id}/resume"))
    assert resumed["requeued_nodes"] and resumed["nodes_considered"] == 2
    run = api.wait(run_id, timeout=180)
    assert run["status"] == "completed", run
    tasks = tasks_of(api, run_id)
    assert [t["attempt"] for t in tasks[refs["in"]]] == [1]
    second = receiver.wait_for("RUN_FINISHED", run_id, count=2)
    assert second[-1]["status"] == "completed" and second[-1]["outputs"]
    conflict = api.post(f"/agent_run/{run_id}/resume")
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"


def test_a_killed_server_finishes_the_run_after_restart(
    slow_server: ServerProcess, long_clip: Path
) -> None:
    # Given a run killed with SIGKILL while its second tile encodes
    api = slow_server.client()
    agent_id, refs = reframe_agent(api)
    run_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(long_clip)]})
    )["run_id"]
    wait_until_running(api, run_id, refs["frame"])
    before = tasks_of(api, run_id)
    input_render = render_ids(api, run_id)
    slow_server.kill()

    # When the server starts again on the same data
    slow_server.start()
    api = slow_server.client()
    run = api.wait(run_id, timeout=240)

    # Then the run completes, and the finished tile was not run again
    assert run["status"] == "completed", run
    after = tasks_of(api, run_id)
    assert [t["attempt"] for t in after[refs["in"]]] == [1]
    assert after[refs["in"]][0]["task_id"] == before[refs["in"]][0]["task_id"]
    assert render_ids(api, run_id) == input_render
    assert [t["attempt"] for t in after[refs["frame"]]] == [2]
    assert "lost its worker" in slow_server.log() or "requeued" in slow_server.log()
