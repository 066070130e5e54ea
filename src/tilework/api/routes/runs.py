"""Starting, reading and controlling runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.api.auth import Caller, require, tilework
from tilework.api.pagination import encode_cursor, page
from tilework.api.routes.agents import find_agent
from tilework.engine import views
from tilework.engine.runs import RunOrigin, start_run
from tilework.errors import NotFound, ValidationFailed
from tilework.schemas.requests import StartRun
from tilework.service import Tilework
from tilework.store.models import Run, WebhookAttempt, WebhookEvent

router = APIRouter()

RUN_STATUSES = {"running", "completed", "partial_complete", "failed", "cancelled"}


def find_run(session: Session, caller: Caller, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None or run.workspace_id not in caller.workspace_ids(session):
        raise NotFound(f"No run {run_id}.")
    return run


@router.post("/agent/{agent_id}/run")
def run_agent(
    agent_id: str,
    body: StartRun,
    caller: Caller = Depends(require("agent_runs:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        agent = find_agent(session, caller, agent_id)
        run = start_run(
            session,
            agent,
            body,
            origin=RunOrigin(
                organization_id=caller.organization_id,
                workspace_ids=tuple(caller.workspace_ids(session)),
            ),
            catalog=tw.catalog,
            scheduler=tw.scheduler,
        )
        return {"run_id": run.id}


@router.get("/agent_run/{run_id}")
def get_run(
    run_id: str,
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        state = views.RunState.load(session, find_run(session, caller, run_id))
        return views.run_view(session, state, tw.viewer)


@router.get("/agent_run/{run_id}/nodes")
def get_run_nodes(
    run_id: str,
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        state = views.RunState.load(session, find_run(session, caller, run_id))
        return {
            "run_id": run_id,
            "nodes": [views.node_view(state, node, tw.viewer) for node in state.nodes],
        }


@router.get("/agent_run/{run_id}/progress")
def get_run_progress(
    run_id: str,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=200),
    tasks_per_node: int = Query(5, ge=1, le=50),
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        state = views.RunState.load(session, find_run(session, caller, run_id))
        return views.progress_view(
            state, tw.viewer, offset=offset, limit=limit, tasks_per_node=tasks_per_node
        )


@dataclass(frozen=True)
class RunFilters:
    """The query of run listings: a page, and filters on status and creation time."""

    limit: Annotated[int, Query(ge=1, le=100)] = 25
    cursor: str | None = None
    status: str | None = None
    start: Annotated[datetime | None, Query(alias="from")] = None
    end: Annotated[datetime | None, Query(alias="to")] = None


@router.get("/agent/{agent_id}/runs")
def list_agent_runs(
    agent_id: str,
    filters: RunFilters = Depends(),
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        find_agent(session, caller, agent_id)
        return _list_runs(session, caller, tw, agent_id, filters)


@router.get("/agent_runs")
def list_runs(
    agent_id: str | None = None,
    filters: RunFilters = Depends(),
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        return _list_runs(session, caller, tw, agent_id, filters)


def _list_runs(
    session: Session,
    caller: Caller,
    tw: Tilework,
    agent_id: str | None,
    filters: RunFilters,
) -> dict[str, Any]:
    query = select(Run).where(Run.workspace_id.in_(caller.workspace_ids(session)))
    if agent_id:
        query = query.where(Run.agent_id == agent_id)
    if filters.status:
        query = query.where(Run.status.in_(_statuses(filters.status)))
    if filters.start is not None:
        query = query.where(Run.created_at >= _aware(filters.start))
    if filters.end is not None:
        query = query.where(Run.created_at <= _aware(filters.end))

    limit = filters.limit
    paged = page(query, Run.created_at, Run.id, cursor=filters.cursor, limit=limit)
    rows = list(session.scalars(paged))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "runs": [
            views.run_summary(session, views.RunState.load(session, run), tw.viewer)
            for run in rows
        ],
        "next_cursor": (
            encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
        ),
    }


def _statuses(text: str) -> set[str]:
    wanted = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - RUN_STATUSES)
    if unknown:
        allowed = ", ".join(sorted(RUN_STATUSES))
        raise ValidationFailed(f"status: unknown {', '.join(unknown)}; use {allowed}")
    return wanted


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/agent_run/{run_id}/cancel")
def cancel_run(
    run_id: str,
    caller: Caller = Depends(require("agent_runs:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        find_run(session, caller, run_id)
    return asdict(tw.scheduler.cancel(run_id))


@router.post("/agent_run/{run_id}/resume")
def resume_run(
    run_id: str,
    caller: Caller = Depends(require("agent_runs:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        find_run(session, caller, run_id)
    return asdict(tw.scheduler.resume(run_id))


@router.get("/agent_run/{run_id}/webhooks")
def run_webhooks(
    run_id: str,
    caller: Caller = Depends(require("agent_runs:read")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        find_run(session, caller, run_id)
        events = session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.run_id == run_id)
            .order_by(WebhookEvent.sequence)
        ).all()
        attempts = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_([e.id for e in events]))
            .order_by(WebhookAttempt.id)
        ).all()
        return {"run_id": run_id, "events": [_event_view(e, attempts) for e in events]}


@router.post("/agent_run/{run_id}/webhooks/{event_id}/redeliver")
def redeliver_webhook(
    run_id: str,
    event_id: str,
    caller: Caller = Depends(require("agent_runs:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        find_run(session, caller, run_id)
        event = session.get(WebhookEvent, event_id)
        if event is None or event.run_id != run_id:
            raise NotFound(f"No webhook event {event_id} in run {run_id}.")
    tw.dispatcher.redeliver(event_id)
    return {
        "success": True,
        "run_id": run_id,
        "event_id": event_id,
        "status": "pending",
    }


def _event_view(event: WebhookEvent, attempts: Any) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "sequence": event.sequence,
        "flag": event.flag,
        "url": event.url,
        "status": event.status,
        "attempts": [
            {
                "attempted_at": views.iso(a.attempted_at),
                "status_code": a.status_code,
                "duration_ms": round(a.duration_ms, 1),
                "outcome": a.outcome,
                "error": a.error,
            }
            for a in attempts
            if a.event_id == event.id
        ],
        "next_attempt_at": views.iso(event.next_attempt_at)
        if event.status == "pending"
        else None,
        "created_at": views.iso(event.created_at),
        "delivered_at": views.iso(event.delivered_at),
        "last_error": event.last_error,
    }
