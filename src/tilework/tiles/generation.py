"""Generation tiles: media made by the configured generation provider.

Video Generation, Image Generation, AI Content Generation and AI Avatar make new
media from a prompt or script; their input, if any, is not used. The tiles that edit
their input with generated media (Voice Dubbing, B-Roll, Motion Graphics) live in
:mod:`tilework.tiles.generation_edits` and share the helpers here. Whatever the
provider returns is checked and brought to the requested size and length.

Voice Dubbing, Motion Graphics and B-Roll have no public node type ids; theirs are
``uuid.uuid5(TILEWORK_NAMESPACE, name)``, written out as literals.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from tilework.errors import TileError
from tilework.media import tts
from tilework.media.probe import MediaInfo
from tilework.media.render import encode_args
from tilework.providers import (
    PROVIDER_PROGRESS,
    AvatarRequest,
    Capability,
    ContentRequest,
    ImageRequest,
    SelectedProvider,
    VideoRequest,
    generate,
    scaled_progress,
    select_provider,
)
from tilework.tiles.base import (
    MediaFile,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

TILEWORK_NAMESPACE = uuid.UUID("df4ff440-a32f-459a-af4b-0efd41a796c4")
"""Namespace of the ids tilework gives tiles that have no public id."""

AspectRatio = Literal["16:9", "9:16", "1:1", "4:5"]
Resolution = Literal["360p", "480p", "720p", "1080p"]
Position = Literal["lower_third", "top", "center", "bottom", "full_frame"]

SHORT_SIDES: dict[str, int] = {"360p": 360, "480p": 480, "720p": 720, "1080p": 1080}
SHORT_TOLERANCE_SECONDS = 0.1
MIN_INSERT_SECONDS = 0.1
DEFAULT_FPS = 30
MAX_FPS = 60
EDGE_MARGIN = 0.05
LOWER_THIRD_MARGIN = 0.1
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
AVATAR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$"


def _prompt(description: str, max_length: int = 2000) -> Any:
    return Field(min_length=1, max_length=max_length, description=description)


class _FrameParams(TileParams):
    aspect_ratio: AspectRatio = Field(
        default="16:9", description="Shape of the video, width:height."
    )
    resolution: Resolution = Field(
        default="720p", description="Size of the short side of the video."
    )
    fps: int = Field(default=30, ge=12, le=MAX_FPS, description="Frames per second.")


class VideoGenerationParams(_FrameParams):
    prompt: str = _prompt("What the video shows.")
    duration_seconds: float = Field(
        default=5, ge=1, le=60, description="Length of the video, seconds."
    )


class ContentGenerationParams(_FrameParams):
    prompt: str = _prompt("The topic or brief of the video to make.")
    duration_seconds: float = Field(
        default=30, ge=3, le=300, description="Length of the video, seconds."
    )
    aspect_ratio: AspectRatio = Field(
        default="9:16", description="Shape of the video, width:height."
    )
    narration: bool = Field(default=True, description="Add a spoken narration.")
    voice: str = Field(
        default="en-us",
        pattern=tts.VOICE_PATTERN,
        description="Voice of the narration, such as 'en-us' or 'fr'.",
    )


class AvatarParams(_FrameParams):
    script: str = _prompt("What the presenter says.", max_length=5000)
    avatar: str = Field(
        default="default",
        pattern=AVATAR_PATTERN,
        description="Name of the presenter's look, as the provider knows it.",
    )
    voice: str = Field(
        default="en-us",
        pattern=tts.VOICE_PATTERN,
        description="Voice of the presenter, such as 'en-us' or 'fr'.",
    )
    aspect_ratio: AspectRatio = Field(
        default="9:16", description="Shape of the video, width:height."
    )


class ImageGenerationParams(TileParams):
    prompt: str = _prompt("What the image shows.")
    width: int = Field(default=1024, ge=64, le=4096, description="Width, pixels.")
    height: int = Field(default=1024, ge=64, le=4096, description="Height, pixels.")
    num_images: int = Field(
        default=1, ge=1, le=4, description="How many different images to make."
    )


@dataclasses.dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    fps: int
    seconds: float | None


class _GenerationTile(Tile):
    capability: ClassVar[Capability]
    credits_per_minute: ClassVar[int] = 5

    def _provider(self, ctx: TileContext) -> SelectedProvider:
        return select_provider(ctx.settings, tile=self.name, capability=self.capability)

    def _clip(
        self, request: object, frame: _Frame, ctx: TileContext, source: object
    ) -> list[TileOutput]:
        """Have the provider make a clip and bring it to ``frame``."""
        selected = self._provider(ctx)
        made = generate(
            selected, self.capability, request, ctx, tile=self.name, needs="video"
        )
        return [finish_video(made, frame, ctx, selected=selected, source=source)]


class VideoGeneration(_GenerationTile):
    node_type_id: ClassVar[str] = "a2eb3ec2-da7a-4f97-94d2-a9a537548522"
    name: ClassVar[str] = "Video Generation"
    takes_input: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Generates a video clip from a prompt with the configured provider."
    )
    Params: ClassVar[type[TileParams]] = VideoGenerationParams
    capability: ClassVar[Capability] = "video"
    credits_per_minute: ClassVar[int] = 10

    def run(
        self, params: VideoGenerationParams, source: object, ctx: TileContext
    ) -> list[TileOutput]:
        width, height = frame_size(params.aspect_ratio, params.resolution)
        request = VideoRequest(
            prompt=params.prompt,
            duration_seconds=params.duration_seconds,
            width=width,
            height=height,
            fps=params.fps,
        )
        frame = _Frame(width, height, params.fps, params.duration_seconds)
        return self._clip(request, frame, ctx, source)


class ContentGeneration(_GenerationTile):
    node_type_id: ClassVar[str] = "d898f2b1-3151-4231-a4d4-dd4d5a020b05"
    name: ClassVar[str] = "AI Content Generation"
    takes_input: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Makes a finished short video about a topic, optionally narrated, with the "
        "configured provider."
    )
    Params: ClassVar[type[TileParams]] = ContentGenerationParams
    capability: ClassVar[Capability] = "content"
    credits_per_minute: ClassVar[int] = 10

    def run(
        self, params: ContentGenerationParams, source: object, ctx: TileContext
    ) -> list[TileOutput]:
        width, height = frame_size(params.aspect_ratio, params.resolution)
        request = ContentRequest(
            prompt=params.prompt,
            duration_seconds=params.duration_seconds,
            width=width,
            height=height,
            fps=params.fps,
            narration=params.narration,
            voice=params.voice,
        )
        frame = _Frame(width, height, params.fps, params.duration_seconds)
        return self._clip(request, frame, ctx, source)


class AIAvatar(_GenerationTile):
    node_type_id: ClassVar[str] = "b3b4c9e2-2a47-4fa9-8ce8-0c1fa1d7b6ef"
    name: ClassVar[str] = "AI Avatar"
    takes_input: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Makes a video of a presenter speaking a script with the configured provider."
    )
    Params: ClassVar[type[TileParams]] = AvatarParams
    capability: ClassVar[Capability] = "avatar"
    credits_per_minute: ClassVar[int] = 10

    def run(
        self, params: AvatarParams, source: object, ctx: TileContext
    ) -> list[TileOutput]:
        width, height = frame_size(params.aspect_ratio, params.resolution)
        request = AvatarRequest(
            script=params.script,
            avatar=params.avatar,
            width=width,
            height=height,
            fps=params.fps,
            voice=params.voice,
        )
        return self._clip(request, _Frame(width, height, params.fps, None), ctx, source)


class ImageGeneration(_GenerationTile):
    node_type_id: ClassVar[str] = "18b998a0-2ea7-4676-a5d3-3ae6c8ac0b72"
    name: ClassVar[str] = "Image Generation"
    takes_input: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Generates one or more PNG images from a prompt with the configured provider."
    )
    Params: ClassVar[type[TileParams]] = ImageGenerationParams
    capability: ClassVar[Capability] = "image"

    def run(
        self, params: ImageGenerationParams, source: object, ctx: TileContext
    ) -> list[TileOutput]:
        selected = self._provider(ctx)

        outputs: list[TileOutput] = []
        for index in range(params.num_images):
            ctx.cancel.raise_if_cancelled()
            request = ImageRequest(
                prompt=params.prompt,
                width=params.width,
                height=params.height,
                index=index,
            )
            share = 100.0 / params.num_images
            span = (share * index, share * (index + 0.9))
            made, _ = generate(
                selected,
                "image",
                request,
                ctx,
                tile=self.name,
                needs="image",
                progress=span,
            )
            out = ctx.scratch / f"image-{index + 1}.png"
            self._to_png(made, out, params, ctx)
            outputs.append(_image_output(out, params, selected, source))
            ctx.report_progress(share * (index + 1))
        return outputs

    def _to_png(
        self, made: Path, out: Path, params: ImageGenerationParams, ctx: TileContext
    ) -> None:
        size = _cover(params.width, params.height)
        args = [
            *("-i", str(made), "-map", "0:V:0", "-vf", size, "-frames:v", "1"),
            *("-c:v", "png", "-f", "image2", "-update", "1", str(out)),
        ]
        ctx.ffmpeg.run(args, cancel=ctx.cancel, description="Saving the image")


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Even width and height of ``aspect_ratio`` whose short side is ``resolution``."""
    across, down = (int(part) for part in aspect_ratio.split(":"))
    short = SHORT_SIDES[resolution]
    if across >= down:
        return _even(short * across / down), short
    return short, _even(short * down / across)


