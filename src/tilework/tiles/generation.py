"""Generation tiles: media made by the configured generation provider.

Video Generation, Image Generation, AI Content Generation and AI Avatar make new
media from a prompt or script; their input, if any, is not used. Voice Dubbing,
B-Roll and Motion Graphics work on the input video: new speech in another language,
a cutaway clip over part of it, an animated graphic laid on top. Whatever the
provider returns is checked and brought to the requested size and length here.

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
from tilework.media.render import encode_args, render_fragments
from tilework.providers import (
    PROVIDER_PROGRESS,
    AvatarRequest,
    BrollRequest,
    Capability,
    ContentRequest,
    DubRequest,
    ImageRequest,
    MotionGraphicsRequest,
    SelectedProvider,
    VideoRequest,
    escape_filter_value,
    generate,
    scaled_progress,
    select_provider,
)
from tilework.tiles.base import (
    FilterFragment,
    MediaFile,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)
from tilework.tiles.voiceover import Placement, lay_sound

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


class VoiceDubbingParams(TileParams):
    target_language: str = Field(
        pattern=LANGUAGE_PATTERN,
        description="Language of the dub, a code such as 'fr', 'es' or 'pt-BR'.",
    )
    voice: str | None = Field(
        default=None,
        pattern=tts.VOICE_PATTERN,
        description="Voice to speak with; the provider picks one when unset.",
    )
    transcript: str | None = Field(
        default=None,
        min_length=1,
        max_length=5000,
        description="The words to speak, already translated, when you have them.",
    )
    keep_background: bool = Field(
        default=True,
        description="Keep the original sound under the dub, ducked while it speaks.",
    )
    background_volume_db: float = Field(
        default=-12,
        ge=-60,
        le=0,
        description="Gain of the original sound kept under the dub, dB.",
    )


class _InsertParams(TileParams):
    at_seconds: float = Field(
        default=0, ge=0, le=36000, description="When the insert starts, seconds."
    )
    duration_seconds: float = Field(
        default=3, ge=0.5, le=60, description="How long the insert lasts, seconds."
    )


class BRollParams(_InsertParams):
    prompt: str = _prompt("What the cutaway footage shows.")


class MotionGraphicsParams(_InsertParams):
    prompt: str = _prompt("The text or idea of the graphic.", max_length=500)
    duration_seconds: float = Field(
        default=4, ge=0.5, le=60, description="How long the graphic shows, seconds."
    )
    position: Position = Field(
        default="lower_third", description="Where the graphic sits in the frame."
    )
    width_percent: float = Field(
        default=60, ge=10, le=100, description="Width of the graphic, % of the frame."
    )
    height_percent: float = Field(
        default=20, ge=5, le=100, description="Height of the graphic, % of the frame."
    )


@dataclasses.dataclass(frozen=True)
class _Box:
    x: int
    y: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class _Insert:
    box: _Box
    start: float
    length: float
    notes: tuple[str, ...]


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

    def _lay_over(
        self, video: MediaFile, request: object, insert: _Insert, ctx: TileContext
    ) -> list[TileOutput]:
        """Have the provider make a clip and lay it over ``video`` as ``insert``."""
        selected = self._provider(ctx)
        clip = generate(
            selected, self.capability, request, ctx, tile=self.name, needs="video"
        )
        return [_overlay(video, clip, insert, ctx, selected)]


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


class VoiceDubbing(_GenerationTile):
    node_type_id: ClassVar[str] = "f906fb13-c85c-5e94-9c97-eaf077fd6ff6"
    name: ClassVar[str] = "Voice Dubbing"
    description: ClassVar[str] = (
        "Replaces the speech with a dub in another language made by the configured "
        "provider, keeping the background sound if asked (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = VoiceDubbingParams
    capability: ClassVar[Capability] = "dub"

    def run(
        self, params: VoiceDubbingParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_input(source, self.name)
        selected = self._provider(ctx)
        request = DubRequest(
            source=video.path,
            duration_seconds=video.info.duration,
            target_language=params.target_language,
            voice=params.voice,
            transcript=params.transcript,
        )
        dub, _ = generate(selected, "dub", request, ctx, tile=self.name, needs="audio")

        placement = Placement(
            start_seconds=0.0,
            mix="mix" if params.keep_background else "replace",
            volume_db=0.0,
            original_volume_db=params.background_volume_db,
        )
        output = lay_sound(
            video, dub, placement, ctx, tile=self.name, progress_from=PROVIDER_PROGRESS
        )
        output.metadata.update(
            {"provider": selected.name, "target_language": params.target_language}
        )
        return [output]


class BRoll(_GenerationTile):
    node_type_id: ClassVar[str] = "33812fe9-91d6-59cd-aece-60e6fc5854c3"
    name: ClassVar[str] = "B-Roll"
    description: ClassVar[str] = (
        "Cuts away to generated footage over part of the video while its sound "
        "goes on (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = BRollParams
    capability: ClassVar[Capability] = "broll"

    def run(
        self, params: BRollParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_video(source, self.name)
        width, height = _display_size(video.info)
        insert = _insert(params, _Box(0, 0, width, height), video.info, self.name)
        request = BrollRequest(
            prompt=params.prompt,
            duration_seconds=insert.length,
            width=_even(width),
            height=_even(height),
            fps=_rate(video.info),
        )
        return self._lay_over(video, request, insert, ctx)


class MotionGraphics(_GenerationTile):
    node_type_id: ClassVar[str] = "7b20121a-e678-5b82-911b-18a0a0753f06"
    name: ClassVar[str] = "Motion Graphics"
    description: ClassVar[str] = (
        "Lays an animated graphic made by the configured provider over part of the "
        "video (tilework id, see docs)."
    )
    Params: ClassVar[type[TileParams]] = MotionGraphicsParams
    capability: ClassVar[Capability] = "motion_graphics"

    def run(
        self, params: MotionGraphicsParams, source: MediaFile | None, ctx: TileContext
    ) -> list[TileOutput]:
        video = _require_video(source, self.name)
        box = graphic_box(params, *_display_size(video.info))
        insert = _insert(params, box, video.info, self.name)
        request = MotionGraphicsRequest(
            prompt=params.prompt,
            duration_seconds=insert.length,
            width=_even(box.width),
            height=_even(box.height),
            fps=_rate(video.info),
        )
        return self._lay_over(video, request, insert, ctx)


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


def graphic_box(params: MotionGraphicsParams, width: int, height: int) -> _Box:
    """Where a graphic of the asked size sits in a ``width`` x ``height`` frame."""
    if params.position == "full_frame":
        return _Box(0, 0, width, height)

    box_w = min(width, _even(width * params.width_percent / 100))
    box_h = min(height, _even(height * params.height_percent / 100))
    centred_x = (width - box_w) // 2
    margin = round(height * EDGE_MARGIN)
    places = {
        "lower_third": (
            round(width * EDGE_MARGIN),
            height - box_h - round(height * LOWER_THIRD_MARGIN),
        ),
        "top": (centred_x, margin),
        "center": (centred_x, (height - box_h) // 2),
        "bottom": (centred_x, height - box_h - margin),
    }
    x, y = places[params.position]
    x = max(0, min(x, width - box_w))
    y = max(0, min(y, height - box_h))
    return _Box(x, y, box_w, box_h)


def _overlay(
    video: MediaFile,
    clip: tuple[Path, MediaInfo],
    insert: _Insert,
    ctx: TileContext,
    selected: SelectedProvider,
) -> TileOutput:
    """Lay ``clip`` over ``video`` in the box and time window of ``insert``."""
    path, info = clip
    width, height = _display_size(video.info)
    end = insert.start + insert.length
    out = ctx.scratch / "output.mp4"
    fragment = overlay_fragment(path, insert.box, insert.start, end, width, height)
    progress = scaled_progress(ctx.report_progress, PROVIDER_PROGRESS, 100.0)
    render_fragments(
        video, [fragment], out, ctx=dataclasses.replace(ctx, report_progress=progress)
    )

    notes = list(insert.notes)
    if info.duration < insert.length - SHORT_TOLERANCE_SECONDS:
        notes.append(
            f"The provider's clip lasts {info.duration:.2f} s of the "
            f"{insert.length:.2f} s asked for; the video shows again after it."
        )
    metadata: dict[str, Any] = {
        "provider": selected.name,
        "start_seconds": round(insert.start, 3),
        "end_seconds": round(end, 3),
        "box": dataclasses.asdict(insert.box),
    }
    if notes:
        metadata["notes"] = notes
    logger.debug("laid a clip from %s over %s: %s", selected.name, video.path, metadata)
    return TileOutput(path=out, metadata=metadata)


def overlay_fragment(
    clip: Path, box: _Box, start: float, end: float, width: int, height: int
) -> FilterFragment:
    """A graph fragment laying ``clip`` in ``box`` from ``start`` to ``end``."""
    enable = f"between(t,{start:.3f},{end:.3f})"
    graph = ";".join(
        [
            f"movie=filename={escape_filter_value(str(clip))},"
            f"setpts=PTS-STARTPTS+{start:.3f}/TB,"
            f"scale={box.width}:{box.height},setsar=1,format=yuva420p[clip]",
            f"[in][clip]overlay=x={box.x}:y={box.y}:eof_action=pass"
            f":enable='{enable}'[out]",
        ]
    )
    return FilterFragment(
        video=graph, audio=None, width=width, height=height, graph=True
    )


def _insert(params: _InsertParams, box: _Box, info: MediaInfo, tile: str) -> _Insert:
    """Start and length of an insert that fits in the video, and notes if moved."""
    duration = info.duration
    length = min(params.duration_seconds, duration)
    if length < MIN_INSERT_SECONDS:
        raise TileError(
            f"The video lasts {duration:.2f} s, too short for {tile} to insert "
            "anything; use a longer video."
        )
    start = min(params.at_seconds, duration - length)

    notes: list[str] = []
    if length < params.duration_seconds:
        notes.append(
            f"The video lasts {duration:.2f} s, so the insert lasts that long "
            f"instead of {params.duration_seconds:.2f} s."
        )
    if start < params.at_seconds:
        notes.append(
            f"An insert at {params.at_seconds:.2f} s would run past the end, so it "
            f"starts at {start:.2f} s."
        )
    return _Insert(box=box, start=start, length=length, notes=tuple(notes))


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
