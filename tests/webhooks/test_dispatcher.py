"""The outbox relay against real receivers on loopback and a real SQLite store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from harness import Received, Receiver, free_port
from outbox import (
    FAST,
    add_workspace,
    arrival_order,
    attempts,
    enqueue,
    make_dispatcher,
    settle,
    statuses,
)
from tilework.store.db import Database
from tilework.store.models import (
    WebhookEvent,
    Workspace,
)
from tilework.webhooks.dispatcher import Dispatcher

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'hooks.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def workspace(db: Database) -> str:
    return add_workspace(db)


@pytest.fixture
def running(db: Database) -> Iterator[Callable[..., Dispatcher]]:
    started: list[Dispatcher] = []

    def start(**policy: Any) -> Dispatcher:
        dispatcher = make_dispatcher(db, **policy)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        dispatcher.stop()


def test_every_event_arrives_once_in_order_per_run(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    ids = enqueue(db, workspace, receiver.url, runs=6, events=8)
    running()
    assert set(settle(db).values()) == {"delivered"}

    order = arrival_order(receiver)
    assert sorted(order) == sorted(i for run in ids for i in run)
    for run in ids:
        assert [i for i in order if i in run] == run


def test_a_receiver_that_is_down_then_back_gets_everything(
    db: Database, workspace: str, running: Any
) -> None:
    # Given a callback whose receiver is not listening yet
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    (ids,) = enqueue(db, workspace, url, events=3)
    running(retry_schedule=(0.2, 0.3, 0.5, 1, 1, 1))
    deadline = time.monotonic() + 5
    while not attempts(db, ids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "refused" in (attempts(db, ids[0])[0].error or "").lower()

    # When it comes up on that port
    receiver = Receiver(port=port)
    try:
        # Then every event arrives, in order, with its id unchanged
        assert set(settle(db).values()) == {"delivered"}
        assert arrival_order(receiver) == ids
    finally:
        receiver.close()


def test_a_slow_receiver_times_out_and_is_retried(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    calls = {"n": 0}

    def slow_first(item: Received) -> tuple[int, dict[str, str]]:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(1.0)
        return 200, {}

    receiver.respond = slow_first
    (ids,) = enqueue(db, workspace, receiver.url, events=1)
    running()
    assert settle(db)[ids[0]] == "delivered"
    first, second = attempts(db, ids[0])
    assert first.outcome == "retry" and "did not answer within" in (first.error or "")
    assert second.outcome == "delivered"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_failures_and_never_followed(
    db: Database, workspace: str, receiver: Receiver, running: Any, status: int
) -> None:
    target = Receiver()
    try:
        receiver.respond = lambda item: (status, {"Location": target.url})
        (ids,) = enqueue(db, workspace, receiver.url, events=1)
        running()
        assert settle(db)[ids[0]] == "failed"
        tries = attempts(db, ids[0])
        assert len(tries) == len(FAST) + 1
        assert all(
            t.status_code == status and "redirect" in (t.error or "") for t in tries
        )
        assert target.received == []
    finally:
        target.close()


def test_410_stops_that_url(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    receiver.respond = lambda item: (410, {})
    (first,) = enqueue(db, workspace, receiver.url, events=1)
    running()
    settle(db)
    (later,) = enqueue(db, workspace, receiver.url, events=1)
    assert settle(db)[later[0]] == "failed"
    assert len(attempts(db, first[0])) == 1
    assert attempts(db, later[0])[0].status_code == 410


def test_429_waits_for_retry_after(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    answers = iter([(429, {"Retry-After": "1"}), (200, {})])
    receiver.respond = lambda item: next(answers)
    (ids,) = enqueue(db, workspace, receiver.url, events=1)
    running()
    assert settle(db)[ids[0]] == "delivered"
    first, second = attempts(db, ids[0])
    waited = (second.attempted_at - first.attempted_at).total_seconds()
    assert first.status_code == 429 and waited >= 0.9


def test_a_failing_event_holds_its_run_at_most_the_order_wait(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    receiver.respond = lambda item: (
        (500, {}) if item.json["sequence"] == 1 else (200, {})
    )
    (ids,) = enqueue(db, workspace, receiver.url, events=3)
    running(retry_schedule=(0.2,) * 20, order_wait_seconds=0.6)

    deadline = time.monotonic() + 10
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arrival_order(receiver) == ids[1:]
    assert statuses(db)[ids[0]] == "pending"


def test_one_hanging_callback_does_not_delay_another_run(
    db: Database, workspace: str, running: Any
) -> None:
    hanging, healthy = Receiver(), Receiver()
    release = threading.Event()
    hanging.respond = lambda item: (release.wait(3), (200, {}))[1]
    try:
        enqueue(db, workspace, hanging.url, events=2)
        (fast,) = enqueue(db, workspace, healthy.url, events=5)
        running(timeout_seconds=5.0)
        deadline = time.monotonic() + 10
        while len(healthy.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert arrival_order(healthy) == fast
        assert not release.is_set() and hanging.received == []
    finally:
        release.set()
        hanging.close()
        healthy.close()


def test_an_event_over_the_size_cap_is_refused_visibly(
    db: Database, workspace: str, receiver: Receiver, running: Any, caplog: Any
) -> None:
    (ids,) = enqueue(db, workspace, receiver.url, events=1, extra="x" * 2000)
    running(max_payload_bytes=1024)
    assert settle(db)[ids[0]] == "failed"
    with db.read() as session:
        error = session.get_one(WebhookEvent, ids[0]).last_error or ""
    assert "1024-byte" in error
    assert receiver.received == []
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_failed_events_stay_readable_and_can_be_redelivered(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    receiver.respond = lambda item: (500, {})
    (ids,) = enqueue(db, workspace, receiver.url, events=1)
    dispatcher = running()
    assert settle(db)[ids[0]] == "failed"
    assert len(attempts(db, ids[0])) == len(FAST) + 1

    receiver.respond = lambda item: (200, {})
    dispatcher.redeliver(ids[0])
    assert settle(db)[ids[0]] == "delivered"
    assert arrival_order(receiver) == ids


def test_signatures_verify_with_the_standard_library_and_survive_unicode(
    db: Database, workspace: str, receiver: Receiver, running: Any
) -> None:
    with db.write() as session:
        space = session.get_one(Workspace, workspace)
        space.webhook_secret = "plain secret"
        space.signing_secret = SIGNING
    (ids,) = enqueue(db, workspace, receiver.url, events=1, extra="héllo 👋 日本")
    running()
    settle(db)

    (item,) = receiver.received
    assert item.headers["x-mosaic-signature"] == "plain secret"
    assert item.headers["webhook-id"] == ids[0]
    assert int(item.headers["content-length"]) == len(item.body)
    verified = Webhook(SIGNING).verify(item.body, item.headers)
    assert verified["extra"] == "héllo 👋 日本"
    assert json.loads(item.body)["event_id"] == ids[0]
