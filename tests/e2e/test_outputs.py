"""Outputs an editor can use: timelines, chaining across runs, downloads."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import opentimelineio as otio
import pytest

from harness import Api, ServerProcess
from media_factory import make_video
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("outputs") / "vidéo d'été.mp4", seconds=2)


def run(api: Api, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return api.wait(api.ok(api.post(f"/agent/{agent_id}/run", body))["run_id"])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def timeline_zip(output: dict[str, Any]) -> zipfile.ZipFile:
    answer = httpx.get(output["premiere_prproj_url"], timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(answer.content))


def test_every_video_render_has_a_timeline_with_its_media(api: Api, clip: Path) -> None:
    agent_id, _ = api.create_agent(
        [("in", VideoInput.node_type_id, {}), ("frame", Reframe.node_type_id, {})],
        [("in", "frame")],
    )
    (output,) = run(api, agent_id, {"video_ids": [api.upload(clip)]})["outputs"]

    archive = timeline_zip(output)
    names = set(archive.namelist())
    assert {"timeline.xml", "timeline.otio", "timeline.edl"} <= names
    (media,) = [n for n in names if n.startswith("media/")]
    rendered = httpx.get(output["video_url"]).content
    assert sha(archive.read(media)) == sha(rendered)

    timeline = otio.adapters.read_from_string(
        archive.read("timeline.otio").decode(), "otio_json"
    )
    clips = list(timeline.find_clips())
    assert {c.media_reference.target_url for c in clips} == {media}
    assert len([t for t in timeline.tracks if t.kind == "Video"]) == 1
    again = timeline_zip(output)
    assert again.namelist() == archive.namelist()


def test_a_chained_run_completes_and_its_timeline_points_at_the_earlier_output(
    api: Api, clip: Path
) -> None:
    first_agent, _ = api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {"aspect_ratio": "1:1"}),
        ],
        [("in", "frame")],
    )
    (earlier,) = run(api, first_agent, {"video_ids": [api.upload(clip)]})["outputs"]

    second_agent, _ = api.create_agent([("in", VideoInput.node_type_id, {})], [])
    chained = run(api, second_agent, {"node_render_ids": [earlier["id"]]})
    assert chained["status"] == "completed", chained
    (output,) = chained["outputs"]

    archive = timeline_zip(output)
    (media,) = [n for n in archive.namelist() if n.startswith("media/")]
    assert sha(archive.read(media)) == sha(httpx.get(earlier["video_url"]).content)


def test_chaining_crosses_workspaces_but_not_organizations(
    server: ServerProcess, api: Api, clip: Path
) -> None:
    workspace = server.cli("workspaces", "create", "Editing")
    agent_id, _ = api.create_agent([("in", VideoInput.node_type_id, {})], [])
    (render,) = run(api, agent_id, {"video_ids": [api.upload(clip)]})["outputs"]

    there = server.client(**{"X-Workspace-Id": workspace})
    other_agent, _ = there.create_agent([("in", VideoInput.node_type_id, {})], [])
    assert (
        run(there, other_agent, {"node_render_ids": [render["id"]]})["status"]
        == "completed"
    )

    stranger = server.client(
        json.loads(server.cli("orgs", "create", "Stranger"))["api_key"]
    )
    theirs, _ = stranger.create_agent([("in", VideoInput.node_type_id, {})], [])
    refused = stranger.post(f"/agent/{theirs}/run", {"node_render_ids": [render["id"]]})
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"


def test_downloads_carry_types_and_non_ascii_names(api: Api, clip: Path) -> None:
    agent_id, _ = api.create_agent([("in", VideoInput.node_type_id, {})], [])
    (output,) = run(api, agent_id, {"video_ids": [api.upload(clip)]})["outputs"]

    video = httpx.get(output["video_url"])
    assert video.headers["content-type"] == "video/mp4"
    disposition = video.headers["content-disposition"]
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == "vidéo d'été.mp4"
    assert disposition.encode("latin-1").isascii()
    assert httpx.get(output["thumbnail_url"]).headers["content-type"] == "image/jpeg"
    head = httpx.head(output["video_url"])
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(
        video.content
    )


def test_a_workspace_header_narrows_run_inputs_too(
    server: ServerProcess, api: Api, clip: Path
) -> None:
    video_id = api.upload(clip)
    workspace = server.cli("workspaces", "create", "Narrow")
    there = server.client(**{"X-Workspace-Id": workspace})
    agent_id, _ = there.create_agent([("in", VideoInput.node_type_id, {})], [])
    refused = there.post(f"/agent/{agent_id}/run", {"video_ids": [video_id]})
    assert refused.status_code == 404, refused.text
