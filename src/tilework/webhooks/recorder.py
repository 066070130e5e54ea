"""Writing down what came of each delivery attempt, many attempts per transaction.

Sending threads hand their results to one recorder thread, which writes them in
batches: one transaction records up to ``BATCH`` attempts, so a burst of deliveries
costs a few writes instead of one each. An event stays claimed until its attempt is
recorded, so nothing is sent twice while a batch is being written.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from tilework.store.db import Database
from tilework.store.models import GoneUrl, WebhookAttempt, WebhookEvent, utcnow
from tilework.webhooks.sender import SendResult

log = logging.getLogger(__name__)

BATCH = 64
JITTER = 0.2
MAX_RETRY_AFTER_SECONDS = 24 * 3600
RETRY_WRITE_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    event_id: str
    run_id: str
    url: str
    workspace_id: str
    attempts: int
    result: SendResult
    at: datetime


class Recorder:
    def __init__(
        self,
        db: Database,
        retry_schedule: Sequence[float],
        *,
        on_flush: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.retry_schedule = tuple(retry_schedule)
        self.on_flush = on_flush
        self._queue: queue.Queue[Outcome | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhook-recorder")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def record(self, outcome: Outcome) -> None:
        self._queue.put(outcome)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write_until_done(batch)
                    return
                batch.append(item)
            self._write_until_done(batch)

    def _write_until_done(self, batch: list[Outcome]) -> None:
        """Write a batch; a failing database is retried, never silently skipped."""
        failures = 0
        while True:
            try:
                self.write(batch)
            except Exception:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.exception(
                        "recording %d webhook attempts failed (%d in a row); retrying",
                        len(batch),
                        failures,
                    )
                time.sleep(min(30.0, RETRY_WRITE_SECONDS * failures))
                continue
            self.on_flush()
            for outcome in batch:
                _log_attempt(outcome)
            return

    def write(self, batch: Sequence[Outcome]) -> None:
        """Record ``batch`` in one transaction."""
        with self.db.write() as session:
            session.execute(insert(WebhookAttempt), [_attempt_row(o) for o in batch])
            delivered = [o for o in batch if o.result.outcome == "delivered"]
            if delivered:
                _mark_delivered(session, delivered)
            for outcome in batch:
                if outcome.result.outcome != "delivered":
                    self._apply_failure(session, outcome)

    def _apply_failure(self, session: Session, outcome: Outcome) -> None:
        result = outcome.result
        values: dict[str, object] = {
            "attempts": outcome.attempts,
            "claimed_until": None,
            "claimed_by": None,
            "last_error": result.error,
        }
        if result.outcome == "gone":
            values["status"] = "failed"
            if session.get(GoneUrl, outcome.url) is None:
                session.add(GoneUrl(url=outcome.url, workspace_id=outcome.workspace_id))
        elif result.outcome == "blocked" or outcome.attempts > len(self.retry_schedule):
            values["status"] = "failed"
            log.warning(
                "webhook %s gave up after %d attempts: %s",
                outcome.event_id,
                outcome.attempts,
                result.error,
            )
        else:
            delay = self.delay(outcome.attempts, result)
            values["next_attempt_at"] = outcome.at + timedelta(seconds=delay)
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == outcome.event_id)
            .values(**values)
        )

    def delay(self, attempts: int, result: SendResult) -> float:
        """Seconds to the next attempt: ``Retry-After``, else the jittered schedule."""
        if result.retry_after is not None:
            return min(result.retry_after, MAX_RETRY_AFTER_SECONDS)
        base = self.retry_schedule[attempts - 1]
        return base * random.uniform(1 - JITTER, 1 + JITTER)


def _attempt_row(outcome: Outcome) -> dict[str, object]:
    result = outcome.result
    return {
        "event_id": outcome.event_id,
        "attempted_at": outcome.at,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "outcome": result.outcome,
        "error": result.error,
    }


def _mark_delivered(session: Session, delivered: Sequence[Outcome]) -> None:
    by_attempts: dict[int, list[str]] = {}
    for outcome in delivered:
        by_attempts.setdefault(outcome.attempts, []).append(outcome.event_id)
    now = utcnow()
    for attempts, ids in by_attempts.items():
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(ids))
            .values(
                status="delivered",
                delivered_at=now,
                attempts=attempts,
                claimed_until=None,
                claimed_by=None,
                last_error=None,
            )
        )


def _log_attempt(outcome: Outcome) -> None:
    result = outcome.result
    log.info(
        "webhook %s (run %s, attempt %d) -> %s %s in %.0fms",
        outcome.event_id,
        outcome.run_id,
        outcome.attempts,
        result.outcome,
        result.status_code if result.status_code is not None else "-",
        result.duration_ms,
    )
