"""Every input form, and bad input answered with a clear 4xx or a failed node."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness import Api
from media_factory import make_video
from tilework.tiles.audio_enhance import AudioEnhance
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput

UNKNOWN = "00000000-0000-4000-8000-000000000000"


class FileServer:
    """Serves fixed bodies on loopback, by path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                content_type, body = routes.get(self.path, ("text/plain", b""))
                self.send_response(200 if self.path in routes else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, content_type: str, body: bytes) -> str:
        self.routes[path] = (content_type, body)
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    clip = make_video(folder / "clip.mp4", seconds=3)
    silent = make_video(folder / "silent.mp4", seconds=2, audio=False)
    data = clip.read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    named = folder / "vidéo d'été 日本.mp4"
    named.write_bytes(data)
    return {"clip": clip, "silent": silent, "truncated": truncated, "named": named}


@pytest.fixture(scope="module")
def agent(server: Any) -> tuple[str, dict[str, str]]:
    api = server.client()
    return api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {"aspect_ratio": "9:16"}),
            ("sound", AudioEnhance.node_type_id, {}),
        ],
        [("in", "frame"), ("frame", "sound")],
    )


def start(api: Api, agent_id: str, body: dict[str, Any]) -> Any:
    return api.post(f"/agent/{agent_id}/run", body)


