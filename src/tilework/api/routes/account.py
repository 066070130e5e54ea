"""Who am I, and the workspace's webhook settings."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from tilework.api.auth import Caller, authenticate, require, tilework
from tilework.engine.views import iso
from tilework.errors import ValidationFailed
from tilework.schemas.requests import WebhookSettings, WebhookTest
from tilework.service import Tilework
from tilework.store.models import Workspace, new_id, utcnow
from tilework.webhooks.signing import decode_secret, mosaic_headers, standard_headers

router = APIRouter()

ROTATION_GRACE_SECONDS = 24 * 3600


@router.get("/whoami")
def whoami(caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    return {
        "organization_id": caller.organization_id,
        "organization_name": caller.organization_name,
        "created_at": iso(caller.key_created_at),
        "last_used_at": iso(caller.last_used_at),
        "scopes": caller.scopes,
        "workspace_id": caller.workspace_id,
    }


def _workspace(session: Session, caller: Caller) -> Workspace:
    return session.get_one(Workspace, caller.target_workspace(session))


def _mask(secret: str | None) -> str | None:
    if not secret:
        return None
    return secret[:6] + "…" + secret[-2:] if len(secret) > 12 else "…"


def _settings_view(workspace: Workspace) -> dict[str, Any]:
    return {
        "workspace_id": workspace.id,
        "secret": _mask(workspace.webhook_secret),
        "signing_secret": _mask(workspace.signing_secret),
        "previous_signing_secret_expires_at": iso(workspace.previous_secret_expires_at),
    }


@router.get("/webhooks/settings")
def get_webhook_settings(
    caller: Caller = Depends(require("webhooks:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        return _settings_view(_workspace(session, caller))


@router.post("/webhooks/settings")
def set_webhook_settings(
    body: WebhookSettings,
    caller: Caller = Depends(require("webhooks:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    _check_secrets(body)
    with tw.db.write() as session:
        workspace = _workspace(session, caller)
        if "secret" in body.model_fields_set:
            workspace.webhook_secret = body.secret
        if "signing_secret" in body.model_fields_set:
            _rotate(workspace, body.signing_secret)
        return _settings_view(workspace)


MIN_SIGNING_KEY_BYTES = 16
HEADER_SAFE = re.compile(r"^[\x21-\x7e]+(?: [\x21-\x7e]+)*$")


def _check_secrets(body: WebhookSettings) -> None:
    """Refuse secrets that could not be sent or used, naming every problem."""
    problems = []
    if body.secret is not None and not HEADER_SAFE.match(body.secret):
        problems.append(
            "secret must be printable ASCII without line breaks or leading or "
            "trailing spaces, since it is sent as the X-Mosaic-Signature header"
        )
    if body.signing_secret is not None:
        problems += _signing_problems(body.signing_secret)
    if problems:
        raise ValidationFailed(problems)


def _signing_problems(secret: str) -> list[str]:
    if not secret.startswith("whsec_"):
        return ["signing_secret must start with 'whsec_'"]
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        return [f"signing_secret: {exc}"]
    if len(key) < MIN_SIGNING_KEY_BYTES:
        return [f"signing_secret must hold at least {MIN_SIGNING_KEY_BYTES} bytes"]
    return []


def _rotate(workspace: Workspace, new: str | None) -> None:
    from datetime import timedelta

    if workspace.signing_secret and new != workspace.signing_secret:
        workspace.previous_signing_secret = workspace.signing_secret
        workspace.previous_secret_expires_at = utcnow() + timedelta(
            seconds=ROTATION_GRACE_SECONDS
        )
    workspace.signing_secret = new


@router.post("/webhooks/test")
def test_webhook(
    body: WebhookTest,
    caller: Caller = Depends(require("webhooks:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        workspace = _workspace(session, caller)
        secret, signing = workspace.webhook_secret, workspace.signing_secret

    event_id = new_id()
    payload = {
        "flag": "TEST",
        "run_id": "test",
        "timestamp": iso(utcnow()),
        "message": "This is a test webhook from tilework.",
        "event_id": event_id,
    }
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **mosaic_headers(secret)}
    if signing:
        headers.update(standard_headers([signing], event_id, int(time.time()), raw))
    result = tw.dispatcher.sender.send(body.url, raw, headers)
    return {
        "success": result.outcome == "delivered",
        "status_code": result.status_code,
        "duration_ms": round(result.duration_ms, 1),
        "error": result.error,
        "event_id": event_id,
    }
