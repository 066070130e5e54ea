"""The scheduler: claims, leases, completion, cancel, resume and recovery.

Every method is one short write transaction. State changes are guarded by the status
they expect to change, so two processes racing for the same task cannot both win, and
each change writes its webhook event in the same transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from tilework.engine import rules
from tilework.engine.credits import CreditGate, NoCharge
from tilework.engine.events import Outbox
from tilework.engine.views import RunState
from tilework.errors import Conflict, NotFound
from tilework.store.db import Database
from tilework.store.models import Render, Run, RunNode, Task, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_REFUSALS_PER_CLAIM = 20


@dataclass(frozen=True)
class ClaimedTask:
    id: str
    run_id: str
    node_id: str
    original_node_id: str | None
    node_type_id: str
    params: dict[str, Any]
    item: dict[str, Any]
    attempt: int
    organization_id: str
    worker_id: str


@dataclass(frozen=True)
class OutputRecord:
    storage_key: str
    filename: str
    media_info: dict[str, Any]
    thumbnail_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelResult:
    success: bool
    run_id: str
    tasks_cancelled: int
    nodes_reset: int
    message: str


@dataclass(frozen=True)
class ResumeResult:
    success: bool
    run_id: str
    nodes_queued: int
    nodes_considered: int
    requeued_nodes: list[str]


class Scheduler:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        is_input: Callable[[str], bool],
        gate: CreditGate | None = None,
        lease_seconds: float = 30.0,
        render_retention_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.gate: CreditGate = gate or NoCharge()
        self.retention = (
            timedelta(seconds=render_retention_seconds)
            if render_retention_seconds is not None
            else None
        )
        self.is_input = is_input
        self.lease = timedelta(seconds=lease_seconds)
        self.work_available = threading.Event()
        self._cancel_listeners: list[Callable[[str], None]] = []

    def on_cancel(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(run_id)`` after a run is cancelled in this process."""
        self._cancel_listeners.append(listener)

    def start(self, session: Session, run: Run) -> None:
        """Queue the first tasks of a run just inserted in ``session``."""
        state = RunState.load(session, run)
        self.outbox.run_started(session, state)
        self._advance(session, run)

    def claim(self, worker_id: str) -> ClaimedTask | None:
        """Take the next queued task, paying for it; tasks that can't be paid fail."""
        for _ in range(MAX_REFUSALS_PER_CLAIM):
            with self.db.write() as session:
                task = self._next_queued(session)
                if task is None:
                    return None
                claimed = self._claim_task(session, task, worker_id)
            if claimed is not None:
                return claimed
        return None

    def _claim_task(
        self, session: Session, task: Task, worker_id: str
    ) -> ClaimedTask | None:
        now = utcnow()
        claimed = _rows(
            session,
            update(Task)
            .where(Task.id == task.id, Task.status == "queued")
            .values(
                status="running",
                worker_id=worker_id,
                attempt=Task.attempt + 1,
                lease_expires_at=now + self.lease,
                heartbeat_at=now,
                started_at=now,
                progress=0.0,
            ),
        )
        if not claimed:
            return None

        session.refresh(task)
        node = session.get_one(RunNode, task.node_id)
        run = session.get_one(Run, task.run_id)
        refusal = self.gate.reserve(session, task, node, run.organization_id)
        if refusal is not None:
            self._refuse(session, task, run, refusal)
            return None

        self._advance(session, run)
        return ClaimedTask(
            id=task.id,
            run_id=task.run_id,
            node_id=task.node_id,
            original_node_id=node.original_node_id,
            node_type_id=node.node_type_id,
            params=dict(node.params),
            item=dict(task.item),
            attempt=task.attempt,
            organization_id=run.organization_id,
            worker_id=worker_id,
        )

    def _refuse(self, session: Session, task: Task, run: Run, refusal: str) -> None:
        task.status = "failed"
        task.needs_credits = True
        task.error = refusal
        task.finished_at = utcnow()
        task.lease_expires_at = None
        self._advance(session, run)
        log.info("task %s of run %s needs credits", task.id, run.id)

    def _next_queued(self, session: Session) -> Task | None:
        query = (
            select(Task)
            .join(Run, Run.id == Task.run_id)
            .where(Task.status == "queued", Run.status == "running")
            .order_by(Task.created_at, Task.id)
            .limit(1)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update(of=Task, skip_locked=True)
        return session.scalars(query).first()

    def heartbeat(self, task_id: str, worker_id: str, progress: float | None) -> bool:
        """Extend the lease; ``False`` means the task is no longer ours to run."""
        now = utcnow()
        values: dict[str, Any] = {
            "heartbeat_at": now,
            "lease_expires_at": now + self.lease,
        }
        if progress is not None:
            values["progress"] = max(0.0, min(100.0, progress))
        with self.db.write() as session:
            rows = _rows(
                session,
                update(Task)
                .where(
                    Task.id == task_id,
                    Task.status == "running",
                    Task.worker_id == worker_id,
                )
                .values(**values),
            )
        return bool(rows)

    def complete(
        self,
        task: ClaimedTask,
        outputs: Sequence[OutputRecord],
        *,
        partial_error: str | None = None,
    ) -> bool:
        """Store a task's renders; ``partial_error`` says what it could not make."""
        with self.db.write() as session:
            if not self._finish_task(session, task, "completed", partial_error):
                return False
            for position, output in enumerate(outputs):
                session.add(
                    Render(
                        run_id=task.run_id,
                        node_id=task.node_id,
                        task_id=task.id,
                        organization_id=task.organization_id,
                        original_node_id=task.original_node_id,
                        storage_key=output.storage_key,
                        thumbnail_key=output.thumbnail_key,
                        filename=output.filename,
                        media_info=output.media_info,
                        extra=output.extra,
                        position=position,
                        expires_at=utcnow() + self.retention
                        if self.retention
                        else None,
                    )
                )
            session.flush()
            self._advance(session, session.get_one(Run, task.run_id))
        return True

    def fail(
        self, task: ClaimedTask, error: str, *, needs_credits: bool = False
    ) -> bool:
        with self.db.write() as session:
            if not self._finish_task(session, task, "failed", error, needs_credits):
                return False
            self._advance(session, session.get_one(Run, task.run_id))
        return True

    def _finish_task(
        self,
        session: Session,
        task: ClaimedTask,
        status: str,
        error: str | None,
        needs_credits: bool = False,
    ) -> bool:
        rows = _rows(
            session,
            update(Task)
            .where(
                Task.id == task.id,
                Task.status == "running",
                Task.worker_id == task.worker_id,
            )
            .values(
                status=status,
                error=error,
                needs_credits=needs_credits,
                finished_at=utcnow(),
                lease_expires_at=None,
                progress=100.0 if status == "completed" else Task.progress,
            ),
        )
        if not rows:
            log.info(
                "task %s was taken from worker %s; result dropped",
                task.id,
                task.worker_id,
            )
            return False

        row = session.get_one(Task, task.id)
        session.refresh(row)
        self.gate.settle(session, row, task.organization_id, kept=status == "completed")
        return True

    def recover(self, *, dead_workers: Callable[[str], bool] | None = None) -> int:
        """Requeue tasks whose lease ran out or whose worker is known to be dead."""
        with self.db.write() as session:
            running = session.scalars(
                select(Task).where(Task.status == "running")
            ).all()
            now = utcnow()
            lost = [
                task
                for task in running
                if (task.lease_expires_at is not None and task.lease_expires_at < now)
                or (dead_workers is not None and dead_workers(task.worker_id or ""))
            ]
            for task in lost:
                run = session.get_one(Run, task.run_id)
                self.gate.settle(session, task, run.organization_id, kept=False)
                self._requeue_lost(task)
            for run_id in {task.run_id for task in lost}:
                self._advance(session, session.get_one(Run, run_id))
        if lost:
            self.work_available.set()
        return len(lost)

    def _requeue_lost(self, task: Task) -> None:
        log.warning(
            "task %s of run %s lost its worker %s (attempt %d)",
            task.id,
            task.run_id,
            task.worker_id,
            task.attempt,
        )
        task.worker_id = None
        task.lease_expires_at = None
        if task.attempt >= MAX_ATTEMPTS:
            task.status = "failed"
            task.error = (
                f"The worker running this task stopped {task.attempt} times; "
                "giving up. Check the server logs, then resume the run."
            )
            task.finished_at = utcnow()
        else:
            task.status = "queued"

    def cancel(self, run_id: str) -> CancelResult:
        with self.db.write() as session:
            run = _get_run(session, run_id)
            if run.status != "running":
                return CancelResult(
                    False,
                    run.id,
                    0,
                    0,
                    f"The run already ended as {run.status}; nothing to cancel.",
                )

            active = session.scalars(
                select(Task).where(
                    Task.run_id == run.id, Task.status.in_(("queued", "running"))
                )
            ).all()
            for task in active:
                self.gate.settle(session, task, run.organization_id, kept=False)
                task.status = "cancelled"
                task.finished_at = utcnow()
                task.lease_expires_at = None
            tasks = len(active)
            session.flush()
            state = RunState.load(session, run)
            changed = [n for n in state.nodes if n.status not in rules.NODE_TERMINAL]
            for node in changed:
                node.status = "cancelled"
                node.updated_at = utcnow()
            self._end_run(session, state, "cancelled", "Cancelled by user.", changed)

        for listener in self._cancel_listeners:
            listener(run_id)
        log.info("run %s cancelled: %d tasks stopped", run_id, tasks)
        return CancelResult(True, run_id, tasks, len(changed), "The run was cancelled.")

    def resume(
        self, run_id: str, *, allow: Callable[[Run], str | None] | None = None
    ) -> ResumeResult:
        with self.db.write() as session:
            run = _get_run(session, run_id)
            refusal = _resume_refusal(run) if allow is None else allow(run)
            if refusal:
                raise Conflict(refusal)

            state = RunState.load(session, run)
            requeued = [n for n in state.nodes if n.status in rules.RESUMABLE_NODE]
            for node in requeued:
                self._reset_node(state, node)
            run.status = "running"
            run.status_message = None
            run.needs_credits = False
            run.finished_at = None
            run.updated_at = utcnow()
            session.flush()
            self._advance(session, run)

        self.work_available.set()
        log.info("run %s resumed: %d nodes requeued", run_id, len(requeued))
        return ResumeResult(
            True, run_id, len(requeued), len(state.nodes), [n.id for n in requeued]
        )

    def _reset_node(self, state: RunState, node: RunNode) -> None:
        tasks = state.tasks_of(node.id)
        node.status_message = None
        node.needs_credits = False
        node.updated_at = utcnow()
        if not tasks:
            node.status = "not_started"
            return
        for task in tasks:
            if task.status != "completed":
                task.status = "queued"
                task.error = None
                task.needs_credits = False
                task.attempt = 0
                task.progress = 0.0
                task.finished_at = None
        node.status = "queued"

    def _advance(self, session: Session, run: Run) -> None:
        """Apply the status rules to ``run`` and write what changed."""
        if run.status != "running":
            return
        session.flush()
        state = RunState.load(session, run)
        plan = rules.plan(self._snapshot(state))

        changed_ids = self._apply_plan(session, state, plan)
        session.flush()
        changed = [node for node in state.nodes if node.id in changed_ids]

        if plan.run_end is None:
            if changed:
                run.updated_at = utcnow()
            self.outbox.run_progress(session, state, changed)
            return
        end = plan.run_end
        run.needs_credits = end.needs_credits
        self._end_run(session, state, end.status, end.message, changed)

    def _snapshot(self, state: RunState) -> list[rules.NodeState]:
        return [
            rules.NodeState(
                id=node.id,
                status=node.status,
                upstream=tuple(node.upstream),
                sources=tuple(node.sources),
                is_input=self.is_input(node.node_type_id),
                tasks=tuple(
                    rules.TaskState(t.id, t.status, t.error, t.needs_credits)
                    for t in state.tasks_of(node.id)
                ),
                render_ids=tuple(r.id for r in state.renders_of(node.id)),
            )
            for node in state.nodes
        ]

    def _apply_plan(
        self, session: Session, state: RunState, plan: rules.Plan
    ) -> set[str]:
        nodes = {node.id: node for node in state.nodes}
        now = utcnow()
        for new in plan.new_tasks:
            session.add(Task(run_id=state.run.id, node_id=new.node_id, item=new.item))
        for change in plan.node_changes:
            node = nodes[change.node_id]
            node.status = change.status
            node.status_message = change.message
            node.needs_credits = change.needs_credits
            node.updated_at = now
        if plan.new_tasks:
            self.work_available.set()
        return {change.node_id for change in plan.node_changes}

    def _end_run(
        self,
        session: Session,
        state: RunState,
        status: str,
        message: str | None,
        changed: Iterable[RunNode],
    ) -> None:
        run = state.run
        now = utcnow()
        run.status = status
        run.status_message = message
        run.finished_at = now
        run.updated_at = now
        session.flush()
        self.outbox.run_progress(session, state, list(changed))
        self.outbox.run_finished(session, state)
        log.info("run %s finished: %s", run.id, status)


def _rows(session: Session, statement: Update) -> int:
    """Run an UPDATE and return how many rows it changed."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount)


def _get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"No run {run_id}.")
    return run


def _resume_refusal(run: Run) -> str | None:
    if run.status in ("failed", "cancelled"):
        return None
    if run.status == "partial_complete" and run.needs_credits:
        return None
    return (
        f"The run is {run.status}; only failed or cancelled runs, or runs stopped for "
        "lack of credits, can be resumed."
    )
