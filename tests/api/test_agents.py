"""Agents and node types over HTTP, against a real ``tilework serve`` process."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from harness import Api, ServerProcess

VIDEO_INPUT = "9451e6ff-ac7f-4317-9055-a2f35f641b29"
REFRAME = "0e3a90e4-173f-42fc-b7ef-0df6a062e26c"
AUDIO_ENHANCE = "425274c9-7735-4cf2-b7cb-46c6a7f0066a"
UNKNOWN_TYPE = "00000000-0000-4000-8000-000000000000"
RATIOS = ["9:16", "1:1", "4:5", "16:9"]
OFFERED = "param 'aspect_ratio': Input should be '9:16', '1:1', '4:5' or '16:9'"

Ops = list[dict[str, Any]]


def chain(api: Api) -> tuple[str, dict[str, str]]:
    """An agent ``in -> frame -> sound``; returns its id and the created node ids."""
    return api.create_agent(
        [
            ("in", VIDEO_INPUT, {}),
            ("frame", REFRAME, {"aspect_ratio": "1:1"}),
            ("sound", AUDIO_ENHANCE, {"target_lufs": -16}),
        ],
        [("in", "frame"), ("frame", "sound")],
    )


def node(kind: str, ref: str | None = None, **params: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "create_node", "node_type_id": kind}
    if ref is not None:
        op["temp_ref_id"] = ref
    if params:
        op["params_used"] = params
    return op


def update(node_id: str, **params: Any) -> dict[str, Any]:
    return {"op": "update_node", "agent_node_id": node_id, "params_used": params}


def ref_edge(source_ref: str, target_ref: str) -> dict[str, str]:
    return {
        "op": "create_connection",
        "source_temp_ref_id": source_ref,
        "target_temp_ref_id": target_ref,
    }


def edge(source: str, target: str, op: str = "create_connection") -> dict[str, str]:
    return {"op": op, "source_agent_node_id": source, "target_agent_node_id": target}


def listed(api: Api, limit: int = 100) -> list[str]:
    """Every agent id of the list, walked page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"limit": limit} | (
            {"cursor": cursor} if cursor else {}
        )
        page = api.ok(api.get("/agents", **query))
        ids += [a["id"] for a in page["agents"]]
        cursor = page["next_cursor"]
        assert len(page["agents"]) == limit if cursor else len(page["agents"]) <= limit
        if cursor is None:
            return ids


def graph(api: Api, agent_id: str) -> dict[str, Any]:
    return api.ok(api.get(f"/agent/{agent_id}"))  # type: ignore[no-any-return]


def edges(view: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (c["source_agent_node_id"], c["target_agent_node_id"])
        for c in view["connections"]
    }


def params(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["agent_node_id"]: n["params_used"] for n in view["agent_nodes"]}


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def refused(response: httpx.Response, status: int = 400) -> str:
    """The detail of an error response, after checking its status and code."""
    codes = {400: "validation_error", 403: "forbidden", 404: "not_found"}
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error"}
    assert body["error"] == codes[status]
    return str(body["detail"])


# Creating and reading


def test_create_with_operations_maps_each_temp_ref_to_its_new_node(api: Api) -> None:
    # Given a whole graph sent with the create call
    operations = [
        node(VIDEO_INPUT, "in"),
        node(REFRAME, "frame", aspect_ratio="4:5"),
        ref_edge("in", "frame"),
    ]

    # When the agent is created
    body = api.ok(
        api.post("/agent/create", {"name": "whole", "operations": operations})
    )

    # Then every temp ref maps to a new node id, and the stored graph uses those ids
    assert body["success"] is True and body["operations_applied"] == 3
    refs = body["created_nodes"]
    assert set(refs) == {"in", "frame"}
    assert all(uuid.UUID(value) for value in refs.values())
    view = graph(api, body["agent_id"])
    assert params(view) == {refs["in"]: {}, refs["frame"]: {"aspect_ratio": "4:5"}}
    assert edges(view) == {(refs["in"], refs["frame"])}


