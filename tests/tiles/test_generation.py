"""Generation tiles: no provider, the example provider's real media, provider faults."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import av
import numpy as np
import pytest
from pydantic import ValidationError

import media_factory
from media_factory import make_rotated, make_video
from tilework import providers
from tilework.config import Settings
from tilework.errors import NeedsProvider, TileError
from tilework.media.probe import probe
from tilework.providers import (
    ImageRequest,
    ProviderBase,
    ProviderContext,
    VideoRequest,
)
from tilework.tiles import generation, generation_edits
from tilework.tiles.ai_music import AIMusic
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput
from tilework.tiles.voiceover import AudioGeneration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NAME = "example-offline"

NO_PROVIDER_CASES: list[tuple[type[Tile], dict[str, Any], bool]] = [
    (generation.ContentGeneration, {"prompt": "sleep tips"}, False),
    (generation.AIAvatar, {"script": "Hello there."}, False),
    (generation.VideoGeneration, {"prompt": "a fox in the snow"}, False),
    (generation.ImageGeneration, {"prompt": "a red bicycle"}, False),
    (generation_edits.VoiceDubbing, {"target_language": "fr"}, True),
    (generation_edits.BRoll, {"prompt": "city at night"}, True),
    (generation_edits.MotionGraphics, {"prompt": "Jane Doe"}, True),
    (AudioGeneration, {"mode": "music", "prompt": "calm piano"}, False),
    (AIMusic, {"prompt": "calm piano"}, True),
]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "provider_example", EXAMPLES / "provider_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ImagesOnly(ProviderBase):
    capabilities: ClassVar[frozenset[str]] = frozenset({"image"})


class Broken(ProviderBase):
    capabilities: ClassVar[frozenset[str]] = frozenset({"video", "image"})

    def generate_video(self, request: VideoRequest, ctx: ProviderContext) -> Path:
        raise RuntimeError("the model server said no")

    def generate_image(self, request: ImageRequest, ctx: ProviderContext) -> Path:
        junk = ctx.scratch / "junk.png"
        junk.write_text("<html>not an image</html>", encoding="utf-8")
        return junk


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> MediaFile:
    path = make_video(tmp_path_factory.mktemp("generation") / "in.mp4", seconds=3.0)
    return MediaFile(path=path, info=probe(path))


@pytest.fixture(scope="module")
def registered() -> Iterator[str]:
    providers.register(EXAMPLE_NAME, load_example().ExampleProvider)
    providers.register("images-only", ImagesOnly)
    providers.register("broken", Broken)
    yield EXAMPLE_NAME
    for name in (EXAMPLE_NAME, "images-only", "broken"):
        providers.unregister(name)


@pytest.fixture
def progress() -> list[float]:
    return []


@pytest.fixture
def plain_context(tmp_path: Path, progress: list[float]) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", progress)


def with_provider(ctx: TileContext, name: str) -> TileContext:
    return dataclasses.replace(ctx, settings=Settings(generation_provider=name))


@pytest.fixture
def ctx(plain_context: TileContext, registered: str) -> TileContext:
    return with_provider(plain_context, registered)


def run(
    tile_type: type[Tile], params: dict[str, Any], source: object, ctx: TileContext
) -> list[TileOutput]:
    tile = tile_type()
    outputs: list[TileOutput] = tile.run(
        tile.Params.model_validate(params), source, ctx
    )
    return outputs


def frame_at(path: Path, seconds: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds:
                return frame.to_ndarray(format="rgb24").astype(np.int16)
    raise AssertionError(f"{path.name} has no frame at {seconds} s")


def difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first - second).mean())


@pytest.mark.parametrize(
    ("tile_type", "params", "needs_video"),
    NO_PROVIDER_CASES,
    ids=[case[0].name for case in NO_PROVIDER_CASES],
)
def test_no_provider_configured(
    tile_type: type[Tile],
    params: dict[str, Any],
    needs_video: bool,
    video: MediaFile,
    plain_context: TileContext,
) -> None:
    source = video if needs_video else None

    with pytest.raises(NeedsProvider) as caught:
        run(tile_type, params, source, plain_context)

    message = str(caught.value)
    assert message.startswith(f"no provider configured for {tile_type.name}: ")
    assert "TILEWORK_GENERATION_PROVIDER" in message
    assert "'tilework.providers' entry point group" in message


@pytest.mark.parametrize(
    ("aspect_ratio", "size"), [("16:9", (640, 360)), ("9:16", (360, 640))]
)
def test_video_generation(
    ctx: TileContext,
    progress: list[float],
    aspect_ratio: str,
    size: tuple[int, int],
) -> None:
    params = {
        "prompt": "A fox crossing a snowy field, ça va",
        "duration_seconds": 2,
        "aspect_ratio": aspect_ratio,
        "resolution": "360p",
        "fps": 24,
    }

    [output] = run(generation.VideoGeneration, params, None, ctx)

    info = probe(output.path)
    assert (info.width, info.height) == size
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert media_factory.count_video_frames(output.path) == pytest.approx(48, abs=1)
    assert info.video_codec == "h264"
    assert output.metadata["provider"] == EXAMPLE_NAME
    assert progress == sorted(progress) and progress[-1] == 100


def test_image_generation(ctx: TileContext) -> None:
    params = {"prompt": "a red bicycle", "width": 320, "height": 200, "num_images": 2}

    outputs = run(generation.ImageGeneration, params, None, ctx)

    assert [output.path.name for output in outputs] == ["image-1.png", "image-2.png"]
    pictures = []
    for output in outputs:
        info = probe(output.path)
        assert (info.width, info.height, info.video_codec) == (320, 200, "png")
        pictures.append(frame_at(output.path, 0))
    assert difference(*pictures) > 5


def test_content_generation_is_narrated(ctx: TileContext) -> None:
    params = {"prompt": "Three tips for better sleep", "duration_seconds": 3}
    params |= {"resolution": "360p", "aspect_ratio": "1:1"}

    [output] = run(generation.ContentGeneration, params, None, ctx)

    info = probe(output.path)
    assert (info.width, info.height) == (360, 360)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert info.has_audio


def test_avatar_lasts_as_long_as_its_speech(ctx: TileContext) -> None:
    params = {"script": "Hello, I am your host for today.", "resolution": "360p"}

    [output] = run(generation.AIAvatar, params, None, ctx)

    info = probe(output.path)
    assert (info.width, info.height) == (360, 640)
    assert 1.0 < info.duration < 4.0
    assert info.has_audio


def test_generators_say_the_input_is_unused(ctx: TileContext, video: MediaFile) -> None:
    params = {"prompt": "waves", "duration_seconds": 1, "resolution": "360p"}

    [output] = run(generation.VideoGeneration, params, video, ctx)

    assert "not used" in output.metadata["notes"][0]


def test_dubbing_replaces_the_speech(ctx: TileContext, video: MediaFile) -> None:
    params = {
        "target_language": "es",
        "transcript": "Hola a todos, bienvenidos.",
        "keep_background": False,
    }

    [output] = run(generation_edits.VoiceDubbing, params, video, ctx)

    info = probe(output.path)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert media_factory.count_video_frames(output.path) == 90
    assert output.metadata["original_audio"] == "replaced"
    assert output.metadata["target_language"] == "es"


def test_broll_covers_only_its_window(ctx: TileContext, video: MediaFile) -> None:
    params = {"prompt": "city lights at night", "at_seconds": 1.0}
    params["duration_seconds"] = 1.0

    [output] = run(generation_edits.BRoll, params, video, ctx)

    assert probe(output.path).duration == pytest.approx(3.0, abs=0.1)
    for seconds, covered in ((0.5, False), (1.5, True), (2.5, False)):
        changed = difference(
            frame_at(output.path, seconds), frame_at(video.path, seconds)
        )
        assert (changed > 30) is covered, (seconds, changed)
    assert output.metadata["start_seconds"] == 1.0
    assert output.metadata["end_seconds"] == 2.0


def test_broll_past_the_end_is_moved(ctx: TileContext, video: MediaFile) -> None:
    params = {"prompt": "forest", "at_seconds": 2.5, "duration_seconds": 2}

    [output] = run(generation_edits.BRoll, params, video, ctx)

    assert output.metadata["start_seconds"] == pytest.approx(1.0)
    assert "starts at 1.00 s" in output.metadata["notes"][0]


def test_motion_graphics_is_laid_in_its_box(ctx: TileContext, video: MediaFile) -> None:
    params = {"prompt": "Jane Doe, engineer", "at_seconds": 0.5, "duration_seconds": 2}

    [output] = run(generation_edits.MotionGraphics, params, video, ctx)

    box = output.metadata["box"]
    assert box == {"x": 16, "y": 168, "width": 192, "height": 48}
    rows = slice(box["y"] + box["height"] // 3, box["y"] + box["height"] * 2 // 3)
    clear_rows = slice(box["y"], box["y"] + 4)
    columns = slice(box["x"], box["x"] + box["width"])
    during, before = frame_at(output.path, 1.5), frame_at(output.path, 0.2)
    source_during = frame_at(video.path, 1.5)
    assert difference(during[rows, columns], source_during[rows, columns]) > 30
    assert (
        difference(during[clear_rows, columns], source_during[clear_rows, columns]) < 12
    )
    assert difference(before, frame_at(video.path, 0.2)) < 12
    assert difference(during[:100], source_during[:100]) < 12


@pytest.mark.parametrize(
    ("size", "clockwise", "expected"),
    [("321x241", 0, (320, 240)), ("320x240", 90, (240, 320))],
)
def test_broll_on_odd_and_rotated_video(
    tmp_path: Path,
    ctx: TileContext,
    size: str,
    clockwise: int,
    expected: tuple[int, int],
) -> None:
    path = make_video(tmp_path / "in.mp4", seconds=1.0, size=size)
    if clockwise:
        path = make_rotated(path, tmp_path / "turned.mp4", clockwise=clockwise)
    source = MediaFile(path=path, info=probe(path))

    params = {"prompt": "sky", "duration_seconds": 0.5}
    [output] = run(generation_edits.BRoll, params, source, ctx)

    info = probe(output.path)
    assert (info.width, info.height, info.rotation) == (*expected, 0)
    assert info.duration == pytest.approx(1.0, abs=0.1)


def test_paths_and_text_with_filter_syntax(
    tmp_path: Path, registered: str, video: MediaFile, progress: list[float]
) -> None:
    scratch = tmp_path / "it's: [odd], dir; é"
    ctx = with_provider(media_factory.tile_context(scratch, progress), registered)
    params = {"prompt": "100% it's: [x]; y, \\z %{pts}", "duration_seconds": 1}

    [output] = run(generation_edits.MotionGraphics, params, video, ctx)

    assert probe(output.path).duration == pytest.approx(3.0, abs=0.1)


def test_generated_sound_effects_alone(ctx: TileContext) -> None:
    params = {"mode": "sound_effects", "prompt": "rain", "duration_seconds": 2}

    [output] = run(AudioGeneration, params, None, ctx)

    info = probe(output.path)
    assert output.path.suffix == ".m4a" and not info.has_video
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert output.metadata["generated_by"] == f"provider:{EXAMPLE_NAME}"


def test_voiceover_speaks_through_the_provider(ctx: TileContext) -> None:
    [output] = run(AudioGeneration, {"script": "Provider speech."}, None, ctx)

    assert output.metadata["speech_engine"] == f"provider:{EXAMPLE_NAME}"
    assert probe(output.path).has_audio


def test_unsupported_capability(plain_context: TileContext, registered: str) -> None:
    ctx = with_provider(plain_context, "images-only")

    with pytest.raises(TileError) as caught:
        run(generation.VideoGeneration, {"prompt": "waves"}, None, ctx)

    assert not isinstance(caught.value, NeedsProvider)
    assert "'video'" in str(caught.value) and "'images-only'" in str(caught.value)


def test_unknown_provider_lists_the_installed(
    plain_context: TileContext, registered: str
) -> None:
    ctx = with_provider(plain_context, "no-such-provider")

    with pytest.raises(TileError) as caught:
        run(generation.ImageGeneration, {"prompt": "a cat"}, None, ctx)

    message = str(caught.value)
    assert "'no-such-provider'" in message and "not installed" in message
    assert f"installed providers: {', '.join(providers.installed_providers())}" in (
        message
    )
    assert EXAMPLE_NAME in message


def test_provider_failure_is_a_tile_error(
    plain_context: TileContext, registered: str
) -> None:
    ctx = with_provider(plain_context, "broken")

    with pytest.raises(TileError, match=r"'broken' failed for Video Generation"):
        run(generation.VideoGeneration, {"prompt": "waves"}, None, ctx)


def test_provider_junk_is_refused(plain_context: TileContext, registered: str) -> None:
    ctx = with_provider(plain_context, "broken")

    with pytest.raises(TileError, match="not media tilework can read"):
        run(generation.ImageGeneration, {"prompt": "a cat"}, None, ctx)


def test_entry_point_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain_context: TileContext
) -> None:
    """A package declaring the entry point is found without registering anything."""
    dist = tmp_path / "site" / "tilework_example_provider-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tilework-example-provider\nVersion: 1.0\n",
        encoding="utf-8",
    )
    (dist / "entry_points.txt").write_text(
        "[tilework.providers]\nfrom-package = provider_example:ExampleProvider\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "provider_example", raising=False)
    ctx = with_provider(plain_context, "from-package")

    assert "from-package" in providers.installed_providers()
    params = {"prompt": "a kite", "width": 128, "height": 96}
    [output] = run(generation.ImageGeneration, params, None, ctx)

    assert (probe(output.path).width, probe(output.path).height) == (128, 96)


def test_register_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        providers.register(" ", ImagesOnly)


def test_no_video_input_for_video_tiles(ctx: TileContext) -> None:
    with pytest.raises(TileError, match="B-Roll works on a video and got none"):
        run(generation_edits.BRoll, {"prompt": "x"}, None, ctx)


def test_tilework_ids_are_derived_from_names() -> None:
    for tile_type in (
        generation_edits.VoiceDubbing,
        generation_edits.MotionGraphics,
        generation_edits.BRoll,
    ):
        expected = uuid.uuid5(generation.TILEWORK_NAMESPACE, tile_type.name)
        assert tile_type.node_type_id == str(expected)


@pytest.mark.parametrize(
    ("params_type", "params"),
    [
        (generation.VideoGenerationParams, {"prompt": ""}),
        (generation.VideoGenerationParams, {"prompt": "x", "duration_seconds": 0}),
        (generation.VideoGenerationParams, {"prompt": "x", "aspect_ratio": "2:1"}),
        (generation.ImageGenerationParams, {"prompt": "x", "width": 10}),
        (generation.ImageGenerationParams, {"prompt": "x", "num_images": 9}),
        (generation_edits.VoiceDubbingParams, {"target_language": "French!"}),
        (generation_edits.VoiceDubbingParams, {}),
        (generation.AvatarParams, {"script": "hi", "avatar": "../etc"}),
        (generation_edits.MotionGraphicsParams, {"prompt": "x", "position": "left"}),
        (generation_edits.BRollParams, {"prompt": "x", "duration_seconds": 0.1}),
        (generation.ContentGenerationParams, {"prompt": "x", "style": "funny"}),
    ],
)
def test_params_are_validated(params_type: type[Any], params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        params_type.model_validate(params)
