"""The credit gate the scheduler asks before a task starts and after it ends."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from tilework.store.models import RunNode, Task


class CreditGate(Protocol):
    def reserve(
        self, session: Session, task: Task, node: RunNode, organization_id: str
    ) -> str | None:
        """Hold the task's price; return why it cannot be paid for, or None."""
        ...

    def settle(
        self, session: Session, task: Task, organization_id: str, *, kept: bool
    ) -> None:
        """Keep the held credits of a task that succeeded, or give them back."""
        ...


class NoCharge:
    """A gate that lets every task through and records nothing."""

    def reserve(
        self, session: Session, task: Task, node: RunNode, organization_id: str
    ) -> str | None:
        return None

    def settle(
        self, session: Session, task: Task, organization_id: str, *, kept: bool
    ) -> None:
        return None
