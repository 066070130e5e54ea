"""Helpers for tests of the webhook outbox: events committed straight to a store."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from sqlalchemy import select

from harness import Receiver
from tilework.store.db import Database
from tilework.store.models import (
    Organization,
    WebhookAttempt,
    WebhookEvent,
    Workspace,
    new_id,
)
from tilework.webhooks.dispatcher import Dispatcher, DispatchPolicy
from tilework.webhooks.sender import HttpSender

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
FAST = (0.1, 0.2, 0.3)


def make_dispatcher(db: Database, **policy: Any) -> Dispatcher:
    settings = {"retry_schedule": FAST, "timeout_seconds": 0.5, **policy}
    return Dispatcher(
        db, HttpSender(allow=LOOPBACK, timeout=0.5), DispatchPolicy(**settings)
    )


def enqueue(
    db: Database,
    workspace: str,
    url: str,
    *,
    runs: int = 1,
    events: int = 3,
    extra: Any = None,
) -> list[list[str]]:
    """Commit ``events`` events for each of ``runs`` runs; return their ids per run."""
    ids: list[list[str]] = []
    with db.write() as session:
        for _ in range(runs):
            run_id = new_id()
            ids.append([])
            for sequence in range(1, events + 1):
                event_id = new_id()
                payload = {
                    "flag": "RUN_PROGRESS",
                    "run_id": run_id,
                    "event_id": event_id,
                }
                payload["sequence"] = sequence
                if extra is not None:
                    payload["extra"] = extra
                session.add(
                    WebhookEvent(
                        id=event_id,
                        run_id=run_id,
                        workspace_id=workspace,
                        sequence=sequence,
                        flag="RUN_PROGRESS",
                        url=url,
                        payload=payload,
                    )
                )
                ids[-1].append(event_id)
    return ids


def statuses(db: Database) -> dict[str, str]:
    with db.read() as session:
        return {e.id: e.status for e in session.scalars(select(WebhookEvent))}


def attempts(db: Database, event_id: str) -> list[WebhookAttempt]:
    with db.read() as session:
        query = select(WebhookAttempt).where(WebhookAttempt.event_id == event_id)
        return list(session.scalars(query.order_by(WebhookAttempt.id)))


def settle(db: Database, timeout: float = 15.0) -> dict[str, str]:
    """Wait until no event is pending; return every event's status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = statuses(db)
        if found and "pending" not in found.values():
            return found
        time.sleep(0.05)
    raise AssertionError(f"events still pending: {statuses(db)}")


def arrival_order(receiver: Receiver) -> list[str]:
    return [r.json["event_id"] for r in receiver.received]


def add_workspace(db: Database) -> str:
    with db.write() as session:
        organization = Organization(name="hooks")
        session.add(organization)
        session.flush()
        space = Workspace(organization_id=organization.id, name="w", is_default=True)
        session.add(space)
        session.flush()
        return space.id
