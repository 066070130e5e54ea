"""The credit ledger: grants, holds, releases and top-ups, append-only.

An organization's balance is the sum of its ledger entries; the account row keeps that
sum so that a hold is one conditional ``UPDATE … SET balance = balance - n WHERE
balance >= n``: two tasks racing for the last credits cannot both win, on SQLite or
PostgreSQL. A task's credits are held when it starts, kept when it succeeds, and given
back when it fails, is cancelled or loses its worker: failed work costs nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from tilework.billing.plans import FREE, seed_plans
from tilework.store.models import (
    Asset,
    CreditAccount,
    CreditEntry,
    Plan,
    Render,
    RunNode,
    Task,
    utcnow,
)

log = logging.getLogger(__name__)

ANNUAL = timedelta(days=365)
MONTH = timedelta(days=30)


class Ledger:
    """The credit gate of the scheduler, and the bookkeeping behind the billing API."""

    def __init__(
        self,
        *,
        unlimited: bool,
        prices: Mapping[str, int],
        default_price: int = 1,
    ) -> None:
        self.unlimited = unlimited
        self.prices = dict(prices)
        self.default_price = default_price

    def account(self, session: Session, organization_id: str) -> CreditAccount:
        """The organization's account, opened on the free plan at first use."""
        found = session.get(CreditAccount, organization_id)
        if found is not None:
            return self._renew(session, found)

        seed_plans(session)
        session.flush()
        now = utcnow()
        account = CreditAccount(
            organization_id=organization_id,
            plan_id=FREE,
            started_at=now,
            current_period_start=now,
            current_period_end=now + MONTH,
        )
        session.add(account)
        session.flush()
        self._grant_period(session, account)
        return account

    def reserve(
        self, session: Session, task: Task, node: RunNode, organization_id: str
    ) -> str | None:
        """Hold the task's price; return why it cannot be paid for, or None."""
        price = self.price(session, task, node)
        if self.unlimited or price == 0:
            return None

        account = self.account(session, organization_id)
        self._maybe_top_up(session, account, price)
        held = _rows(
            session,
            update(CreditAccount)
            .where(
                CreditAccount.organization_id == organization_id,
                CreditAccount.balance >= price,
            )
            .values(balance=CreditAccount.balance - price),
        )
        session.refresh(account)
        if not held:
            return (
                f"The organization ran out of credits: this task needs {price} and "
                f"{account.balance} remain. Upgrade the plan (POST /plan/upgrade) or "
                "turn on auto top-up, then resume the run."
            )

        task.credits_held = price
        self._entry(session, organization_id, -price, "hold", task=task, node=node)
        return None

    def settle(
        self, session: Session, task: Task, organization_id: str, *, kept: bool
    ) -> None:
        """Keep the held credits of a finished task, or give them back."""
        held = task.credits_held
        if not held:
            return
        task.credits_held = 0
        if kept:
            task.credits_charged += held
            return
        session.execute(
            update(CreditAccount)
            .where(CreditAccount.organization_id == organization_id)
            .values(balance=CreditAccount.balance + held)
        )
        self._entry(session, organization_id, held, "release", task=task)

    def price(self, session: Session, task: Task, node: RunNode) -> int:
        per_minute = self.prices.get(node.node_type_id, self.default_price)
        if per_minute == 0:
            return 0
        seconds = _input_seconds(session, task.item)
        return per_minute * max(1, math.ceil(seconds / 60))

    def grant(
        self,
        session: Session,
        account: CreditAccount,
        amount: int,
        kind: str,
        *,
        usd: float | None = None,
        note: str | None = None,
    ) -> None:
        session.execute(
            update(CreditAccount)
            .where(CreditAccount.organization_id == account.organization_id)
            .values(balance=CreditAccount.balance + amount)
        )
        self._entry(session, account.organization_id, amount, kind, usd=usd, note=note)
        session.refresh(account)
        if account.balance >= account.auto_topup_threshold:
            account.topup_armed = True

    def change_plan(self, session: Session, account: CreditAccount, plan: Plan) -> None:
        """Move to ``plan`` now: a new period starts with its monthly grant."""
        now = utcnow()
        account.plan_id = plan.id
        account.status = "active"
        account.started_at = now
        account.current_period_start = now
        account.current_period_end = now + _period(plan)
        account.canceled_at = None
        account.scheduled_plan_id = None
        session.flush()
        self._grant_period(session, account)
        log.info("organization %s moved to plan %s", account.organization_id, plan.id)

    def _renew(self, session: Session, account: CreditAccount) -> CreditAccount:
        """Start the periods that began since the account was last read, with grants."""
        now = utcnow()
        while account.current_period_end <= now:
            if account.scheduled_plan_id:
                account.plan_id = account.scheduled_plan_id
                account.scheduled_plan_id = None
            plan = session.get_one(Plan, account.plan_id)
            account.current_period_start = account.current_period_end
            account.current_period_end = account.current_period_start + _period(plan)
            session.flush()
            self._grant_period(session, account)
        return account

    def _grant_period(self, session: Session, account: CreditAccount) -> None:
        plan = session.get_one(Plan, account.plan_id)
        if plan.credits_per_month > 0:
            note = (
                f"{plan.id} plan, period from {account.current_period_start:%Y-%m-%d}"
            )
            self.grant(session, account, plan.credits_per_month, "grant", note=note)

    def _maybe_top_up(
        self, session: Session, account: CreditAccount, price: int
    ) -> None:
        """Buy the top-up quantity once each time the balance crosses the threshold."""
        if not account.auto_topup_enabled or not account.topup_armed:
            return
        if account.balance - price >= account.auto_topup_threshold:
            return
        plan = session.get_one(Plan, account.plan_id)
        rate = plan.top_up_rate_per_100_credits_usd
        if (
            rate is None
            or not plan.auto_topup_eligible
            or account.auto_topup_quantity <= 0
        ):
            return

        quantity = account.auto_topup_quantity
        usd = round(quantity / 100 * rate, 2)
        self.grant(
            session,
            account,
            quantity,
            "topup",
            usd=usd,
            note=f"auto top-up at ${rate}/100",
        )
        account.topup_armed = account.balance - price >= account.auto_topup_threshold
        log.info(
            "organization %s topped up %d credits ($%.2f)",
            account.organization_id,
            quantity,
            usd,
        )

    def _entry(
        self,
        session: Session,
        organization_id: str,
        amount: int,
        kind: str,
        *,
        task: Task | None = None,
        node: RunNode | None = None,
        usd: float | None = None,
        note: str | None = None,
    ) -> None:
        session.add(
            CreditEntry(
                organization_id=organization_id,
                amount=amount,
                kind=kind,
                run_id=task.run_id if task else None,
                task_id=task.id if task else None,
                node_type_id=node.node_type_id if node else None,
                usd=usd,
                note=note,
            )
        )


