"""The three-step upload flow for video, audio and image files.

1. ``get_upload_url`` reserves an asset id and returns a signed ``upload_url``.
2. The client posts a multipart form there: ``upload_fields`` first, then ``file``.
3. ``finalize_upload`` checks that the file decodes as the kind it claims to be.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from tilework.api.auth import Caller, require, tilework
from tilework.api.files import receive_upload, verify_signed_request
from tilework.engine.views import is_gone
from tilework.errors import Conflict, NotFound, ProbeError, ValidationFailed
from tilework.media.lut import check_cube
from tilework.media.probe import probe_audio, probe_image, probe_video
from tilework.media.render import make_thumbnail
from tilework.schemas.requests import FinalizeUpload, ViewUrl
from tilework.service import Tilework
from tilework.store.models import Asset, utcnow

router = APIRouter()

Kind = Literal["video", "audio", "image", "lut"]
PROBES = {"video": probe_video, "audio": probe_audio, "image": probe_image}
MAX_LUT_BYTES = 64 * 1024**2
CHECKING = "checking"
"""An upload being checked by finalize; no new bytes are taken for it meanwhile."""


def _limit(tw: Tilework, kind: str) -> int:
    settings = tw.settings
    return {
        "video": settings.max_video_bytes,
        "audio": settings.max_audio_bytes,
        "image": settings.max_image_bytes,
        "lut": MAX_LUT_BYTES,
    }[kind]


def _content_path(kind: str, asset_id: str) -> str:
    return f"/uploads/{kind}/{asset_id}/content"


@router.post("/uploads/{kind}/get_upload_url")
def get_upload_url(
    kind: Kind,
    caller: Caller = Depends(require("uploads:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    ttl = tw.settings.upload_url_ttl_seconds
    with tw.db.write() as session:
        asset = Asset(
            workspace_id=caller.target_workspace(session),
            kind=kind,
            upload_expires_at=utcnow() + timedelta(seconds=ttl),
        )
        session.add(asset)
        session.flush()
        asset_id = asset.id

    return {
        f"{kind}_id": asset_id,
        "upload_url": tw.signer.sign(_content_path(kind, asset_id), ttl_seconds=ttl),
        "upload_fields": {f"{kind}_id": asset_id},
        "max_file_size_bytes": _limit(tw, kind),
        "expires_in_seconds": ttl,
    }


@router.post("/uploads/{kind}/{asset_id}/content")
async def receive_content(
    kind: Kind, asset_id: str, request: Request, tw: Tilework = Depends(tilework)
) -> dict[str, Any]:
    verify_signed_request(request, tw.signer)
    with tw.db.read() as session:
        _pending_asset(session, kind, asset_id)

    incoming = tw.settings.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    received = await receive_upload(
        request,
        incoming,
        max_bytes=_limit(tw, kind),
        required_fields={f"{kind}_id": asset_id},
    )
    key = f"uploads/{asset_id}/{secrets.token_hex(8)}/{received.filename}"
    tw.storage.put_file(received.path, key, move=True)

    try:
        with tw.db.write() as session:
            asset = _pending_asset(session, kind, asset_id)
            replaced = asset.storage_key
            asset.storage_key = key
            asset.filename = received.filename
            asset.size_bytes = received.size
    except BaseException:
        tw.storage.delete(key)
        raise
    if replaced:
        tw.storage.delete(replaced)
    return {"success": True, f"{kind}_id": asset_id, "size_bytes": received.size}


def _pending_asset(session: Session, kind: str, asset_id: str) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None or asset.kind != kind:
        raise NotFound(f"No {kind} upload {asset_id}.")
    if asset.status == CHECKING:
        raise Conflict(
            f"The {kind} {asset_id} is being finalized; upload again only if "
            "finalizing it fails."
        )
    if asset.status != "pending":
        raise ValidationFailed(f"The {kind} {asset_id} is already finalized.")
    if asset.upload_expires_at is not None and asset.upload_expires_at < utcnow():
        raise NotFound(
            f"The upload of {kind} {asset_id} expired; request a new upload URL."
        )
    return asset


@router.post("/uploads/{kind}/finalize_upload")
def finalize_upload(
    kind: Kind,
    body: FinalizeUpload,
    caller: Caller = Depends(require("uploads:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    asset_id = getattr(body, f"{kind}_id")
    if not asset_id:
        raise ValidationFailed(f"{kind}_id is required")
    with tw.db.write() as session:
        asset = _caller_asset(session, caller, kind, asset_id)
        if asset.status == "ready":
            return _finalized(asset)
        if asset.status == CHECKING:
            raise Conflict(f"The {kind} {asset_id} is being finalized already.")
        _pending_asset(session, kind, asset_id)
        if not asset.storage_key or not tw.storage.exists(asset.storage_key):
            raise ValidationFailed(
                f"No file was uploaded for {kind} {asset_id}; "
                "post it to the upload_url first."
            )
        key = asset.storage_key
        asset.status = CHECKING

    try:
        info, thumbnail_key = _inspect(tw, kind, asset_id, key)
    except BaseException:
        _set_status(tw, asset_id, "pending")
        raise
    with tw.db.write() as session:
        asset = _caller_asset(session, caller, kind, asset_id)
        asset.status = "ready"
        asset.media_info = info
        retention = tw.settings.upload_retention_seconds
        if retention is not None:
            asset.expires_at = utcnow() + timedelta(seconds=retention)
        asset.thumbnail_key = thumbnail_key
        return _finalized(asset)


def _set_status(tw: Tilework, asset_id: str, status: str) -> None:
    with tw.db.write() as session:
        asset = session.get(Asset, asset_id)
        if asset is not None:
            asset.status = status


def _inspect(
    tw: Tilework, kind: str, asset_id: str, key: str
) -> tuple[dict[str, Any], str | None]:
    path = tw.storage.path(key)
    if kind == "lut":
        return _inspect_lut(path), None
    try:
        info = PROBES[kind](path)
    except ProbeError as exc:
        raise ValidationFailed(
            f"The uploaded file is not a usable {kind}: {exc}"
        ) from exc

    if kind == "video" and info.duration > tw.settings.max_input_seconds:
        raise ValidationFailed(
            f"The video is {info.duration:.0f} s long; the limit is "
            f"{tw.settings.max_input_seconds:.0f} s."
        )
    if kind != "video" or not info.has_video:
        return info.to_dict(), None
    scratch = tw.settings.data_dir / "incoming" / f"{asset_id}-thumb.jpg"
    make_thumbnail(path, scratch, ffmpeg=tw.ffmpeg)
    thumbnail_key = f"uploads/{asset_id}/thumbnail.jpg"
    tw.storage.put_file(scratch, thumbnail_key, move=True)
    return info.to_dict(), thumbnail_key


def _inspect_lut(path: Path) -> dict[str, Any]:
    """A ``.cube`` 3D LUT for Color Correction; checked row by row."""
    try:
        check_cube(path)
    except ProbeError as exc:
        raise ValidationFailed(f"The uploaded file is not a usable LUT: {exc}") from exc
    return {"format_name": "cube", "size_bytes": path.stat().st_size}


def _caller_asset(session: Session, caller: Caller, kind: str, asset_id: str) -> Asset:
    asset = session.get(Asset, asset_id)
    if (
        asset is None
        or asset.kind != kind
        or asset.workspace_id not in caller.workspace_ids(session)
    ):
        raise NotFound(f"No {kind} upload {asset_id}.")
    return asset


def _finalized(asset: Asset) -> dict[str, Any]:
    return {
        "success": True,
        f"{asset.kind}_id": asset.id,
        "filename": asset.filename,
        "size_bytes": asset.size_bytes,
        "media_info": asset.media_info,
    }


@router.post("/uploads/get_view_url")
def get_view_url(
    body: ViewUrl,
    caller: Caller = Depends(require("uploads:write")),
    tw: Tilework = Depends(tilework),
) -> dict[str, Any]:
    with tw.db.read() as session:
        asset = _caller_asset(session, caller, body.asset_type, body.asset_id)
        if asset.status != "ready" or not asset.storage_key:
            raise NotFound(
                f"The {body.asset_type} {body.asset_id} is not finalized yet."
            )
        if is_gone(asset.expires_at, asset.purged_at):
            raise NotFound(f"The {body.asset_type} {body.asset_id} has expired.")
        ttl = tw.settings.view_url_ttl_seconds
        until = asset.expires_at
        return {
            "signed_url": tw.links.media(
                asset.storage_key, filename=asset.filename, ttl=ttl, until=until
            ),
            "thumbnail_url": (
                tw.links.media(asset.thumbnail_key, ttl=ttl, until=until)
                if asset.thumbnail_key
                else None
            ),
            "expires_in_seconds": ttl,
        }
