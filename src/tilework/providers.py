"""Generation providers: the interface generative tiles call, and how one is chosen.

A provider renders media for a capability (``"video"``, ``"image"``, ``"audio"``,
``"content"``, ``"avatar"``, ``"dub"``, ``"broll"``, ``"motion_graphics"``) from a
typed request, writing files into the scratch folder of a :class:`ProviderContext`.

Providers are found by name: those registered in this process with :func:`register`
first, then the entry points of the ``tilework.providers`` group of installed
packages. ``settings.generation_provider`` names the one the tiles use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    ClassVar,
    Literal,
    Protocol,
    get_args,
)

from tilework.config import Settings
from tilework.errors import MediaError, NeedsProvider, TileError, TileworkError
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import MediaInfo, probe

if TYPE_CHECKING:
    from tilework.tiles.base import TileContext

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tilework.providers"

Capability = Literal[
    "video", "image", "audio", "content", "avatar", "dub", "broll", "motion_graphics"
]
CAPABILITIES: tuple[str, ...] = get_args(Capability)

AudioKind = Literal["speech", "music", "sound_effects"]


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use while it works: a folder, ffmpeg, cancellation."""

    scratch: Path
    ffmpeg: FFmpeg
    cancel: CancelToken
    x264_preset: str = "veryfast"
    espeak_binary: str | None = None
    report_progress: Callable[[float], None] = field(default=lambda percent: None)


@dataclass(frozen=True)
class VideoRequest:
    """A silent or sounding clip of ``width`` x ``height`` lasting the duration."""

    prompt: str
    duration_seconds: float
    width: int
    height: int
    fps: int = 30


@dataclass(frozen=True)
class ImageRequest:
    """One still image; ``index`` tells apart several images asked for at once."""

    prompt: str
    width: int
    height: int
    index: int = 0


@dataclass(frozen=True)
class AudioRequest:
    """Speech of ``prompt``, or music or sound effects described by it.

    ``duration_seconds`` is None for speech, which lasts as long as its words;
    ``voice`` and ``rate_wpm`` (words per minute) only concern speech.
    """

    prompt: str
    kind: AudioKind
    duration_seconds: float | None = None
    voice: str | None = None
    rate_wpm: int | None = None


@dataclass(frozen=True)
class ContentRequest:
    """A finished short video about ``prompt``, narrated when ``narration``."""

    prompt: str
    duration_seconds: float
    width: int
    height: int
    fps: int = 30
    narration: bool = True
    voice: str | None = None


@dataclass(frozen=True)
class AvatarRequest:
    """A presenter named ``avatar`` speaking ``script``; as long as the speech."""

    script: str
    avatar: str
    width: int
    height: int
    fps: int = 30
    voice: str | None = None


@dataclass(frozen=True)
class DubRequest:
    """New speech for the video at ``source`` in ``target_language``.

    The provider returns an audio file of the dubbed speech lasting about
    ``duration_seconds``; the tile puts it on the video.
    """

    source: Path
    duration_seconds: float
    target_language: str
    voice: str | None = None
    transcript: str | None = None


@dataclass(frozen=True)
class BrollRequest:
    """A cutaway clip showing ``prompt``, of the given size and duration."""

    prompt: str
    duration_seconds: float
    width: int
    height: int
    fps: int = 30


@dataclass(frozen=True)
class MotionGraphicsRequest:
    """An animated graphic (a title, a lower third) to lay over a video.

    Parts of the frame that should show the video beneath are transparent when the
    file has an alpha channel (for example QuickTime Animation or PNG in MOV).
    """

    prompt: str
    duration_seconds: float
    width: int
    height: int
    fps: int = 30


class GenerationProvider(Protocol):
    """What a provider implements. Only the methods of supported capabilities run."""

    def supports(self, capability: str) -> bool: ...

    def generate_video(self, request: VideoRequest, ctx: ProviderContext) -> Path: ...

    def generate_image(self, request: ImageRequest, ctx: ProviderContext) -> Path: ...

    def generate_audio(self, request: AudioRequest, ctx: ProviderContext) -> Path: ...

    def generate_content(
        self, request: ContentRequest, ctx: ProviderContext
    ) -> Path: ...

    def avatar(self, request: AvatarRequest, ctx: ProviderContext) -> Path: ...

    def dub(self, request: DubRequest, ctx: ProviderContext) -> Path: ...

    def broll(self, request: BrollRequest, ctx: ProviderContext) -> Path: ...

    def motion_graphics(
        self, request: MotionGraphicsRequest, ctx: ProviderContext
    ) -> Path: ...


