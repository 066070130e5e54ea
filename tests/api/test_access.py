"""Who may do what: keys, scopes, organizations and workspaces, over real HTTP."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from harness import ADMIN_KEY, Api, ServerProcess, free_port
from tilework.api.app import create_app
from tilework.config import Settings
from tilework.service import Tilework

REFRAME = "0e3a90e4-173f-42fc-b7ef-0df6a062e26c"
VIDEO_INPUT = "9451e6ff-ac7f-4317-9055-a2f35f641b29"


def refused(response: httpx.Response, status: int) -> str:
    """The detail of an error response, after checking its status and code."""
    codes = {400: "validation_error", 401: "invalid_api_key", 403: "forbidden"}
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error"}
    assert body["error"] == codes.get(status, "not_found")
    return str(body["detail"])


def listed(api: Api) -> list[str]:
    return [a["id"] for a in api.ok(api.get("/agents", limit=100))["agents"]]


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[Api]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def owned(admin: Api) -> dict[str, Any]:
    """An agent of the first organization, and a run of it (it fails at once)."""
    agent_id, _ = admin.create_agent(
        [("in", VIDEO_INPUT, {}), ("frame", REFRAME, {})], [("in", "frame")]
    )
    dead_link = f"http://127.0.0.1:{free_port()}/gone.mp4"
    run_id = admin.ok(
        admin.post(f"/agent/{agent_id}/run", {"video_urls": [dead_link]})
    )["run_id"]
    agent = admin.ok(admin.get(f"/agent/{agent_id}"))
    return {"agent_id": agent_id, "run_id": run_id, "agent": agent}


@pytest.fixture(scope="module")
def other(server: ServerProcess) -> Iterator[tuple[dict[str, str], Api]]:
    """A second organization: its ids, and a client with its admin key."""
    created = json.loads(server.cli("orgs", "create", "Other"))
    client = server.client(created["api_key"])
    yield created, client
    client.close()


@pytest.fixture(scope="module")
def workspaces(server: ServerProcess, admin: Api, owned: dict[str, Any]) -> list[str]:
    """The first organization's default workspace and a second one."""
    first = owned["agent"]["agent"]["workspace_id"]
    organization = admin.ok(admin.get("/whoami"))["organization_id"]
    second = server.cli(
        "workspaces", "create", "Second", "--organization", organization
    )
    return [first, second]


# Keys


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        f"Basic {ADMIN_KEY}",
        ADMIN_KEY,
        "Bearer tw_not_a_key_at_all",
        f"Bearer {ADMIN_KEY}x",
        f"Bearer {ADMIN_KEY[:-1]}",
    ],
)
def test_a_call_without_a_valid_key_is_401(
    server: ServerProcess, admin: Api, authorization: str | None
) -> None:
    # Given a request with no key, a malformed header or a wrong key
    headers = {"Authorization": authorization} if authorization is not None else {}
    before = listed(admin)

    with httpx.Client(base_url=server.url, headers=headers) as anonymous:
        # When it reads, writes, or sends a body that is not even JSON
        reads = anonymous.get("/agents")
        writes = anonymous.post("/agent/create", json={"name": "intruder"})
        garbled = anonymous.post(
            "/agent/create", content=b"{", headers={"content-type": "application/json"}
        )
        me = anonymous.get("/whoami")

    # Then each is 401 invalid_api_key, and nothing was created
    for response in (reads, writes, garbled, me):
        assert "API key" in refused(response, 401)
    assert listed(admin) == before


