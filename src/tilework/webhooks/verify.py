"""Checking tilework's webhook signatures on the receiving side.

``verify_mosaic_signature`` compares the ``X-Mosaic-Signature`` header with the
shared secret. ``verify_standard`` checks a Standard Webhooks delivery: the three
``webhook-*`` headers, the timestamp's age and at least one matching signature.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Mapping

from tilework.errors import TileworkError
from tilework.webhooks.signing import SIGNATURE_VERSION, decode_secret, signature_digest

_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class WebhookVerificationError(TileworkError):
    """Raised when a webhook delivery does not prove it came from tilework."""


def verify_mosaic_signature(header_value: str | None, expected_secret: str) -> bool:
    """Tell whether an ``X-Mosaic-Signature`` value equals the shared secret."""
    if header_value is None or not expected_secret:
        return False
    return hmac.compare_digest(
        header_value.encode("utf-8", "surrogatepass"),
        expected_secret.encode("utf-8", "surrogatepass"),
    )


def verify_standard(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Check a Standard Webhooks delivery; raise WebhookVerificationError if it fails.

    Header names are matched without regard to case. The timestamp must be within
    ``tolerance`` seconds of ``now`` (the current time by default).
    """
    try:
        _verify_standard(secret, headers, body, tolerance, now)
    except WebhookVerificationError:
        raise
    except Exception as exc:
        raise WebhookVerificationError(
            f"The webhook could not be checked ({type(exc).__name__}); treat it as "
            "unverified."
        ) from exc


def _verify_standard(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int,
    now: float | None,
) -> None:
    found = {str(name).lower(): value for name, value in headers.items()}
    msg_id = _header(found, "webhook-id")
    timestamp = _timestamp(_header(found, "webhook-timestamp"), tolerance, now)
    signatures = _signatures(_header(found, "webhook-signature"))

    key = _key(secret)
    expected = signature_digest(key, msg_id, timestamp, bytes(body))
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookVerificationError(
            "No signature in the webhook-signature header matches this body and "
            "secret; check that the secret is current and the body is the raw bytes."
        )


def _header(found: Mapping[str, object], name: str) -> str:
    value = found.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookVerificationError(
            f"The {name} header is missing or empty; it is needed to verify the "
            "webhook."
        )
    return value.strip()


def _timestamp(value: str, tolerance: int, now: float | None) -> int:
    if not _TIMESTAMP.fullmatch(value):
        raise WebhookVerificationError(
            f"The webhook-timestamp header {value[:40]!r} is not a whole number of "
            "seconds since 1970."
        )

    timestamp = int(value)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError(
            f"The webhook timestamp {timestamp} is more than {tolerance} seconds old; "
            "the message may be a replay."
        )
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            f"The webhook timestamp {timestamp} is more than {tolerance} seconds in "
            "the future; check the clocks of sender and receiver."
        )
    return timestamp


def _signatures(value: str) -> list[bytes]:
    digests = []
    for entry in value.split():
        version, comma, encoded = entry.partition(",")
        if not comma:
            raise WebhookVerificationError(
                f"The signature {entry[:40]!r} is not of the form 'v1,<base64>'."
            )
        if version != SIGNATURE_VERSION:
            continue
        digests.append(_b64(encoded))

    if not digests:
        raise WebhookVerificationError(
            "The webhook-signature header has no v1 signature; only v1 is supported."
        )
    return digests


def _b64(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise WebhookVerificationError(
            f"The v1 signature {encoded[:40]!r} is not valid base64."
        ) from exc


def _key(secret: str) -> bytes:
    try:
        return decode_secret(secret)
    except ValueError as exc:
        raise WebhookVerificationError(
            "The secret given to verify_standard is not a valid 'whsec_' secret; "
            "pass the endpoint's signing secret."
        ) from exc