def test_get_agent_has_exactly_the_documented_shape(api: Api) -> None:
    # Given an agent with a description
    agent_id = api.ok(
        api.post(
            "/agent/create",
            {"name": "shape", "description": "d", "operations": [node(REFRAME, "r")]},
        )
    )["agent_id"]

    # When it is read
    view = graph(api, agent_id)

    # Then it has the fields of the contract; workspace_id is tilework's one addition
    assert set(view) == {"agent", "agent_nodes", "connections"}
    documented = {"id", "name", "description", "visibility", "created_at", "updated_at"}
    assert set(view["agent"]) == documented | {"workspace_id"}
    assert view["agent"]["id"] == agent_id and view["agent"]["name"] == "shape"
    assert view["agent"]["description"] == "d"
    assert view["agent"]["visibility"] == "private"
    assert view["agent"]["created_at"].endswith("Z")
    (tile,) = view["agent_nodes"]
    assert set(tile) == {"agent_node_id", "node_type", "params_used"}
    assert set(tile["node_type"]) == {
        "node_type_id",
        "node_type_name",
        "docs_url",
        "params_docs_url",
    }
    assert tile["node_type"]["node_type_id"] == REFRAME
    assert tile["node_type"]["node_type_name"] == "Reframe"
    assert view["connections"] == []


# Updating


def test_update_applies_all_five_operations_in_one_call(api: Api) -> None:
    # Given in -> frame -> sound
    agent_id, refs = chain(api)
    before = graph(api, agent_id)["agent"]

    # When one update creates, updates, deletes and rewires nodes, and renames
    operations = [
        node(AUDIO_ENHANCE, "late", denoise=False),
        update(refs["frame"], mode="pad_blur"),
        edge(refs["frame"], refs["sound"], "delete_connection"),
        {"op": "delete_node", "agent_node_id": refs["sound"]},
        {
            "op": "create_connection",
            "source_agent_node_id": refs["frame"],
            "target_temp_ref_id": "late",
        },
    ]
    body = api.ok(
        api.post(
            f"/agent/{agent_id}/update",
            {"name": "renamed", "visibility": "public", "operations": operations},
        )
    )

    # Then all of it is applied, and only the new node is reported
    assert body["operations_applied"] == 5
    late = body["created_nodes"]["late"]
    view = graph(api, agent_id)
    agent = view["agent"]
    assert agent["name"] == "renamed" and agent["visibility"] == "public"
    assert agent["created_at"] == before["created_at"]
    assert when(agent["updated_at"]) > when(before["updated_at"])
    assert params(view) == {
        refs["in"]: {},
        refs["frame"]: {"aspect_ratio": "1:1", "mode": "pad_blur"},
        late: {"denoise": False},
    }
    assert edges(view) == {(refs["in"], refs["frame"]), (refs["frame"], late)}


def test_a_batch_with_several_faults_reports_all_of_them_and_changes_nothing(
    api: Api,
) -> None:
    # Given an agent
    agent_id, refs = chain(api)
    before = graph(api, agent_id)

    # When one update holds six different faults, between valid operations
    operations = [
        node(REFRAME, "ok"),
        node(UNKNOWN_TYPE, "ghost"),
        node(REFRAME, "bad_ratio", aspect_ratio="2:3"),
        node(AUDIO_ENHANCE, "bad_param", loudness=3),
        edge(refs["frame"], refs["in"]),
        edge(refs["sound"], refs["sound"]),
        edge(refs["in"], refs["frame"]),
        {"op": "delete_node", "agent_node_id": refs["sound"]},
    ]
    detail = refused(
        api.post(f"/agent/{agent_id}/update", {"name": "x", "operations": operations})
    )

    # Then one 400 names every one of them
    faults = [
        f"operations[1] (create_node): unknown node_type_id '{UNKNOWN_TYPE}'",
        "(created by operations[2], temp_ref_id 'bad_ratio') [Reframe]: "
        + OFFERED
        + " (got '2:3')",
        "(created by operations[3], temp_ref_id 'bad_param') [Audio Enhance]: "
        "unknown param 'loudness'",
        f"node {refs['in']} [Video Input] is an input and takes no edges in",
        f"operations[5] (create_connection): node {refs['sound']} cannot connect",
        f"operations[6] (create_connection): {refs['in']} -> {refs['frame']} is "
        "already connected",
    ]
    assert [fault for fault in faults if fault not in detail] == [], detail

    # And the stored agent is exactly as it was
    assert graph(api, agent_id) == before


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        pytest.param(
            lambda r: [node(UNKNOWN_TYPE)],
            f"unknown node_type_id '{UNKNOWN_TYPE}'",
            id="unknown-node-type",
        ),
        pytest.param(
            lambda r: [update(r["frame"], zoom=2)],
            "[Reframe]: unknown param 'zoom'",
            id="unknown-param",
        ),
        pytest.param(
            lambda r: [node(REFRAME, aspect_ratio=5)],
            OFFERED + " (got 5)",
            id="ratio-of-wrong-type",
        ),
        pytest.param(
            lambda r: [node(REFRAME, aspect_ratio="2:3")],
            OFFERED + " (got '2:3')",
            id="ratio-not-offered",
        ),
        pytest.param(
            lambda r: [
                node(AUDIO_ENHANCE, "a"),
                {
                    "op": "create_connection",
                    "source_temp_ref_id": "a",
                    "target_agent_node_id": r["in"],
                },
            ],
            "[Video Input] is an input and takes no edges in",
            id="edge-into-video-input",
        ),
        pytest.param(
            lambda r: [edge(r["frame"], r["frame"])],
            "node {frame} cannot connect to itself",
            id="self-loop",
        ),
        pytest.param(
            lambda r: [edge(r["in"], r["frame"])],
            "{in} -> {frame} is already connected",
            id="duplicate-edge",
        ),
        pytest.param(
            lambda r: [edge(r["in"], r["sound"], "delete_connection")],
            "{in} -> {sound} is not connected",
            id="delete-missing-edge",
        ),
        pytest.param(
            lambda r: [{"op": "delete_node", "agent_node_id": str(uuid.UUID(int=7))}],
            f"no node '{uuid.UUID(int=7)}' in this agent",
            id="delete-missing-node",
        ),
        pytest.param(
            lambda r: [{"op": "rename_node"}],
            "operations[0]: unknown op 'rename_node'",
            id="unknown-op",
        ),
    ],
)
def test_an_invalid_operation_is_refused_with_its_reason(
    api: Api, operations: Callable[[dict[str, str]], Ops], expected: str
) -> None:
    # Given in -> frame -> sound
    agent_id, refs = chain(api)
    before = graph(api, agent_id)

    # When an update holds one invalid operation
    response = api.post(f"/agent/{agent_id}/update", {"operations": operations(refs)})

    # Then it is refused with the reason, and the agent is unchanged
    assert expected.format(**refs) in refused(response)
    assert graph(api, agent_id) == before


