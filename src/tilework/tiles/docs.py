"""The tile reference, written from each tile's params model."""

from __future__ import annotations

import json
from typing import Any

from tilework.tiles.base import Tile

HEADER = """# Tiles

Every tile tilework runs, with its node type id, its price and its params. This page
is generated from the params models (`tilework docs`); `GET /node_types` serves the
same params as JSON Schema. Each example is an operation for `/agent/create` or
`/agent/{agent_id}/update`.
"""


def slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def render(tiles: list[Tile]) -> str:
    """The whole reference as Markdown."""
    sections = [HEADER, _index(tiles)]
    sections += [_section(tile) for tile in tiles]
    return "\n".join(sections).rstrip() + "\n"


def _index(tiles: list[Tile]) -> str:
    rows = ["| tile | node_type_id | credits per minute |", "|---|---|---|"]
    for tile in tiles:
        rows.append(
            f"| [{tile.name}](#{slug(tile.name)}) | `{tile.node_type_id}` | "
            f"{tile.credits_per_minute} |"
        )
    return "\n".join(rows) + "\n"


def _section(tile: Tile) -> str:
    schema = tile.Params.model_json_schema()
    lines = [
        f'<a id="{slug(tile.name)}"></a>',
        f"## {tile.name}",
        "",
        tile.description or "",
        "",
        f"`node_type_id`: `{tile.node_type_id}`; "
        f"{tile.credits_per_minute} credit(s) per started minute of input.",
        "",
        f'<a id="{slug(tile.name)}-params"></a>',
    ]
    lines += _params(schema)
    lines += ["", "Example:", "", "```json", _example(tile, schema), "```", ""]
    return "\n".join(lines)


def _params(schema: dict[str, Any]) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return ["", "No params."]
    required = set(schema.get("required", []))
    rows = ["", "| param | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in properties.items():
        default = "required" if name in required else _shown(spec.get("default"))
        description = str(spec.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(spec, schema)} | {default} | {description} |")
    return rows


def _type(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    if "enum" in spec:
        return " / ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if "$ref" in spec:
        target = schema.get("$defs", {}).get(spec["$ref"].rsplit("/", 1)[-1], {})
        return _type(target, schema)
    if "anyOf" in spec:
        return " or ".join(_type(option, schema) for option in spec["anyOf"])
    kind = str(spec.get("type", "any"))
    bounds = [
        template.format(spec[key])
        for key, template in (
            ("minimum", "≥ {}"),
            ("maximum", "≤ {}"),
            ("maxLength", "at most {} characters"),
        )
        if key in spec
    ]
    if kind == "array":
        kind = f"list of {_type(spec.get('items', {}), schema)}"
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _shown(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _example(tile: Tile, schema: dict[str, Any]) -> str:
    params = getattr(tile, "example_params", None)
    if params is None:
        params = {
            name: spec["default"]
            for name, spec in schema.get("properties", {}).items()
            if "default" in spec and spec["default"] is not None
        }
    operation = {
        "op": "create_node",
        "temp_ref_id": slug(tile.name),
        "node_type_id": tile.node_type_id,
        "params_used": params,
    }
    return json.dumps(operation, indent=2, ensure_ascii=False)
