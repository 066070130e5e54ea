"""The tile registry seen as a catalog of node types, for the engine and the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tilework.tiles.base import Tile
from tilework.tiles.registry import all_tiles
from tilework.tiles.video_input import VideoInput


class TileCatalog:
    def __init__(self, tiles: list[Tile] | None = None, *, docs_url: str = "") -> None:
        self._tiles = {tile.node_type_id: tile for tile in (tiles or all_tiles())}
        self.docs_url = docs_url

    def get(self, node_type_id: str) -> Tile | None:
        return self._tiles.get(node_type_id)

    def all(self) -> list[Tile]:
        return list(self._tiles.values())

    def name_of(self, node_type_id: str) -> str | None:
        tile = self._tiles.get(node_type_id)
        return tile.name if tile is not None else None

    def is_input(self, node_type_id: str) -> bool:
        return node_type_id == VideoInput.node_type_id

    def needs_input(self, node_type_id: str) -> bool:
        tile = self._tiles.get(node_type_id)
        return tile is not None and tile.takes_input and not self.is_input(node_type_id)

    def check_params(self, node_type_id: str, params: Mapping[str, Any]) -> list[str]:
        tile = self._tiles.get(node_type_id)
        if tile is None:
            return [f"unknown node_type_id {node_type_id}"]
        try:
            tile.Params.model_validate(dict(params))
        except ValidationError as exc:
            return [_describe(error) for error in exc.errors()]
        return []

    def prices(self, overrides: Mapping[str, int]) -> dict[str, int]:
        """Credits per started minute by node type id; overrides name ids or names."""
        by_name = {
            tile.name.lower(): tile.node_type_id for tile in self._tiles.values()
        }
        prices = {tid: tile.credits_per_minute for tid, tile in self._tiles.items()}
        for key, value in overrides.items():
            prices[by_name.get(key.lower(), key)] = value
        return prices

    def describe(self, node_type_id: str) -> dict[str, Any]:
        tile = self._tiles.get(node_type_id)
        slug = _slug(tile.name) if tile else node_type_id
        return {
            "node_type_id": node_type_id,
            "node_type_name": tile.name if tile else None,
            "docs_url": f"{self.docs_url}#{slug}",
            "params_docs_url": f"{self.docs_url}#{slug}-params",
        }

    def describe_full(self, node_type_id: str) -> dict[str, Any]:
        tile = self._tiles[node_type_id]
        return {
            **self.describe(node_type_id),
            "description": tile.description,
            "credits_per_minute": tile.credits_per_minute,
            "params_schema": tile.Params.model_json_schema(),
        }


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "params"
    if error.get("type") == "extra_forbidden":
        return f"unknown param {where!r}"
    value = error.get("input")
    shown = (
        f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    )
    return f"param {where!r}: {error.get('msg')}{shown}"


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")
