"""Ledger invariants under concurrency, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from harness import postgres_database
from tilework.billing.ledger import Ledger, ledger_sum
from tilework.store.db import Database
from tilework.store.models import (
    Agent,
    CreditAccount,
    Organization,
    Run,
    RunNode,
    Task,
    Workspace,
)

PRICE = 50


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
        database.migrate()
        yield database
        database.dispose()
        return
    with postgres_database() as url:
        database = Database(url)
        database.migrate()
        yield database
        database.dispose()


def tasks_for(db: Database, count: int) -> tuple[str, list[str]]:
    """An organization on the free plan (300 credits) and ``count`` queued tasks."""
    with db.write() as session:
        org = Organization(name="race")
        session.add(org)
        session.flush()
        space = Workspace(organization_id=org.id, name="w")
        session.add(space)
        session.flush()
        agent = Agent(workspace_id=space.id, name="a")
        session.add(agent)
        session.flush()
        run = Run(agent_id=agent.id, workspace_id=space.id, organization_id=org.id)
        session.add(run)
        session.flush()
        node = RunNode(run_id=run.id, original_node_id=None, node_type_id="priced")
        session.add(node)
        session.flush()
        tasks = [Task(run_id=run.id, node_id=node.id, item={}) for _ in range(count)]
        session.add_all(tasks)
        session.flush()
        return org.id, [task.id for task in tasks]


def test_racing_tasks_never_overdraw_and_the_ledger_balances(db: Database) -> None:
    # Given 300 credits and 16 tasks of 50 credits each, all asking at once
    ledger = Ledger(unlimited=False, prices={"priced": PRICE})
    org, task_ids = tasks_for(db, 16)
    with db.write() as session:
        ledger.account(session, org)
    start = threading.Barrier(len(task_ids))
    refusals: list[str | None] = []

    def pay(task_id: str) -> None:
        start.wait()
        with db.write() as session:
            task = session.get_one(Task, task_id)
            node = session.get_one(RunNode, task.node_id)
            refusals.append(ledger.reserve(session, task, node, org))

    threads = [threading.Thread(target=pay, args=(t,)) for t in task_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then six were paid, and the balance is zero, never negative, and the ledger's sum
    assert sum(r is None for r in refusals) == 6
    with db.read() as session:
        account = session.get_one(CreditAccount, org)
        assert account.balance == 0 == ledger_sum(session, org)
        held = session.scalars(select(Task.credits_held).where(Task.credits_held > 0))
        assert sum(held) == 300


def test_released_credits_come_back_and_kept_ones_do_not(db: Database) -> None:
    ledger = Ledger(unlimited=False, prices={"priced": PRICE})
    org, (first, second) = tasks_for(db, 2)
    with db.write() as session:
        for task_id in (first, second):
            task = session.get_one(Task, task_id)
            assert (
                ledger.reserve(
                    session, task, session.get_one(RunNode, task.node_id), org
                )
                is None
            )

    with db.write() as session:
        ledger.settle(session, session.get_one(Task, first), org, kept=True)
        ledger.settle(session, session.get_one(Task, second), org, kept=False)
        ledger.settle(session, session.get_one(Task, second), org, kept=False)

    with db.read() as session:
        account = session.get_one(CreditAccount, org)
        assert account.balance == 250 == ledger_sum(session, org)
        assert session.get_one(Task, first).credits_charged == PRICE


def test_unlimited_lets_everything_through_without_entries(db: Database) -> None:
    ledger = Ledger(unlimited=True, prices={"priced": PRICE})
    org, task_ids = tasks_for(db, 10)
    with db.write() as session:
        for task_id in task_ids:
            task = session.get_one(Task, task_id)
            assert (
                ledger.reserve(
                    session, task, session.get_one(RunNode, task.node_id), org
                )
                is None
            )
        assert session.get(CreditAccount, org) is None
