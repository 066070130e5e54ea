"""The contract between the engine and a tile.

A tile receives validated params, one input (a media file with its probe), and a
:class:`TileContext`. It returns one or more :class:`TileOutput` files written inside
``ctx.scratch``, or raises :class:`~tilework.errors.TileError` with a message a user
can act on. A tile never touches run state: the executor stores what it returns.

A tile whose work is one ffmpeg filter chain derives from :class:`FilterTile` and only
describes that chain as a :class:`FilterFragment`. Running it alone is one ffmpeg pass;
a chain of such tiles can be joined into a single pass with one encode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tilework.config import Settings
from tilework.errors import TileError
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import MediaInfo


class TileParams(BaseModel):
    """Base of every tile's params: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class MediaFile:
    path: Path
    info: MediaInfo


@dataclass(frozen=True)
class SourceSpec:
    """Where a Video Input task starts: a local file or a URL, maybe a clip of it."""

    path: Path | None = None
    url: str | None = None
    clip_start_ms: int | None = None
    clip_end_ms: int | None = None
    label: str | None = None


def _no_assets(asset_id: str, kind: str) -> Path:
    raise TileError(f"No {kind} upload {asset_id} is available to this tile.")


@dataclass
class TileContext:
    run_id: str
    node_id: str
    task_id: str
    scratch: Path
    ffmpeg: FFmpeg
    cancel: CancelToken
    report_progress: Callable[[float], None] = lambda percent: None
    x264_preset: str = "veryfast"
    fetch_allow_networks: tuple[Any, ...] = ()
    max_input_bytes: int = 5 * 1024**3
    max_input_seconds: float = 3 * 3600
    organization_id: str = ""
    resolve_asset: Callable[[str, str], Path] = _no_assets
    """``resolve_asset(asset_id, kind)``: the file of an upload of this organization;
    raises TileError naming the id when there is none."""
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True)
class TileOutput:
    path: Path
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FilterFragment:
    """One tile's part of an ffmpeg filter graph.

    ``video`` and ``audio`` are filter chains (``"crop=...,scale=..."``) applied to the
    single video and audio stream; ``None`` passes that stream through. ``width`` and
    ``height`` are the size of the video the chain produces.

    When ``graph`` is true, ``video`` is a small graph of chains joined by ``;`` with
    one input labelled ``[in]`` and one output labelled ``[out]`` (for work such as
    ``split``/``overlay``); its other labels are private to the fragment.
    """

    video: str | None
    audio: str | None
    width: int
    height: int
    graph: bool = False


class Tile(ABC):
    node_type_id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[TileParams]] = TileParams
    takes_input: ClassVar[bool] = True
    """False for tiles that make media from nothing (generation-only agents)."""
    credits_per_minute: ClassVar[int] = 1

    @abstractmethod
    def run(self, params: Any, source: Any, ctx: TileContext) -> list[TileOutput]:
        """Do the tile's work on one input; return files written in ``ctx.scratch``."""


class FilterTile(Tile):
    """A tile that is one filter chain over its input."""

    @abstractmethod
    def fragment(self, params: Any, info: MediaInfo) -> FilterFragment:
        """Describe the work as a filter chain for an input with this probe."""

    def run(self, params: Any, source: MediaFile, ctx: TileContext) -> list[TileOutput]:
        from tilework.media.render import render_fragments

        out = ctx.scratch / "output.mp4"
        render_fragments(source, [self.fragment(params, source.info)], out, ctx=ctx)
        return [TileOutput(path=out)]


class PartialOutputs(TileError):
    """Raised by a tile when some of its outputs were made and others failed.

    ``outputs`` are complete files to keep; ``errors`` says what failed, one
    sentence each. As a :class:`TileError` it fails the task where it is not
    handled, with a message that names what failed.
    """

    def __init__(self, outputs: Sequence[TileOutput], errors: Sequence[str]) -> None:
        self.outputs = list(outputs)
        self.errors = list(errors)
        made = len(self.outputs)
        super().__init__(
            f"{made} of {made + len(self.errors)} outputs were made; "
            + " ".join(self.errors)
        )
