"""Running one claimed task: the same steps for every executor.

Inputs are resolved to files, the tile runs in a scratch folder under a heartbeat,
its outputs are stored under a key derived from run, node and task (so a task that
runs twice writes the same place), and the result is reported to the scheduler.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from tilework.config import Settings
from tilework.engine.scheduler import ClaimedTask, OutputRecord, Scheduler
from tilework.errors import Cancelled, TileError, TileworkError
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import probe
from tilework.media.render import make_thumbnail
from tilework.media.storage import LocalStorage
from tilework.media.timeline import Span, compose
from tilework.store.db import Database
from tilework.store.models import Asset, Render, Workspace
from tilework.tiles.base import (
    MediaFile,
    PartialOutputs,
    SourceSpec,
    Tile,
    TileContext,
    TileOutput,
)
from tilework.tiles.registry import get_tile

log = logging.getLogger(__name__)

LINEAGE_TOLERANCE = 0.1


@dataclass
class TaskRunner:
    settings: Settings
    db: Database
    scheduler: Scheduler
    storage: LocalStorage
    ffmpeg: FFmpeg

    def execute(self, task: ClaimedTask, cancel: CancelToken) -> None:
        started = time.monotonic()
        tile = get_tile(task.node_type_id)
        progress = _Progress()

        with self._scratch(task) as scratch, self._heartbeat(task, cancel, progress):
            outcome = self._run_tile(tile, task, scratch, cancel, progress)

        elapsed = time.monotonic() - started
        log.info(
            "task %s (%s) of run %s: %s in %.2fs",
            task.id,
            tile.name,
            task.run_id,
            outcome,
            elapsed,
        )

    def _run_tile(
        self,
        tile: Tile,
        task: ClaimedTask,
        scratch: Path,
        cancel: CancelToken,
        progress: _Progress,
    ) -> str:
        try:
            params = tile.Params.model_validate(task.params)
            source = self._resolve_input(task)
            ctx = self._context(task, scratch, cancel, progress)
            outputs, partial = _run_keeping_partial(tile, params, source, ctx)
            cancel.raise_if_cancelled()
            records = [
                self._store(task, index, out) for index, out in enumerate(outputs)
            ]
        except Cancelled:
            return "cancelled"
        except ValidationError as exc:
            self.scheduler.fail(
                task, f"{tile.name} params are not valid: {_pydantic(exc)}"
            )
            return "failed"
        except TileworkError as exc:
            self.scheduler.fail(task, str(exc))
            return "failed"
        except Exception as exc:
            log.exception("task %s crashed in %s", task.id, tile.name)
            self.scheduler.fail(
                task,
                f"{tile.name} stopped on an internal error ({type(exc).__name__}).",
            )
            return "failed"

        if not records:
            self.scheduler.fail(task, f"{tile.name} produced no output.")
            return "failed"
        if not self.scheduler.complete(task, records, partial_error=partial):
            return "superseded"
        return "partial_complete" if partial else "completed"

    def _resolve_input(self, task: ClaimedTask) -> Any:
        item = task.item
        if "render_id" in item:
            path = self._render_path(str(item["render_id"]))
            return MediaFile(path=path, info=probe(path))
        if "source" in item:
            return self._source_spec(item["source"])
        return None

    def _source_spec(self, source: dict[str, Any]) -> SourceSpec:
        clip = {
            "clip_start_ms": source.get("clip_start_ms"),
            "clip_end_ms": source.get("clip_end_ms"),
            "label": source.get("label"),
        }
        if source["kind"] == "url":
            return SourceSpec(url=str(source["ref"]), **clip)
        if source["kind"] == "render":
            return SourceSpec(path=self._render_path(str(source["ref"])), **clip)
        with self.db.read() as session:
            asset = session.get(Asset, source["ref"])
            key = asset.storage_key if asset is not None else None
        if key is None:
            raise TileworkError(f"The uploaded video {source['ref']} is gone.")
        return SourceSpec(path=self.storage.path(key), **clip)

    def _render_path(self, render_id: str) -> Path:
        with self.db.read() as session:
            render = session.get(Render, render_id)
            key = render.storage_key if render is not None else None
        if key is None or not self.storage.exists(key):
            raise TileworkError(f"The render {render_id} is no longer stored.")
        return self.storage.path(key)

    def _context(
        self, task: ClaimedTask, scratch: Path, cancel: CancelToken, progress: _Progress
    ) -> TileContext:
        return TileContext(
            run_id=task.run_id,
            node_id=task.node_id,
            task_id=task.id,
            scratch=scratch,
            ffmpeg=self.ffmpeg,
            cancel=cancel,
            report_progress=progress.set,
            x264_preset=self.settings.x264_preset,
            fetch_allow_networks=self.settings.fetch_allow_networks,
            max_input_bytes=self.settings.max_video_bytes,
            max_input_seconds=self.settings.max_input_seconds,
            organization_id=task.organization_id,
            resolve_asset=lambda asset_id, kind: self._asset_path(
                task.organization_id, asset_id, kind
            ),
            settings=self.settings,
        )

    def _asset_path(self, organization_id: str, asset_id: str, kind: str) -> Path:
        with self.db.read() as session:
            asset = session.scalars(
                select(Asset)
                .join(Workspace, Workspace.id == Asset.workspace_id)
                .where(
                    Asset.id == asset_id,
                    Asset.kind == kind,
                    Asset.status == "ready",
                    Workspace.organization_id == organization_id,
                )
            ).first()
            key = asset.storage_key if asset is not None else None
        if key is None or not self.storage.exists(key):
            raise TileError(
                f"No finalized {kind} upload {asset_id} in this organization; "
                f"upload it with /uploads/{kind}/get_upload_url and finalize it first."
            )
        return self.storage.path(key)

    def _store(self, task: ClaimedTask, index: int, output: TileOutput) -> OutputRecord:
        info = probe(output.path)
        filename = output.name or output.path.name
        prefix = f"renders/{task.run_id}/{task.node_id}/{task.id}/{index}"
        key = f"{prefix}/{filename}"
        self.storage.put_file(output.path, key)

        thumbnail_key = None
        if info.has_video:
            thumb = output.path.with_name(f"{output.path.stem}-thumb.jpg")
            make_thumbnail(output.path, thumb, ffmpeg=self.ffmpeg)
            thumbnail_key = f"{prefix}/thumbnail.jpg"
            self.storage.put_file(thumb, thumbnail_key)

        extra = _json_safe(output.metadata)
        extra["lineage"] = self._lineage(task, key, info.duration, output.metadata)
        sidecars = self._store_sidecars(output, prefix)
        if sidecars:
            extra["subtitle_keys"] = sidecars
        return OutputRecord(
            storage_key=key,
            filename=filename,
            media_info=info.to_dict(),
            thumbnail_key=thumbnail_key,
            extra=extra,
        )

    def _store_sidecars(self, output: TileOutput, prefix: str) -> dict[str, str]:
        """Subtitle files a tile wrote beside its output, stored beside the render."""
        files = output.metadata.get("subtitle_files") or {}
        stored: dict[str, str] = {}
        for kind, name in files.items():
            path = output.path.parent / str(name)
            if path.is_file():
                key = f"{prefix}/{PurePosixPath(str(name)).name}"
                self.storage.put_file(path, key)
                stored[str(kind)] = key
        return stored

    def _lineage(
        self, task: ClaimedTask, key: str, duration: float, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Where a render's frames come from: a root file and the spans taken from it.

        The root is the last render before the first cut, so the timeline keeps what
        earlier tiles did to the picture and shows every later cut as its own clip on
        that media. A tile that changes timing without a cut list starts a new root.
        """
        own = {"root_key": key, "spans": [[0.0, duration]], "cut": False}
        parent = self._parent_lineage(task.item)
        cuts = metadata.get("cuts")
        if parent is None or (not cuts and not parent.get("cut")):
            return own

        spans = [Span(a, b) for a, b in parent["spans"]]
        if cuts:
            child = [Span(c["source_start"], c["source_end"]) for c in cuts]
            spans = compose(spans, child)
        elif abs(sum(s.duration for s in spans) - duration) > LINEAGE_TOLERANCE:
            return own
        return {
            "root_key": parent["root_key"],
            "spans": [[s.start, s.end] for s in spans],
            "cut": True,
        }

    def _parent_lineage(self, item: dict[str, Any]) -> dict[str, Any] | None:
        render_id = item.get("render_id")
        source = item.get("source") or {}
        whole = (
            source.get("clip_start_ms") is None and source.get("clip_end_ms") is None
        )
        if render_id is None and source.get("kind") == "render" and whole:
            render_id = source.get("ref")
        if render_id is None:
            return None
        with self.db.read() as session:
            render = session.get(Render, render_id)
            lineage = render.extra.get("lineage") if render is not None else None
        return lineage if isinstance(lineage, dict) else None

    @contextmanager
    def _scratch(self, task: ClaimedTask) -> Iterator[Path]:
        folder = self.settings.data_dir / "scratch" / f"{task.id}-{task.attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def _heartbeat(
        self, task: ClaimedTask, cancel: CancelToken, progress: _Progress
    ) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_seconds):
                try:
                    ours = self.scheduler.heartbeat(
                        task.id, task.worker_id, progress.value
                    )
                except Exception:
                    log.warning("heartbeat of task %s failed", task.id, exc_info=True)
                    continue
                if not ours:
                    log.info("task %s was cancelled or taken over; stopping", task.id)
                    cancel.cancel()
                    return

        thread = threading.Thread(
            target=beat, name=f"heartbeat-{task.id[:8]}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


class _Progress:
    def __init__(self) -> None:
        self.value: float | None = None

    def set(self, percent: float) -> None:
        self.value = percent


def _run_keeping_partial(
    tile: Tile, params: Any, source: Any, ctx: TileContext
) -> tuple[list[TileOutput], str | None]:
    """The tile's outputs, and what failed when it made only some of them."""
    try:
        return tile.run(params, source, ctx), None
    except PartialOutputs as exc:
        return exc.outputs, str(exc)


def _pydantic(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
        for err in exc.errors()
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
