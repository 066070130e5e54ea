"""Plan changes that need a payment step, behind a checkout provider.

The built-in provider takes no payment: the checkout page served by tilework waits
until the operator approves it (``tilework billing approve`` or the admin route). A
payment service plugs in by implementing :class:`CheckoutProvider`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session

from tilework.billing.ledger import Ledger
from tilework.errors import Conflict, NotFound
from tilework.store.models import Checkout, Plan, utcnow

log = logging.getLogger(__name__)


class CheckoutProvider(Protocol):
    def begin(self, checkout: Checkout, plan: Plan) -> str:
        """Start paying for ``plan``; return the URL to send the customer to."""
        ...


class OperatorApproval:
    """Checkout without payment: the operator approves each change to a paid plan."""

    def __init__(self, page_url: str) -> None:
        self.page_url = page_url.rstrip("/")

    def begin(self, checkout: Checkout, plan: Plan) -> str:
        log.info(
            "checkout %s for plan %s waits for approval: tilework billing approve %s",
            checkout.id,
            plan.id,
            checkout.id,
        )
        return f"{self.page_url}/checkout/{checkout.id}"


def approve(session: Session, ledger: Ledger, checkout_id: str) -> Checkout:
    """Activate the plan a pending checkout is for."""
    checkout = _pending(session, checkout_id)
    account = ledger.account(session, checkout.organization_id)
    ledger.change_plan(session, account, session.get_one(Plan, checkout.plan_id))
    checkout.status = "completed"
    checkout.completed_at = utcnow()
    return checkout


def cancel(session: Session, checkout_id: str) -> Checkout:
    checkout = _pending(session, checkout_id)
    checkout.status = "cancelled"
    checkout.completed_at = utcnow()
    return checkout


def _pending(session: Session, checkout_id: str) -> Checkout:
    checkout = session.get(Checkout, checkout_id, with_for_update=True)
    if checkout is None:
        raise NotFound(f"No checkout {checkout_id}.")
    if checkout.status != "pending":
        raise Conflict(f"The checkout {checkout_id} is already {checkout.status}.")
    return checkout
