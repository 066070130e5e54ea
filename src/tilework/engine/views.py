"""How runs, nodes and renders are shown: the shapes shared by the API and webhooks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.engine import rules
from tilework.store.models import Asset, Render, Run, RunNode, Task


class Links(Protocol):
    """Mints signed download links for stored media."""

    def media(
        self, key: str, *, filename: str | None = None, until: datetime | None = None
    ) -> str:
        """A link to ``key``; it never outlives ``until``, when the media expires."""
        ...

    def route(self, path: str, *, until: datetime | None = None) -> str:
        """A signed link to a route of this server, valid as long as media links."""
        ...


TypeDescriber = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Viewer:
    links: Links
    describe_type: TypeDescriber


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RunState:
    """A run with its nodes, tasks and renders, loaded in one go."""

    run: Run
    nodes: list[RunNode]
    tasks: list[Task]
    renders: list[Render]

    @classmethod
    def load(cls, session: Session, run: Run) -> RunState:
        nodes = session.scalars(
            select(RunNode).where(RunNode.run_id == run.id).order_by(RunNode.position)
        ).all()
        tasks = session.scalars(
            select(Task).where(Task.run_id == run.id).order_by(Task.created_at, Task.id)
        ).all()
        renders = session.scalars(
            select(Render)
            .where(Render.run_id == run.id)
            .order_by(Render.created_at, Render.position)
        ).all()
        return cls(run, list(nodes), list(tasks), list(renders))

    def tasks_of(self, node_id: str) -> list[Task]:
        return [task for task in self.tasks if task.node_id == node_id]

    def renders_of(self, node_id: str) -> list[Render]:
        return [render for render in self.renders if render.node_id == node_id]

    def sink_renders(self) -> list[Render]:
        parents = {parent for node in self.nodes for parent in node.upstream}
        sinks = {node.id for node in self.nodes if node.id not in parents}
        return [render for render in self.renders if render.node_id in sinks]

    def counts(self) -> dict[str, int]:
        return rules.counts(node.status for node in self.nodes)


def is_gone(expires_at: datetime | None, purged_at: datetime | None) -> bool:
    """True for media that expired or was deleted: no link is made to it."""
    if purged_at is not None:
        return True
    return expires_at is not None and expires_at <= datetime.now(UTC)


def output_view(render: Render, links: Links) -> dict[str, Any]:
    gone = is_gone(render.expires_at, render.purged_at)
    until = render.expires_at
    view: dict[str, Any] = {
        "id": render.id,
        "video_url": (
            None
            if gone
            else links.media(render.storage_key, filename=render.filename, until=until)
        ),
        "thumbnail_url": (
            links.media(render.thumbnail_key, until=until)
            if render.thumbnail_key and not gone
            else None
        ),
        "premiere_prproj_url": None,
        "completed_at": iso(render.created_at),
        "original_node_id": render.original_node_id,
    }
    if not gone and render.media_info.get("has_video") and render.extra.get("lineage"):
        view["premiere_prproj_url"] = links.route(
            f"/timelines/{render.id}.zip", until=until
        )
    subtitles = render.extra.get("subtitle_keys")
    if subtitles and not gone:
        view["subtitle_urls"] = {
            kind: links.media(key, until=until) for kind, key in subtitles.items()
        }
    return view


def errors_view(state: RunState) -> list[dict[str, Any]]:
    grouped: dict[str | None, list[str]] = defaultdict(list)
    for node in state.nodes:
        for task in state.tasks_of(node.id):
            if task.status in ("failed", "completed") and task.error:
                grouped[node.original_node_id].append(task.error)
        missing = not grouped.get(node.original_node_id)
        if node.status == "failed" and missing and node.status_message:
            grouped[node.original_node_id].append(node.status_message)
    return [
        {"original_node_id": key, "messages": value} for key, value in grouped.items()
    ]


def node_errors(state: RunState, node: RunNode) -> list[str]:
    errors = [
        t.error
        for t in state.tasks_of(node.id)
        if t.status in ("failed", "completed") and t.error
    ]
    if not errors and node.status == "failed" and node.status_message:
        return [node.status_message]
    return errors


def inputs_view(
    session: Session, state: RunState, links: Links
) -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = []
    for node in state.nodes:
        for source in node.sources:
            views.append(_input_view(session, source, links))
    return views


def _input_view(
    session: Session, source: dict[str, Any], links: Links
) -> dict[str, Any]:
    kind, ref = source.get("kind"), source.get("ref")
    if kind == "url":
        return {"video_url": ref, "thumbnail_url": None}
    if kind == "upload":
        asset = session.get(Asset, ref)
        if asset is not None and asset.storage_key:
            if is_gone(asset.expires_at, asset.purged_at):
                return {"video_url": None, "thumbnail_url": None}
            until = asset.expires_at
            return {
                "video_url": links.media(
                    asset.storage_key, filename=asset.filename, until=until
                ),
                "thumbnail_url": (
                    links.media(asset.thumbnail_key, until=until)
                    if asset.thumbnail_key
                    else None
                ),
            }
    if kind == "render":
        render = session.get(Render, ref)
        if render is not None:
            out = output_view(render, links)
            return {
                "video_url": out["video_url"],
                "thumbnail_url": out["thumbnail_url"],
            }
    return {"video_url": None, "thumbnail_url": None}


def run_view(session: Session, state: RunState, viewer: Viewer) -> dict[str, Any]:
    run = state.run
    return {
        "agent_id": run.agent_id,
        "run_id": run.id,
        "started_at": iso(run.started_at or run.created_at),
        "status": run.status,
        "status_message": run.status_message,
        "needs_credits": run.needs_credits,
        "errors": errors_view(state),
        "node_status_counts": state.counts(),
        "inputs": inputs_view(session, state, viewer.links),
        "outputs": [output_view(r, viewer.links) for r in state.sink_renders()],
        "triggered_by": run.triggered_by,
    }


def run_summary(session: Session, state: RunState, viewer: Viewer) -> dict[str, Any]:
    run = state.run
    return {
        "run_id": run.id,
        "agent_id": run.agent_id,
        "status": run.status,
        "status_message": run.status_message,
        "started_at": iso(run.started_at or run.created_at),
        "updated_at": iso(run.updated_at),
        "node_status_counts": state.counts(),
        "inputs": inputs_view(session, state, viewer.links),
        "outputs": [output_view(r, viewer.links) for r in state.sink_renders()],
        "triggered_by": run.triggered_by,
    }


def node_view(state: RunState, node: RunNode, viewer: Viewer) -> dict[str, Any]:
    return {
        "agent_node_id": node.id,
        "original_node_id": node.original_node_id,
        "status": node.status,
        "status_message": node.status_message,
        "errors": node_errors(state, node),
        "node_type": viewer.describe_type(node.node_type_id),
        "needs_credits": node.needs_credits,
        "outputs": [output_view(r, viewer.links) for r in state.renders_of(node.id)],
    }


def updated_node_view(state: RunState, node: RunNode, links: Links) -> dict[str, Any]:
    return {
        "original_node_id": node.original_node_id,
        "status": node.status,
        "status_message": node.status_message,
        "errors": node_errors(state, node),
        "outputs": [output_view(r, links) for r in state.renders_of(node.id)],
    }


def task_view(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "status": task.status,
        "progress": round(task.progress, 1),
        "attempt": task.attempt,
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "heartbeat_timestamp": iso(task.heartbeat_at),
        "error": task.error,
        "needs_credits": task.needs_credits,
    }


def progress_view(
    state: RunState, viewer: Viewer, *, offset: int, limit: int, tasks_per_node: int
) -> dict[str, Any]:
    nodes: Sequence[RunNode] = state.nodes
    counts = state.counts()
    total = len(nodes)
    done = sum(1 for node in nodes if node.status in rules.NODE_TERMINAL)
    page = nodes[offset : offset + limit]
    return {
        "run_id": state.run.id,
        "status": state.run.status,
        "total_nodes": total,
        "node_status_counts": counts,
        "completed_node_percent": round(100.0 * done / total, 1) if total else 100.0,
        "nodes": [
            {
                "agent_node_id": node.id,
                "original_node_id": node.original_node_id,
                "node_type": viewer.describe_type(node.node_type_id),
                "status": node.status,
                "status_message": node.status_message,
                "tasks": [
                    task_view(t) for t in state.tasks_of(node.id)[-tasks_per_node:]
                ],
            }
            for node in page
        ],
        "offset": offset,
        "limit": limit,
        "has_more": offset + limit < total,
    }
