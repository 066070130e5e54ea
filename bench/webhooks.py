"""Webhook delivery benchmark: the outbox dispatcher against a plain httpx loop.

Run by hand: ``python bench/webhooks.py [--events N] [--runs R] [--rate R]
[--database URL] [--profile]``. All traffic stays on 127.0.0.1. See bench/README.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import multiprocessing
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, insert, select, update

from tilework.config import DEFAULT_RETRY_SCHEDULE
from tilework.store.db import Database
from tilework.store.models import (
    Agent,
    Organization,
    Run,
    WebhookEvent,
    Workspace,
    utcnow,
)
from tilework.webhooks.dispatcher import (
    Claimed,
    Dispatcher,
    DispatchPolicy,
)
from tilework.webhooks.recorder import Outcome
from tilework.webhooks.sender import HttpSender, SendResult
from tilework.webhooks.signing import generate_signing_secret

LOOPBACK = "127.0.0.1"
PHASE_LIMIT_SECONDS = 60.0
TARGET_RATE = 500.0
TARGET_BASELINE_SHARE = 0.5
TARGET_P99_MS = 100.0
CPU_BOUND_PERCENT = 75.0
CPU_STAGES = ("claim transaction", "HTTP send", "record transaction")

Receipt = tuple[str, float]
Message = dict[str, Any]
Scope = dict[str, Any]


# The receiver: uvicorn (httptools, uvloop) in its own process, so it never
# competes with the dispatcher for the GIL.


class _Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[bytes, float]] = []

    async def app(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        stamp = time.time()
        with self.lock:
            self.items.append((b"".join(chunks), stamp))
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def take(self) -> list[Receipt]:
        with self.lock:
            items, self.items = self.items, []
        return [(json.loads(body)["event_id"], stamp) for body, stamp in items]


def _serve(conn: Connection) -> None:
    import uvicorn

    inbox = _Inbox()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(2048)
    config = uvicorn.Config(
        inbox.app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        interface="asgi3",
        proxy_headers=False,
        timeout_keep_alive=120,
    )
    server = uvicorn.Server(config)
    control = threading.Thread(target=_control, args=(conn, server, inbox))
    control.daemon = True
    control.start()
    conn.send(sock.getsockname()[1])
    server.run(sockets=[sock])


def _control(conn: Connection, server: Any, inbox: _Inbox) -> None:
    cpu = time.process_time()
    while True:
        command = conn.recv()
        if command == "stop":
            server.should_exit = True
            return
        now = time.process_time()
        conn.send((inbox.take(), now - cpu))
        cpu = now


class Receiver:
    """The loopback receiver process; ``take`` returns and clears what it got."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self.port = 0

    def __enter__(self) -> Receiver:
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the receiver process did not start within 30 s")
        self.port = int(self._conn.recv())
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/hook"

    def take(self) -> tuple[list[Receipt], float]:
        self._conn.send("take")
        receipts, cpu_seconds = self._conn.recv()
        return receipts, float(cpu_seconds)


# Payloads shaped like the outbox's RUN_PROGRESS events.


