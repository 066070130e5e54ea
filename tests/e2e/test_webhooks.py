"""Webhooks through a real server: golden payloads, settings, guard, crash safety."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from contract import check_event
from harness import Api, Received, Receiver, ServerProcess
from media_factory import make_video
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput

GOLDEN = Path(__file__).parent / "golden"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")
KEY_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY_B = "whsec_c2Vjb25kIGtleSBmb3IgdGhlIHJvdGF0aW9uIHRlc3Q="


class Normalizer:
    """Replaces ids, times and links with stable placeholders, ids by first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, str):
            return value
        if value.startswith("http"):
            return "<url>"
        if STAMP.match(value):
            return "<time>"
        return UUID.sub(
            lambda m: self.ids.setdefault(m.group(), f"<id{len(self.ids)}>"), value
        )


def golden(name: str, events: list[dict[str, Any]]) -> None:
    """Compare with the golden file; TILEWORK_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / f"{name}.json"
    if os.environ.get("TILEWORK_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(events, indent=2, ensure_ascii=False) + "\n")
    assert events == json.loads(path.read_text()), f"{name} drifted from {path}"


def lifecycle(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RUN_STARTED, the progress events folded into one, and RUN_FINISHED.

    How node changes are grouped into RUN_PROGRESS events depends on timing, so the
    progress events are folded: the last event's fields with each node's last update.
    """
    ordered = sorted(events, key=lambda e: e["sequence"])
    progress = [e for e in ordered if e["flag"] == "RUN_PROGRESS"]
    nodes: dict[str, dict[str, Any]] = {}
    for event in progress:
        for node in event["updated_nodes"]:
            nodes[node["original_node_id"]] = node
    folded = {**progress[-1], "updated_nodes": list(nodes.values())}
    normalize = Normalizer()
    chosen = [ordered[0], folded, ordered[-1]]
    return [{**normalize(e), "sequence": "<n>"} for e in chosen]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("hooks") / "clip.mp4", seconds=2)


def reframe_agent(api: Api) -> tuple[str, dict[str, str]]:
    return api.create_agent(
        [("in", VideoInput.node_type_id, {}), ("frame", Reframe.node_type_id, {})],
        [("in", "frame")],
    )


def run_to_end(api: Api, receiver: Receiver, body: dict[str, Any]) -> str:
    agent_id, _ = reframe_agent(api)
    run_id = api.ok(
        api.post(f"/agent/{agent_id}/run", {**body, "callback_url": receiver.url})
    )["run_id"]
    api.wait(run_id)
    receiver.wait_for("RUN_FINISHED", run_id)
    return str(run_id)


def test_completed_run_payloads_match_the_golden_file(
    api: Api, receiver: Receiver, clip: Path
) -> None:
    run_id = run_to_end(api, receiver, {"video_ids": [api.upload(clip)]})
    events = receiver.events(run_id)
    for event in events:
        check_event(event)
    golden("completed_run", lifecycle(events))


def test_failed_run_payloads_carry_grouped_errors(
    api: Api, receiver: Receiver, tmp_path: Path
) -> None:
    run_id = run_to_end(api, receiver, {"video_urls": ["http://127.0.0.1:9/none.mp4"]})
    events = receiver.events(run_id)
    for event in events:
        check_event(event)
    finished = next(e for e in events if e["flag"] == "RUN_FINISHED")
    assert finished["status"] == "failed" and finished["errors"][0]["messages"]
    golden("failed_run", lifecycle(events))


def test_the_test_webhook(api: Api, receiver: Receiver) -> None:
    answer = api.ok(api.post("/webhooks/test", {"url": receiver.url}))
    assert answer["success"] and answer["status_code"] == 200
    (event,) = receiver.events("test")
    assert set(event) == {"flag", "run_id", "timestamp", "message", "event_id"}
    assert event["flag"] == "TEST" and STAMP.match(event["timestamp"])
    refused = api.ok(api.post("/webhooks/test", {"url": "http://169.254.169.254/x"}))
    assert refused["success"] is False and "metadata" in refused["error"]


def test_settings_are_masked_and_rotation_signs_with_both_keys(
    api: Api, receiver: Receiver, clip: Path
) -> None:
    shown = api.ok(
        api.post(
            "/webhooks/settings",
            {"secret": "s3cret-value-long", "signing_secret": KEY_A},
        )
    )
    assert "s3cret-value-long" not in json.dumps(shown) and KEY_A not in json.dumps(
        shown
    )
    api.ok(api.post("/webhooks/settings", {"signing_secret": KEY_B}))
    assert api.ok(api.get("/webhooks/settings"))["previous_signing_secret_expires_at"]
    bad = api.post("/webhooks/settings", {"signing_secret": "not-a-key"})
    assert bad.status_code == 400

    run_id = run_to_end(api, receiver, {"video_ids": [api.upload(clip)]})
    items = [r for r in receiver.received if r.json.get("run_id") == run_id]
    for item in items:
        assert len(item.headers["webhook-signature"].split()) == 2
        assert Webhook(KEY_A).verify(item.body, item.headers)["run_id"] == run_id
        assert Webhook(KEY_B).verify(item.body, item.headers)["run_id"] == run_id
        assert item.headers["x-mosaic-signature"] == "s3cret-value-long"
    api.ok(api.post("/webhooks/settings", {"secret": None, "signing_secret": None}))