def test_a_read_only_key_reads_but_cannot_write(
    server: ServerProcess, admin: Api, owned: dict[str, Any]
) -> None:
    # Given a key with only agents:read
    reader = server.client(server.cli("keys", "create", "--scopes", "agents:read"))
    before = listed(admin)

    # When it reads and then tries to create, update and delete
    assert owned["agent_id"] in listed(reader)
    assert reader.ok(reader.get(f"/agent/{owned['agent_id']}")) == owned["agent"]
    create = reader.post("/agent/create", {"name": "nope"})
    update = reader.post(f"/agent/{owned['agent_id']}/update", {"name": "nope"})
    delete = reader.post(f"/agent/{owned['agent_id']}/delete")
    run = reader.get(f"/agent_run/{owned['run_id']}")

    # Then the writes are 403 forbidden naming the scope, and nothing changed
    for response in (create, update, delete):
        assert "agents:write" in refused(response, 403)
    assert "agent_runs:read" in refused(run, 403)
    assert listed(admin) == before
    assert admin.ok(admin.get(f"/agent/{owned['agent_id']}")) == owned["agent"]
    reader.close()


def test_a_write_scope_does_not_imply_read(server: ServerProcess, admin: Api) -> None:
    # Given a key with only agents:write
    writer = server.client(server.cli("keys", "create", "--scopes", "agents:write"))

    # When it creates an agent, then tries to read agents and node types
    made = writer.ok(writer.post("/agent/create", {"name": "write-only"}))
    agent_id = made["agent_id"]
    reads = [
        writer.get("/agents"),
        writer.get(f"/agent/{agent_id}"),
        writer.get("/node_types"),
    ]

    # Then the write worked, and every read is 403 forbidden
    for response in reads:
        assert "agents:read" in refused(response, 403)
    assert admin.ok(admin.get(f"/agent/{agent_id}"))["agent"]["name"] == "write-only"
    writer.close()


def test_whoami_describes_the_key_and_its_organization(
    server: ServerProcess, admin: Api
) -> None:
    # Given a new key with two scopes
    scoped = server.client(
        server.cli("keys", "create", "--scopes", "agents:read,agent_runs:read")
    )

    # When both it and the admin key ask who they are
    mine, theirs = admin.ok(admin.get("/whoami")), scoped.ok(scoped.get("/whoami"))

    # Then both belong to the first organization, with their own scopes and times
    expected = {
        "organization_id",
        "organization_name",
        "created_at",
        "last_used_at",
        "scopes",
    }
    assert expected <= set(mine) and expected <= set(theirs)
    assert theirs["organization_id"] == mine["organization_id"]
    assert mine["organization_name"] == theirs["organization_name"] == "My organization"
    assert mine["scopes"] is None
    assert theirs["scopes"] == ["agents:read", "agent_runs:read"]
    now = datetime.now(UTC)
    created, used = when(theirs["created_at"]), when(theirs["last_used_at"])
    assert now - timedelta(minutes=1) < created <= used <= now + timedelta(seconds=5)
    scoped.close()


def test_keys_are_stored_hashed(server: ServerProcess) -> None:
    # Given a key made by the command line and used once
    key = server.cli("keys", "create", "--name", "hashed")
    client = server.client(key)
    assert client.ok(client.get("/whoami"))["scopes"] is None
    client.close()

    # When the database is opened directly
    database = server.data_dir / "tilework.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT * FROM api_keys").fetchall()

    # Then neither that key nor the admin key is in any column of any key's row,
    # nor anywhere in the database's files
    assert len(rows) >= 2
    for plain in (key, ADMIN_KEY):
        assert not any(plain in str(value) for row in rows for value in row)
        for path in server.data_dir.glob("tilework.db*"):
            assert plain.encode() not in path.read_bytes(), path.name