def make_payload(event_id: str, run_id: str, sequence: int) -> dict[str, Any]:
    nodes = [
        {
            "original_node_id": f"00000000-0000-4000-8000-00000000000{index}",
            "status": "in_progress",
            "status_message": None,
            "needs_credits": False,
            "progress": 0.5,
            "renders": [f"https://media.example.invalid/r/{uuid.uuid4().hex}.mp4"],
        }
        for index in range(3)
    ]
    return {
        "flag": "RUN_PROGRESS",
        "agent_id": "00000000-0000-4000-8000-0000000000aa",
        "run_id": run_id,
        "status": "running",
        "node_status_counts": {"completed": 1, "in_progress": 3, "not_started": 2},
        "triggered_by": {"type": "api", "api_key_prefix": "tw_bench"},
        "updated_nodes": nodes,
        "event_id": event_id,
        "sequence": sequence,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def encode(payload: dict[str, Any]) -> bytes:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


# Measurements.


@dataclass
class Phase:
    name: str
    events: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    receiver_cpu_seconds: float = 0.0
    commit_rate: float = math.nan
    lost: int = 0
    ledger: Ledger | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        return share_of(self.cpu_seconds, self.seconds)

    @property
    def receiver_cpu_percent(self) -> float:
        return share_of(self.receiver_cpu_seconds, self.seconds)

    @property
    def cpu_ms_per_event(self) -> float:
        return 1000 * self.cpu_seconds / self.events if self.events else math.nan

    def latency(self, quantile: float) -> float:
        return percentile(self.latencies_ms, quantile)


@dataclass(frozen=True)
class Ledger:
    committed: int
    delivered: int
    failed: int
    pending: int
    received_unique: int
    duplicates: int
    unexpected: int
    mismatched: int

    @property
    def balanced(self) -> bool:
        return (
            self.committed == self.delivered + self.failed
            and self.pending == 0
            and self.unexpected == 0
            and self.mismatched == 0
        )

    def describe(self) -> str:
        verdict = "balanced" if self.balanced else "DOES NOT BALANCE - run void"
        return (
            f"committed {self.committed} = delivered {self.delivered} + failed "
            f"{self.failed} (pending {self.pending}); receiver: "
            f"{self.received_unique} unique, {self.duplicates} duplicates, "
            f"{self.unexpected} unknown ids, {self.mismatched} in only one of "
            f"database-delivered and received -> {verdict}"
        )


def percentile(values: Sequence[float], quantile: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def share_of(part: float, whole: float) -> float:
    return 100 * part / whole if whole > 0 else math.nan


def first_receipts(receipts: list[Receipt]) -> dict[str, float]:
    first: dict[str, float] = {}
    for event_id, stamp in receipts:
        if event_id not in first or stamp < first[event_id]:
            first[event_id] = stamp
    return first


# Baseline: a plain keep-alive httpx.Client loop.


def baseline(receiver: Receiver, count: int, threads: int) -> Phase:
    bodies = [
        encode(make_payload(str(uuid.uuid4()), str(uuid.uuid4()), 1))
        for _ in range(count)
    ]
    headers = {"Content-Type": "application/json"}
    share = [bodies[index::threads] for index in range(threads)]
    cpu = time.process_time()
    with httpx.Client(timeout=15.0, trust_env=False) as client:

        def post_all(chunk: list[bytes]) -> int:
            for body in chunk:
                client.post(receiver.url, content=body, headers=headers)
            return len(chunk)

        started = time.time()
        with ThreadPoolExecutor(threads) as pool:
            sent = sum(pool.map(post_all, share))
    receipts, receiver_cpu = receiver.take()
    first = first_receipts(receipts)
    wall = max(first.values(), default=started) - started
    name = f"baseline httpx, {threads} thread{'s' if threads > 1 else ''}"
    phase = Phase(name, sent, wall)
    phase.cpu_seconds = time.process_time() - cpu
    phase.receiver_cpu_seconds = receiver_cpu
    if len(first) != count or len(receipts) != count:
        phase.lost = count - len(first)
        phase.notes.append(
            f"sent {count}, received {len(receipts)}, {len(first)} unique"
        )
    return phase


# Databases and seeding.


@contextmanager
def fresh_database(spec: str | None, folder: Path, label: str) -> Iterator[Database]:
    if spec is None:
        db = Database(f"sqlite:///{folder / label}.db")
        try:
            db.migrate()
            yield db
        finally:
            db.dispose()
        return
    with postgres_database(spec) as url:
        db = Database(url)
        try:
            db.migrate()
            yield db
        finally:
            db.dispose()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"tilework_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Seed:
    workspace_id: str
    run_ids: tuple[str, ...]
    url: str


def seed(db: Database, runs: int, url: str) -> Seed:
    with db.write() as session:
        organization = Organization(name="bench")
        session.add(organization)
        session.flush()
        workspace = Workspace(
            organization_id=organization.id,
            name="bench",
            signing_secret=generate_signing_secret(),
        )
        session.add(workspace)
        session.flush()
        agent = Agent(workspace_id=workspace.id, name="bench")
        session.add(agent)
        session.flush()
        rows = [
            Run(
                agent_id=agent.id,
                workspace_id=workspace.id,
                organization_id=organization.id,
                callback_url=url,
            )
            for _ in range(runs)
        ]
        session.add_all(rows)
        session.flush()
        return Seed(workspace.id, tuple(run.id for run in rows), url)


def event_row(seed: Seed, run_id: str, sequence: int) -> dict[str, Any]:
    event_id = str(uuid.uuid4())
    now = utcnow()
    return {
        "id": event_id,
        "run_id": run_id,
        "workspace_id": seed.workspace_id,
        "sequence": sequence,
        "flag": "RUN_PROGRESS",
        "url": seed.url,
        "payload": make_payload(event_id, run_id, sequence),
        "created_at": now,
        "next_attempt_at": now,
    }


# Producers.


def commit_batches(
    db: Database, seed: Seed, count: int, batch: int, wake: threading.Event
) -> dict[str, float]:
    runs = seed.run_ids
    rows = [
        event_row(seed, runs[index % len(runs)], index // len(runs) + 1)
        for index in range(count)
    ]
    commits: dict[str, float] = {}
    for start in range(0, count, batch):
        chunk = rows[start : start + batch]
        now = utcnow()
        for row in chunk:
            row["created_at"] = row["next_attempt_at"] = now
        with db.write() as session:
            session.execute(insert(WebhookEvent), chunk)
        stamp = time.time()
        commits.update(dict.fromkeys((row["id"] for row in chunk), stamp))
        wake.set()
    return commits


def emit_one(
    db: Database, seed: Seed, run_id: str, wake: threading.Event, inside: bool
) -> str:
    with db.write() as session:
        bumped = session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(event_sequence=Run.event_sequence + 1)
            .returning(Run.event_sequence)
        )
        row = event_row(seed, run_id, int(bumped.scalar_one()))
        session.add(WebhookEvent(**row))
        if inside:
            wake.set()
    return str(row["id"])


@dataclass(frozen=True)
class Pace:
    rate: float
    seconds: float
    threads: int


def commit_steadily(
    db: Database,
    seed: Seed,
    pace: Pace,
    wake: threading.Event,
    inside: bool,
) -> dict[str, float]:
    commits: dict[str, float] = {}
    total = int(pace.rate * pace.seconds)
    tickets = iter(range(total))
    lock = threading.Lock()
    started = time.perf_counter()

    def produce() -> None:
        while True:
            with lock:
                index = next(tickets, None)
            if index is None:
                return
            delay = started + index / pace.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            run_id = seed.run_ids[index % len(seed.run_ids)]
            event_id = emit_one(db, seed, run_id, wake, inside)
            commits[event_id] = time.time()
            if not inside:
                wake.set()

    with ThreadPoolExecutor(pace.threads, thread_name_prefix="producer") as pool:
        for future in [pool.submit(produce) for _ in range(pace.threads)]:
            future.result()
    return commits


# The dispatcher, optionally timed stage by stage.


class TimedDispatcher(Dispatcher):
    """Stamps each event's claim, send and record, and sums their thread CPU time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages: dict[str, dict[str, float]] = {}
        self.claims: list[tuple[float, float, int]] = []
        self.cpu: dict[str, float] = dict.fromkeys(CPU_STAGES, 0.0)
        self._cpu_lock = threading.Lock()
        self._local = threading.local()
        self._write = self.recorder.write
        self.recorder.write = self._timed_write  # type: ignore[method-assign]

    def _spent(self, stage: str, since: float) -> None:
        with self._cpu_lock:
            self.cpu[stage] += time.thread_time() - since

    def claim(self, *, limit: int = 64, now: datetime | None = None) -> list[Claimed]:
        started, cpu = time.time(), time.thread_time()
        batch = super().claim(limit=limit, now=now)
        self._spent("claim transaction", cpu)
        ended = time.time()
        self.claims.append((started, ended, len(batch)))
        for claimed in batch:
            self.stages[claimed.id] = {"claim_start": started, "claim_end": ended}
        return batch

    def _headers(self, event: Claimed) -> dict[str, str]:
        headers = super()._headers(event)
        self._local.event_id = event.id
        self._local.cpu = time.thread_time()
        self.stages[event.id]["send_start"] = time.time()
        return headers

    def _within_deadline(self, result: SendResult) -> SendResult:
        self._spent("HTTP send", self._local.cpu)
        self.stages[self._local.event_id]["send_end"] = time.time()
        return super()._within_deadline(result)

    def _timed_write(self, batch: Sequence[Outcome]) -> None:
        started, cpu = time.time(), time.thread_time()
        self._write(batch)
        self._spent("record transaction", cpu)
        ended = time.time()
        for outcome in batch:
            stage = self.stages.get(outcome.event_id)
            if stage is not None:
                stage["record_start"] = started
                stage["record_end"] = ended


class BeginWaits:
    """Wall time spent in SQLite's BEGIN IMMEDIATE, by the dispatcher and the rest."""

    def __init__(self, db: Database) -> None:
        self.waits_ms: dict[str, list[float]] = {"dispatcher": [], "producer": []}
        if db.is_sqlite:
            event.listen(db.engine, "before_cursor_execute", self._before)
            event.listen(db.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement == "BEGIN IMMEDIATE":
            conn.info["begin_at"] = time.perf_counter()

    def _after(self, conn: Any, *rest: Any) -> None:
        started = conn.info.pop("begin_at", None)
        if started is None:
            return
        ours = threading.current_thread().name.startswith("webhook")
        role = "dispatcher" if ours else "producer"
        self.waits_ms[role].append(1000 * (time.perf_counter() - started))


def start_dispatcher(db: Database, concurrency: int, timed: bool) -> Dispatcher:
    sender = HttpSender(allow=[ipaddress.ip_network(f"{LOOPBACK}/32")], timeout=15.0)
    policy = DispatchPolicy(retry_schedule=DEFAULT_RETRY_SCHEDULE)
    kind = TimedDispatcher if timed else Dispatcher
    dispatcher = kind(db, sender, policy, concurrency=concurrency)
    dispatcher.start()
    return dispatcher


class DispatchProcess:
    """``tilework dispatch`` in a process of its own, on the same database."""

    def __init__(self, url: str, poll_seconds: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILEWORK_")}
        env.update(
            {
                "TILEWORK_DATABASE_URL": url,
                "TILEWORK_DATA_DIR": tempfile.mkdtemp(prefix="tilework-dispatch-"),
                "TILEWORK_WEBHOOK_ALLOW_NETWORKS": f"{LOOPBACK}/32",
                "TILEWORK_WEBHOOK_POLL_SECONDS": str(poll_seconds),
                "TILEWORK_LOG_LEVEL": "WARNING",
            }
        )
        command = [sys.executable, "-m", "tilework", "dispatch"]
        self.process = subprocess.Popen(command, env=env)
        self.wake = threading.Event()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        ticks = os.sysconf("SC_CLK_TCK")
        utime, stime = (int(value) for value in fields.split()[11:13])
        return (utime + stime) / ticks

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def stop_dispatcher(dispatcher: Dispatcher) -> None:
    dispatcher.stop(timeout=20.0)
    close = getattr(dispatcher.sender, "close", None)
    if close is not None:
        close()


def wait_drained(db: Database, deadline: float) -> bool:
    query = select(func.count()).where(WebhookEvent.status == "pending")
    while time.monotonic() < deadline:
        with db.read() as session:
            if session.scalar(query) == 0:
                return True
        time.sleep(0.05)
    return False


def read_ledger(
    db: Database, commits: dict[str, float], receipts: list[Receipt]
) -> Ledger:
    with db.read() as session:
        rows = session.execute(select(WebhookEvent.id, WebhookEvent.status)).all()
    status = {row.id: row.status for row in rows}
    committed = set(commits)
    delivered = {key for key, value in status.items() if value == "delivered"}
    received = {event_id for event_id, _ in receipts}
    failed = sum(1 for key in committed if status.get(key) == "failed")
    return Ledger(
        committed=len(committed),
        delivered=len(delivered & committed),
        failed=failed,
        pending=sum(1 for key in committed if status.get(key) == "pending"),
        received_unique=len(received),
        duplicates=len(receipts) - len(received),
        unexpected=len(received - committed) + len(set(status) - committed),
        mismatched=len(delivered ^ received),
    )


@dataclass(frozen=True)
class Workload:
    name: str
    produce: Callable[[Database, Seed, threading.Event], dict[str, float]]


@dataclass
class Drive:
    commits: dict[str, float]
    receipts: list[Receipt]
    ledger: Ledger
    drained: bool
    cpu_seconds: float
    receiver_cpu_seconds: float
    timed: TimedDispatcher | None = None
    begins: BeginWaits | None = None


def drive(
    args: argparse.Namespace, receiver: Receiver, folder: Path, workload: Workload
) -> Drive:
    label = workload.name.split()[0] + uuid.uuid4().hex[:6]
    with fresh_database(args.database, folder, label) as db:
        target = seed(db, args.runs, receiver.url)
        begins = BeginWaits(db) if args.profile else None
        if args.process:
            return _drive_process(args, receiver, db, target, workload)
        dispatcher = start_dispatcher(db, args.concurrency, args.profile)
        cpu = time.process_time()
        deadline = time.monotonic() + PHASE_LIMIT_SECONDS
        try:
            commits = workload.produce(db, target, dispatcher.wake)
            drained = wait_drained(db, deadline)
        finally:
            stop_dispatcher(dispatcher)
        cpu = time.process_time() - cpu
        receipts, receiver_cpu = receiver.take()
        ledger = read_ledger(db, commits, receipts)
    timed = dispatcher if isinstance(dispatcher, TimedDispatcher) else None
    return Drive(commits, receipts, ledger, drained, cpu, receiver_cpu, timed, begins)


def _drive_process(
    args: argparse.Namespace,
    receiver: Receiver,
    db: Database,
    target: Seed,
    workload: Workload,
) -> Drive:
    """The same load, with the dispatcher in its own process (``--process``)."""
    dispatch = DispatchProcess(db.url, args.poll)
    time.sleep(1.5)
    own_cpu = time.process_time()
    deadline = time.monotonic() + PHASE_LIMIT_SECONDS
    try:
        commits = workload.produce(db, target, dispatch.wake)
        drained = wait_drained(db, deadline)
        cpu = time.process_time() - own_cpu + dispatch.cpu_seconds()
    finally:
        dispatch.stop()
    receipts, receiver_cpu = receiver.take()
    ledger = read_ledger(db, commits, receipts)
    return Drive(commits, receipts, ledger, drained, cpu, receiver_cpu)


def run_phase(
    args: argparse.Namespace, receiver: Receiver, folder: Path, workload: Workload
) -> Phase:
    run = drive(args, receiver, folder, workload)
    first = first_receipts(run.receipts)
    began = min(run.commits.values())
    wall = max(first.values(), default=began) - began
    phase = Phase(workload.name, len(first), wall, ledger=run.ledger)
    phase.latencies_ms = [
        1000 * (first[key] - stamp)
        for key, stamp in run.commits.items()
        if key in first
    ]
    phase.cpu_seconds = run.cpu_seconds
    phase.receiver_cpu_seconds = run.receiver_cpu_seconds
    committing = max(run.commits.values()) - began
    phase.commit_rate = len(run.commits) / committing if committing > 0 else math.inf
    phase.notes.append(
        f"producer committed {len(run.commits)} events in {committing:.2f} s "
        f"({phase.commit_rate:.0f}/s)"
    )
    phase.notes.append(cpu_verdict(phase))
    if not run.drained:
        phase.notes.append(f"cut off after {PHASE_LIMIT_SECONDS:.0f} s, not drained")
    if run.timed is not None and run.begins is not None:
        phase.notes.extend(stage_report(run.timed, run.commits, first, wall))
        phase.notes.extend(
            cpu_report(run.timed, run.begins, run.cpu_seconds, len(run.commits))
        )
    return phase


# Reports.


def spread(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 0.5):7.2f}  p99 {percentile(values, 0.99):7.2f}  "
        f"max {max(values):7.2f} ms"
    )


def cpu_verdict(phase: Phase) -> str:
    used = f"{phase.cpu_percent:.0f}% of one core"
    if not phase.events:
        return "nothing was delivered"
    if phase.cpu_percent < CPU_BOUND_PERCENT:
        return f"{used}: most of the time went to waiting (database, locks), not CPU"
    ceiling = 1000 / phase.cpu_ms_per_event
    return (
        f"{used}, so bound by the GIL: at {phase.cpu_ms_per_event:.2f} CPU ms per "
        f"event one core caps this process near {ceiling:.0f} events/s"
    )


def stage_report(
    timed: TimedDispatcher,
    commits: dict[str, float],
    received: dict[str, float],
    wall: float,
) -> list[str]:
    stages = {k: v for k, v in timed.stages.items() if "record_end" in v}

    def gaps(start: str, end: str) -> list[float]:
        return [1000 * (s[end] - s[start]) for s in stages.values()]

    waits = [1000 * (s["claim_start"] - commits[k]) for k, s in stages.items()]
    to_receipt = [
        1000 * (received[key] - stage["send_start"])
        for key, stage in stages.items()
        if key in received
    ]
    claim_ms = [1000 * (end - start) for start, end, _ in timed.claims]
    useful = [size for _, _, size in timed.claims if size]
    busy = sum(claim_ms) / 1000
    return [
        f"profile: {len(timed.claims)} claim transactions, {len(useful)} non-empty, "
        f"{sum(useful) / max(1, len(useful)):.2f} events per non-empty claim; "
        f"the claim loop spent {busy:.2f} s of {wall:.2f} s inside claim()",
        f"  wall  commit -> claim starts   {spread(waits)}",
        f"  wall  claim transaction        {spread(claim_ms)}",
        f"  wall  claim end -> send start  {spread(gaps('claim_end', 'send_start'))}",
        f"  wall  send start -> receipt    {spread(to_receipt)}",
        f"  wall  HTTP send (whole)        {spread(gaps('send_start', 'send_end'))}",
        f"  wall  record transaction       "
        f"{spread(gaps('record_start', 'record_end'))}",
    ]


def cpu_report(
    timed: TimedDispatcher, begins: BeginWaits, process_cpu: float, events: int
) -> list[str]:
    per_event = {stage: 1000 * spent / events for stage, spent in timed.cpu.items()}
    other = 1000 * process_cpu / events - sum(per_event.values())
    lines = [
        f"  cpu   {stage:<22} {value:6.2f} ms/event"
        for stage, value in per_event.items()
    ]
    lines.append(f"  cpu   {'rest of the process':<22} {other:6.2f} ms/event")
    lines.append(
        f"  cpu   {'whole process':<22} {1000 * process_cpu / events:6.2f} ms/event"
    )
    for role, waits in begins.waits_ms.items():
        if waits:
            lines.append(
                f"  wall  BEGIN IMMEDIATE, {role:<10} {spread(waits)} "
                f"({len(waits)} writes, {sum(waits) / 1000:.2f} s in all)"
            )
    return lines


def targets(
    throughput: Phase, base: Phase, steady: Phase, offered: float
) -> list[tuple[str, bool]]:
    share = throughput.rate / base.rate if base.rate else 0.0
    p99 = steady.latency(0.99)
    return [
        (
            f"sustained >= {TARGET_RATE:.0f} events/s: {throughput.rate:.0f}/s",
            throughput.rate >= TARGET_RATE,
        ),
        (
            f">= {TARGET_BASELINE_SHARE:.0%} of baseline ({base.rate:.0f}/s): "
            f"{share:.0%}",
            share >= TARGET_BASELINE_SHARE,
        ),
        (
            f"p99 < {TARGET_P99_MS:.0f} ms at {offered:.0f} events/s offered "
            f"({steady.commit_rate:.0f}/s committed): {p99:.1f} ms",
            p99 < TARGET_P99_MS and steady.commit_rate >= 0.95 * offered,
        ),
    ]


def print_summary(
    args: argparse.Namespace, phases: list[Phase], base: Phase, loads: list[float]
) -> None:
    database = "PostgreSQL" if args.database else "SQLite (temp file)"
    body_bytes = len(encode(make_payload(str(uuid.uuid4()), str(uuid.uuid4()), 1)))
    print()
    print(f"command:  {command_line()}")
    print(f"date:     {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    print(
        f"machine:  {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, 1-min load average "
        f"{loads[0]:.1f} at start, {loads[1]:.1f} at end"
    )
    print(
        f"setup:    {database}, concurrency {args.concurrency}, {args.runs} runs, "
        f"body ~{body_bytes} B, receiver uvicorn+httptools in its own process"
    )
    print()
    header = (
        f"{'phase':<38} {'events':>6} {'wall s':>7} {'ev/s':>7} {'x base':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'cpu%':>5} {'cpu/ev':>6} "
        f"{'rcv%':>5}"
    )
    print(header)
    print("-" * len(header))
    for phase in phases:
        ratio = phase.rate / base.rate if base.rate else math.nan
        print(
            f"{phase.name:<38} {phase.events:>6} {phase.seconds:>7.2f} "
            f"{phase.rate:>7.0f} {ratio:>7.2f} {phase.latency(0.5):>7.1f} "
            f"{phase.latency(0.99):>7.1f} {phase.latency(1.0):>7.1f}"
            f" {phase.cpu_percent:>5.0f} {phase.cpu_ms_per_event:>6.2f}"
            f" {phase.receiver_cpu_percent:>5.0f}"
        )
    print(
        "cpu% = CPU of the benchmark process (dispatcher, producer, client) per "
        "wall second,\ncpu/ev = its CPU ms per delivered event, rcv% = the receiver "
        "process; 100% = one core"
    )
    for phase in phases:
        for note in phase.notes:
            print(f"[{phase.name}] {note}")
        if phase.ledger is not None:
            print(f"[{phase.name}] ledger: {phase.ledger.describe()}")


def command_line() -> str:
    return shlex.join(["python", *sys.argv])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--producers", type=int, default=4, help="threads committing the steady load"
    )
    parser.add_argument(
        "--database",
        default=None,
        help="PostgreSQL admin URL; a fresh database is created and dropped",
    )
    parser.add_argument(
        "--wake",
        choices=("after-commit", "inside-transaction"),
        default="after-commit",
        help="when the steady producer sets dispatcher.wake",
    )
    parser.add_argument(
        "--profile", action="store_true", help="time claim/send/record per event"
    )
    parser.add_argument(
        "--process",
        action="store_true",
        help="run the dispatcher as `tilework dispatch`, a process of its own",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=0.01,
        help="with --process: how often the idle dispatcher polls (seconds)",
    )
    args = parser.parse_args(argv)
    for name in ("events", "runs", "batch", "concurrency", "producers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.rate * args.seconds > 20_000 or args.events > 50_000:
        parser.error("keep the load bounded: at most 50,000 events, 20,000 steady")
    if not 0 < args.seconds <= PHASE_LIMIT_SECONDS / 2:
        parser.error(f"--seconds must be in (0, {PHASE_LIMIT_SECONDS / 2:.0f}]")
    if args.rate * args.seconds < 1:
        parser.error("--rate times --seconds must come to at least one event")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    inside = args.wake == "inside-transaction"
    pace = Pace(args.rate, args.seconds, args.producers)
    throughput = Workload(
        f"dispatcher, burst (batches of {args.batch})",
        lambda db, s, wake: commit_batches(db, s, args.events, args.batch, wake),
    )
    steady = Workload(
        f"dispatcher, steady {args.rate:.0f}/s, wake {'in tx' if inside else 'after'}",
        lambda db, s, wake: commit_steadily(db, s, pace, wake, inside),
    )
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="tilework-bench-") as tmp, Receiver() as rx:
        sequential = baseline(rx, args.events, 1)
        base = baseline(rx, args.events, args.concurrency)
        burst = run_phase(args, rx, Path(tmp), throughput)
        paced = run_phase(args, rx, Path(tmp), steady)
    loads.append(os.getloadavg()[0])
    phases = [sequential, base, burst, paced]
    print_summary(args, phases, base, loads)
    print()
    for text, met in targets(burst, base, paced, args.rate):
        print(f"target {'MET   ' if met else 'MISSED'} {text}")
    void = [p.name for p in phases if p.lost or (p.ledger and not p.ledger.balanced)]
    if void:
        print(f"\nVOID: the ledger does not balance for {', '.join(void)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
