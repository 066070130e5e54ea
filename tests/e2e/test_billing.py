"""Running out of credits, and the documented way back, through HTTP."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract import check_event
from harness import Api, Receiver, ServerProcess
from media_factory import make_video
from tilework.tiles.audio_enhance import AudioEnhance
from tilework.tiles.reframe import Reframe
from tilework.tiles.video_input import VideoInput

PRICES = json.dumps({"Reframe": 200, "Audio Enhance": 200})


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server where a three-tile run costs 400 credits and the free plan has 300."""
    process = ServerProcess(
        tmp_path_factory.mktemp("billed"),
        env={"TILEWORK_TILE_PRICES": PRICES, "TILEWORK_ADMIN_TOKEN": "operator-token"},
    )
    yield process.start()
    process.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2)


def three_tiles(api: Api) -> tuple[str, dict[str, str]]:
    return api.create_agent(
        [
            ("in", VideoInput.node_type_id, {}),
            ("frame", Reframe.node_type_id, {}),
            ("sound", AudioEnhance.node_type_id, {}),
        ],
        [("in", "frame"), ("frame", "sound")],
    )


def ledger_balances(server: ServerProcess) -> dict[str, tuple[int, int]]:
    """Per organization: the account's balance and the sum of its ledger."""
    with sqlite3.connect(server.data_dir / "tilework.db") as db:
        balances = dict(
            db.execute("SELECT organization_id, balance FROM credit_accounts")
        )
        sums = dict(
            db.execute(
                "SELECT organization_id, SUM(amount) FROM credit_entries GROUP BY 1"
            )
        )
    return {org: (balance, sums.get(org, 0)) for org, balance in balances.items()}