def _period(plan: Plan) -> timedelta:
    return ANNUAL if plan.billing == "annual" else MONTH


def ledger_sum(session: Session, organization_id: str) -> int:
    amounts = session.scalars(
        select(CreditEntry.amount).where(CreditEntry.organization_id == organization_id)
    )
    return sum(amounts)


def usage(session: Session, organization_id: str, since: datetime) -> dict[str, Any]:
    """Credits used since ``since``: holds kept, by run and tile."""
    entries = session.scalars(
        select(CreditEntry)
        .where(
            CreditEntry.organization_id == organization_id,
            CreditEntry.created_at >= since,
        )
        .order_by(CreditEntry.id)
    ).all()
    released = {e.task_id for e in entries if e.kind == "release"}
    kept = [e for e in entries if e.kind == "hold" and e.task_id not in released]
    return {
        "used": -sum(e.amount for e in kept),
        "entries": [
            {
                "kind": e.kind,
                "amount": e.amount,
                "run_id": e.run_id,
                "task_id": e.task_id,
                "node_type_id": e.node_type_id,
                "usd": e.usd,
                "note": e.note,
                "created_at": e.created_at.isoformat().replace("+00:00", "Z"),
            }
            for e in entries
        ],
    }


def _input_seconds(session: Session, item: Mapping[str, Any]) -> float:
    info: Mapping[str, Any] | None = None
    if "render_id" in item:
        render = session.get(Render, item["render_id"])
        info = render.media_info if render else None
    elif "source" in item and item["source"].get("kind") == "upload":
        asset = session.get(Asset, item["source"]["ref"])
        info = asset.media_info if asset else None
    elif "source" in item and item["source"].get("kind") == "render":
        render = session.get(Render, item["source"]["ref"])
        info = render.media_info if render else None
    return float((info or {}).get("duration") or 0.0)


def _rows(session: Session, statement: Any) -> int:
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount)
