"""Status rules: pure functions from a run's state to what happens next.

Nothing here touches the database, a file or a process. :func:`plan` looks at a
snapshot of one run and returns the changes the scheduler must write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

NodeStatus = Literal[
    "not_started",
    "queued",
    "running",
    "completed",
    "partial_complete",
    "failed",
    "blocked",
    "cancelled",
]
RunStatus = Literal["running", "completed", "partial_complete", "failed", "cancelled"]
TaskStatus = Literal["queued", "running", "completed", "failed", "cancelled"]

NODE_DONE = frozenset({"completed", "partial_complete"})
NODE_DEAD = frozenset({"failed", "blocked", "cancelled"})
NODE_TERMINAL = NODE_DONE | NODE_DEAD
TASK_TERMINAL = frozenset({"completed", "failed", "cancelled"})
RESUMABLE_NODE = frozenset({"not_started", "blocked", "cancelled", "failed"})


@dataclass(frozen=True)
class TaskState:
    id: str
    status: str
    error: str | None = None
    needs_credits: bool = False


@dataclass(frozen=True)
class NodeState:
    id: str
    status: str
    upstream: tuple[str, ...]
    sources: tuple[Mapping[str, Any], ...] = ()
    is_input: bool = False
    tasks: tuple[TaskState, ...] = ()
    render_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewTask:
    node_id: str
    item: dict[str, Any]


@dataclass(frozen=True)
class NodeChange:
    node_id: str
    status: NodeStatus
    message: str | None = None
    needs_credits: bool = False


@dataclass(frozen=True)
class RunEnd:
    status: RunStatus
    message: str | None
    needs_credits: bool


@dataclass
class Plan:
    new_tasks: list[NewTask] = field(default_factory=list)
    node_changes: list[NodeChange] = field(default_factory=list)
    run_end: RunEnd | None = None


def node_status_from_tasks(tasks: Sequence[TaskState]) -> NodeStatus:
    """The status of a node whose tasks all finished, or that still has work."""
    statuses = [task.status for task in tasks]
    if any(status == "running" for status in statuses):
        return "running"
    if any(status == "queued" for status in statuses):
        return "queued"
    completed = statuses.count("completed")
    if completed == len(statuses):
        partly = any(task.error for task in tasks)
        return "partial_complete" if partly else "completed"
    if completed:
        return "partial_complete"
    if all(status == "cancelled" for status in statuses):
        return "cancelled"
    return "failed"


def plan(nodes: Sequence[NodeState]) -> Plan:
    """Decide, for one running run, which nodes start, finish or block."""
    result = Plan()
    status = {node.id: node.status for node in nodes}
    by_id = {node.id: node for node in nodes}

    for node in _topological(nodes):
        change = _next_status(node, status, by_id, result)
        if change is not None and change.status != status[node.id]:
            status[node.id] = change.status
            result.node_changes.append(change)

    if all(value in NODE_TERMINAL for value in status.values()):
        result.run_end = finish(nodes, status)
    return result


def _next_status(
    node: NodeState,
    status: Mapping[str, str],
    by_id: Mapping[str, NodeState],
    result: Plan,
) -> NodeChange | None:
    current = status[node.id]
    if current in NODE_TERMINAL:
        return None

    if node.tasks:
        return _status_from_tasks(node)

    if current != "not_started":
        return None

    upstream = [status[parent] for parent in node.upstream]
    if any(value in NODE_DEAD for value in upstream):
        return NodeChange(node.id, "blocked", _blocked_message(node, status))
    if not all(value in NODE_DONE for value in upstream):
        return None

    items = _items_for(node, by_id)
    if not items:
        return NodeChange(
            node.id, "failed", "No input reached this tile from upstream."
        )
    result.new_tasks.extend(NewTask(node.id, item) for item in items)
    return NodeChange(node.id, "queued")


def _status_from_tasks(node: NodeState) -> NodeChange:
    status = node_status_from_tasks(node.tasks)
    needs_credits = any(task.needs_credits for task in node.tasks)
    message = None
    if status in ("failed", "partial_complete"):
        message = _failure_message(node.tasks)
    return NodeChange(node.id, status, message, needs_credits)


def _items_for(node: NodeState, by_id: Mapping[str, NodeState]) -> list[dict[str, Any]]:
    if not node.upstream:
        if node.is_input:
            return [{"source": dict(source)} for source in node.sources]
        return [{}]
    return [
        {"render_id": render_id}
        for parent in node.upstream
        for render_id in by_id[parent].render_ids
    ]


def _blocked_message(node: NodeState, status: Mapping[str, str]) -> str:
    dead = [parent for parent in node.upstream if status[parent] in NODE_DEAD]
    return f"Blocked: an upstream tile did not finish ({status[dead[0]]})."


def _failure_message(tasks: Sequence[TaskState]) -> str:
    failed = [task for task in tasks if task.error]
    first = next((task.error for task in failed if task.error), None) or "Task failed."
    if len(tasks) == 1:
        return first
    return f"{len(failed)} of {len(tasks)} tasks failed: {first}"


def finish(nodes: Sequence[NodeState], status: Mapping[str, str]) -> RunEnd:
    """The run's final status once every node is terminal."""
    sinks = _sinks(nodes)
    outputs = sum(len(node.render_ids) for node in sinks)
    troubled = [node for node in nodes if status[node.id] != "completed"]
    needs_credits = any(task.needs_credits for node in nodes for task in node.tasks)

    if outputs == 0:
        return RunEnd("failed", _run_failure_message(nodes, status), needs_credits)
    if troubled:
        return RunEnd(
            "partial_complete", _run_failure_message(nodes, status), needs_credits
        )
    return RunEnd("completed", None, needs_credits)


def _sinks(nodes: Sequence[NodeState]) -> list[NodeState]:
    parents = {parent for node in nodes for parent in node.upstream}
    return [node for node in nodes if node.id not in parents]


def _run_failure_message(nodes: Sequence[NodeState], status: Mapping[str, str]) -> str:
    if any(task.needs_credits for node in nodes for task in node.tasks):
        return "The organization ran out of credits; upgrade the plan, then resume."
    for node in nodes:
        if status[node.id] in ("failed", "partial_complete"):
            return _failure_message(node.tasks) if node.tasks else "A tile failed."
    return "No outputs were produced."


def _topological(nodes: Sequence[NodeState]) -> list[NodeState]:
    by_id = {node.id: node for node in nodes}
    seen: set[str] = set()
    ordered: list[NodeState] = []

    def visit(node: NodeState) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        for parent in node.upstream:
            visit(by_id[parent])
        ordered.append(node)

    for node in nodes:
        visit(node)
    return ordered


def counts(statuses: Iterable[str]) -> dict[str, int]:
    """``node_status_counts``: completed, in progress and failed buckets."""
    result = {"completed": 0, "in_progress": 0, "failed": 0}
    for value in statuses:
        if value in NODE_DONE:
            result["completed"] += 1
        elif value in ("queued", "running"):
            result["in_progress"] += 1
        elif value == "failed":
            result["failed"] += 1
    return result