def test_delivery_log_and_redelivery(api: Api, receiver: Receiver, clip: Path) -> None:
    run_id = run_to_end(api, receiver, {"video_ids": [api.upload(clip)]})
    log = api.ok(api.get(f"/agent_run/{run_id}/webhooks"))["events"]
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    assert all(
        e["status"] == "delivered" and e["attempts"][0]["status_code"] == 200
        for e in log
    )

    first = log[0]["event_id"]
    api.ok(api.post(f"/agent_run/{run_id}/webhooks/{first}/redeliver"))
    deadline = time.monotonic() + 10
    while sum(r.json.get("event_id") == first for r in receiver.received) < 2:
        assert time.monotonic() < deadline, "the redelivery never arrived"
        time.sleep(0.05)
    missing = api.post(f"/agent_run/{run_id}/webhooks/{UUID.pattern[:0]}nope/redeliver")
    assert missing.status_code == 404


def test_loopback_callbacks_are_refused_unless_allowed(
    tmp_path: Path, clip: Path
) -> None:
    # Given a server whose operator allowed no private ranges
    server = ServerProcess(
        tmp_path / "strict", env={"TILEWORK_WEBHOOK_ALLOW_NETWORKS": ""}
    )
    server.start()
    receiver = Receiver()
    try:
        api = server.client()
        agent_id, _ = reframe_agent(api)
        body = {"video_ids": [api.upload(clip)], "callback_url": receiver.url}
        run_id = api.ok(api.post(f"/agent/{agent_id}/run", body))["run_id"]
        api.wait(run_id)

        # Then the loopback receiver gets nothing, and the log says why
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = api.ok(api.get(f"/agent_run/{run_id}/webhooks"))["events"]
            if log and all(e["status"] == "failed" for e in log):
                break
            time.sleep(0.1)
        assert all(e["status"] == "failed" for e in log)
        assert all(a["outcome"] == "blocked" for e in log for a in e["attempts"])
        assert "loopback" in log[0]["attempts"][0]["error"]
        assert receiver.received == []
    finally:
        receiver.close()
        server.stop()


def test_a_server_killed_mid_delivery_loses_no_event(
    tmp_path: Path, clip: Path
) -> None:
    # Given a receiver that answers slowly and a run producing several events
    receiver = Receiver()

    def slow(item: Received) -> tuple[int, dict[str, str]]:
        time.sleep(0.4)
        return 200, {}

    receiver.respond = slow
    server = ServerProcess(tmp_path / "crash").start()
    try:
        api = server.client()
        agent_id, _ = reframe_agent(api)
        body = {"video_ids": [api.upload(clip)], "callback_url": receiver.url}
        run_id = api.ok(api.post(f"/agent/{agent_id}/run", body))["run_id"]
        api.wait(run_id)
        committed = len(api.ok(api.get(f"/agent_run/{run_id}/webhooks"))["events"])

        # When the server is killed while events are still going out
        server.kill()
        server.start()
        receiver.wait_for("RUN_FINISHED", run_id, timeout=30)

        # Then every event arrived at least once, ids unchanged, first arrivals in order
        arrived = [r.json for r in receiver.received]
        first_seen: list[int] = []
        for event in arrived:
            if event["sequence"] not in first_seen:
                first_seen.append(event["sequence"])
        assert first_seen == list(range(1, committed + 1))
        ids = {e["sequence"]: e["event_id"] for e in arrived}
        assert all(ids[e["sequence"]] == e["event_id"] for e in arrived)
        duplicates = len(arrived) - committed
        print(f"{committed} events, {duplicates} delivered twice after the crash")
    finally:
        receiver.close()
        server.stop()


@pytest.mark.parametrize(
    "settings",
    [
        {"signing_secret": "whsec_"},
        {"signing_secret": "whsec_notbase64!!"},
        {"signing_secret": "whsec_c2hvcnQ="},
        {"secret": "sécret"},
        {"secret": "a\r\nX-Injected: 1"},
    ],
)
def test_secrets_that_could_not_be_sent_are_refused(
    api: Api, settings: dict[str, str]
) -> None:
    answer = api.post("/webhooks/settings", settings)
    assert answer.status_code == 400, answer.text
    field = next(iter(settings))
    assert field in answer.json()["detail"]