# Organizations


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/agent/{agent_id}"),
        ("POST", "/agent/{agent_id}/update"),
        ("POST", "/agent/{agent_id}/duplicate"),
        ("POST", "/agent/{agent_id}/delete"),
        ("POST", "/agent/{agent_id}/run"),
        ("GET", "/agent/{agent_id}/runs"),
        ("GET", "/agent_run/{run_id}"),
        ("GET", "/agent_run/{run_id}/nodes"),
        ("GET", "/agent_run/{run_id}/progress"),
        ("GET", "/agent_run/{run_id}/webhooks"),
        ("POST", "/agent_run/{run_id}/cancel"),
        ("POST", "/agent_run/{run_id}/resume"),
    ],
)
def test_another_organization_cannot_reach_an_agent_or_its_runs(
    admin: Api,
    owned: dict[str, Any],
    other: tuple[dict[str, str], Api],
    method: str,
    path: str,
) -> None:
    # Given an agent and a run of the first organization, and the second's admin key
    _, stranger = other
    url = path.format(**owned)
    body = {"name": "stolen", "video_urls": ["http://127.0.0.1:9/x.mp4"]}

    # When the second organization reaches for them
    response = stranger.get(url) if method == "GET" else stranger.post(url, body)

    # Then it is 404 not_found, exactly as for something that does not exist
    assert "No " in refused(response, 404)

    # And the agent and its run are untouched
    assert admin.ok(admin.get(f"/agent/{owned['agent_id']}")) == owned["agent"]
    run = admin.ok(admin.get(f"/agent_run/{owned['run_id']}"))
    assert run["agent_id"] == owned["agent_id"]
    runs = admin.ok(admin.get(f"/agent/{owned['agent_id']}/runs"))["runs"]
    assert [r["run_id"] for r in runs] == [owned["run_id"]]


def test_another_organization_lists_nothing_of_the_first(
    owned: dict[str, Any], other: tuple[dict[str, str], Api]
) -> None:
    # Given the second organization's key
    ids, stranger = other

    # When it lists agents and runs, and asks who it is
    agents = stranger.ok(stranger.get("/agents"))
    runs = stranger.ok(stranger.get("/agent_runs"))
    me = stranger.ok(stranger.get("/whoami"))

    # Then it sees its own organization, and none of the first's agents or runs
    assert agents == {"agents": [], "next_cursor": None}
    assert runs["runs"] == []
    assert me["organization_id"] == ids["organization_id"]
    assert me["organization_name"] == "Other"


# Workspaces


def test_an_agent_made_in_a_workspace_lives_there(
    server: ServerProcess, workspaces: list[str]
) -> None:
    # Given clients narrowed to each workspace, and one not narrowed
    first, second = workspaces
    in_first = server.client(**{"X-Workspace-Id": first})
    in_second = server.client(**{"X-Workspace-Id": second})
    anywhere = server.client()

    # When an agent is created with the second workspace's header
    made = in_second.ok(in_second.post("/agent/create", {"name": "second"}))
    agent_id = made["agent_id"]

    # Then it lives in the second workspace, visible there and without the header
    view = in_second.ok(in_second.get(f"/agent/{agent_id}"))
    assert view["agent"]["workspace_id"] == second
    assert anywhere.ok(anywhere.get(f"/agent/{agent_id}"))["agent"]["name"] == "second"
    assert agent_id in listed(in_second) and agent_id in listed(anywhere)

    # And the first workspace does not see it
    refused(in_first.get(f"/agent/{agent_id}"), 404)
    refused(in_first.post(f"/agent/{agent_id}/update", {"name": "x"}), 404)
    assert agent_id not in listed(in_first)
    for client in (in_first, in_second, anywhere):
        client.close()


def test_a_workspace_named_in_the_body_is_checked_like_the_header(
    server: ServerProcess, admin: Api, workspaces: list[str]
) -> None:
    # Given a client narrowed to the first workspace
    first, second = workspaces
    in_first = server.client(**{"X-Workspace-Id": first})

    # When agents are created in the second workspace through the body
    made = admin.ok(admin.post("/agent/create", {"name": "b", "workspace_id": second}))
    crossing = in_first.post("/agent/create", {"name": "c", "workspace_id": second})

    # Then without a header it lands there; across the header's narrowing it is a 404
    view = admin.ok(admin.get(f"/agent/{made['agent_id']}"))
    assert view["agent"]["workspace_id"] == second
    assert second in refused(crossing, 404)
    in_first.close()


