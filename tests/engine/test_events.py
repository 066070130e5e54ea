"""The outbox: node changes inside the coalescing window become one RUN_PROGRESS."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from tilework.engine.events import Outbox
from tilework.engine.views import RunState, Viewer
from tilework.store.db import Database
from tilework.store.models import (
    Agent,
    Organization,
    Run,
    RunNode,
    WebhookEvent,
    Workspace,
)


class Links:
    def media(self, key: str, *, filename: str | None = None) -> str:
        return f"https://files.invalid/{key}"


def setup(db: Database) -> str:
    with db.write() as session:
        org = Organization(name="o")
        session.add(org)
        session.flush()
        space = Workspace(organization_id=org.id, name="w")
        session.add(space)
        session.flush()
        agent = Agent(workspace_id=space.id, name="a")
        session.add(agent)
        session.flush()
        run = Run(
            agent_id=agent.id,
            workspace_id=space.id,
            organization_id=org.id,
            callback_url="https://hooks.invalid/x",
        )
        session.add(run)
        session.flush()
        for index in range(3):
            session.add(
                RunNode(
                    run_id=run.id,
                    original_node_id=f"n{index}",
                    node_type_id="t",
                    position=index,
                )
            )
        return run.id


def change(db: Database, outbox: Outbox, run_id: str, index: int, status: str) -> None:
    with db.write() as session:
        run = session.get_one(Run, run_id)
        state = RunState.load(session, run)
        node = state.nodes[index]
        node.status = status
        outbox.run_progress(session, state, [node])


def test_changes_within_the_window_are_one_event_and_later_ones_a_new_one(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    run_id = setup(db)
    outbox = Outbox(
        Viewer(Links(), lambda kind: {"node_type_id": kind}), coalesce_seconds=0.3
    )

    change(db, outbox, run_id, 0, "running")
    change(db, outbox, run_id, 1, "running")
    change(db, outbox, run_id, 0, "completed")
    time.sleep(0.4)
    change(db, outbox, run_id, 2, "running")

    with db.read() as session:
        events = list(
            session.scalars(select(WebhookEvent).order_by(WebhookEvent.sequence))
        )
    assert [e.sequence for e in events] == [1, 2]
    first = {
        n["original_node_id"]: n["status"] for n in events[0].payload["updated_nodes"]
    }
    assert first == {"n0": "completed", "n1": "running"}
    assert events[0].payload["node_status_counts"]["completed"] == 1
    assert [n["original_node_id"] for n in events[1].payload["updated_nodes"]] == ["n2"]
    assert (events[0].next_attempt_at - events[0].created_at).total_seconds() == 0.3
    db.dispose()