def refused(response: Any, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


def test_an_unknown_agent_is_not_found(api: Api) -> None:
    answer = start(api, UNKNOWN, {"video_urls": ["http://127.0.0.1:1/x.mp4"]})
    assert refused(answer, 404) and answer.json()["error"] == "not_found"


def test_unknown_node_ids_are_all_named_at_once(
    api: Api, agent: Any, media: Any
) -> None:
    agent_id, _ = agent
    body = {
        "video_ids": [api.upload(media["clip"])],
        "update_params": {UNKNOWN: {"aspect_ratio": "1:1"}},
        "ignore_nodes": ["11111111-1111-4111-8111-111111111111"],
    }
    refused(start(api, agent_id, body), 400, "update_params", "ignore_nodes")


def test_unknown_video_and_render_ids_are_not_found(api: Api, agent: Any) -> None:
    agent_id, _ = agent
    refused(start(api, agent_id, {"video_ids": [UNKNOWN]}), 404, UNKNOWN)
    refused(start(api, agent_id, {"node_render_ids": [UNKNOWN]}), 404, UNKNOWN)


def test_bad_params_in_update_params_are_refused(
    api: Api, agent: Any, media: Any
) -> None:
    agent_id, refs = agent
    body = {
        "video_ids": [api.upload(media["clip"])],
        "update_params": {refs["frame"]: {"aspect_ratio": "3:2", "colour": "red"}},
    }
    refused(start(api, agent_id, body), 400, "aspect_ratio", "colour")


def test_more_than_one_input_form_is_refused(api: Api, agent: Any, media: Any) -> None:
    agent_id, refs = agent
    video_id = api.upload(media["clip"])
    both = {"video_ids": [video_id], "video_urls": ["http://127.0.0.1:1/a.mp4"]}
    refused(start(api, agent_id, both), 400, "one input form")
    mixed = {
        "video_ids": [video_id],
        "video_inputs": [{"agent_node_id": refs["in"], "video_ids": [video_id]}],
    }
    refused(start(api, agent_id, mixed), 400, "video_inputs")
    refused(start(api, agent_id, {}), 400, "no input")


def test_clip_ranges_must_be_ordered(api: Api, agent: Any, media: Any) -> None:
    agent_id, _ = agent
    video_id = api.upload(media["clip"])
    backwards = {
        "video_ids": [video_id],
        "input_clip_start_ms": 2000,
        "input_clip_end_ms": 1000,
    }
    refused(start(api, agent_id, backwards), 400, "input_clip_end_ms (1000)")
    empty = {
        "video_ids": [video_id],
        "input_clip_start_ms": 1000,
        "input_clip_end_ms": 1000,
    }
    refused(start(api, agent_id, empty), 400, "greater than")
    negative = {"video_ids": [video_id], "input_clip_start_ms": -5}
    refused(start(api, agent_id, negative), 400, "input_clip_start_ms")


def test_wrong_types_are_refused(api: Api, agent: Any) -> None:
    agent_id, _ = agent
    refused(start(api, agent_id, {"video_ids": "not-a-list"}), 400, "video_ids")
    refused(
        start(api, agent_id, {"video_urls": ["ftp://127.0.0.1/a.mp4"]}), 400, "http"
    )
    refused(
        start(api, agent_id, {"video_urls": ["https://youtu.be/abc"]}), 400, "YouTube"
    )
    refused(
        start(api, agent_id, {"callback_url": "not a url", "video_ids": [UNKNOWN]}),
        400,
        "callback_url",
    )


def test_a_truncated_upload_is_refused_at_finalize(api: Api, media: Any) -> None:
    grant = api.ok(api.post("/uploads/video/get_upload_url"))
    import httpx

    with media["truncated"].open("rb") as handle:
        httpx.post(
            grant["upload_url"], data=grant["upload_fields"], files={"file": handle}
        )
    answer = api.post("/uploads/video/finalize_upload", {"video_id": grant["video_id"]})
    refused(answer, 400, "not a usable video")


def test_finalize_before_any_bytes_is_refused(api: Api) -> None:
    grant = api.ok(api.post("/uploads/video/get_upload_url"))
    answer = api.post("/uploads/video/finalize_upload", {"video_id": grant["video_id"]})
    refused(answer, 400, "upload_url")
    refused(api.post("/uploads/video/finalize_upload", {"video_id": UNKNOWN}), 404)


def test_a_url_serving_html_fails_the_input_node(
    api: Api, agent: Any, files: FileServer
) -> None:
    agent_id, refs = agent
    url = files.serve("/page.mp4", "text/html", b"<html><body>hello</body></html>")
    run = api.wait(api.ok(start(api, agent_id, {"video_urls": [url]}))["run_id"])

    assert run["status"] == "failed"
    (group,) = run["errors"]
    assert group["original_node_id"] == refs["in"]
    assert "HTML" in group["messages"][0]
    nodes = {
        n["original_node_id"]: n
        for n in api.ok(api.get(f"/agent_run/{run['run_id']}/nodes"))["nodes"]
    }
    assert nodes[refs["in"]]["status"] == "failed"
    assert nodes[refs["frame"]]["status"] == "blocked"
    assert nodes[refs["sound"]]["status"] == "blocked"
    assert run["node_status_counts"] == {"completed": 0, "in_progress": 0, "failed": 1}


def test_a_truncated_mp4_url_fails_with_a_clear_message(
    api: Api, agent: Any, files: FileServer, media: Any
) -> None:
    agent_id, _ = agent
    url = files.serve("/cut.mp4", "video/mp4", media["truncated"].read_bytes())
    run = api.wait(api.ok(start(api, agent_id, {"video_urls": [url]}))["run_id"])
    assert run["status"] == "failed"
    message = run["errors"][0]["messages"][0]
    assert "truncated" in message.lower() or "decode" in message.lower(), message


def test_a_video_url_on_loopback_runs(
    api: Api, agent: Any, files: FileServer, media: Any
) -> None:
    agent_id, _ = agent
    url = files.serve("/clip.mp4", "video/mp4", media["clip"].read_bytes())
    run = api.wait(api.ok(start(api, agent_id, {"video_urls": [url]}))["run_id"])
    assert run["status"] == "completed", run
    assert run["inputs"] == [{"video_url": url, "thumbnail_url": None}]


def test_a_video_without_audio_fails_audio_enhance_only(
    api: Api, agent: Any, media: Any
) -> None:
    agent_id, refs = agent
    run_id = api.ok(start(api, agent_id, {"video_ids": [api.upload(media["silent"])]}))[
        "run_id"
    ]
    run = api.wait(run_id)

    assert run["status"] == "failed"
    (group,) = run["errors"]
    assert group["original_node_id"] == refs["sound"]
    assert "no audio" in group["messages"][0]
    assert run["node_status_counts"] == {"completed": 2, "in_progress": 0, "failed": 1}


def test_clip_range_and_non_ascii_names(
    api: Api, agent: Any, media: Any, tmp_path: Path
) -> None:
    agent_id, _ = agent
    video_id = api.upload(media["named"])
    body = {
        "video_ids": [video_id],
        "input_clip_start_ms": 500,
        "input_clip_end_ms": 2000,
    }
    run = api.wait(api.ok(start(api, agent_id, body))["run_id"])
    assert run["status"] == "completed", run

    import httpx

    from tilework.media.probe import probe_video

    out = tmp_path / "clip.mp4"
    out.write_bytes(httpx.get(run["outputs"][0]["video_url"]).content)
    assert abs(probe_video(out).duration - 1.5) < 0.15
    assert "vid%C3%A9o" in run["inputs"][0]["video_url"]


def test_ignore_nodes_rewires_around_the_skipped_tile(
    api: Api, agent: Any, media: Any
) -> None:
    agent_id, refs = agent
    body = {"video_ids": [api.upload(media["clip"])], "ignore_nodes": [refs["frame"]]}
    run_id = api.ok(start(api, agent_id, body))["run_id"]
    run = api.wait(run_id)
    assert run["status"] == "completed", run
    nodes = api.ok(api.get(f"/agent_run/{run_id}/nodes"))["nodes"]
    assert {n["original_node_id"] for n in nodes} == {refs["in"], refs["sound"]}
    assert run["outputs"][0]["original_node_id"] == refs["sound"]


def test_canonical_video_inputs_and_chaining_by_render_id(
    api: Api, agent: Any, media: Any
) -> None:
    agent_id, refs = agent
    first = api.wait(
        api.ok(start(api, agent_id, {"video_ids": [api.upload(media["clip"])]}))[
            "run_id"
        ]
    )
    render_id = first["outputs"][0]["id"]
    body = {
        "video_inputs": [{"agent_node_id": refs["in"], "node_render_ids": [render_id]}]
    }
    second = api.wait(api.ok(start(api, agent_id, body))["run_id"])
    assert second["status"] == "completed", second
    wrong = {
        "video_inputs": [
            {"agent_node_id": refs["frame"], "node_render_ids": [render_id]}
        ]
    }
    refused(start(api, agent_id, wrong), 400, "not a Video Input")


def test_a_generation_only_agent_runs_without_inputs(api: Api, tmp_path: Path) -> None:
    from tilework.media.probe import probe
    from tilework.tiles.generation import VideoGeneration
    from tilework.tiles.voiceover import AudioGeneration

    agent_id, _ = api.create_agent(
        [("voice", AudioGeneration.node_type_id, {"script": "Hello from tilework."})],
        [],
    )
    run = api.wait(api.ok(start(api, agent_id, {}))["run_id"])
    assert run["status"] == "completed", run
    (output,) = run["outputs"]
    assert output["thumbnail_url"] is None and output["premiere_prproj_url"] is None
    import httpx

    sound = tmp_path / "voice.m4a"
    sound.write_bytes(httpx.get(output["video_url"]).content)
    info = probe(sound)
    assert info.has_audio and not info.has_video and info.duration > 0.5

    refused(start(api, agent_id, {"video_ids": [UNKNOWN]}), 400, "no Video Input")
    generator, _ = api.create_agent(
        [("gen", VideoGeneration.node_type_id, {"prompt": "a red balloon"})], []
    )
    failed = api.wait(api.ok(start(api, generator, {}))["run_id"])
    assert failed["status"] == "failed"
    message = failed["errors"][0]["messages"][0]
    assert message.startswith("no provider configured for Video Generation")
