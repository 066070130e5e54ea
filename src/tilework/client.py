"""A small HTTP client of the tilework API, used by the CLI and the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

TERMINAL = {"completed", "partial_complete", "failed", "cancelled"}


class ApiFailure(Exception):
    """Raised when the server answers with an error body."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        if not api_key:
            raise ValueError(
                "An API key is needed: pass --api-key or set TILEWORK_API_KEY."
            )
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        return _body(self.http.get(path, params=params or None))

    def post(self, path: str, body: Any | None = None) -> Any:
        return _body(self.http.post(path, json=body or {}))

    def upload(self, path: Path, kind: str = "video") -> str:
        """Upload a file in three steps and return its asset id."""
        grant = self.post(f"/uploads/{kind}/get_upload_url")
        with path.open("rb") as handle:
            response = httpx.post(
                grant["upload_url"],
                data=grant["upload_fields"],
                files={"file": (path.name, handle)},
                timeout=None,
            )
        _body(response)
        asset_id: str = grant[f"{kind}_id"]
        self.post(f"/uploads/{kind}/finalize_upload", {f"{kind}_id": asset_id})
        return asset_id


def _body(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if response.status_code >= 400:
        raise ApiFailure(response.status_code, body)
    return body


def follow_run(
    client: Client,
    run_id: str,
    console: Console,
    *,
    poll: float = 0.5,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Poll a run's progress with a live bar until it ends; return the final run."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"run {run_id[:8]}", total=100, info="")
        while time.monotonic() < deadline:
            progress = client.get(f"/agent_run/{run_id}/progress")
            running = [
                n["node_type"]["node_type_name"]
                for n in progress["nodes"]
                if n["status"] == "running"
            ]
            bar.update(
                task,
                completed=progress["completed_node_percent"],
                info=f"{progress['status']}  {', '.join(running)}",
            )
            if progress["status"] in TERMINAL:
                break
            time.sleep(poll)
    return client.get(f"/agent_run/{run_id}")  # type: ignore[no-any-return]


def agent_from_file(path: Path) -> dict[str, Any]:
    """Turn an agent file into a ``/agent/create`` body.

    The file holds ``name``, optional ``description``, ``nodes`` (each with a ``ref``,
    a ``type`` that is a tile name or a node_type_id, and optional ``params``) and
    ``connections`` as ``[from_ref, to_ref]`` pairs.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping with name, nodes and connections")
    return agent_body(data)


def agent_body(data: dict[str, Any]) -> dict[str, Any]:
    from tilework.tiles.registry import all_tiles

    by_name = {tile.name.lower(): tile.node_type_id for tile in all_tiles()}
    operations: list[dict[str, Any]] = []
    for node in data.get("nodes", []):
        kind = str(node["type"])
        operations.append(
            {
                "op": "create_node",
                "temp_ref_id": str(node["ref"]),
                "node_type_id": by_name.get(kind.lower(), kind),
                "params_used": node.get("params") or {},
            }
        )
    for source, target in data.get("connections", []):
        operations.append(
            {
                "op": "create_connection",
                "source_temp_ref_id": str(source),
                "target_temp_ref_id": str(target),
            }
        )
    return {
        "name": str(data.get("name") or "Untitled agent"),
        "description": data.get("description"),
        "operations": operations,
    }
