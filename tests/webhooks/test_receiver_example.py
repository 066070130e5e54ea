"""The documented receiver example accepts our signatures and rejects forgeries."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import pytest

from tilework.webhooks import WebhookVerificationError
from tilework.webhooks.signing import generate_signing_secret, standard_headers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("webhook_receiver", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_accepts_a_signed_event_and_rejects_a_tampered_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = generate_signing_secret()
    receiver = load(monkeypatch, HOOK_SIGNING_SECRET=secret)
    body = json.dumps(
        {"flag": "RUN_STARTED", "event_id": "e1", "note": "ça 🎬"}
    ).encode()
    headers = standard_headers([secret], "e1", int(time.time()), body)

    assert receiver.accept(headers, body)["note"] == "ça 🎬"
    with pytest.raises(WebhookVerificationError):
        receiver.accept(headers, body.replace(b"e1", b"e2"))


def test_the_example_checks_the_plain_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = load(monkeypatch, HOOK_SECRET="letmein", HOOK_SIGNING_SECRET="")
    body = b'{"event_id": "e1"}'
    assert receiver.accept({"X-Mosaic-Signature": "letmein"}, body)["event_id"] == "e1"
    with pytest.raises(WebhookVerificationError):
        receiver.accept({"X-Mosaic-Signature": "guess"}, body)
