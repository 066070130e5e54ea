"""Downloads of stored media through signed, expiring links."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, Request, Response

from tilework.api.auth import tilework
from tilework.api.files import file_response, verify_signed_request
from tilework.engine.views import is_gone
from tilework.errors import NotFound
from tilework.media.probe import probe
from tilework.media.timeline import Span, export_timeline
from tilework.service import Tilework
from tilework.store.models import Render

router = APIRouter()


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"])
def download(key: str, request: Request, tw: Tilework = Depends(tilework)) -> Response:
    verify_signed_request(request, tw.signer)
    try:
        path = tw.storage.path(key)
    except ValueError:
        raise NotFound("No such file.") from None
    filename = request.query_params.get("filename") or PurePosixPath(key).name
    return file_response(path, filename=filename, request=request, inline=True)


@router.get("/timelines/{render_id}.zip")
def timeline(
    render_id: str, request: Request, tw: Tilework = Depends(tilework)
) -> Response:
    """A render's editable timeline, built the first time it is asked for."""
    verify_signed_request(request, tw.signer)
    with tw.db.read() as session:
        render = session.get(Render, render_id)
        if render is None or is_gone(render.expires_at, render.purged_at):
            raise NotFound(f"No render {render_id}.")
        lineage = render.extra.get("lineage")
        if not lineage:
            raise NotFound(f"The render {render_id} has no timeline.")
        key = str(PurePosixPath(render.storage_key).parent / "timeline.zip")
        name = f"tilework {render.original_node_id or render.id}"[:60]

    with _building(render_id):
        if not tw.storage.exists(key):
            _build(tw, lineage, key, name)
    download = f"timeline-{render_id[:8]}.zip"
    return file_response(tw.storage.path(key), filename=download, request=request)


def _build(tw: Tilework, lineage: dict[str, object], key: str, name: str) -> None:
    root = tw.storage.path(str(lineage["root_key"]))
    if not root.exists():
        raise NotFound("The media this timeline points to is no longer stored.")
    spans = [Span(float(a), float(b)) for a, b in lineage["spans"]]  # type: ignore[attr-defined]
    with tw.storage.write_path(key) as out:
        export_timeline(
            name=name,
            media=root,
            info=probe(root),
            spans=spans,
            out_zip=out,
            media_name=PurePosixPath(str(lineage["root_key"])).name,
        )


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def _building(render_id: str) -> Iterator[None]:
    with _locks_guard:
        lock = _locks.setdefault(render_id, threading.Lock())
    with lock:
        yield
    with _locks_guard:
        _locks.pop(render_id, None)