def test_a_cycle_is_refused_and_named(api: Api) -> None:
    # Given in -> frame -> sound
    agent_id, refs = chain(api)
    before = graph(api, agent_id)

    # When an update closes the loop sound -> frame
    response = api.post(
        f"/agent/{agent_id}/update",
        {"operations": [edge(refs["sound"], refs["frame"])]},
    )

    # Then the 400 spells the cycle out, node by node, and nothing changed
    detail = refused(response)
    loop = [refs["frame"], refs["sound"], refs["frame"]]
    rotated = [refs["sound"], refs["frame"], refs["sound"]]
    assert any(
        f"the graph has a cycle: {' -> '.join(c)}" in detail for c in (loop, rotated)
    )
    assert graph(api, agent_id) == before


def test_delete_node_drops_its_edges(api: Api) -> None:
    # Given in -> frame -> sound
    agent_id, refs = chain(api)

    # When the middle node is deleted
    api.ok(
        api.post(
            f"/agent/{agent_id}/update",
            {"operations": [{"op": "delete_node", "agent_node_id": refs["frame"]}]},
        )
    )

    # Then both of its edges are gone with it
    view = graph(api, agent_id)
    assert set(params(view)) == {refs["in"], refs["sound"]}
    assert view["connections"] == []


def test_update_node_merges_params(api: Api) -> None:
    # Given a Reframe with an aspect ratio
    agent_id, refs = chain(api)

    # When two other params are set, and then one of them again
    for change in ({"mode": "pad_blur", "max_height": 720}, {"max_height": 1080}):
        op = {
            "op": "update_node",
            "agent_node_id": refs["frame"],
            "params_used": change,
        }
        api.ok(api.post(f"/agent/{agent_id}/update", {"operations": [op]}))

    # Then the params are merged, not replaced
    assert params(graph(api, agent_id))[refs["frame"]] == {
        "aspect_ratio": "1:1",
        "mode": "pad_blur",
        "max_height": 1080,
    }


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ({"temp_ref_id": ["a"]}, "temp_ref_id must be a string, not ['a']"),
        ({"temp_ref_id": {"a": 1}}, "temp_ref_id must be a string"),
        ({"params_used": []}, "params_used must be an object, not []"),
        ({"params_used": "9:16"}, "params_used must be an object, not '9:16'"),
        ({"node_type_id": [REFRAME]}, f"unknown node_type_id ['{REFRAME}']"),
    ],
)
def test_a_malformed_create_node_is_a_400_not_a_crash(
    api: Api, operation: dict[str, Any], expected: str
) -> None:
    # Given a create_node with a field of the wrong JSON type
    agent_id, _ = chain(api)
    before = graph(api, agent_id)
    op = {**node(REFRAME), **operation}

    # When it is sent
    response = api.post(f"/agent/{agent_id}/update", {"operations": [op]})

    # Then it is a 400 naming the field, the agent is unchanged, and the same
    # connection keeps working
    assert expected in refused(response)
    assert graph(api, agent_id) == before


