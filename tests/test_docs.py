"""The tile reference in docs/ is the one the params models generate."""

from __future__ import annotations

from pathlib import Path

from tilework.tiles import docs
from tilework.tiles.registry import all_tiles

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "tiles.md"


def test_docs_tiles_md_is_up_to_date() -> None:
    expected = docs.render(all_tiles())
    assert REFERENCE.read_text(encoding="utf-8") == expected, (
        "docs/tiles.md is stale: run `tilework docs`"
    )


def test_every_tile_has_a_section_and_an_example() -> None:
    text = docs.render(all_tiles())
    for tile in all_tiles():
        assert f"## {tile.name}" in text
        assert f'"node_type_id": "{tile.node_type_id}"' in text
