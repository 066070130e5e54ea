"""Rough Cut on real media: fillers and pauses go, words stay whole, targets are met."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import media_factory
from media_factory import FAST_VIDEO, make_silent_audio, make_video, run_ffmpeg
from tilework.config import Settings
from tilework.errors import TileError
from tilework.media.asr import Transcript, Word
from tilework.media.cuts import Segment
from tilework.media.ffmpeg import CancelToken, FFmpeg
from tilework.media.probe import probe
from tilework.tiles.base import MediaFile, TileContext, TileOutput
from tilework.tiles.rough_cut import (
    Phrase,
    RoughCut,
    RoughCutParams,
    choose_drops,
    find_fillers,
)

HESITANT = (
    (0.20, 0.50, "So"),
    (0.90, 1.30, "um,"),
    (1.60, 1.80, "I"),
    (1.85, 2.20, "think"),
    (2.60, 3.00, "uh"),
    (3.30, 3.60, "this"),
    (3.65, 4.00, "works."),
)
THREE_PHRASES = (
    (0.2, 0.6, "One", 0.5),
    (0.7, 1.1, "two", 0.5),
    (1.2, 1.6, "three.", 0.5),
    (2.0, 2.4, "four", 0.05),
    (2.5, 2.9, "five", 0.05),
    (3.0, 3.4, "six.", 0.05),
    (3.8, 4.2, "seven", 0.2),
    (4.3, 4.7, "eight", 0.2),
    (4.8, 5.2, "nine.", 0.2),
)
SPOKEN_FILLERS = "Well um, I think that uh, the plan is good."


def make_bursts(
    path: Path, bursts: Sequence[tuple[float, float, float]], seconds: float
) -> Path:
    """A video whose sound is a 440 Hz tone during each ``(start, end, amplitude)``
    burst and silence between them."""
    gate = "+".join(f"{amp}*between(t,{start},{end})" for start, end, amp in bursts)
    tone = f"aevalsrc='({gate})*sin(2*PI*440*t)':s=48000:d={seconds}"
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:d={seconds}"),
        *("-f", "lavfi", "-i", tone),
        *FAST_VIDEO,
        *("-c:a", "aac", "-shortest", str(path)),
    )
    return path


def transcript_of(words: Sequence[tuple[Any, ...]], seconds: float) -> Transcript:
    return Transcript(
        words=tuple(Word(w[0], w[1], w[2]) for w in words),
        language="en",
        duration=seconds,
    )


class ScriptedTranscriber:
    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript

    def transcribe(
        self,
        media: Path,
        *,
        ffmpeg: FFmpeg,
        cancel: CancelToken | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        return self.transcript


def scripted(transcript: Transcript) -> RoughCut:
    return RoughCut(
        transcriber_factory=lambda settings, tile=None: ScriptedTranscriber(transcript)
    )


def not_installed(settings: Settings, tile: str | None = None) -> Any:
    raise TileError(
        f"The {tile} step needs speech recognition, which is not installed."
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rough")


@pytest.fixture(scope="module")
def hesitant(folder: Path) -> Path:
    return make_bursts(
        folder / "hesitant.mp4", [(a, b, 0.5) for a, b, _ in HESITANT], 4.3
    )


@pytest.fixture
def ctx(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", [])


def rough_cut(
    path: Path, ctx: TileContext, tile: RoughCut | None = None, **params: object
) -> TileOutput:
    source = MediaFile(path=path, info=probe(path))
    outputs = (tile or RoughCut()).run(
        RoughCutParams.model_validate(params), source, ctx
    )
    assert len(outputs) == 1
    return outputs[0]


def kept_spans(output: TileOutput) -> list[Segment]:
    return [
        Segment(c["source_start"], c["source_end"]) for c in output.metadata["cuts"]
    ]


def inside(word: tuple[Any, ...], spans: list[Segment], slack: float = 0.02) -> bool:
    return any(s.start - slack <= word[0] and word[1] <= s.end + slack for s in spans)


def touches(word: tuple[Any, ...], spans: list[Segment]) -> bool:
    return any(s.start < word[1] and word[0] < s.end for s in spans)


def test_fillers_are_cut_from_word_to_word(hesitant: Path, ctx: TileContext) -> None:
    tile = scripted(transcript_of(HESITANT, 4.3))

    output = rough_cut(hesitant, ctx, tile)

    fillers = output.metadata["removed_fillers"]
    assert [f["text"] for f in fillers] == ["um,", "uh"]
    assert (fillers[0]["start"], fillers[0]["end"]) == pytest.approx((0.54, 1.56))
    assert (fillers[1]["start"], fillers[1]["end"]) == pytest.approx((2.24, 3.26))
    spans = kept_spans(output)
    for word in HESITANT:
        if word[2] in ("um,", "uh"):
            assert not touches(word, spans)
        else:
            assert inside(word, spans)
    assert output.metadata["final_duration"] == pytest.approx(4.3 - 2.04, abs=0.07)
    assert probe(output.path).duration == pytest.approx(4.3 - 2.04, abs=0.07)
    assert output.metadata["transcript_used"] is True


def test_filler_phrases_and_custom_lists(hesitant: Path, ctx: TileContext) -> None:
    words = [Word(a, b, text) for a, b, text in HESITANT]
    phrase = [
        Word(0.0, 0.3, "I"),
        Word(0.4, 0.6, "mean,"),
        Word(0.7, 0.9, "You"),
        Word(0.9, 1.1, "know"),
        Word(1.2, 1.5, "it"),
    ]

    assert find_fillers(words, []) == []
    assert [text for text, _ in find_fillers(words, ["UM"])] == ["um,"]
    assert [text for text, _ in find_fillers(phrase, ["you know"])] == ["You know"]
    [(_, span)] = find_fillers(phrase, ["you know"])
    assert span.start >= 0.6 and span.end <= 1.2


def test_target_duration_drops_the_quietest_phrase(
    folder: Path, ctx: TileContext
) -> None:
    source = make_bursts(
        folder / "phrases.mp4", [(a, b, amp) for a, b, _, amp in THREE_PHRASES], 5.6
    )
    tile = scripted(transcript_of(THREE_PHRASES, 5.6))

    output = rough_cut(source, ctx, tile, target_duration=4.0)

    final = output.metadata["final_duration"]
    assert 4.0 * 0.9 <= final <= 4.0 * 1.1
    assert probe(output.path).duration == pytest.approx(final, abs=0.05)
    assert [p["text"] for p in output.metadata["dropped_phrases"]] == ["four five six."]
    spans = kept_spans(output)
    for word in THREE_PHRASES:
        assert inside(word, spans) != (word[3] == 0.05)


def test_target_without_a_transcript_uses_the_stretches_between_pauses(
    folder: Path, ctx: TileContext
) -> None:
    source = make_bursts(
        folder / "stretches.mp4",
        [(0.2, 2.0, 0.5), (3.0, 4.0, 0.05), (5.0, 7.0, 0.3)],
        7.5,
    )

    output = rough_cut(
        source, ctx, RoughCut(transcriber_factory=not_installed), target_duration=4.5
    )

    assert 4.5 * 0.9 <= output.metadata["final_duration"] <= 4.5 * 1.1
    [dropped] = output.metadata["dropped_phrases"]
    assert dropped["start"] == pytest.approx(2.85, abs=0.05)
    assert "filler words were left in" in output.metadata["note"]
    assert output.metadata["transcript_used"] is False


def test_without_speech_recognition_pauses_still_go(
    folder: Path, ctx: TileContext
) -> None:
    source = make_bursts(folder / "pause.mp4", [(0.0, 2.0, 0.5), (4.0, 6.0, 0.5)], 6.0)

    output = rough_cut(source, ctx, RoughCut(transcriber_factory=not_installed))

    assert probe(output.path).duration == pytest.approx(4.3, abs=0.07)
    assert output.metadata["removed_fillers"] == []
    assert "The Rough Cut step needs speech recognition" in output.metadata["note"]


def test_silent_or_mute_input_is_refused(tmp_path: Path, ctx: TileContext) -> None:
    silent = make_silent_audio(tmp_path / "silent.mp4")
    mute = make_video(tmp_path / "mute.mp4", audio=False)
    tile = RoughCut(transcriber_factory=not_installed)

    with pytest.raises(TileError, match="silent from start to end"):
        rough_cut(silent, ctx, tile)
    with pytest.raises(TileError, match="no audio track"):
        rough_cut(mute, ctx, tile)


def test_choose_drops_lands_near_the_target() -> None:
    phrases = [
        Phrase(Segment(0, 3), "a", level_db=-10, seconds=3),
        Phrase(Segment(3, 4), "b", level_db=-30, seconds=1),
        Phrase(Segment(4, 9), "c", level_db=-20, seconds=5),
        Phrase(Segment(9, 10), "d", level_db=-25, seconds=1),
    ]

    assert choose_drops(phrases, 10, 8) == {1, 3}
    assert choose_drops(phrases, 10, 0.5) == {1, 2, 3}
    assert choose_drops(phrases, 10, 20) == set()
    for target in (2.0, 4.5, 6.0, 7.0, 9.0):
        dropped = choose_drops(phrases, 10, target)
        left = 10 - sum(phrases[i].seconds for i in dropped)
        assert abs(left - target) <= max(1.0, 0.12 * target)
        assert 1 in dropped


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RoughCutParams.model_validate({"target_duration": 0})
    with pytest.raises(ValidationError):
        RoughCutParams.model_validate({"filler_words": [""]})
    with pytest.raises(ValidationError):
        RoughCutParams.model_validate({"fillers": ["um"]})


@pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None,
    reason="faster-whisper is not installed, so there is no real speech recognition",
)
@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)
def test_real_speech_with_fillers(tmp_path: Path, ctx: TileContext) -> None:
    wav = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-s", "140", "-w", str(wav), SPOKEN_FILLERS], check=True
    )
    source = tmp_path / "speech.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-i", str(wav)),
        *("-map", "0:v", "-map", "1:a", *FAST_VIDEO, "-c:a", "aac", "-shortest"),
        str(source),
    )
    before = probe(source).duration

    output = rough_cut(source, ctx)

    removed = [f["text"].strip(",").lower() for f in output.metadata["removed_fillers"]]
    assert removed and set(removed) <= {"um", "uh"}
    assert output.metadata["transcript_used"] is True
    assert probe(output.path).duration < before - 0.3
