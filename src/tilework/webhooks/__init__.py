"""Webhooks: the outbox relay, signatures, and helpers for receivers.

Receivers verify what tilework sends with :func:`verify_mosaic_signature` (the plain
``X-Mosaic-Signature`` secret) or :func:`verify_standard` (Standard Webhooks).
"""

from tilework.webhooks.verify import (
    WebhookVerificationError,
    verify_mosaic_signature,
    verify_standard,
)

__all__ = ["WebhookVerificationError", "verify_mosaic_signature", "verify_standard"]
