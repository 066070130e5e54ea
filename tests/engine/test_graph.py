"""Agent templates: edit operations and the runtime graph."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilework.engine.graph import Template, apply_operations, build_runtime, find_cycle

INPUT, STEP = "input-type", "step-type"


class Catalog:
    def name_of(self, node_type_id: str) -> str | None:
        return {INPUT: "Input", STEP: "Step"}.get(node_type_id)

    def is_input(self, node_type_id: str) -> bool:
        return node_type_id == INPUT

    def needs_input(self, node_type_id: str) -> bool:
        return node_type_id == STEP

    def check_params(self, node_type_id: str, params: Mapping[str, Any]) -> list[str]:
        return [f"unknown param {key!r}" for key in params if key != "level"]


def chain(*ops: dict[str, Any]) -> Any:
    return apply_operations(Template(), list(ops), Catalog())


def node(ref: str, kind: str = STEP, **params: Any) -> dict[str, Any]:
    return {
        "op": "create_node",
        "temp_ref_id": ref,
        "node_type_id": kind,
        "params_used": params,
    }


def edge(a: str, b: str) -> dict[str, Any]:
    return {"op": "create_connection", "source_temp_ref_id": a, "target_temp_ref_id": b}


def test_every_fault_of_a_batch_is_reported() -> None:
    result = chain(
        node("in", INPUT),
        node("x", "nope"),
        node("a", colour=1),
        edge("a", "in"),
        edge("a", "ghost"),
        {"op": "explode"},
    )
    text = "\n".join(result.problems)
    for fault in (
        "unknown node_type_id 'nope'",
        "unknown param 'colour'",
        "takes no edges in",
        "'ghost' names no created node",
        "unknown op 'explode'",
    ):
        assert fault in text, text


def test_a_cycle_is_named() -> None:
    result = chain(
        node("a"), node("b"), node("c"), edge("a", "b"), edge("b", "c"), edge("c", "a")
    )
    assert any("cycle" in p for p in result.problems)
    assert find_cycle(["x", "y"], [("x", "y"), ("y", "x")]) == ["x", "y", "x"]


def test_ignored_nodes_are_bypassed_and_params_overridden() -> None:
    result = chain(
        node("in", INPUT),
        node("a"),
        node("b"),
        node("c", level=1),
        edge("in", "a"),
        edge("a", "b"),
        edge("b", "c"),
    )
    assert result.problems == []
    ids = result.created_nodes
    runtime = build_runtime(
        result.template, ignore=[ids["a"], ids["b"]], overrides={ids["c"]: {"level": 5}}
    )
    by_original = {n.original_node_id: n for n in runtime}
    assert set(by_original) == {ids["in"], ids["c"]}
    assert by_original[ids["c"]].upstream == (by_original[ids["in"]].id,)
    assert by_original[ids["c"]].params == {"level": 5}
