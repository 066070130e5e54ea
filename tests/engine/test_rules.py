"""The status rules, on snapshots built by hand."""

from __future__ import annotations

from tilework.engine.rules import (
    NodeState,
    TaskState,
    counts,
    node_status_from_tasks,
    plan,
)


def task(status: str, error: str | None = None, credits: bool = False) -> TaskState:
    return TaskState(f"t-{status}", status, error, credits)


def test_a_node_status_follows_its_tasks() -> None:
    assert node_status_from_tasks([task("completed"), task("running")]) == "running"
    assert node_status_from_tasks([task("queued"), task("completed")]) == "queued"
    assert node_status_from_tasks([task("completed"), task("completed")]) == "completed"
    assert (
        node_status_from_tasks([task("completed"), task("failed")])
        == "partial_complete"
    )
    assert node_status_from_tasks([task("failed"), task("cancelled")]) == "failed"
    assert node_status_from_tasks([task("cancelled")]) == "cancelled"
    partly = TaskState("t", "completed", "2 of 3 outputs were made")
    assert node_status_from_tasks([partly, task("completed")]) == "partial_complete"


def test_an_input_node_gets_one_task_per_source() -> None:
    sources = ({"kind": "url", "ref": "a"}, {"kind": "url", "ref": "b"})
    result = plan([NodeState("in", "not_started", (), sources, is_input=True)])
    assert [t.item["source"]["ref"] for t in result.new_tasks] == ["a", "b"]
    assert [(c.node_id, c.status) for c in result.node_changes] == [("in", "queued")]
    assert result.run_end is None


def test_downstream_waits_then_gets_one_task_per_upstream_render() -> None:
    waiting = plan(
        [
            NodeState("in", "running", (), tasks=(task("running"),)),
            NodeState("cut", "not_started", ("in",)),
        ]
    )
    assert waiting.new_tasks == []

    ready = plan(
        [
            NodeState(
                "in",
                "completed",
                (),
                tasks=(task("completed"),),
                render_ids=("r1", "r2"),
            ),
            NodeState("cut", "not_started", ("in",)),
        ]
    )
    assert [t.item for t in ready.new_tasks] == [
        {"render_id": "r1"},
        {"render_id": "r2"},
    ]


def test_everything_below_a_failure_is_blocked_and_the_run_fails() -> None:
    result = plan(
        [
            NodeState("in", "running", (), tasks=(task("failed", "bad file"),)),
            NodeState("a", "not_started", ("in",)),
            NodeState("b", "not_started", ("a",)),
        ]
    )
    assert [(c.node_id, c.status) for c in result.node_changes] == [
        ("in", "failed"),
        ("a", "blocked"),
        ("b", "blocked"),
    ]
    assert result.run_end is not None
    assert result.run_end.status == "failed" and result.run_end.message == "bad file"


def test_some_outputs_make_a_partial_run() -> None:
    done = (task("completed"),)
    result = plan(
        [
            NodeState("in", "completed", (), tasks=done, render_ids=("r",)),
            NodeState("ok", "completed", ("in",), tasks=done, render_ids=("o",)),
            NodeState("bad", "running", ("in",), tasks=(task("failed", "boom"),)),
        ]
    )
    assert result.run_end is not None and result.run_end.status == "partial_complete"


def test_a_task_without_credits_marks_the_run() -> None:
    result = plan(
        [
            NodeState(
                "in", "running", (), tasks=(task("failed", "no credits", credits=True),)
            )
        ]
    )
    assert result.node_changes[0].needs_credits
    assert result.run_end is not None and result.run_end.needs_credits
    assert "credits" in (result.run_end.message or "")


def test_counts_bucket_statuses() -> None:
    statuses = [
        "completed",
        "partial_complete",
        "running",
        "queued",
        "failed",
        "blocked",
    ]
    assert counts(statuses) == {"completed": 2, "in_progress": 2, "failed": 1}
