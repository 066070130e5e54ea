"""The operator's plan table, seeded with the public plans and a free plan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.store.models import Plan

FREE = "free"
AUTO_TOPUP_PLANS = ("creator", "creator_annual", "professional", "professional_annual")


@dataclass(frozen=True)
class PlanRow:
    id: str
    family: str
    billing: str
    price_usd: float
    credits_per_month: int
    top_up_rate_per_100_credits_usd: float | None
    notes: str


DEFAULT_PLANS = (
    PlanRow(FREE, "free", "monthly", 0.0, 300, None, "For trying tilework out."),
    PlanRow("creator", "creator", "monthly", 50.0, 2_500, 2.0, "For one creator."),
    PlanRow(
        "creator_annual",
        "creator",
        "annual",
        480.0,
        2_500,
        2.0,
        "Creator, paid yearly.",
    ),
    PlanRow(
        "professional", "professional", "monthly", 150.0, 10_000, 1.6, "For teams."
    ),
    PlanRow(
        "professional_annual",
        "professional",
        "annual",
        1_500.0,
        10_000,
        1.6,
        "Professional, paid yearly.",
    ),
)


def seed_plans(session: Session) -> None:
    """Write the default table when the operator has none yet."""
    if session.scalars(select(Plan.id).limit(1)).first() is not None:
        return
    for position, row in enumerate(DEFAULT_PLANS):
        session.add(
            Plan(
                id=row.id,
                family=row.family,
                billing=row.billing,
                price_usd=row.price_usd,
                credits_per_month=row.credits_per_month,
                top_up_rate_per_100_credits_usd=row.top_up_rate_per_100_credits_usd,
                auto_topup_eligible=row.id in AUTO_TOPUP_PLANS,
                notes=row.notes,
                position=position,
            )
        )


def all_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).order_by(Plan.position, Plan.id)))


def plan_view(plan: Plan) -> dict[str, object]:
    return {
        "id": plan.id,
        "family": plan.family,
        "billing": plan.billing,
        "price_usd": plan.price_usd,
        "credits_per_month": plan.credits_per_month,
        "top_up_rate_per_100_credits_usd": plan.top_up_rate_per_100_credits_usd,
        "notes": plan.notes,
    }
