"""The webhook contract's field lists, checked field for field."""

from __future__ import annotations

from typing import Any

COMMON = {"flag", "agent_id", "run_id", "status", "node_status_counts", "triggered_by"}
EXTRA = {"event_id", "sequence", "created_at"}
BY_FLAG = {
    "RUN_STARTED": COMMON | EXTRA | {"inputs"},
    "RUN_PROGRESS": COMMON | EXTRA | {"updated_nodes"},
    "RUN_FINISHED": COMMON
    | EXTRA
    | {"status_message", "needs_credits", "errors", "inputs", "outputs"},
}
UPDATED_NODE = {"original_node_id", "status", "status_message", "errors", "outputs"}
OUTPUT = {
    "id",
    "video_url",
    "thumbnail_url",
    "premiere_prproj_url",
    "completed_at",
    "original_node_id",
}
INPUT = {"video_url", "thumbnail_url"}
COUNTS = {"completed", "in_progress", "failed"}
NODE_STATUSES = {
    "completed",
    "running",
    "queued",
    "failed",
    "blocked",
    "partial_complete",
    "cancelled",
}


def check_event(event: dict[str, Any]) -> None:
    """Fail unless ``event`` has exactly its flag's fields, of the right types."""
    flag = event["flag"]
    assert set(event) == BY_FLAG[flag], (
        f"{flag} fields: {sorted(set(event) ^ BY_FLAG[flag])}"
    )
    assert set(event["node_status_counts"]) == COUNTS
    assert isinstance(event["sequence"], int) and event["sequence"] >= 1
    assert event["triggered_by"] is None or isinstance(event["triggered_by"], dict)
    for item in event.get("inputs", []):
        assert set(item) == INPUT
    for node in event.get("updated_nodes", []):
        assert set(node) == UPDATED_NODE
        assert node["status"] in NODE_STATUSES
        assert isinstance(node["errors"], list)
        for output in node["outputs"]:
            check_output(output)
    for output in event.get("outputs", []):
        check_output(output)
    if flag == "RUN_FINISHED":
        assert isinstance(event["needs_credits"], bool)
        assert isinstance(event["errors"], list)
        for group in event["errors"]:
            assert set(group) == {"original_node_id", "messages"}


def check_output(output: dict[str, Any]) -> None:
    """The contract's output fields, plus ``subtitle_urls`` when a render has them."""
    extra = set(output) - OUTPUT
    assert set(output) >= OUTPUT and extra <= {"subtitle_urls"}, sorted(output)
