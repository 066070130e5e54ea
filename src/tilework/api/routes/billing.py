"""Plans, credits, auto top-up, and the checkout page."""

from __future__ import annotations

import hmac
from html import escape
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.api.auth import Caller, require, tilework
from tilework.billing import checkout as checkouts
from tilework.billing.checkout import OperatorApproval
from tilework.billing.ledger import usage
from tilework.billing.plans import all_plans, plan_view
from tilework.engine.views import iso
from tilework.errors import Forbidden, InvalidApiKey, NotFound, ValidationFailed
from tilework.service import Tilework
from tilework.store.models import Checkout, CreditAccount, Plan

router = APIRouter()

MAX_CREDITS = 1_000_000


class Upgrade(BaseModel):
    model_config = ConfigDict(extra="ignore")

    plan_id: str = Field(min_length=1, max_length=64)
    success_url: str | None = Field(default=None, max_length=2048)
    cancel_url: str | None = Field(default=None, max_length=2048)

    @field_validator("success_url", "cancel_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http or https URL")
        return value


class AutoTopup(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool
    threshold: int = Field(ge=0, le=MAX_CREDITS)
    quantity: int = Field(ge=0, le=MAX_CREDITS)


class CreditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_topup: AutoTopup


def _account(tw: Tilework, session: Session, caller: Caller) -> CreditAccount:
    return tw.ledger.account(session, caller.organization_id)


def _credits(tw: Tilework, session: Session, account: CreditAccount) -> dict[str, Any]:
    plan = session.get_one(Plan, account.plan_id)
    used = usage(session, account.organization_id, account.current_period_start)["used"]
    return {
        "balance": account.balance,
        "usage": used,
        "included_usage": plan.credits_per_month,
        "unlimited": tw.ledger.unlimited,
    }


@router.get("/plan")
def get_plan(
    caller: Caller = Depends(require("billing:read")), tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    with tw.db.write() as session:
        account = _account(tw, session, caller)
        plan = session.get_one(Plan, account.plan_id)
        return {
            "organization_id": caller.organization_id,
            "plan": {
                "id": plan.id,
                "family": plan.family,
                "status": account.status,
                "started_at": iso(account.started_at),
                "current_period_start": iso(account.current_period_start),
                "current_period_end": iso(account.current_period_end),
                "canceled_at": iso(account.canceled_at),
            },
            "scheduled_plan": account.scheduled_plan_id,
            "credits": _credits(tw, session, account),
        }


@router.get("/plan/list")
def list_plans(
    caller: Caller = Depends(require("billing:read")), tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    with tw.db.read() as session:
        return {"plans": [plan_view(plan) for plan in all_plans(session)]}


@router.post("/plan/upgrade")
def upgrade(
    body: Upgrade,
    caller: Caller = Depends(require("billing:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        account = _account(tw, session, caller)
        plan = session.get(Plan, body.plan_id)
        if plan is None:
            known = ", ".join(p.id for p in all_plans(session))
            raise ValidationFailed(
                f"plan_id {body.plan_id!r} is not a plan; use {known}"
            )

        current = session.get_one(Plan, account.plan_id)
        if plan.id == account.plan_id:
            account.scheduled_plan_id = None
            return {"success": True, "requires_checkout": False, "plan_id": plan.id}
        if plan.price_usd <= current.price_usd:
            account.scheduled_plan_id = plan.id
            return {
                "success": True,
                "requires_checkout": False,
                "plan_id": plan.id,
                "effective_at": iso(account.current_period_end),
            }

        pending = Checkout(
            organization_id=caller.organization_id,
            plan_id=plan.id,
            success_url=body.success_url,
            cancel_url=body.cancel_url,
        )
        session.add(pending)
        session.flush()
        url = OperatorApproval(tw.settings.base_url).begin(pending, plan)
        return {
            "success": True,
            "requires_checkout": True,
            "checkout_url": url,
            "checkout_id": pending.id,
            "plan_id": plan.id,
        }


@router.get("/credits")
def get_credits(
    caller: Caller = Depends(require("billing:read")), tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    with tw.db.write() as session:
        account = _account(tw, session, caller)
        plan = session.get_one(Plan, account.plan_id)
        return {
            "organization_id": caller.organization_id,
            "balance": account.balance,
            "plan": plan.family,
            "plan_id": plan.id,
            "billing_cycle": plan.billing,
            "unlimited": tw.ledger.unlimited,
            "auto_topup": {
                "eligible": plan.auto_topup_eligible,
                "enabled": account.auto_topup_enabled,
                "threshold": account.auto_topup_threshold,
                "quantity": account.auto_topup_quantity,
            },
        }


@router.get("/credits/usage")
def get_usage(
    caller: Caller = Depends(require("billing:read")), tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    with tw.db.write() as session:
        account = _account(tw, session, caller)
        report = usage(session, caller.organization_id, account.current_period_start)
        return {
            "organization_id": caller.organization_id,
            "period_start": iso(account.current_period_start),
            "period_end": iso(account.current_period_end),
            "balance": account.balance,
            **report,
        }


@router.post("/credits/settings")
def set_credit_settings(
    body: CreditSettings,
    caller: Caller = Depends(require("billing:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        account = _account(tw, session, caller)
        plan = session.get_one(Plan, account.plan_id)
        if not plan.auto_topup_eligible:
            raise Forbidden(
                f"Auto top-up is not available on the {plan.id} plan; upgrade to a "
                "creator or professional plan first."
            )
        wanted = body.auto_topup
        account.auto_topup_enabled = wanted.enabled
        account.auto_topup_threshold = wanted.threshold
        account.auto_topup_quantity = wanted.quantity
        account.topup_armed = True
        return {
            "success": True,
            "auto_topup": {
                "eligible": True,
                "enabled": wanted.enabled,
                "threshold": wanted.threshold,
                "quantity": wanted.quantity,
            },
        }


@router.get("/checkout/{checkout_id}", response_model=None)
def checkout_page(checkout_id: str, tw: Tilework = Depends(tilework)) -> Response:
    with tw.db.read() as session:
        found = session.get(Checkout, checkout_id)
        if found is None:
            raise NotFound(f"No checkout {checkout_id}.")
        plan = session.get_one(Plan, found.plan_id)
    if found.status == "completed" and found.success_url:
        return RedirectResponse(found.success_url, status_code=303)
    if found.status == "cancelled" and found.cancel_url:
        return RedirectResponse(found.cancel_url, status_code=303)
    return HTMLResponse(_page(found, plan))


@router.post("/checkout/{checkout_id}/cancel", response_model=None)
def cancel_checkout(checkout_id: str, tw: Tilework = Depends(tilework)) -> Response:
    with tw.db.write() as session:
        found = checkouts.cancel(session, checkout_id)
        target = found.cancel_url
    if target:
        return RedirectResponse(target, status_code=303)
    return HTMLResponse("<p>The checkout was cancelled.</p>")


def _admin(request: Request, tw: Tilework = Depends(tilework)) -> None:
    token = tw.settings.admin_token
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise Forbidden("Admin routes are off; set TILEWORK_ADMIN_TOKEN to use them.")
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise InvalidApiKey("The admin token is not valid.")


@router.get("/admin/checkouts", dependencies=[Depends(_admin)])
def pending_checkouts(tw: Tilework = Depends(tilework)) -> dict[str, Any]:
    with tw.db.read() as session:
        rows = session.scalars(
            select(Checkout)
            .where(Checkout.status == "pending")
            .order_by(Checkout.created_at)
        ).all()
        return {"checkouts": [_checkout_view(row) for row in rows]}


@router.post("/admin/checkouts/{checkout_id}/{action}", dependencies=[Depends(_admin)])
def decide_checkout(
    checkout_id: str,
    action: Literal["approve", "cancel"],
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.write() as session:
        if action == "approve":
            found = checkouts.approve(session, tw.ledger, checkout_id)
        else:
            found = checkouts.cancel(session, checkout_id)
        return _checkout_view(found)


def _checkout_view(found: Checkout) -> dict[str, Any]:
    return {
        "checkout_id": found.id,
        "organization_id": found.organization_id,
        "plan_id": found.plan_id,
        "status": found.status,
        "created_at": iso(found.created_at),
        "completed_at": iso(found.completed_at),
    }


def _page(found: Checkout, plan: Plan) -> str:
    period = "year" if plan.billing == "annual" else "month"
    state = {
        "pending": "Waiting for the operator to approve this change.",
        "completed": "Approved: the plan is active.",
        "cancelled": "Cancelled.",
    }[found.status]
    cancel = (
        f'<form method="post" action="/checkout/{escape(found.id)}/cancel">'
        '<button type="submit">Cancel</button></form>'
        if found.status == "pending"
        else ""
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>tilework checkout</title>"
        "<meta http-equiv='refresh' content='5'>"
        f"<h1>Change to the {escape(plan.id)} plan</h1>"
        f"<p>${plan.price_usd:,.2f} a {period}, {plan.credits_per_month:,} credits "
        f"a month.</p><p>{escape(state)}</p>{cancel}"
        f"<p><small>Checkout {escape(found.id)}, started {iso(found.created_at)}"
        "</small></p>"
    )
