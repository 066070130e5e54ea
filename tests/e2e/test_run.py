"""A run end to end: upload, run, webhooks, download, through a real server process."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from contract import check_event
from harness import Api, Receiver, ServerProcess
from media_factory import make_video
from tilework.media.probe import probe_video
from tilework.tiles.audio_enhance import AudioEnhance
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput


def three_tiles(api: Api, ratio: str = "9:16") -> tuple[str, dict[str, str]]:
    return api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {"aspect_ratio": ratio}),
            ("sound", AudioEnhance.node_type_id, {"target_lufs": -16}),
        ],
        [("in", "frame"), ("frame", "sound")],
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=3)


def test_a_run_renders_and_reports_every_step(
    api: Api, receiver: Receiver, clip: Path, tmp_path: Path
) -> None:
    # Given an agent, an uploaded video and a webhook secret
    api.ok(api.post("/webhooks/settings", {"secret": "plain-secret"}))
    agent_id, refs = three_tiles(api)
    video_id = api.upload(clip)

    # When the run is started with a callback
    run_id = api.ok(
        api.post(
            f"/agent/{agent_id}/run",
            {"video_ids": [video_id], "callback_url": receiver.url},
        )
    )["run_id"]
    run = api.wait(run_id)

    # Then it completes with one 9:16 output that downloads as a playable MP4
    assert run["status"] == "completed", run
    assert run["errors"] == [] and run["needs_credits"] is False
    assert run["node_status_counts"] == {"completed": 3, "in_progress": 0, "failed": 0}
    (output,) = run["outputs"]
    assert output["original_node_id"] == refs["sound"]
    video = httpx.get(output["video_url"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(video.content)
    info = probe_video(path)
    assert info.has_audio
    assert abs(info.display_width / info.display_height - 9 / 16) < 0.02
    assert abs(info.duration - 3.0) < 0.2
    assert httpx.get(output["thumbnail_url"]).headers["content-type"] == "image/jpeg"

    # And the receiver got every event, in sequence order, each matching the contract
    finished = receiver.wait_for("RUN_FINISHED", run_id)[0]
    events = sorted(receiver.events(run_id), key=lambda e: e["sequence"])
    for event in events:
        check_event(event)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["flag"] == "RUN_STARTED" and events[-1]["flag"] == "RUN_FINISHED"
    assert any(e["flag"] == "RUN_PROGRESS" for e in events)
    assert finished["outputs"][0]["id"] == output["id"]
    assert all(
        r.headers.get("x-mosaic-signature") == "plain-secret" for r in receiver.received
    )


def test_nodes_progress_and_listings_describe_the_run(api: Api, clip: Path) -> None:
    agent_id, refs = three_tiles(api, "1:1")
    run_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(clip)]})
    )["run_id"]
    run = api.wait(run_id)

    nodes = api.ok(api.get(f"/agent_run/{run_id}/nodes"))["nodes"]
    assert {n["original_node_id"] for n in nodes} == set(refs.values())
    assert all(n["status"] == "completed" and n["errors"] == [] for n in nodes)
    assert {n["node_type"]["node_type_name"] for n in nodes} == {
        "Video Input",
        "Reframe",
        "Audio Enhance",
    }

    progress = api.ok(api.get(f"/agent_run/{run_id}/progress"))
    assert progress["completed_node_percent"] == 100.0
    assert all(t["progress"] == 100.0 for n in progress["nodes"] for t in n["tasks"])

    listed = api.ok(api.get(f"/agent/{agent_id}/runs"))["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["outputs"] == run["outputs"]
    assert (
        api.ok(api.get("/agent_runs", status="failed,cancelled", agent_id=agent_id))[
            "runs"
        ]
        == []
    )


def test_run_listings_page_with_cursors(api: Api, clip: Path) -> None:
    agent_id, _ = three_tiles(api)
    video_id = api.upload(clip)
    ids = [
        api.ok(api.post(f"/agent/{agent_id}/run", {"video_ids": [video_id]}))["run_id"]
        for _ in range(3)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.ok(api.get(f"/agent/{agent_id}/runs", **params))
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    for run_id in ids:
        api.wait(run_id)
    assert api.get("/agent_runs", cursor="not-a-cursor").status_code == 400


def test_downloads_answer_ranges_and_refuse_tampered_or_expired_links(
    api: Api, server: ServerProcess, clip: Path
) -> None:
    agent_id, _ = three_tiles(api)
    run_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(clip)]})
    )["run_id"]
    url = api.wait(run_id)["outputs"][0]["video_url"]

    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"].startswith("bytes 0-99/")

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    tampered = {**query, "expires": str(int(query["expires"]) + 60)}
    forged = urlunsplit(parts._replace(query=urlencode(tampered)))
    assert httpx.get(forged).status_code == 403
    other_path = urlunsplit(
        parts._replace(path=parts.path.replace("output.mp4", "thumbnail.jpg"))
    )
    assert httpx.get(other_path).status_code == 403

    from tilework.media.signing import UrlSigner, load_or_create_key

    signer = UrlSigner(load_or_create_key(server.data_dir, None), server.url)
    expired = signer.sign(parts.path, ttl_seconds=60, now=0)
    answer = httpx.get(expired)
    assert answer.status_code == 403 and "expired" in answer.json()["detail"]