def finish_video(
    made: tuple[Path, MediaInfo],
    frame: _Frame,
    ctx: TileContext,
    *,
    selected: SelectedProvider,
    source: object,
) -> TileOutput:
    """Bring a provider's clip to the asked size, rate and length as H.264 MP4."""
    path, info = made
    out = ctx.scratch / "output.mp4"
    filters = f"{_cover(frame.width, frame.height)},fps={frame.fps},format=yuv420p"
    audio = ["-map", "0:a:0"] if info.has_audio else []
    limit = ["-t", f"{frame.seconds:.3f}"] if frame.seconds is not None else []
    seconds = min(info.duration, frame.seconds or info.duration)
    args = [
        *("-i", str(path), "-map", "0:V:0", *audio, "-vf", filters, *limit),
        *encode_args(ctx.x264_preset, audio=info.has_audio),
        str(out),
    ]
    ctx.ffmpeg.run(
        args,
        cancel=ctx.cancel,
        duration=seconds,
        on_progress=scaled_progress(ctx.report_progress, PROVIDER_PROGRESS, 100.0),
        description="Encoding the generated video",
    )

    metadata = _generated_metadata(selected, source)
    metadata.update(
        {"width": frame.width, "height": frame.height, "seconds": round(seconds, 3)}
    )
    if (
        frame.seconds is not None
        and info.duration < frame.seconds - SHORT_TOLERANCE_SECONDS
    ):
        _note(
            metadata,
            f"The provider made {info.duration:.2f} s of the {frame.seconds:.2f} s "
            "asked for; the video is that long.",
        )
    logger.debug("generated video from %s: %s", selected.name, metadata)
    return TileOutput(path=out, metadata=metadata)


