"""The outbox relay: claims due events, sends them, records every attempt.

Delivery is at least once and ordered per run: an event waits while an earlier event
of its run is still pending, but at most ``order_wait`` seconds, so one failing
callback cannot hold the rest for its whole retry schedule. Events of other runs
never wait for it.

One loop claims due events in batches (one per run, each claim a single short
transaction) into a small local queue; ``concurrency`` sending threads take from it,
so a slow receiver holds one thread, never the loop; a recorder thread writes the
attempts in batches. On PostgreSQL claims skip rows another dispatcher has locked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, select, update
from sqlalchemy.orm import Session, aliased

from tilework.processes import claimant_prefix, is_dead_local_claimant
from tilework.store.db import Database
from tilework.store.models import GoneUrl, WebhookEvent, Workspace, utcnow
from tilework.webhooks.recorder import Outcome, Recorder
from tilework.webhooks.sender import Sender, SendResult
from tilework.webhooks.signing import mosaic_headers, standard_headers

log = logging.getLogger(__name__)

CLAIM_MARGIN_SECONDS = 10
SCAN_FACTOR = 4
CLAIM_SPACING_SECONDS = 0.005


@dataclass(frozen=True)
class DispatchPolicy:
    retry_schedule: Sequence[float]
    order_wait_seconds: float = 60.0
    timeout_seconds: float = 15.0
    max_payload_bytes: int = 256 * 1024
    poll_seconds: float = 0.1


@dataclass(frozen=True)
class Claimed:
    id: str
    run_id: str
    url: str
    workspace_id: str
    body: bytes
    attempts: int
    secret: str | None
    signing_secrets: tuple[str, ...]
    gone: bool = False


class Dispatcher:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        policy: DispatchPolicy,
        *,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.sender = sender
        self.policy = policy
        self.concurrency = concurrency
        self.wake = threading.Event()
        self.claimant = f"{claimant_prefix()}:dispatcher"
        self.recorder = Recorder(db, policy.retry_schedule, on_flush=self.wake.set)
        self._stop = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._ready: deque[Claimed] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._queries: dict[int, Select[Any]] = {}
        self._last_claim = 0.0

    def start(self) -> None:
        self.release_orphaned_claims()
        self.recorder.start()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.recorder.stop(timeout=timeout)

    def release_orphaned_claims(self) -> int:
        """Take back events claimed by a process of this machine that has died."""
        with self.db.write() as session:
            claimed = session.scalars(
                select(WebhookEvent).where(
                    WebhookEvent.status == "pending",
                    WebhookEvent.claimed_by.is_not(None),
                )
            ).all()
            orphans = [e for e in claimed if is_dead_local_claimant(e.claimed_by or "")]
            for event in orphans:
                event.claimed_until = None
                event.claimed_by = None
        if orphans:
            log.info(
                "took back %d webhook events claimed by a stopped process", len(orphans)
            )
        return len(orphans)

    def _loop(self) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook") as pool:
            while not self._stop.is_set():
                room = 2 * self.concurrency - len(self._ready) - self._in_flight
                if room > 0 and len(self._ready) < self.concurrency:
                    self._pace()
                    self._ready.extend(self._claim_safely(room))

                poll = self.policy.poll_seconds
                while self._ready and self._slots.acquire(timeout=poll):
                    self._submit(pool, self._ready.popleft())

                if not self._ready:
                    self.wake.wait(poll)
                    self.wake.clear()

    def _pace(self) -> None:
        """Space claims a few milliseconds apart, so a burst is claimed in batches."""
        wait = self._last_claim + CLAIM_SPACING_SECONDS - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        self._last_claim = time.monotonic()

    def _submit(self, pool: ThreadPoolExecutor, event: Claimed) -> None:
        with self._lock:
            self._in_flight += 1
        pool.submit(self._deliver_safely, event)

    def _claim_safely(self, limit: int) -> list[Claimed]:
        try:
            batch = self.claim(limit=limit)
        except Exception:
            self._back_off("claiming webhook events failed")
            return []
        self._failures = 0
        return batch

    def _deliver_safely(self, event: Claimed) -> None:
        try:
            self.deliver(event)
        except Exception:
            log.exception(
                "webhook %s of run %s could not be sent; it goes again when its "
                "claim lapses",
                event.id,
                event.run_id,
            )
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()

    def _back_off(self, message: str) -> None:
        self._failures += 1
        delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
        if self._failures == 1 or self._failures % 10 == 0:
            log.error(
                "%s (%d in a row); retrying in %.1fs",
                message,
                self._failures,
                delay,
                exc_info=True,
            )
        self._stop.wait(delay)

    def claim(self, *, limit: int = 64, now: datetime | None = None) -> list[Claimed]:
        """Take up to ``limit`` due events, one per run, and mark them in flight.

        On PostgreSQL the due rows are locked (skipping rows another dispatcher
        holds) and claimed in one transaction. On SQLite they are found without the
        write lock, then claimed by an update that only wins rows still unclaimed,
        so the lock is held for one statement.
        """
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.policy.order_wait_seconds)
        params = {"now": now, "cutoff": cutoff}
        query = self._due_query(limit * SCAN_FACTOR)
        if self.db.is_sqlite:
            with self.db.read() as session:
                rows = _one_per_run(session.execute(query, params).all(), limit)
            if not rows:
                return []
            with self.db.write() as session:
                won = self._mark_claimed(session, rows, now)
                return self._describe(session, [row for row in rows if row.id in won])

        with self.db.write() as session:
            rows = _one_per_run(session.execute(query, params).all(), limit)
            if not rows:
                return []
            self._mark_claimed(session, rows, now)
            return self._describe(session, rows)

    def _mark_claimed(
        self, session: Session, rows: list[Any], now: datetime
    ) -> set[str]:
        unclaimed = WebhookEvent.claimed_until.is_(None) | (
            WebhookEvent.claimed_until < now
        )
        result = session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.id.in_([row.id for row in rows]),
                WebhookEvent.status == "pending",
                unclaimed,
            )
            .values(claimed_until=now + self._claim_span(), claimed_by=self.claimant)
            .returning(WebhookEvent.id)
        )
        return set(result.scalars())

    def _describe(self, session: Session, rows: list[Any]) -> list[Claimed]:
        spaces = _workspaces(session, {row.workspace_id for row in rows})
        urls = {row.url for row in rows}
        gone = set(session.scalars(select(GoneUrl.url).where(GoneUrl.url.in_(urls))))
        return [
            _claimed(row, spaces[row.workspace_id], row.url in gone) for row in rows
        ]

    def _claim_span(self) -> timedelta:
        """How long a claim holds: a queued event may wait one full round of sends."""
        return timedelta(seconds=2 * self.policy.timeout_seconds + CLAIM_MARGIN_SECONDS)

    def _due_query(self, limit: int) -> Select[Any]:
        """Due events whose run has no earlier event still pending (within the wait)."""
        if limit in self._queries:
            return self._queries[limit]
        earlier = aliased(WebhookEvent)
        waiting_on_earlier = exists().where(
            and_(
                earlier.run_id == WebhookEvent.run_id,
                earlier.status == "pending",
                earlier.sequence < WebhookEvent.sequence,
                earlier.created_at > bindparam("cutoff"),
            )
        )
        now: Any = bindparam("now")
        query = (
            select(
                WebhookEvent.id,
                WebhookEvent.run_id,
                WebhookEvent.url,
                WebhookEvent.workspace_id,
                WebhookEvent.attempts,
                WebhookEvent.payload,
            )
            .where(
                WebhookEvent.status == "pending",
                WebhookEvent.next_attempt_at <= now,
                (WebhookEvent.claimed_until.is_(None))
                | (WebhookEvent.claimed_until < now),
                ~waiting_on_earlier,
            )
            .order_by(WebhookEvent.next_attempt_at, WebhookEvent.sequence)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update(of=WebhookEvent, skip_locked=True)
        self._queries[limit] = query
        return query

    def deliver(self, event: Claimed) -> SendResult | None:
        if len(event.body) > self.policy.max_payload_bytes:
            self._refuse_oversize(event)
            return None
        if event.gone:
            result = SendResult(
                410, 0.0, "the URL answered 410 Gone earlier", None, "gone"
            )
        else:
            result = self._send(event)

        self.recorder.record(
            Outcome(
                event_id=event.id,
                run_id=event.run_id,
                url=event.url,
                workspace_id=event.workspace_id,
                attempts=event.attempts + 1,
                result=result,
                at=utcnow(),
            )
        )
        return result

    def _send(self, event: Claimed) -> SendResult:
        try:
            headers = self._headers(event)
        except (ValueError, UnicodeError) as exc:
            error = f"the workspace's webhook secrets cannot sign this event: {exc}"
            return SendResult(None, 0.0, error, None, "retry")
        return self._within_deadline(self.sender.send(event.url, event.body, headers))

    def _within_deadline(self, result: SendResult) -> SendResult:
        """A 2xx counts only when it came within the timeout, however it trickled in."""
        limit_ms = self.policy.timeout_seconds * 1000
        if result.outcome != "delivered" or result.duration_ms <= limit_ms:
            return result
        error = (
            f"the receiver answered after {result.duration_ms / 1000:.1f} s, "
            f"over the {self.policy.timeout_seconds:.0f} s limit"
        )
        return SendResult(result.status_code, result.duration_ms, error, None, "retry")

    def _headers(self, event: Claimed) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tilework-webhooks",
        }
        headers.update(mosaic_headers(event.secret))
        if event.signing_secrets:
            timestamp = int(time.time())
            headers.update(
                standard_headers(event.signing_secrets, event.id, timestamp, event.body)
            )
        return headers

    def redeliver(self, event_id: str) -> None:
        """Queue one more attempt of an event, whatever became of the earlier ones."""
        with self.db.write() as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event_id)
                .values(
                    status="pending",
                    next_attempt_at=utcnow(),
                    claimed_until=None,
                    claimed_by=None,
                )
            )
        self.wake.set()

    def _refuse_oversize(self, event: Claimed) -> None:
        message = (
            f"the event is {len(event.body)} bytes, over the "
            f"{self.policy.max_payload_bytes}-byte webhook limit; it was not sent"
        )
        log.error("webhook %s of run %s refused: %s", event.id, event.run_id, message)
        with self.db.write() as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id)
                .values(
                    status="failed",
                    last_error=message,
                    claimed_until=None,
                    claimed_by=None,
                )
            )


def _one_per_run(rows: Sequence[Any], limit: int) -> list[Any]:
    """The first due event of each run, at most ``limit`` of them."""
    chosen: dict[str, Any] = {}
    for row in rows:
        if len(chosen) >= limit:
            break
        chosen.setdefault(row.run_id, row)
    return list(chosen.values())


def _workspaces(session: Session, ids: set[str]) -> dict[str, Workspace]:
    rows = session.scalars(select(Workspace).where(Workspace.id.in_(ids)))
    return {row.id: row for row in rows}


def _claimed(row: Any, workspace: Workspace, gone: bool) -> Claimed:
    signing = [workspace.signing_secret] if workspace.signing_secret else []
    expires = workspace.previous_secret_expires_at
    if workspace.previous_signing_secret and expires and expires > utcnow():
        signing.append(workspace.previous_signing_secret)
    return Claimed(
        id=row.id,
        run_id=row.run_id,
        url=row.url,
        workspace_id=row.workspace_id,
        body=encode(row.payload),
        attempts=row.attempts,
        secret=workspace.webhook_secret,
        signing_secrets=tuple(signing),
        gone=gone,
    )


def encode(payload: object) -> bytes:
    """The bytes sent for a payload: the same bytes on every attempt."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
