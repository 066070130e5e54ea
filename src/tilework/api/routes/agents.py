"""Agents and node types."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.api.auth import Caller, require, tilework
from tilework.api.pagination import encode_cursor, page
from tilework.engine import agents as store
from tilework.engine.graph import Template, apply_operations
from tilework.errors import NotFound, ValidationFailed
from tilework.schemas.requests import CreateAgent, UpdateAgent
from tilework.service import Tilework
from tilework.store.models import Agent, utcnow
from tilework.tiles.docs import render as render_docs

router = APIRouter()


def find_agent(
    session: Session, caller: Caller, agent_id: str, *, lock: bool = False
) -> Agent:
    """The caller's live agent, or 404 for any other (never 403, which would leak it).

    ``lock`` takes the agent's row for the rest of the transaction, so that concurrent
    edits of one agent queue instead of interleaving their read-modify-write.
    """
    if "\x00" in agent_id:  # no id holds one, and PostgreSQL refuses it in a query
        raise NotFound(f"No agent {agent_id}.")
    agent = session.get(Agent, agent_id, with_for_update=lock)
    if (
        agent is None
        or agent.deleted_at is not None
        or agent.workspace_id not in caller.workspace_ids(session)
    ):
        raise NotFound(f"No agent {agent_id}.")
    return agent


def _text_problems(body: CreateAgent | UpdateAgent) -> list[str]:
    """Text no database can store the same way: PostgreSQL refuses NUL characters."""
    return [
        f"{field} must not contain a NUL character"
        for field in ("name", "description")
        if "\x00" in (getattr(body, field) or "")
    ]


@router.get("/node_types")
def node_types(
    caller: Caller = Depends(require("agents:read")), tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    return {
        "node_types": [
            tw.catalog.describe_full(t.node_type_id) for t in tw.catalog.all()
        ]
    }


@router.get("/node_type/{node_type_id}")
def node_type(
    node_type_id: str,
    caller: Caller = Depends(require("agents:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    if tw.catalog.get(node_type_id) is None:
        raise NotFound(f"No node type {node_type_id}.")
    return tw.catalog.describe_full(node_type_id)


@router.post("/agent/create")
def create_agent(
    body: CreateAgent,
    caller: Caller = Depends(require("agents:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        workspace_id = caller.target_workspace(session, body.workspace_id)
        result = apply_operations(Template(), body.operations, tw.catalog)
        problems = _text_problems(body) + result.problems
        if problems:
            raise ValidationFailed(problems)

        agent = Agent(
            workspace_id=workspace_id,
            name=body.name,
            description=body.description,
            visibility=body.visibility,
        )
        session.add(agent)
        session.flush()
        store.save_template(session, agent, result.template)
        return {
            "success": True,
            "agent_id": agent.id,
            "operations_applied": result.applied,
            "created_nodes": result.created_nodes,
        }


@router.post("/agent/{agent_id}/update")
def update_agent(
    agent_id: str,
    body: UpdateAgent,
    caller: Caller = Depends(require("agents:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        agent = find_agent(session, caller, agent_id, lock=True)
        template = store.load_template(session, agent)
        result = apply_operations(template, body.operations, tw.catalog)
        problems = _text_problems(body) + result.problems
        if problems:
            raise ValidationFailed(problems)

        for field in ("name", "description", "visibility"):
            value = getattr(body, field)
            if field in body.model_fields_set and (
                value is not None or field == "description"
            ):
                setattr(agent, field, value)
        store.save_template(session, agent, result.template)
        agent.updated_at = utcnow()
        return {
            "success": True,
            "agent_id": agent.id,
            "operations_applied": result.applied,
            "created_nodes": result.created_nodes,
        }


@router.get("/agent/{agent_id}")
def get_agent(
    agent_id: str,
    caller: Caller = Depends(require("agents:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        agent = find_agent(session, caller, agent_id)
        return store.agent_view(
            agent, store.load_template(session, agent), tw.catalog.describe
        )


@router.get("/agents")
def list_agents(
    limit: int = Query(25, ge=1, le=100),
    cursor: str | None = None,
    caller: Caller = Depends(require("agents:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        query = select(Agent).where(
            Agent.workspace_id.in_(caller.workspace_ids(session)),
            Agent.deleted_at.is_(None),
        )
        rows = list(
            session.scalars(
                page(query, Agent.created_at, Agent.id, cursor=cursor, limit=limit)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "agents": [
                store.agent_view(
                    a, store.load_template(session, a), tw.catalog.describe
                )["agent"]
                for a in rows
            ],
            "next_cursor": encode_cursor(rows[-1].created_at, rows[-1].id)
            if more
            else None,
        }


@router.post("/agent/{agent_id}/duplicate")
def duplicate_agent(
    agent_id: str,
    caller: Caller = Depends(require("agents:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        original = find_agent(session, caller, agent_id, lock=True)
        twin = store.duplicate(session, original)
        return {"success": True, "agent_id": twin.id}


@router.post("/agent/{agent_id}/delete")
def delete_agent(
    agent_id: str,
    caller: Caller = Depends(require("agents:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        agent = find_agent(session, caller, agent_id, lock=True)
        agent.deleted_at = utcnow()
        return {"success": True, "agent_id": agent.id}


@router.get("/docs/tiles", include_in_schema=False)
def tile_docs(tw: Tilework = Depends(tilework)) -> PlainTextResponse:
    """The tile reference, the page node types' ``docs_url`` points at."""
    text = render_docs(tw.catalog.all())
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