def _require_input(source: MediaFile | None, tile: str) -> MediaFile:
    if source is None:
        raise TileError(
            f"{tile} works on a video and got none; connect it after a Video Input."
        )
    return source


def _require_video(source: MediaFile | None, tile: str) -> MediaFile:
    video = _require_input(source, tile)
    if not video.info.has_video:
        raise TileError(
            f"{video.path.name} has no picture; {tile} needs a video to lay "
            "footage over."
        )
    return video


def _display_size(info: MediaInfo) -> tuple[int, int]:
    width, height = info.display_width, info.display_height
    if not width or not height:
        raise TileError("This video has no known picture size; re-encode it.")
    return width, height


def _rate(info: MediaInfo) -> int:
    if info.fps is None or info.fps <= 0:
        return DEFAULT_FPS
    return max(1, min(MAX_FPS, round(info.fps)))


def _cover(width: int, height: int) -> str:
    """Scale to fill ``width`` x ``height`` and crop what sticks out."""
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1"
    )


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _image_output(
    out: Path,
    params: ImageGenerationParams,
    selected: SelectedProvider,
    source: object,
) -> TileOutput:
    metadata = _generated_metadata(selected, source)
    metadata.update({"width": params.width, "height": params.height})
    return TileOutput(path=out, metadata=metadata)


def _generated_metadata(selected: SelectedProvider, source: object) -> dict[str, Any]:
    metadata: dict[str, Any] = {"provider": selected.name}
    if source is not None:
        _note(metadata, "The input was not used: this tile makes new media.")
    return metadata


def _note(metadata: dict[str, Any], note: str) -> None:
    metadata.setdefault("notes", []).append(note)
