"""Clips on real media: loud moments and shot changes win, a prompt steers the pick."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import media_factory
from media_factory import FAST_VIDEO, make_video, run_ffmpeg
from tilework.config import Settings
from tilework.errors import FFmpegError, TileError
from tilework.media.asr import Transcript, Word
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, PartialOutputs, TileContext, TileOutput
from tilework.tiles.clips import Clips, ClipsParams, prompt_keywords, word_stem

COLOURS = ("red", "blue", "green", "yellow", "purple", "white", "navy")
SHOTS = (0, 3, 6, 9, 12, 15, 18, 20)
LOUD = ((3.0, 6.0), (9.0, 12.0), (15.0, 18.0))
FRAME = 1 / 30


def make_highlights(path: Path, *, audio: bool = True) -> Path:
    """20 s in seven coloured shots; a loud tone plays in shots 2, 4 and 6 and a
    faint one elsewhere."""
    shots = ";".join(
        f"color=c={colour}:s=320x240:r=30:d={SHOTS[i + 1] - SHOTS[i]}[c{i}]"
        for i, colour in enumerate(COLOURS)
    )
    labels = "".join(f"[c{i}]" for i in range(len(COLOURS)))
    graph = f"{shots};{labels}concat=n={len(COLOURS)}:v=1:a=0[v]"
    loud = "+".join(f"between(t,{start},{end})" for start, end in LOUD)
    tone = f"aevalsrc='(0.01+0.5*({loud}))*sin(2*PI*440*t)':s=48000:d=20"
    sound = ["-f", "lavfi", "-i", tone, "-map", "0:a", "-c:a", "aac"] if audio else []
    run_ffmpeg(
        *("-filter_complex", graph, *sound, "-map", "[v]", *FAST_VIDEO, str(path))
    )
    return path


class ScriptedTranscriber:
    """Hands back a prepared transcript and counts the calls."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.calls: list[Path] = []

    def transcribe(
        self,
        media: Path,
        *,
        ffmpeg: FFmpeg,
        cancel: CancelToken | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        self.calls.append(media)
        return self.transcript


def spoken(*phrases: tuple[float, str]) -> Transcript:
    """Words a third of a second each, from each phrase's start time."""
    words = [
        Word(start + 0.33 * i, start + 0.33 * i + 0.3, text)
        for start, phrase in phrases
        for i, text in enumerate(phrase.split())
    ]
    return Transcript(words=tuple(words), language="en", duration=20.0)


class FailingRenders(FFmpeg):
    """A real ffmpeg whose renders with the given numbers fail."""

    def __init__(self, binary: str, failing: set[int]) -> None:
        super().__init__(binary)
        self.failing = failing
        self.renders = 0

    def run(self, args: list[str], **options: Any) -> str:
        if options.get("description") == "Rendering the cut":
            self.renders += 1
            if self.renders in self.failing:
                raise FFmpegError(
                    "Rendering the cut failed",
                    returncode=1,
                    stderr_tail="No space left on device",
                )
        return super().run(args, **options)


@pytest.fixture(scope="module")
def highlights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_highlights(tmp_path_factory.mktemp("clips") / "highlights.mp4")


@pytest.fixture
def ctx(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", [])


def make_clips(
    path: Path, ctx: TileContext, tile: Clips | None = None, **params: object
) -> list[TileOutput]:
    source = MediaFile(path=path, info=probe(path))
    return (tile or Clips()).run(ClipsParams.model_validate(params), source, ctx)


def span(output: TileOutput) -> tuple[float, float]:
    [cut] = output.metadata["cuts"]
    return cut["source_start"], cut["source_end"]


def loud_overlap(start: float, end: float) -> float:
    return max(max(0.0, min(end, b) - max(start, a)) for a, b in LOUD)


def test_clips_land_on_the_loud_shots(highlights: Path, ctx: TileContext) -> None:
    outputs = make_clips(highlights, ctx, num_clips=3, target_duration=3)

    assert [o.name for o in outputs] == ["clip-1.mp4", "clip-2.mp4", "clip-3.mp4"]
    spans = sorted(span(output) for output in outputs)
    for (start, end), (loud_start, loud_end) in zip(spans, LOUD, strict=True):
        assert start == pytest.approx(loud_start, abs=FRAME)
        assert end == pytest.approx(loud_end, abs=FRAME)
    scores = [output.metadata["score"] for output in outputs]
    assert scores == sorted(scores, reverse=True)
    for rank, output in enumerate(outputs, start=1):
        assert output.metadata["rank"] == rank
        assert "shot change" in output.metadata["reason"]
        info = probe(output.path)
        assert info.has_audio and info.duration == pytest.approx(3.0, abs=0.05)


def test_target_duration_is_respected(highlights: Path, ctx: TileContext) -> None:
    outputs = make_clips(highlights, ctx, num_clips=3, target_duration=5)

    assert len(outputs) == 3
    spans = sorted(span(output) for output in outputs)
    for start, end in spans:
        assert 5 * 0.85 - FRAME <= end - start <= 5 * 1.15 + FRAME
        assert loud_overlap(start, end) >= 2.5
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start + 1e-6
    for output in outputs:
        assert probe(output.path).duration == pytest.approx(
            output.metadata["duration"], abs=0.05
        )


def test_more_clips_than_fit_gives_fewer_with_a_note(
    highlights: Path, ctx: TileContext
) -> None:
    outputs = make_clips(highlights, ctx, num_clips=10, target_duration=5)

    assert 1 <= len(outputs) <= 4
    assert "10 were asked for" in outputs[0].metadata["note"]


def test_source_shorter_than_a_clip_gives_one_whole_clip(
    tmp_path: Path, ctx: TileContext
) -> None:
    short = make_video(tmp_path / "short.mp4", seconds=10.0)

    outputs = make_clips(short, ctx, num_clips=3, target_duration=30)

    [output] = outputs
    assert span(output) == (0.0, pytest.approx(10.0, abs=0.05))
    assert "shorter than the 30 s" in output.metadata["note"]
    assert probe(output.path).duration == pytest.approx(10.0, abs=0.05)


def test_prompt_steers_the_choice(highlights: Path, ctx: TileContext) -> None:
    transcript = spoken(
        (3.2, "the crowd cheers loudly here"),
        (12.3, "our budget plans for next year"),
        (15.5, "and the band plays on"),
    )
    transcriber = ScriptedTranscriber(transcript)
    tile = Clips(transcriber_factory=lambda settings, tile=None: transcriber)

    outputs = make_clips(
        highlights, ctx, tile, num_clips=2, target_duration=3, prompt="Budget planning"
    )

    first = outputs[0]
    start, end = span(first)
    assert start <= 12.3 and end >= 12.3 + 0.33 * 5 + 0.3
    assert first.metadata["matched_keywords"] == ["budget", "plan"]
    assert first.metadata["transcript_used"] is True
    assert "mentions budget, plan" in first.metadata["reason"]
    assert loud_overlap(*span(outputs[1])) >= 2.9
    assert len(transcriber.calls) == 1


def test_clips_never_cut_a_word(highlights: Path, ctx: TileContext) -> None:
    transcript = spoken((2.8, "words spoken across the shot change budget"))
    tile = Clips(
        transcriber_factory=lambda settings, tile=None: ScriptedTranscriber(transcript)
    )

    outputs = make_clips(
        highlights, ctx, tile, num_clips=3, target_duration=3, prompt="budget"
    )

    bounds = [instant for output in outputs for instant in span(output)]
    for word in transcript.words:
        assert not any(word.start + 1e-3 < b < word.end - 1e-3 for b in bounds)


def test_without_speech_recognition_the_prompt_is_set_aside(
    highlights: Path, ctx: TileContext
) -> None:
    def not_installed(settings: Settings, tile: str | None = None) -> Any:
        raise TileError(f"The {tile} step needs speech recognition, not installed.")

    outputs = make_clips(
        highlights,
        ctx,
        Clips(transcriber_factory=not_installed),
        num_clips=1,
        target_duration=3,
        prompt="budget",
    )

    [output] = outputs
    assert loud_overlap(*span(output)) >= 2.9
    assert output.metadata["transcript_used"] is False
    assert "The prompt was not used" in output.metadata["note"]
    assert "The Clips step needs speech recognition" in output.metadata["note"]


def test_no_prompt_means_no_transcription(highlights: Path, ctx: TileContext) -> None:
    transcriber = ScriptedTranscriber(spoken((1.0, "hello")))
    tile = Clips(transcriber_factory=lambda settings, tile=None: transcriber)

    make_clips(highlights, ctx, tile, num_clips=1, target_duration=3)

    assert transcriber.calls == []


def test_video_without_sound_follows_the_shots(
    tmp_path: Path, ctx: TileContext
) -> None:
    mute = make_highlights(tmp_path / "mute.mp4", audio=False)

    outputs = make_clips(mute, ctx, num_clips=2, target_duration=3, prompt="budget")

    assert len(outputs) == 2
    for output in outputs:
        start, end = span(output)
        assert min(abs(start - shot) for shot in SHOTS) <= FRAME
        assert min(abs(end - shot) for shot in SHOTS) <= FRAME
        assert not probe(output.path).has_audio
    assert "no sound" in outputs[0].metadata["note"]


def test_a_failed_clip_leaves_the_others(highlights: Path, ctx: TileContext) -> None:
    failing = FailingRenders(media_factory.ffmpeg_binary(), failing={2})
    flaky = dataclasses.replace(ctx, ffmpeg=failing)

    with pytest.raises(PartialOutputs) as caught:
        make_clips(highlights, flaky, num_clips=3, target_duration=3)

    error = caught.value
    assert [output.name for output in error.outputs] == ["clip-1.mp4", "clip-3.mp4"]
    assert all(output.path.is_file() for output in error.outputs)
    assert len(error.errors) == 1 and "Clip 2" in error.errors[0]
    assert "No space left on device" in str(error)
    assert not (ctx.scratch / "clip-2.mp4").exists()


def test_every_clip_failing_is_a_plain_error(
    highlights: Path, ctx: TileContext
) -> None:
    failing = FailingRenders(media_factory.ffmpeg_binary(), failing={1, 2})
    flaky = dataclasses.replace(ctx, ffmpeg=failing)

    with pytest.raises(TileError) as caught:
        make_clips(highlights, flaky, num_clips=2, target_duration=3)

    assert not isinstance(caught.value, PartialOutputs)
    assert "Clip 1 could not be rendered" in str(caught.value)


def test_prompt_words_are_reduced_for_matching() -> None:
    assert prompt_keywords("Show me the moments about Budget planning!") == {
        "budget",
        "plan",
    }
    assert {word_stem(w) for w in ("plans", "planned", "planning")} == {"plan"}
    assert word_stem("passes") == word_stem("pass") == "pass"


@pytest.mark.parametrize(
    "params",
    [{"num_clips": 0}, {"num_clips": 21}, {"target_duration": 0.5}, {"style": "x"}],
)
def test_bad_params_are_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ClipsParams.model_validate(params)
