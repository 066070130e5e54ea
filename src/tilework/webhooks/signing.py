"""Signatures on outgoing webhooks.

Two schemes are supported. The Mosaic-compatible one sends the endpoint's shared
secret as-is in ``X-Mosaic-Signature``. Standard Webhooks signs
``{msg_id}.{timestamp}.{body}`` with HMAC-SHA256 under a ``whsec_`` secret and sends
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``; several secrets give
several signatures, so a receiver can rotate its secret without missing a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
MOSAIC_HEADER = "X-Mosaic-Signature"

_SECRET_BYTES = 32


def mosaic_headers(secret: str | None) -> dict[str, str]:
    """Headers for the Mosaic-compatible scheme: the secret itself, if one is set."""
    if not secret:
        return {}
    return {MOSAIC_HEADER: secret}


def generate_signing_secret() -> str:
    """Make a new Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    key = random_secrets.token_bytes(_SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key inside a Standard Webhooks secret (``whsec_`` optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "The signing secret is not valid base64 after its 'whsec_' prefix; "
            "use a secret made by generate_signing_secret()."
        ) from exc

    if not key:
        raise ValueError("The signing secret is empty; set a non-empty secret.")
    return key


def signature_digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of ``{msg_id}.{timestamp}.{body}`` under ``key``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature, ``v1,<base64 HMAC-SHA256>``."""
    digest = signature_digest(decode_secret(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def standard_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret in ``secrets``."""
    if isinstance(secrets, str):
        raise ValueError(
            "standard_headers() takes a list of secrets, not one string; "
            "wrap the secret in a list."
        )
    if not secrets:
        raise ValueError("standard_headers() needs at least one secret to sign with.")

    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
