"""Webhook signatures: the published test vector, interop with the reference
``standardwebhooks`` package, secret rotation and a verifier that fails cleanly."""

from __future__ import annotations

import base64
import datetime as dt
import random
import string
import time
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as ReferenceError

from tilework.errors import TileworkError
from tilework.webhooks.signing import (
    generate_signing_secret,
    mosaic_headers,
    sign,
    standard_headers,
)
from tilework.webhooks.verify import (
    WebhookVerificationError,
    verify_mosaic_signature,
    verify_standard,
)

# Published with the Standard Webhooks reference libraries
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = '{"type": "run.finished", "title": "Café 🎬"}'.encode()


def _vector_headers(signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": signature,
    }


def test_sign_reproduces_the_published_vector() -> None:
    signature = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)

    assert signature == VECTOR_SIGNATURE


def test_verifier_accepts_the_published_vector() -> None:
    verify_standard(
        VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 10
    )


def test_verifier_rejects_the_vector_with_one_bit_changed() -> None:
    tampered = VECTOR_SIGNATURE[:-2] + "A="

    with pytest.raises(WebhookVerificationError, match="No signature"):
        verify_standard(
            VECTOR_SECRET, _vector_headers(tampered), VECTOR_BODY, now=VECTOR_TIMESTAMP
        )


def test_secret_prefix_is_optional() -> None:
    bare = VECTOR_SECRET.removeprefix("whsec_")

    assert sign(bare, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_reference_library_verifies_our_headers() -> None:
    secret = generate_signing_secret()
    headers = standard_headers([secret], "msg_1", int(time.time()), BODY)

    payload = Webhook(secret).verify(BODY, headers)

    assert payload["title"] == "Café 🎬"


def test_we_verify_what_the_reference_library_signs() -> None:
    secret = generate_signing_secret()
    timestamp = int(time.time())
    reference = Webhook(secret)
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    signature = reference.sign("msg_2", moment, BODY.decode())
    headers = {
        "Webhook-Id": "msg_2",
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature,
    }

    verify_standard(secret, headers, BODY)


def test_generated_secrets_are_whsec_with_32_random_bytes() -> None:
    first, second = generate_signing_secret(), generate_signing_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    old, new = generate_signing_secret(), generate_signing_secret()
    timestamp = int(time.time())

    headers = standard_headers([old, new], "msg_3", timestamp, BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        verify_standard(secret, headers, BODY)
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        verify_standard(generate_signing_secret(), headers, BODY)
    with pytest.raises(ReferenceError):
        Webhook(generate_signing_secret()).verify(BODY, headers)


def test_standard_headers_carry_id_and_timestamp() -> None:
    headers = standard_headers(
        [VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY
    )

    assert headers == _vector_headers()


def test_standard_headers_need_a_list_of_secrets() -> None:
    with pytest.raises(ValueError, match="list"):
        standard_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    with pytest.raises(ValueError, match="at least one"):
        standard_headers([], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)


def test_a_bad_secret_cannot_sign() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", "msg", 1, b"")


def test_mosaic_headers() -> None:
    assert mosaic_headers("s3cret") == {"X-Mosaic-Signature": "s3cret"}
    assert mosaic_headers(None) == {}
    assert mosaic_headers("") == {}


@pytest.mark.parametrize(
    ("header", "secret", "expected"),
    [
        ("s3cret", "s3cret", True),
        ("s3cret ", "s3cret", False),
        ("S3CRET", "s3cret", False),
        ("", "s3cret", False),
        (None, "s3cret", False),
        ("", "", False),
        ("ключ🎬", "ключ🎬", True),
        ("ключ", "ключ🎬", False),
    ],
)
def test_verify_mosaic_signature(
    header: str | None, secret: str, expected: bool
) -> None:
    assert verify_mosaic_signature(header, secret) is expected


def test_header_names_match_in_any_case() -> None:
    headers = {name.upper(): value for name, value in _vector_headers().items()}

    verify_standard(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_a_changed_body_fails() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_standard(
            VECTOR_SECRET, _vector_headers(), VECTOR_BODY + b" ", now=VECTOR_TIMESTAMP
        )


@pytest.mark.parametrize(
    "missing", ["webhook-id", "webhook-timestamp", "webhook-signature"]
)
def test_a_missing_header_fails(missing: str) -> None:
    headers = _vector_headers()
    del headers[missing]

    with pytest.raises(WebhookVerificationError, match=missing):
        verify_standard(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize("offset", [-301, 301, -86400, 10**9])
def test_a_timestamp_outside_the_tolerance_fails(offset: int) -> None:
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify_standard(
            VECTOR_SECRET,
            _vector_headers(),
            VECTOR_BODY,
            now=VECTOR_TIMESTAMP + offset,
        )


def test_the_tolerance_can_be_widened() -> None:
    verify_standard(
        VECTOR_SECRET,
        _vector_headers(),
        VECTOR_BODY,
        tolerance=3600,
        now=VECTOR_TIMESTAMP + 3000,
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        " ",
        "abc",
        "-1614265330",
        "1614265330.0",
        "1e9",
        "1_614_265_330",
        "\uff11\uff12\uff13",
        "0x60377ef2",
        "1614265330 1614265330",
        "9" * 40,
    ],
)
def test_a_malformed_timestamp_fails(timestamp: str) -> None:
    headers = {**_vector_headers(), "webhook-timestamp": timestamp}

    with pytest.raises(WebhookVerificationError):
        verify_standard(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "v1",
        "v1,",
        "v1,not base64!",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
        "v1,🎬",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,AAAA",
        ",,,,",
        "\x00",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\x00",
    ],
)
def test_a_malformed_signature_fails(signature: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_standard(
            VECTOR_SECRET,
            _vector_headers(signature),
            VECTOR_BODY,
            now=VECTOR_TIMESTAMP,
        )


def test_unknown_versions_beside_a_good_signature_are_ignored() -> None:
    signature = f"v2,abc v1a,zzz {VECTOR_SIGNATURE}"

    verify_standard(
        VECTOR_SECRET, _vector_headers(signature), VECTOR_BODY, now=VECTOR_TIMESTAMP
    )


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!!", "whsec_🎬"])
def test_a_bad_receiver_secret_fails_cleanly(secret: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_standard(secret, _vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize("value", [None, b"msg_1", 12, ["msg_1"]])
def test_non_string_header_values_fail_cleanly(value: Any) -> None:
    headers: dict[str, Any] = {**_vector_headers(), "webhook-id": value}

    with pytest.raises(WebhookVerificationError):
        verify_standard(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_fuzzed_headers_only_ever_raise_the_verification_error() -> None:
    rng = random.Random(20240601)
    alphabet = string.printable + "é🎬\x00\u2028,v1 "
    good = _vector_headers()

    for _ in range(500):
        headers = dict(good)
        name = rng.choice(list(headers))
        length = rng.randint(0, 60)
        headers[name] = "".join(rng.choice(alphabet) for _ in range(length))
        try:
            verify_standard(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
        except WebhookVerificationError as exc:
            assert isinstance(exc, TileworkError)
            assert str(exc)
