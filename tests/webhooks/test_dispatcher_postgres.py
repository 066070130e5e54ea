"""Several dispatchers on one PostgreSQL, and a database that goes away and back."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness import POSTGRES_ADMIN_URL, Receiver, postgres_database
from outbox import add_workspace, enqueue, make_dispatcher, settle
from tilework.store.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> Iterator[tuple[Database, str]]:
    with postgres_database() as url:
        database = Database(url)
        database.migrate()
        yield database, url
        database.dispose()


def admin(sql: str) -> None:
    url = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def test_three_dispatchers_never_send_one_attempt_twice(
    pg: tuple[Database, str], receiver: Receiver
) -> None:
    # Given 600 events of 30 runs and three dispatchers, each with its own connections
    db, url = pg
    workspace = add_workspace(db)
    ids = enqueue(db, workspace, receiver.url, runs=30, events=20)
    dispatchers = [make_dispatcher(Database(url)) for _ in range(3)]

    # When they all deliver at once
    for dispatcher in dispatchers:
        dispatcher.start()
    try:
        statuses = settle(db, timeout=60)
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()

    # Then each event arrived exactly once, in order within its run
    assert set(statuses.values()) == {"delivered"}
    arrivals = [r.json["event_id"] for r in receiver.received]
    assert Counter(arrivals).most_common(1)[0][1] == 1
    assert len(arrivals) == 600
    for run in ids:
        assert [i for i in arrivals if i in set(run)] == run


def test_a_database_outage_is_survived_with_backed_off_errors(
    pg: tuple[Database, str], receiver: Receiver, caplog: Any
) -> None:
    # Given a running dispatcher
    db, url = pg
    name = url.rsplit("/", 1)[1]
    workspace = add_workspace(db)
    dispatcher = make_dispatcher(db)
    dispatcher.start()
    caplog.set_level(logging.ERROR, logger="tilework.webhooks.dispatcher")
    try:
        # When its database refuses connections for a few seconds
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        time.sleep(4)
        errors = [
            r for r in caplog.records if "claiming webhook events failed" in r.message
        ]
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        # Then it logged a few errors, not one per poll, and delivers once it is back
        assert 1 <= len(errors) <= 5
        (run,) = enqueue(db, workspace, receiver.url, events=3)
        assert set(settle(db, timeout=60).values()) == {"delivered"}
        assert [r.json["event_id"] for r in receiver.received] == run
    finally:
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        dispatcher.stop()


def test_two_dispatch_processes_never_send_one_attempt_twice(
    pg: tuple[Database, str], receiver: Receiver, tmp_path: Path
) -> None:
    # Given two `tilework dispatch` processes on one database
    db, url = pg
    workspace = add_workspace(db)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TILEWORK_")},
        "TILEWORK_DATABASE_URL": url,
        "TILEWORK_DATA_DIR": str(tmp_path),
        "TILEWORK_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    command = [sys.executable, "-m", "tilework", "dispatch"]
    processes = [subprocess.Popen(command, env=env) for _ in range(2)]
    try:
        # When 400 events of 20 runs are committed while both run
        ids = enqueue(db, workspace, receiver.url, runs=20, events=20)
        statuses = settle(db, timeout=90)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

    # Then each arrived exactly once, in order within its run
    assert set(statuses.values()) == {"delivered"}
    arrivals = [r.json["event_id"] for r in receiver.received]
    assert len(arrivals) == len(set(arrivals)) == 400
    for run in ids:
        assert [i for i in arrivals if i in set(run)] == run
    assert all(process.returncode == 0 for process in processes)