@pytest.mark.parametrize(
    "operation",
    [
        {
            "op": "create_connection",
            "source_agent_node_id": [],
            "target_agent_node_id": "x",
        },
        {
            "op": "delete_connection",
            "source_agent_node_id": {},
            "target_temp_ref_id": [],
        },
        {"op": "update_node", "agent_node_id": ["x"], "params_used": {}},
        {"op": "delete_node", "agent_node_id": {"id": 1}},
        "create_node",
    ],
)
def test_node_ids_of_the_wrong_type_are_a_400_not_a_crash(
    api: Api, operation: Any
) -> None:
    # Given an agent
    agent_id, _ = chain(api)
    before = graph(api, agent_id)

    # When an operation names nodes with lists or objects instead of ids
    response = api.post(f"/agent/{agent_id}/update", {"operations": [operation]})

    # Then it is refused, and the agent (and the connection) are fine
    refused(response)
    assert graph(api, agent_id) == before


# Wrong JSON


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": 123}, "name: Input should be a valid string"),
        ({"name": "a", "operations": "x"}, "operations: Input should be a valid list"),
        ({"name": "a", "visibility": "secret"}, "visibility: Input should be"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({}, "name is required"),
        ([{"name": "a"}], "the body must be a JSON object"),
        (b'{"name": "a",', "the body is not valid JSON"),
        ({"name": "a\u0000b"}, "name must not contain a NUL character"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_validation_error(
    api: Api, body: Any, expected: str
) -> None:
    # Given the agents there are
    before = listed(api)

    # When a create body is not what the contract says
    if isinstance(body, bytes):
        headers = {"content-type": "application/json"}
        response = api.http.post("/agent/create", content=body, headers=headers)
    else:
        response = api.post("/agent/create", body)

    # Then it is a 400 validation_error naming the problem, and nothing was created
    assert expected in refused(response)
    assert listed(api) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": 123},
        {"operations": "x"},
        {"description": 5},
        {"operations": [{"op": 1}]},
    ],
)
def test_an_update_body_of_the_wrong_shape_changes_nothing(
    api: Api, body: dict[str, Any]
) -> None:
    # Given an agent
    agent_id, _ = chain(api)
    before = graph(api, agent_id)

    # When an update body has a field of the wrong JSON type
    response = api.post(f"/agent/{agent_id}/update", body)

    # Then it is a 400 validation_error and the agent is as it was
    refused(response)
    assert graph(api, agent_id) == before


# Listing


def test_agents_are_listed_newest_first_in_cursor_pages(api: Api) -> None:
    # Given three new agents
    made = [api.create_agent([], [])[0] for _ in range(3)]

    # When the list is walked two at a time, and a hundred at a time
    by_two, by_hundred = listed(api, 2), listed(api, 100)

    # Then the pages join up to the same list, newest first, without gaps or repeats
    assert by_two == by_hundred and len(set(by_two)) == len(by_two)
    assert by_two[:3] == made[::-1]
    first = api.ok(api.get("/agents", limit=1))
    assert [a["id"] for a in first["agents"]] == made[-1:] and first["next_cursor"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "is not a cursor this server issued"),
    ],
)
def test_bad_page_parameters_are_refused(
    api: Api, query: dict[str, Any], expected: str
) -> None:
    assert expected in refused(api.get("/agents", **query))


