"""Opaque cursors over ``(created_at, id)`` for newest-first listings."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from tilework.errors import ValidationFailed


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, row_id = json.loads(base64.urlsafe_b64decode(padded))
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time carries its zone")
        return moment, str(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValidationFailed(
            f"cursor {cursor!r} is not a cursor this server issued"
        ) from exc


def page(
    query: Select[Any],
    created: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    *,
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        query = query.where(
            or_(created < stamp, and_(created == stamp, row_id < last_id))
        )
    return query.order_by(created.desc(), row_id.desc()).limit(limit + 1)