def test_a_workspace_of_another_organization_is_a_404(
    server: ServerProcess,
    admin: Api,
    owned: dict[str, Any],
    workspaces: list[str],
    other: tuple[dict[str, str], Api],
) -> None:
    # Given the second organization's workspace, and the first's
    ids, _ = other
    foreign, first = ids["workspace_id"], workspaces[0]
    before = listed(admin)

    # When each organization names the other's workspace, by header or by body
    by_header = server.client(**{"X-Workspace-Id": foreign})
    stranger = server.client(ids["api_key"], **{"X-Workspace-Id": first})
    responses = [
        by_header.get("/agents"),
        by_header.get("/whoami"),
        by_header.post("/agent/create", {"name": "x"}),
        admin.post("/agent/create", {"name": "x", "workspace_id": foreign}),
        stranger.get("/agents"),
        stranger.get(f"/agent/{owned['agent_id']}"),
    ]
    by_header.close()
    stranger.close()

    # Then every one is 404 not_found, and nothing was created
    for response in responses:
        assert "workspace" in refused(response, 404)
    assert listed(admin) == before


# Errors


def test_a_crash_is_a_500_body_and_the_connection_stays_usable(
    tmp_path: Path,
) -> None:
    # Given the real application with one route that crashes, served on loopback
    tw = Tilework.build(Settings(data_dir=tmp_path), execute=False)
    app = create_app(tw, manage_lifecycle=False)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    port = free_port()
    served = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 10
            while not served.started and time.monotonic() < deadline:
                time.sleep(0.02)

            # When one keep-alive connection meets the crash twice, then a 404
            answers = [client.get("/crash"), client.get("/crash"), client.get("/x")]
    finally:
        served.should_exit = True
        thread.join(timeout=10)
        tw.db.dispose()

    # Then each crash is a 500 in the error format, and the connection lived on
    for answer in answers[:2]:
        assert answer.status_code == 500
        assert answer.json()["error"] == "internal_server_error"
        assert "boom" not in answer.text
    assert answers[2].json()["error"] == "not_found"


# The same on PostgreSQL


@pytest.fixture(scope="module")
def pg_pair(pg_server: ServerProcess) -> Iterator[tuple[Api, Api]]:
    owner = pg_server.client()
    stranger = pg_server.client(
        json.loads(pg_server.cli("orgs", "create", "Other"))["api_key"]
    )
    yield owner, stranger
    owner.close()
    stranger.close()


@pytest.mark.postgres
def test_postgres_create_read_and_list(pg_pair: tuple[Api, Api]) -> None:
    # Given a server on PostgreSQL
    owner, _ = pg_pair

    # When an agent is created
    agent_id, refs = owner.create_agent(
        [("in", VIDEO_INPUT, {}), ("frame", REFRAME, {"aspect_ratio": "16:9"})],
        [("in", "frame")],
    )

    # Then it reads back whole, and is listed first
    view = owner.ok(owner.get(f"/agent/{agent_id}"))
    assert {n["agent_node_id"]: n["params_used"] for n in view["agent_nodes"]} == {
        refs["in"]: {},
        refs["frame"]: {"aspect_ratio": "16:9"},
    }
    assert view["connections"] == [
        {"source_agent_node_id": refs["in"], "target_agent_node_id": refs["frame"]}
    ]
    assert listed(owner)[0] == agent_id


@pytest.mark.postgres
def test_postgres_keeps_organizations_apart(pg_pair: tuple[Api, Api]) -> None:
    # Given an agent of the first organization on PostgreSQL
    owner, stranger = pg_pair
    agent_id, _ = owner.create_agent([("in", VIDEO_INPUT, {})], [])
    before = owner.ok(owner.get(f"/agent/{agent_id}"))

    # When the second organization reaches for it, also with a NUL in the id
    attempts = [
        stranger.get(f"/agent/{agent_id}"),
        stranger.post(f"/agent/{agent_id}/update", {"name": "stolen"}),
        stranger.post(f"/agent/{agent_id}/delete"),
        stranger.get("/agent/a%00b"),
    ]

    # Then it gets 404s, lists nothing, and the agent is untouched
    for response in attempts:
        refused(response, 404)
    assert listed(stranger) == []
    assert owner.ok(owner.get(f"/agent/{agent_id}")) == before
