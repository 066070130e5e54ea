"""The outbox: webhook events written in the same transaction as the change."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tilework.engine.views import (
    RunState,
    Viewer,
    errors_view,
    inputs_view,
    iso,
    output_view,
    updated_node_view,
)
from tilework.store.models import Run, RunNode, WebhookEvent, new_id, utcnow

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, viewer: Viewer, *, coalesce_seconds: float = 0.25) -> None:
        self.viewer = viewer
        self.coalesce = timedelta(seconds=coalesce_seconds)
        self.on_emit: Callable[[], None] = lambda: None

    def run_started(self, session: Session, state: RunState) -> None:
        extra = {"inputs": inputs_view(session, state, self.viewer.links)}
        self._emit(session, state, "RUN_STARTED", extra)

    def run_progress(
        self, session: Session, state: RunState, changed: Sequence[RunNode]
    ) -> None:
        if not changed or not state.run.callback_url:
            return
        updates = [updated_node_view(state, n, self.viewer.links) for n in changed]
        pending = self._coalescable(session, state.run)
        if pending is not None:
            self._merge(pending, state, updates)
            return
        event = self._emit(session, state, "RUN_PROGRESS", {"updated_nodes": updates})
        if event is not None:
            event.next_attempt_at = event.created_at + self.coalesce

    def run_finished(self, session: Session, state: RunState) -> None:
        run = state.run
        extra = {
            "status_message": run.status_message,
            "needs_credits": run.needs_credits,
            "errors": errors_view(state),
            "inputs": inputs_view(session, state, self.viewer.links),
            "outputs": [
                output_view(r, self.viewer.links) for r in state.sink_renders()
            ],
        }
        self._emit(session, state, "RUN_FINISHED", extra)

    def _emit(
        self, session: Session, state: RunState, flag: str, extra: dict[str, Any]
    ) -> WebhookEvent | None:
        run = state.run
        if not run.callback_url:
            return None

        sequence = _next_sequence(session, run)
        now = utcnow()
        event_id = new_id()
        payload = {
            "flag": flag,
            "agent_id": run.agent_id,
            "run_id": run.id,
            "status": run.status,
            "node_status_counts": state.counts(),
            "triggered_by": run.triggered_by,
            **extra,
            "event_id": event_id,
            "sequence": sequence,
            "created_at": iso(now),
        }
        event = WebhookEvent(
            id=event_id,
            run_id=run.id,
            workspace_id=run.workspace_id,
            sequence=sequence,
            flag=flag,
            url=run.callback_url,
            payload=payload,
            created_at=now,
            next_attempt_at=now,
        )
        session.add(event)
        sqlalchemy_event.listen(session, "after_commit", self._emitted, once=True)
        log.debug("event %s #%d for run %s", flag, sequence, run.id)
        return event

    def _emitted(self, session: Session) -> None:
        self.on_emit()

    def _coalescable(self, session: Session, run: Run) -> WebhookEvent | None:
        query = (
            select(WebhookEvent)
            .where(
                WebhookEvent.run_id == run.id,
                WebhookEvent.sequence == run.event_sequence,
                WebhookEvent.flag == "RUN_PROGRESS",
                WebhookEvent.status == "pending",
                WebhookEvent.attempts == 0,
                WebhookEvent.claimed_until.is_(None),
                WebhookEvent.created_at >= utcnow() - self.coalesce,
            )
            .with_for_update()
        )
        return session.scalars(query).first()

    def _merge(
        self, event: WebhookEvent, state: RunState, updates: list[dict[str, Any]]
    ) -> None:
        payload = dict(event.payload)
        merged = {item["original_node_id"]: item for item in payload["updated_nodes"]}
        for item in updates:
            merged[item["original_node_id"]] = item
        payload["updated_nodes"] = list(merged.values())
        payload["status"] = state.run.status
        payload["node_status_counts"] = state.counts()
        event.payload = payload


def _next_sequence(session: Session, run: Run) -> int:
    result = session.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(event_sequence=Run.event_sequence + 1)
        .returning(Run.event_sequence)
    )
    sequence = int(result.scalar_one())
    set_committed_value(run, "event_sequence", sequence)
    return sequence