def test_a_run_out_of_credits_resumes_after_an_upgrade(
    billed: ServerProcess, receiver: Receiver, clip: Path
) -> None:
    api = billed.client()
    agent_id, refs = three_tiles(api)
    assert api.ok(api.get("/credits"))["balance"] == 300

    # Given a run that needs 400 credits on a free plan with 300
    body = {"video_ids": [api.upload(clip)], "callback_url": receiver.url}
    run_id = api.ok(api.post(f"/agent/{agent_id}/run", body))["run_id"]
    run = api.wait(run_id)

    # Then it stops, says why everywhere, and charged only the work that ran
    assert run["needs_credits"] is True and run["status"] == "failed"
    assert "credits" in run["status_message"]
    nodes = {
        n["original_node_id"]: n
        for n in api.ok(api.get(f"/agent_run/{run_id}/nodes"))["nodes"]
    }
    assert nodes[refs["frame"]]["status"] == "completed"
    assert (
        nodes[refs["sound"]]["needs_credits"]
        and nodes[refs["sound"]]["status"] == "failed"
    )
    assert "ran out of credits" in nodes[refs["sound"]]["errors"][0]
    first = receiver.wait_for("RUN_FINISHED", run_id)[0]
    check_event(first)
    assert first["needs_credits"] is True and first["outputs"] == []
    assert api.ok(api.get("/credits"))["balance"] == 100

    # When the documented recovery is followed: plan, plan list, upgrade with checkout
    assert api.ok(api.get("/plan"))["plan"]["id"] == "free"
    plans = {p["id"]: p for p in api.ok(api.get("/plan/list"))["plans"]}
    assert (
        plans["creator"]["price_usd"] == 50
        and plans["creator"]["credits_per_month"] == 2500
    )
    early = api.post(
        "/credits/settings",
        {"auto_topup": {"enabled": True, "threshold": 10, "quantity": 100}},
    )
    assert early.status_code == 403 and early.json()["error"] == "forbidden"

    back = "http://127.0.0.1:9/after-checkout"
    upgrade = api.ok(
        api.post("/plan/upgrade", {"plan_id": "creator", "success_url": back})
    )
    assert upgrade["requires_checkout"] is True
    page = httpx.get(upgrade["checkout_url"], follow_redirects=False)
    assert page.status_code == 200 and "creator" in page.text
    assert api.ok(api.get("/plan"))["plan"]["id"] == "free"

    billed.cli("billing", "approve", upgrade["checkout_id"])
    done = httpx.get(upgrade["checkout_url"], follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == back
    plan = api.ok(api.get("/plan"))
    assert plan["plan"]["id"] == "creator" and plan["credits"]["balance"] == 2600

    settings = {"auto_topup": {"enabled": True, "threshold": 500, "quantity": 1000}}
    assert api.ok(api.post("/credits/settings", settings))["auto_topup"]["enabled"]

    # And resumed, only the unfinished tile runs; a second RUN_FINISHED has outputs
    resumed = api.ok(api.post(f"/agent_run/{run_id}/resume"))
    assert resumed["requeued_nodes"] == [nodes[refs["sound"]]["agent_node_id"]]
    run = api.wait(run_id)
    assert run["status"] == "completed" and run["needs_credits"] is False
    second = receiver.wait_for("RUN_FINISHED", run_id, count=2)[-1]
    check_event(second)
    assert second["needs_credits"] is False and len(second["outputs"]) == 1
    assert api.ok(api.get("/credits"))["balance"] == 2400

    usage = api.ok(api.get("/credits/usage"))
    assert usage["used"] == 200
    for balance, total in ledger_balances(billed).values():
        assert balance == total and balance >= 0


def test_failed_work_costs_nothing(
    billed: ServerProcess, clip: Path, tmp_path: Path
) -> None:
    # Given an organization with credits and a video without audio
    other = json.loads(billed.cli("orgs", "create", "No audio"))
    api = billed.client(other["api_key"])
    agent_id, _ = api.create_agent(
        [("in", VideoInput.node_type_id, {}), ("sound", AudioEnhance.node_type_id, {})],
        [("in", "sound")],
    )
    silent = make_video(tmp_path / "silent.mp4", seconds=2, audio=False)

    # When Audio Enhance fails on it
    run = api.wait(
        api.ok(api.post(f"/agent/{agent_id}/run", {"video_ids": [api.upload(silent)]}))[
            "run_id"
        ]
    )

    # Then the credits held for the failed task were given back
    assert run["status"] == "failed" and run["needs_credits"] is False
    assert api.ok(api.get("/credits"))["balance"] == 300
    usage = api.ok(api.get("/credits/usage"))
    assert [e["kind"] for e in usage["entries"]] == ["grant", "hold", "release"]
    assert usage["used"] == 0


def test_auto_top_up_buys_once_per_crossing(billed: ServerProcess, clip: Path) -> None:
    # Given a creator plan with auto top-up below 2,300 credits
    org = json.loads(billed.cli("orgs", "create", "Top-up"))
    api = billed.client(org["api_key"])
    checkout = api.ok(api.post("/plan/upgrade", {"plan_id": "creator"}))
    admin = httpx.post(
        f"{billed.url}/admin/checkouts/{checkout['checkout_id']}/approve",
        headers={"Authorization": "Bearer operator-token"},
    )
    assert admin.status_code == 200 and admin.json()["status"] == "completed"
    settings = {"auto_topup": {"enabled": True, "threshold": 2300, "quantity": 700}}
    api.ok(api.post("/credits/settings", settings))

    # When two runs spend 800 credits
    agent_id, _ = three_tiles(api)
    video_id = api.upload(clip)
    for _ in range(2):
        api.wait(
            api.ok(api.post(f"/agent/{agent_id}/run", {"video_ids": [video_id]}))[
                "run_id"
            ]
        )

    # Then the balance crossed the threshold once and one top-up was bought at $2/100
    entries = api.ok(api.get("/credits/usage"))["entries"]
    topups = [e for e in entries if e["kind"] == "topup"]
    assert len(topups) == 1 and topups[0]["amount"] == 700 and topups[0]["usd"] == 14.0
    assert api.ok(api.get("/credits"))["balance"] == 300 + 2500 - 800 + 700


def test_admin_routes_need_the_operator_token(billed: ServerProcess) -> None:
    answer = httpx.get(
        f"{billed.url}/admin/checkouts", headers={"Authorization": "Bearer guess"}
    )
    assert answer.status_code == 401
    api = billed.client()
    assert api.post("/plan/upgrade", {"plan_id": "gold"}).status_code == 400
    assert (
        api.post(
            "/credits/settings",
            {"auto_topup": {"enabled": True, "threshold": -1, "quantity": 5}},
        ).status_code
        == 400
    )


@pytest.mark.postgres
def test_parallel_runs_on_postgres_never_overdraw(tmp_path: Path, clip: Path) -> None:
    # Given a server on PostgreSQL where Reframe costs 100 and the free plan has 300
    from harness import postgres_database

    with postgres_database() as url:
        server = ServerProcess(
            tmp_path / "pg",
            database_url=url,
            env={
                "TILEWORK_TILE_PRICES": json.dumps({"Reframe": 100}),
                "TILEWORK_WORKERS": "4",
            },
        ).start()
        try:
            api = server.client()
            agent_id, _ = api.create_agent(
                [
                    ("in", VideoInput.node_type_id, {}),
                    ("frame", Reframe.node_type_id, {}),
                ],
                [("in", "frame")],
            )
            video_id = api.upload(clip)

            # When five runs race for the credits of three
            runs = [
                api.ok(api.post(f"/agent/{agent_id}/run", {"video_ids": [video_id]}))[
                    "run_id"
                ]
                for _ in range(5)
            ]
            finished = [api.wait(run_id) for run_id in runs]

            # Then exactly three ran, two stopped for credits, and nothing was overdrawn
            statuses = sorted((run["status"], run["needs_credits"]) for run in finished)
            assert statuses == [("completed", False)] * 3 + [("failed", True)] * 2
            assert api.ok(api.get("/credits"))["balance"] == 0
            usage = api.ok(api.get("/credits/usage"))
            assert sum(e["amount"] for e in usage["entries"]) == 0
        finally:
            server.stop()


def test_plan_changes_cannot_mint_credits(billed: ServerProcess) -> None:
    # Given an organization on the creator plan
    org = json.loads(billed.cli("orgs", "create", "Switcher"))
    api = billed.client(org["api_key"])
    checkout = api.ok(api.post("/plan/upgrade", {"plan_id": "creator"}))
    billed.cli("billing", "approve", checkout["checkout_id"])
    balance = api.ok(api.get("/credits"))["balance"]

    # When it asks for a dearer plan, then a cheaper one, back and forth
    dearer = api.ok(api.post("/plan/upgrade", {"plan_id": "professional"}))
    cheaper = api.ok(api.post("/plan/upgrade", {"plan_id": "free"}))
    again = api.ok(api.post("/plan/upgrade", {"plan_id": "professional_annual"}))

    # Then every dearer plan needs a checkout, a cheaper one waits for the period's
    # end, and no credits appear out of nowhere
    assert dearer["requires_checkout"] and again["requires_checkout"]
    assert cheaper["requires_checkout"] is False and cheaper["effective_at"]
    plan = api.ok(api.get("/plan"))
    assert plan["plan"]["id"] == "creator" and plan["scheduled_plan"] == "free"
    assert api.ok(api.get("/credits"))["balance"] == balance


def test_checkout_links_and_top_up_values_are_checked(billed: ServerProcess) -> None:
    api = billed.client(json.loads(billed.cli("orgs", "create", "Links"))["api_key"])
    script = {"plan_id": "creator", "success_url": "javascript:alert(1)"}
    assert "success_url" in api.post("/plan/upgrade", script).json()["detail"]
    loose = {"auto_topup": {"enabled": "yes", "threshold": "10", "quantity": 5}}
    assert api.post("/credits/settings", loose).status_code == 400