def test_a_forged_cursor_with_a_naive_timestamp_is_a_400(api: Api) -> None:
    raw = json.dumps(["2020-01-01T00:00:00", str(uuid.uuid4())]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    refused(api.get("/agents", cursor=cursor))


# Duplicate and delete


def test_duplicate_makes_new_ids_with_the_same_shape(api: Api) -> None:
    # Given in -> frame -> sound
    agent_id, _ = chain(api)
    original = graph(api, agent_id)

    # When it is duplicated
    body = api.ok(api.post(f"/agent/{agent_id}/duplicate"))

    # Then the copy has its own id and node ids, with the same types, params and edges
    assert body["success"] is True and body["agent_id"] != agent_id
    twin = graph(api, body["agent_id"])
    assert not set(params(twin)) & set(params(original))
    rename = {
        old["agent_node_id"]: new["agent_node_id"]
        for old, new in zip(original["agent_nodes"], twin["agent_nodes"], strict=True)
    }
    for old, new in zip(original["agent_nodes"], twin["agent_nodes"], strict=True):
        assert new["node_type"] == old["node_type"]
        assert new["params_used"] == old["params_used"]
    assert edges(twin) == {(rename[s], rename[t]) for s, t in edges(original)}

    # And the original is untouched
    assert graph(api, agent_id) == original


def test_delete_is_soft_and_hides_the_agent_everywhere(api: Api) -> None:
    # Given an agent
    agent_id, _ = chain(api)

    # When it is deleted
    body = api.ok(api.post(f"/agent/{agent_id}/delete"))

    # Then it is gone from every route, and from the list
    assert body == {"success": True, "agent_id": agent_id}
    refused(api.get(f"/agent/{agent_id}"), 404)
    for action in ("update", "duplicate", "delete", "run"):
        refused(api.post(f"/agent/{agent_id}/{action}", {}), 404)
    assert agent_id not in listed(api)


@pytest.mark.parametrize("agent_id", ["no-such-agent", str(uuid.uuid4()), "a%00b"])
def test_an_unknown_agent_is_a_404(api: Api, agent_id: str) -> None:
    assert "No agent" in refused(api.get(f"/agent/{agent_id}"), 404)
    assert "No agent" in refused(api.post(f"/agent/{agent_id}/update", {}), 404)


# Node types


def test_node_types_carry_a_json_schema_of_their_params(api: Api) -> None:
    # When the node types are listed
    types = api.ok(api.get("/node_types"))["node_types"]

    # Then the implemented tiles are there under the public catalog's ids
    by_id = {t["node_type_id"]: t for t in types}
    assert by_id[VIDEO_INPUT]["node_type_name"] == "Video Input"
    assert by_id[REFRAME]["node_type_name"] == "Reframe"
    assert by_id[AUDIO_ENHANCE]["node_type_name"] == "Audio Enhance"
    for kind in types:
        assert {"node_type_id", "node_type_name", "docs_url", "params_docs_url"} <= set(
            kind
        )
        assert kind["params_schema"]["type"] == "object"
        assert kind["params_schema"].get("additionalProperties") is False

    # And one type reads the same on its own, with Reframe's ratios in its schema
    reframe = api.ok(api.get(f"/node_type/{REFRAME}"))
    assert reframe == by_id[REFRAME]
    ratio = reframe["params_schema"]["properties"]["aspect_ratio"]
    assert ratio["enum"] == RATIOS and ratio["default"] == "9:16"


def test_an_unknown_node_type_is_a_404(api: Api) -> None:
    assert UNKNOWN_TYPE in refused(api.get(f"/node_type/{UNKNOWN_TYPE}"), 404)


def test_a_param_is_held_to_the_type_its_schema_publishes(api: Api) -> None:
    schema = api.ok(api.get(f"/node_type/{REFRAME}"))["params_schema"]
    assert schema["properties"]["max_height"]["type"] == "integer"
    response = api.post(
        "/agent/create",
        {"name": "lax", "operations": [node(REFRAME, max_height="720")]},
    )
    assert "max_height" in refused(response)


def test_a_tile_without_an_input_does_not_crash_its_run(api: Api) -> None:
    # Given an agent whose only tile needs a video but has no input
    agent_id, _ = api.create_agent([("sound", AUDIO_ENHANCE, {})], [])

    # When it is run
    response = api.post(f"/agent/{agent_id}/run", {})

    # Then it is refused, or it fails saying what is missing, never "internal error"
    if response.status_code == 400:
        return
    run = api.wait(api.ok(response)["run_id"], timeout=30)
    assert run["status"] == "failed"
    assert "internal error" not in run["status_message"]


# Concurrency


@pytest.mark.parametrize(
    "backend", ["server", pytest.param("pg_server", marks=pytest.mark.postgres)]
)
def test_concurrent_updates_of_one_agent_all_land(
    request: pytest.FixtureRequest, backend: str
) -> None:
    # Given an agent with one input, on SQLite and on PostgreSQL
    process: ServerProcess = request.getfixturevalue(backend)
    owner = process.client()
    agent_id, refs = owner.create_agent([("in", VIDEO_INPUT, {})], [])

    # When six clients each add a tile under the input at the same time
    def add(index: int) -> int:
        client = process.client()
        ops = [
            node(AUDIO_ENHANCE, "new"),
            {
                "op": "create_connection",
                "source_agent_node_id": refs["in"],
                "target_temp_ref_id": "new",
            },
        ]
        try:
            response = client.post(f"/agent/{agent_id}/update", {"operations": ops})
            return response.status_code
        finally:
            client.close()

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(add, range(6)))

    # Then every update succeeds and none is lost
    assert statuses == [200] * 6
    view = graph(owner, agent_id)
    assert len(view["agent_nodes"]) == 7 and len(view["connections"]) == 6
    owner.close()
