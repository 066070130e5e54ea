"""Starting a run: checking its request and building its runtime graph."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.engine.agents import load_template
from tilework.engine.graph import Catalog, Template, build_runtime
from tilework.engine.scheduler import Scheduler
from tilework.engine.views import is_gone
from tilework.errors import NotFound, ValidationFailed
from tilework.schemas.requests import StartRun, VideoInput
from tilework.store.models import Agent, Asset, Render, Run, RunNode, utcnow

YOUTUBE = re.compile(r"^(www\.|m\.|music\.)?(youtube\.com|youtu\.be)$", re.IGNORECASE)


@dataclass(frozen=True)
class RunOrigin:
    """Who starts a run: uploads come from these workspaces, renders from any
    workspace of the organization."""

    organization_id: str
    workspace_ids: tuple[str, ...]
    triggered_by: dict[str, Any] | None = None


def start_run(
    session: Session,
    agent: Agent,
    request: StartRun,
    *,
    origin: RunOrigin,
    catalog: Catalog,
    scheduler: Scheduler,
) -> Run:
    """Check ``request`` against ``agent`` and queue the run; every fault at once."""
    template = load_template(session, agent)
    problems: list[str] = []
    problems += _check_ignore(template, request.ignore_nodes, catalog)
    problems += _check_overrides(template, request.update_params, catalog)
    problems += _check_callback(request.callback_url)
    entries, input_problems = _input_entries(template, request, catalog)
    problems += input_problems
    if not problems:
        problems += _check_fed(template, request, catalog)
    if problems:
        raise ValidationFailed(problems)

    sources = {
        node_id: _resolve_sources(session, entry, origin)
        for node_id, entry in entries.items()
    }
    run = _insert_run(session, agent, request, origin, template, sources)
    scheduler.start(session, run)
    return run


def _check_ignore(
    template: Template, ignore: Sequence[str], catalog: Catalog
) -> list[str]:
    problems = []
    for node_id in ignore:
        node = template.nodes.get(node_id)
        if node is None:
            problems.append(f"ignore_nodes: no node {node_id!r} in this agent")
        elif catalog.is_input(node.node_type_id):
            problems.append(
                f"ignore_nodes: {node_id} is a Video Input and cannot be skipped"
            )
    return problems


def _check_overrides(
    template: Template, overrides: Mapping[str, Mapping[str, Any]], catalog: Catalog
) -> list[str]:
    problems = []
    for node_id, params in overrides.items():
        node = template.nodes.get(node_id)
        if node is None:
            problems.append(f"update_params: no node {node_id!r} in this agent")
            continue
        merged = {**node.params, **params}
        for problem in catalog.check_params(node.node_type_id, merged):
            problems.append(f"update_params[{node_id}]: {problem}")
    return problems


def _check_fed(template: Template, request: StartRun, catalog: Catalog) -> list[str]:
    """Every tile that works on a video must have something upstream of it."""
    runtime = build_runtime(template, ignore=request.ignore_nodes)
    return [
        f"{catalog.name_of(node.node_type_id)} tile {node.original_node_id} has no "
        "input; connect it below a Video Input"
        for node in runtime
        if not node.upstream and catalog.needs_input(node.node_type_id)
    ]


def _check_callback(url: str | None) -> list[str]:
    if url is None:
        return []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"callback_url {url!r} must be an absolute http or https URL"]
    return []


def _input_entries(
    template: Template, request: StartRun, catalog: Catalog
) -> tuple[dict[str, VideoInput], list[str]]:
    inputs = [node.id for node in template.input_nodes(catalog)]
    inputs = [node_id for node_id in inputs if node_id not in request.ignore_nodes]
    shorthand = {
        name: value
        for name in ("video_ids", "node_render_ids", "video_urls")
        if (value := getattr(request, name))
    }

    if request.video_inputs is not None and shorthand:
        return {}, [
            "send either video_inputs or the shorthand "
            f"{', '.join(shorthand)}, not both"
        ]
    if not inputs:
        if request.video_inputs or shorthand:
            return {}, [
                "this agent has no Video Input tile, so it takes no video inputs"
            ]
        return {}, []
    if request.video_inputs is None:
        return _shorthand_entry(inputs, request, shorthand)
    return _canonical_entries(inputs, request.video_inputs)


def _shorthand_entry(
    inputs: list[str], request: StartRun, shorthand: Mapping[str, list[str]]
) -> tuple[dict[str, VideoInput], list[str]]:
    if len(inputs) > 1:
        return {}, [
            f"this agent has {len(inputs)} Video Input tiles; send video_inputs with "
            "one entry per tile"
        ]
    if not shorthand:
        return {}, [
            "no input was given; this agent starts from a Video Input, so send "
            "video_ids, node_render_ids, video_urls or video_inputs"
        ]
    if len(shorthand) > 1:
        return {}, [
            f"send one input form at a time ({', '.join(shorthand)} were all sent); "
            "use video_inputs to combine them"
        ]
    entry = VideoInput(
        agent_node_id=inputs[0],
        input_clip_start_ms=request.input_clip_start_ms,
        input_clip_end_ms=request.input_clip_end_ms,
        **shorthand,
    )
    return _canonical_entries(inputs, [entry])


def _canonical_entries(
    inputs: list[str], entries: Sequence[VideoInput]
) -> tuple[dict[str, VideoInput], list[str]]:
    problems: list[str] = []
    found: dict[str, VideoInput] = {}
    for index, entry in enumerate(entries):
        where = f"video_inputs[{index}]"
        if entry.agent_node_id not in inputs:
            problems.append(
                f"{where}: {entry.agent_node_id!r} is not a Video Input of this agent"
            )
        elif entry.agent_node_id in found:
            problems.append(f"{where}: {entry.agent_node_id} is given twice")
        if not (entry.video_ids or entry.node_render_ids or entry.video_urls):
            problems.append(f"{where}: give video_ids, node_render_ids or video_urls")
        problems += [f"{where}: {p}" for p in _check_entry(entry)]
        found[entry.agent_node_id] = entry

    for node_id in inputs:
        if node_id not in found:
            problems.append(
                f"Video Input {node_id} has no input; add it to video_inputs"
            )
    return found, problems


def _check_entry(entry: VideoInput) -> list[str]:
    problems = []
    start, end = entry.input_clip_start_ms, entry.input_clip_end_ms
    if start is not None and end is not None and end <= start:
        problems.append(
            f"input_clip_end_ms ({end}) must be greater than "
            f"input_clip_start_ms ({start})"
        )
    for url in entry.video_urls:
        problems += _check_video_url(url)
    return problems


def _check_video_url(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"video_urls: {url!r} is not an http or https URL"]
    if YOUTUBE.match(parts.hostname):
        return [
            f"video_urls: {url!r} is a YouTube link; this server cannot download from "
            "YouTube, so upload the video or give a direct link to the file"
        ]
    return []


def _resolve_sources(
    session: Session, entry: VideoInput, origin: RunOrigin
) -> list[dict[str, Any]]:
    clip = {
        "clip_start_ms": entry.input_clip_start_ms,
        "clip_end_ms": entry.input_clip_end_ms,
    }
    sources: list[dict[str, Any]] = []
    missing: list[str] = []
    for video_id in entry.video_ids:
        asset = _find_asset(session, video_id, origin)
        if asset is None:
            missing.append(f"video {video_id}")
        else:
            sources.append(
                {"kind": "upload", "ref": asset.id, "label": asset.filename, **clip}
            )
    for render_id in entry.node_render_ids:
        render = _find_render(session, render_id, origin)
        if render is None:
            missing.append(f"render {render_id}")
        else:
            sources.append(
                {"kind": "render", "ref": render.id, "label": render.filename, **clip}
            )
    for url in entry.video_urls:
        sources.append({"kind": "url", "ref": url, "label": None, **clip})

    if missing:
        raise NotFound("Not found: " + ", ".join(missing) + ".")
    return sources


def _find_asset(session: Session, asset_id: str, origin: RunOrigin) -> Asset | None:
    asset = session.scalars(
        select(Asset).where(
            Asset.id == asset_id,
            Asset.kind == "video",
            Asset.status == "ready",
            Asset.workspace_id.in_(origin.workspace_ids),
        )
    ).first()
    if asset is not None and is_gone(asset.expires_at, asset.purged_at):
        return None
    return asset


def _find_render(session: Session, render_id: str, origin: RunOrigin) -> Render | None:
    """A still stored render of any workspace of the caller's organization.

    Chaining crosses workspaces on purpose: one team's outputs feed another's agents.
    """
    render = session.get(Render, render_id)
    if render is None or render.organization_id != origin.organization_id:
        return None
    if is_gone(render.expires_at, render.purged_at):
        return None
    return render


def _insert_run(
    session: Session,
    agent: Agent,
    request: StartRun,
    origin: RunOrigin,
    template: Template,
    sources: Mapping[str, list[dict[str, Any]]],
) -> Run:
    now = utcnow()
    run = Run(
        agent_id=agent.id,
        workspace_id=agent.workspace_id,
        organization_id=origin.organization_id,
        callback_url=request.callback_url,
        triggered_by=origin.triggered_by,
        created_at=now,
        started_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()

    runtime = build_runtime(
        template, ignore=request.ignore_nodes, overrides=request.update_params
    )
    for node in runtime:
        session.add(
            RunNode(
                id=node.id,
                run_id=run.id,
                original_node_id=node.original_node_id,
                node_type_id=node.node_type_id,
                params=node.params,
                sources=sources.get(node.original_node_id, []),
                upstream=list(node.upstream),
                position=node.position,
            )
        )
    session.flush()
    return run
