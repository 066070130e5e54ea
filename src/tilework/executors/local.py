"""The embedded executor: a pool of threads inside the server process.

ffmpeg does the heavy work in subprocesses, so threads are enough. Each thread
claims a task from the store, runs it, and claims the next. A supervisor thread
requeues tasks whose lease ran out, and at start-up those left running by an earlier
process of this machine that is gone (so a restart after a crash resumes at once).
"""

from __future__ import annotations

import logging
import threading

from tilework.engine.scheduler import Scheduler
from tilework.executors.runner import TaskRunner
from tilework.media.ffmpeg import CancelToken
from tilework.processes import claimant_prefix, is_dead_local_claimant

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5


class LocalExecutor:
    def __init__(
        self, runner: TaskRunner, scheduler: Scheduler, *, workers: int
    ) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.workers = workers
        self.prefix = claimant_prefix()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, tuple[str, CancelToken]] = {}
        self._lock = threading.Lock()
        scheduler.on_cancel(self._cancel_run)

    def start(self) -> None:
        recovered = self.scheduler.recover(dead_workers=is_dead_local_claimant)
        if recovered:
            log.info("requeued %d tasks left running by a stopped process", recovered)

        for index in range(self.workers):
            thread = threading.Thread(
                target=self._work,
                args=(f"{self.prefix}:{index}",),
                name=f"tile-worker-{index}",
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        supervisor = threading.Thread(target=self._supervise, name="lease-supervisor")
        supervisor.daemon = True
        supervisor.start()
        self._threads.append(supervisor)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.scheduler.work_available.set()
        with self._lock:
            for _, token in self._running.values():
                token.cancel()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _work(self, worker_id: str) -> None:
        while not self._stop.is_set():
            try:
                task = self.scheduler.claim(worker_id)
            except Exception:
                log.exception("claiming a task failed; retrying")
                self._stop.wait(IDLE_POLL_SECONDS * 4)
                continue
            if task is None:
                self.scheduler.work_available.wait(IDLE_POLL_SECONDS)
                self.scheduler.work_available.clear()
                continue

            token = CancelToken()
            with self._lock:
                self._running[task.id] = (task.run_id, token)
            try:
                self.runner.execute(task, token)
            except Exception:
                log.exception("task %s could not be reported", task.id)
            finally:
                with self._lock:
                    self._running.pop(task.id, None)

    def _supervise(self) -> None:
        interval = max(0.5, self.scheduler.lease.total_seconds() / 3)
        while not self._stop.wait(interval):
            try:
                self.scheduler.recover()
            except Exception:
                log.exception("lease recovery failed; retrying")

    def _cancel_run(self, run_id: str) -> None:
        with self._lock:
            tokens = [token for rid, token in self._running.values() if rid == run_id]
        for token in tokens:
            token.cancel()
