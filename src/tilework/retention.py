"""Garbage collection of expired media.

Renders and uploads carry an expiry set by the operator's retention settings, and every
signed link to them is cut off at that expiry, so once it has passed no valid link can
point at the file. What a live run still needs is kept whatever its expiry: the inputs
and renders of runs that are still going. Rows stay (marked purged) so runs keep
their history; only the files go.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.media.storage import LocalStorage
from tilework.store.db import Database
from tilework.store.models import Asset, Render, Run, RunNode, Task, utcnow

log = logging.getLogger(__name__)

LEFTOVER_AGE_SECONDS = 24 * 3600


@dataclass
class Collected:
    renders: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    kept_for_live_runs: int = 0
    bytes_freed: int = 0
    leftovers: int = 0


def collect(
    db: Database, storage: LocalStorage, data_dir: Path, *, dry_run: bool = False
) -> Collected:
    """Delete the files of expired renders and uploads that no live run needs."""
    result = Collected()
    with db.write() as session:
        needed_renders, needed_assets = _needed_by_live_runs(session)
        now = utcnow()
        for render in _expired(session, Render, now):
            if render.id in needed_renders:
                result.kept_for_live_runs += 1
                continue
            result.renders.append(render.id)
            if not dry_run:
                render.purged_at = now
        for asset in _expired(session, Asset, now):
            if asset.id in needed_assets:
                result.kept_for_live_runs += 1
                continue
            result.uploads.append(asset.id)
            if not dry_run:
                asset.purged_at = now
        keys = _keys(session, result)

    if not dry_run:
        result.bytes_freed = _delete(storage, keys)
        result.leftovers = _sweep_leftovers(data_dir)
    log.info(
        "gc: %d renders and %d uploads expired (%d kept for live runs), %d bytes freed",
        len(result.renders),
        len(result.uploads),
        result.kept_for_live_runs,
        result.bytes_freed,
    )
    return result


def _expired(
    session: Session, model: type[Render] | type[Asset], now: datetime
) -> list[Any]:
    query = select(model).where(
        model.expires_at.is_not(None),
        model.expires_at <= now,
        model.purged_at.is_(None),
    )
    return list(session.scalars(query))


def _needed_by_live_runs(session: Session) -> tuple[set[str], set[str]]:
    """Render and upload ids that a running run reads or has made so far."""
    live = select(Run.id).where(Run.status == "running")
    renders = set(session.scalars(select(Render.id).where(Render.run_id.in_(live))))
    assets: set[str] = set()
    for sources in session.scalars(
        select(RunNode.sources).where(RunNode.run_id.in_(live))
    ):
        for source in sources or []:
            (assets if source.get("kind") == "upload" else renders).add(
                str(source.get("ref"))
            )
    items = session.scalars(
        select(Task.item).where(
            Task.run_id.in_(live), Task.status.in_(("queued", "running"))
        )
    )
    for item in items:
        if "render_id" in item:
            renders.add(str(item["render_id"]))
    return renders, assets


def _keys(session: Session, result: Collected) -> list[str]:
    keys: list[str] = []
    for render_id in result.renders:
        render = session.get_one(Render, render_id)
        keys += [render.storage_key, render.thumbnail_key or ""]
        keys += [str(v) for k, v in render.extra.items() if k.endswith("_key") and v]
    for asset_id in result.uploads:
        asset = session.get_one(Asset, asset_id)
        keys += [asset.storage_key or "", asset.thumbnail_key or ""]
    return [key for key in keys if key]


def _delete(storage: LocalStorage, keys: list[str]) -> int:
    freed = 0
    for key in keys:
        if storage.exists(key):
            freed += storage.size(key)
            storage.delete(key)
    return freed


def _sweep_leftovers(data_dir: Path) -> int:
    """Scratch and incoming files a crashed process left behind for a day or more."""
    cutoff = time.time() - LEFTOVER_AGE_SECONDS
    removed = 0
    for folder in (data_dir / "scratch", data_dir / "incoming"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.stat().st_mtime < cutoff:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    return removed