class ProviderBase:
    """A convenient base: list ``capabilities`` and override their methods."""

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def generate_video(self, request: VideoRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("video")

    def generate_image(self, request: ImageRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("image")

    def generate_audio(self, request: AudioRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("audio")

    def generate_content(self, request: ContentRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("content")

    def avatar(self, request: AvatarRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("avatar")

    def dub(self, request: DubRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("dub")

    def broll(self, request: BrollRequest, ctx: ProviderContext) -> Path:
        raise self._unsupported("broll")

    def motion_graphics(
        self, request: MotionGraphicsRequest, ctx: ProviderContext
    ) -> Path:
        raise self._unsupported("motion_graphics")

    def _unsupported(self, capability: str) -> TileError:
        return TileError(
            f"The generation provider {type(self).__name__} does not implement "
            f"{capability!r}."
        )


ProviderFactory = Callable[[], GenerationProvider]


@dataclass(frozen=True)
class SelectedProvider:
    name: str
    provider: GenerationProvider


_registered: dict[str, ProviderFactory] = {}
_lock = threading.Lock()


def register(name: str, factory: ProviderFactory) -> None:
    """Make a provider available under ``name`` in this process.

    ``factory`` is called with no arguments each time the provider is selected (a
    provider class will do). A registered name hides an entry point of that name.
    """
    if not name.strip():
        raise ValueError("A provider needs a non-empty name.")
    with _lock:
        _registered[name] = factory


def unregister(name: str) -> None:
    """Forget a provider registered with :func:`register`; unknown names are fine."""
    with _lock:
        _registered.pop(name, None)


def installed_providers() -> list[str]:
    """The names of every provider that can be selected, sorted."""
    with _lock:
        names = set(_registered)
    names.update(point.name for point in _entry_points())
    return sorted(names)


def select_provider(
    settings: Settings, *, tile: str, capability: Capability, hint: str = ""
) -> SelectedProvider:
    """The configured provider, checked to support ``capability`` for ``tile``.

    Raises :class:`NeedsProvider` when none is configured (``hint`` is appended to
    the message) and :class:`TileError` when the configured one is missing, does not
    load, or cannot do ``capability``.
    """
    name = settings.generation_provider
    if not name:
        raise NeedsProvider(
            f"no provider configured for {tile}: set TILEWORK_GENERATION_PROVIDER to "
            f"a provider installed under the '{ENTRY_POINT_GROUP}' entry point "
            f"group{hint}"
        )

    selected = SelectedProvider(name=name, provider=load_provider(name, tile=tile))
    if not selected.provider.supports(capability):
        raise TileError(
            f"{tile} needs a provider that can do {capability!r}, and the configured "
            f"generation provider {name!r} cannot; configure a provider that "
            "supports it in TILEWORK_GENERATION_PROVIDER."
        )
    logger.debug("%s uses the generation provider %s", tile, name)
    return selected


def load_provider(name: str, *, tile: str = "this tile") -> GenerationProvider:
    """Make the provider called ``name``: a registered one or an entry point."""
    with _lock:
        factory = _registered.get(name)
    if factory is None:
        factory = _load_entry_point(name, tile)

    try:
        provider = factory()
    except Exception as exc:
        raise TileError(
            f"The generation provider {name!r} failed to start for {tile} "
            f"({type(exc).__name__}: {exc}); check its installation and settings."
        ) from exc
    if not callable(getattr(provider, "supports", None)):
        raise TileError(
            f"The generation provider {name!r} is not a provider: it has no "
            "supports() method (see tilework.providers.GenerationProvider)."
        )
    return provider


def _load_entry_point(name: str, tile: str) -> ProviderFactory:
    point = next((p for p in _entry_points() if p.name == name), None)
    if point is None:
        installed = ", ".join(installed_providers()) or "none"
        raise TileError(
            f"The generation provider {name!r} set in TILEWORK_GENERATION_PROVIDER "
            f"for {tile} is not installed (installed providers: {installed}); "
            "install the package that provides it or fix the name."
        )

    try:
        loaded = point.load()
    except Exception as exc:
        raise TileError(
            f"The generation provider {name!r} ({point.value}) could not be "
            f"imported ({type(exc).__name__}: {exc}); check the package providing "
            "it."
        ) from exc
    if not callable(loaded):
        raise TileError(
            f"The entry point {point.value} of the generation provider {name!r} is "
            "not a class or factory; it must name something that makes a provider."
        )
    factory: ProviderFactory = loaded
    return factory


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def escape_filter_value(value: str) -> str:
    """``value`` (a path or text) escaped as an option value in an ffmpeg graph.

    The value is escaped once for the option parser and once more for the graph
    parser, so any character, including ``: ' , ; [ ] \\``, arrives unchanged.
    """
    option_level = _backslash(value, "\\':")
    return _backslash(option_level, "\\'[],;")


def _backslash(text: str, special: str) -> str:
    return "".join(f"\\{char}" if char in special else char for char in text)


METHODS: dict[str, str] = {
    "video": "generate_video",
    "image": "generate_image",
    "audio": "generate_audio",
    "content": "generate_content",
    "avatar": "avatar",
    "dub": "dub",
    "broll": "broll",
    "motion_graphics": "motion_graphics",
}
"""The provider method that serves each capability."""

PROVIDER_PROGRESS = 80.0
"""Share of a generation tile's progress that the provider's work takes."""


def provider_context(
    ctx: TileContext,
    folder: str = "provider",
    *,
    progress: tuple[float, float] = (0.0, PROVIDER_PROGRESS),
) -> ProviderContext:
    """A context for a provider called by a tile: its own folder inside scratch.

    The provider's 0..100 progress fills the ``progress`` span of the tile's.
    """
    scratch = ctx.scratch / folder
    scratch.mkdir(parents=True, exist_ok=True)
    return ProviderContext(
        scratch=scratch,
        ffmpeg=ctx.ffmpeg,
        cancel=ctx.cancel,
        x264_preset=ctx.x264_preset,
        espeak_binary=ctx.settings.espeak_binary,
        report_progress=scaled_progress(ctx.report_progress, *progress),
    )


def generate(
    selected: SelectedProvider,
    capability: Capability,
    request: object,
    ctx: TileContext,
    *,
    tile: str,
    needs: Literal["video", "audio", "image"],
    progress: tuple[float, float] = (0.0, PROVIDER_PROGRESS),
) -> tuple[Path, MediaInfo]:
    """Ask the provider for ``capability`` and check the file it returns.

    A provider's own exceptions become a :class:`TileError` naming it;
    cancellation and tilework errors pass through.
    """
    method = getattr(selected.provider, METHODS[capability], None)
    if not callable(method):
        raise TileError(
            f"The generation provider {selected.name!r} says it supports "
            f"{capability!r} but has no {METHODS[capability]}() method; fix the "
            "provider."
        )

    try:
        made = method(request, provider_context(ctx, progress=progress))
    except TileworkError:
        raise
    except Exception as exc:
        logger.warning("provider %s failed for %s", selected.name, tile, exc_info=True)
        raise TileError(
            f"The generation provider {selected.name!r} failed for {tile} "
            f"({type(exc).__name__}: {exc}); check the provider's setup and logs."
        ) from exc

    ctx.cancel.raise_if_cancelled()
    return checked_output(made, selected=selected, tile=tile, needs=needs)


def checked_output(
    path: object, *, selected: SelectedProvider, tile: str, needs: str
) -> tuple[Path, MediaInfo]:
    """Check that a provider returned a decodable file holding ``needs``.

    ``needs`` is ``"video"``, ``"audio"`` or ``"image"``; the file and its probe
    are returned, or a :class:`TileError` names the provider and the problem.
    """
    if not isinstance(path, Path) or not path.is_file() or path.stat().st_size == 0:
        raise TileError(
            f"The generation provider {selected.name!r} returned no file for {tile} "
            f"(got {path!r}); check the provider's logs."
        )

    try:
        info = probe(path)
    except MediaError as exc:
        raise TileError(
            f"The generation provider {selected.name!r} returned {path.name} for "
            f"{tile}, which is not media tilework can read: {exc}"
        ) from exc

    has = info.has_audio if needs == "audio" else info.has_video
    if not has:
        raise TileError(
            f"The generation provider {selected.name!r} returned {path.name} for "
            f"{tile} without the {needs} asked for."
        )
    return path, info


def scaled_progress(
    report: Callable[[float], None], low: float, high: float
) -> Callable[[float], None]:
    """A progress callback that maps 0..100 onto ``low``..``high`` of ``report``."""

    def scaled(percent: float) -> None:
        report(low + (high - low) * max(0.0, min(100.0, percent)) / 100.0)

    return scaled
