"""The outbox relay: claims due events, sends them, records every attempt.

Delivery is at least once and ordered per run: an event waits while an earlier event
of its run is still pending, but at most ``order_wait`` seconds, so one failing
callback cannot hold the rest for its whole retry schedule. Events of other runs
never wait for it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from tilework.processes import claimant_prefix, is_dead_local_claimant
from tilework.store.db import Database
from tilework.store.models import (
    GoneUrl,
    WebhookAttempt,
    WebhookEvent,
    Workspace,
    utcnow,
)
from tilework.webhooks.sender import Sender, SendResult
from tilework.webhooks.signing import mosaic_headers, standard_headers

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.1
CLAIM_BATCH = 64
CLAIM_MARGIN_SECONDS = 10
JITTER = 0.2
MAX_RETRY_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class DispatchPolicy:
    retry_schedule: Sequence[float]
    order_wait_seconds: float = 60.0
    timeout_seconds: float = 15.0
    max_payload_bytes: int = 256 * 1024


@dataclass(frozen=True)
class Claimed:
    id: str
    run_id: str
    url: str
    body: bytes
    attempts: int
    secret: str | None
    signing_secrets: tuple[str, ...]


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._in_flight = 0
        self.claimant = f"{claimant_prefix()}:dispatcher"
        self._lock = threading.Lock()

    def start(self) -> None:
        self.release_orphaned_claims()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

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
        """Keep up to ``concurrency`` deliveries in flight; never wait for a batch.

        A slow or failing receiver holds one slot, not the loop: events of other runs
        are claimed as soon as any slot frees up.
        """
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook") as pool:
            while not self._stop.is_set():
                free = self.concurrency - self._in_flight
                batch = self._claim_safely(free) if free > 0 else []
                if not batch:
                    self.wake.wait(IDLE_POLL_SECONDS)
                    self.wake.clear()
                    continue
                for event in batch:
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
                "webhook %s of run %s: the attempt could not be recorded; it will be "
                "sent again when its claim lapses",
                event.id,
                event.run_id,
            )
        finally:
            with self._lock:
                self._in_flight -= 1
            self.wake.set()

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

    def claim(
        self, *, limit: int = CLAIM_BATCH, now: datetime | None = None
    ) -> list[Claimed]:
        """Take up to ``limit`` due events, one per run, and mark them in flight."""
        now = now or utcnow()
        with self.db.write() as session:
            events = session.scalars(self._due_query(now, limit * 4)).all()
            chosen: dict[str, WebhookEvent] = {}
            for event in events:
                if len(chosen) < limit:
                    chosen.setdefault(event.run_id, event)

            claimed = []
            for event in chosen.values():
                event.claimed_until = now + timedelta(
                    seconds=self.policy.timeout_seconds + CLAIM_MARGIN_SECONDS
                )
                event.claimed_by = self.claimant
                if event.body is None:
                    event.body = _encode(event.payload)
                claimed.append(self._claimed(session, event))
            return claimed

    def _due_query(self, now: datetime, limit: int) -> Select[WebhookEvent]:
        earlier = aliased(WebhookEvent)
        waiting_on_earlier = exists().where(
            and_(
                earlier.run_id == WebhookEvent.run_id,
                earlier.sequence < WebhookEvent.sequence,
                earlier.status == "pending",
                earlier.created_at
                > now - timedelta(seconds=self.policy.order_wait_seconds),
            )
        )
        query = (
            select(WebhookEvent)
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
        return query

    def _claimed(self, session: Session, event: WebhookEvent) -> Claimed:
        workspace = session.get_one(Workspace, event.workspace_id)
        signing = [workspace.signing_secret] if workspace.signing_secret else []
        expires = workspace.previous_secret_expires_at
        if workspace.previous_signing_secret and expires and expires > utcnow():
            signing.append(workspace.previous_signing_secret)
        return Claimed(
            id=event.id,
            run_id=event.run_id,
            url=event.url,
            body=event.body or b"",
            attempts=event.attempts,
            secret=workspace.webhook_secret,
            signing_secrets=tuple(signing),
        )

    def deliver(self, event: Claimed) -> SendResult | None:
        if len(event.body) > self.policy.max_payload_bytes:
            self._refuse_oversize(event)
            return None
        if self._is_gone(event.url):
            self._record(
                event,
                SendResult(410, 0.0, "the URL answered 410 Gone earlier", None, "gone"),
            )
            return None

        headers = self._headers(event)
        result = self._within_deadline(self.sender.send(event.url, event.body, headers))
        self._record(event, result)
        return result

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

    def _record(self, event: Claimed, result: SendResult) -> None:
        now = utcnow()
        with self.db.write() as session:
            row = session.get_one(WebhookEvent, event.id)
            row.attempts += 1
            row.claimed_until = None
            row.last_error = result.error
            session.add(
                WebhookAttempt(
                    event_id=event.id,
                    attempted_at=now,
                    status_code=result.status_code,
                    duration_ms=result.duration_ms,
                    outcome=result.outcome,
                    error=result.error,
                )
            )
            self._apply_outcome(session, row, result, now)
        log.info(
            "webhook %s (run %s, attempt %d) -> %s %s in %.0fms",
            event.id,
            event.run_id,
            event.attempts + 1,
            result.outcome,
            result.status_code if result.status_code is not None else "-",
            result.duration_ms,
        )

    def _apply_outcome(
        self, session: Session, row: WebhookEvent, result: SendResult, now: datetime
    ) -> None:
        if result.outcome == "delivered":
            row.status = "delivered"
            row.delivered_at = now
            return
        if result.outcome == "gone":
            row.status = "failed"
            if session.get(GoneUrl, row.url) is None:
                session.add(
                    GoneUrl(url=row.url, workspace_id=row.workspace_id, gone_at=now)
                )
            return
        if result.outcome == "blocked" or row.attempts > len(
            self.policy.retry_schedule
        ):
            row.status = "failed"
            log.warning(
                "webhook %s gave up after %d attempts: %s",
                row.id,
                row.attempts,
                result.error,
            )
            return
        row.next_attempt_at = now + timedelta(seconds=self._delay(row.attempts, result))

    def _delay(self, attempts: int, result: SendResult) -> float:
        if result.retry_after is not None:
            return min(result.retry_after, MAX_RETRY_AFTER_SECONDS)
        base = self.policy.retry_schedule[attempts - 1]
        return base * random.uniform(1 - JITTER, 1 + JITTER)

    def redeliver(self, event_id: str) -> None:
        """Queue one more attempt of an event, whatever became of the earlier ones."""
        with self.db.write() as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event_id)
                .values(status="pending", next_attempt_at=utcnow(), claimed_until=None)
            )
        self.wake.set()

    def _is_gone(self, url: str) -> bool:
        with self.db.read() as session:
            return session.get(GoneUrl, url) is not None

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
                .values(status="failed", last_error=message, claimed_until=None)
            )


def _encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )
