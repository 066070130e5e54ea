"""Rough Cut: tighten a talking video by removing pauses and filler words.

Pauses are found in the sound (``silencedetect``) and removed as Silence Removal
does. Filler words come from the transcript: by default only hesitation sounds
("um", "uh", "erm", "hmm" and their spellings), never real words such as "like" or
"so" that often carry meaning; ``filler_words`` replaces the list and may hold
phrases ("you know"). A filler is cut from the end of the word before it to the
start of the word after it, at most ``FILLER_REACH`` seconds either side.

With ``target_duration``, phrases (words up to a punctuation mark or a pause of
0.4 s; without a transcript, the stretches of sound between pauses) are then
dropped, quietest first, until the video is within 10% of the target. Cuts fall
between words, never in one.

Without speech recognition installed the tile still removes the pauses, and meets
``target_duration`` with the stretches between pauses, and says in its metadata that
filler words were left in: a shorter video is more useful than a failed step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints

from tilework.errors import TileError
from tilework.media.analysis import EnergyTrack, detect_silences, speech_energy
from tilework.media.asr import Word, get_transcriber
from tilework.media.cuts import (
    Segment,
    TranscriberFactory,
    complement,
    cut_metadata,
    frame_seconds,
    normalize,
    plain_word,
    render_segments,
    scaled_progress,
    segments_json,
    subtract,
    total_seconds,
    try_transcribe,
)
from tilework.tiles.base import MediaFile, Tile, TileContext, TileOutput, TileParams
from tilework.tiles.silence_removal import kept_ranges

logger = logging.getLogger(__name__)

DEFAULT_FILLERS = ("um", "umm", "uh", "uhh", "uhm", "erm", "er", "hmm", "hm", "mm")
FILLER_REACH = 0.4
"""Seconds of pause next to a filler word that are cut with it, at most."""
FILLER_GUARD = 0.04
"""Seconds kept after the word before a filler and before the word after it."""
PHRASE_GAP = 0.4
PHRASE_ENDS = (".", "?", "!", ",", ";", ":")
TARGET_TOLERANCE = 0.1
"""The share of ``target_duration`` by which the result may miss it."""

DETECT_END = 15.0
TRANSCRIBE_END = 60.0
ANALYSIS_END = 65.0

FillerWord = Annotated[str, StringConstraints(min_length=1, max_length=60)]


class RoughCutParams(TileParams):
    filler_words: list[FillerWord] = Field(
        default=list(DEFAULT_FILLERS),
        max_length=100,
        description=(
            "Words or phrases to cut wherever they are spoken, matched without "
            "case or punctuation; an empty list keeps every word."
        ),
    )
    target_duration: float | None = Field(
        default=None,
        ge=1,
        le=36000,
        description=(
            "About how long the video should be, in seconds: its quietest phrases "
            "are dropped until it is within 10% of this; none keeps every phrase."
        ),
    )
    threshold_db: float = Field(
        default=-35,
        ge=-80,
        le=-10,
        description="Sound quieter than this, in dBFS, counts as a pause.",
    )
    min_silence_ms: int = Field(
        default=500,
        ge=100,
        le=60000,
        description="Only pauses at least this long, in milliseconds, are removed.",
    )
    padding_ms: int = Field(
        default=150,
        ge=0,
        le=5000,
        description="Milliseconds of each pause kept next to the sound around it.",
    )


@dataclass(frozen=True)
class Phrase:
    """Words said together; ``span`` runs from the first word to the last."""

    span: Segment
    text: str
    level_db: float
    seconds: float
    """How much of the video dropping the phrase removes."""


@dataclass
class Plan:
    """What the rough cut removes, and what it keeps."""

    kept: list[Segment]
    silences: list[Segment]
    fillers: list[tuple[str, Segment]]
    dropped: list[Phrase]
    notes: list[str]


class RoughCut(Tile):
    node_type_id: ClassVar[str] = "e6098dd4-4a6e-470f-981e-2618c11eee21"
    name: ClassVar[str] = "Rough Cut"
    description: ClassVar[str] = (
        "Tightens a talking video by cutting pauses and filler words, and "
        "optionally its quietest phrases to reach a target length."
    )
    Params: ClassVar[type[TileParams]] = RoughCutParams
    credits_per_minute: ClassVar[int] = 3

    def __init__(self, transcriber_factory: TranscriberFactory | None = None) -> None:
        self._transcriber_factory = transcriber_factory or get_transcriber

    def run(
        self, params: RoughCutParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        if not (source.info.has_audio and source.info.has_video):
            missing = "video stream" if source.info.has_audio else "audio track"
            raise TileError(
                f"{source.path.name} has no {missing}; Rough Cut finds pauses and "
                "filler words in the sound of a video, so use a video with sound."
            )

        notes: list[str] = []
        silences = self._silences(params, source, ctx)
        words = self._words(params, source, ctx, notes)
        energy = None
        if params.target_duration is not None:
            energy = speech_energy(source.path, cancel=ctx.cancel)
        ctx.report_progress(ANALYSIS_END)

        plan = plan_cut(params, source, silences, words, energy, notes)
        out = ctx.scratch / "output.mp4"
        kept = render_segments(
            source,
            plan.kept,
            out,
            ctx=ctx,
            on_progress=scaled_progress(ctx.report_progress, ANALYSIS_END, 100.0),
        )

        metadata = _metadata(params, source, plan, kept, bool(words))
        logger.debug("%s: rough cut to %.1f s", source.path.name, total_seconds(kept))
        return [TileOutput(path=out, metadata=metadata)]

    def _silences(
        self, params: RoughCutParams, source: MediaFile, ctx: TileContext
    ) -> list[Segment]:
        return detect_silences(
            source.path,
            threshold_db=params.threshold_db,
            min_silence=params.min_silence_ms / 1000,
            ffmpeg=ctx.ffmpeg,
            cancel=ctx.cancel,
            duration=source.info.duration,
            on_progress=scaled_progress(ctx.report_progress, 0.0, DETECT_END),
        )

    def _words(
        self,
        params: RoughCutParams,
        source: MediaFile,
        ctx: TileContext,
        notes: list[str],
    ) -> tuple[Word, ...]:
        if not params.filler_words and params.target_duration is None:
            return ()

        transcript, problem = try_transcribe(
            self._transcriber_factory,
            source,
            ctx,
            tile=self.name,
            on_progress=scaled_progress(
                ctx.report_progress, DETECT_END, TRANSCRIBE_END
            ),
        )
        if transcript is None:
            fallback = "phrases are the stretches of sound between pauses"
            if params.filler_words:
                fallback = "filler words were left in and only pauses were cut"
            notes.append(
                f"Speech recognition was not available, so {fallback}: {problem}"
            )
            return ()
        return tuple(transcript.words)


def plan_cut(
    params: RoughCutParams,
    source: MediaFile,
    silences: list[Segment],
    words: Sequence[Word],
    energy: EnergyTrack | None,
    notes: list[str],
) -> Plan:
    """Decide what to keep: no pauses, no fillers, and about the target length."""
    duration = source.info.duration
    frame = frame_seconds(source.info)
    padding = params.padding_ms / 1000

    silence_kept = kept_ranges(silences, duration, padding, frame)
    if not silence_kept:
        raise TileError(_all_silent(source, params))
    silence_cuts = complement(silence_kept, duration)
    fillers = find_fillers(words, params.filler_words)
    removed = [*silence_cuts, *(span for _, span in fillers)]
    kept = normalize(
        complement(normalize(removed, duration, min_length=frame), duration),
        duration,
        min_length=frame,
    )
    if not kept:
        raise TileError(
            f"Only filler words and pauses were found in {source.path.name}; nothing "
            "would be left. Check filler_words, or remove this step."
        )

    dropped: list[Phrase] = []
    if params.target_duration is not None and energy is not None:
        phrases = _phrases(words, params.filler_words, kept, energy, padding)
        chosen = choose_drops(phrases, total_seconds(kept), params.target_duration)
        dropped = [phrases[index] for index in sorted(chosen)]
        cuts = drop_spans(phrases, chosen, padding)
        kept = normalize(subtract(kept, cuts), duration, min_length=frame)
        if total_seconds(kept) > params.target_duration * (1 + TARGET_TOLERANCE):
            notes.append(
                f"Only {total_seconds(kept):.1f} s was reached, not the "
                f"{params.target_duration:g} s asked for: what is left is the "
                "loudest phrase and sound outside any phrase."
            )
    return Plan(kept, silence_cuts, fillers, dropped, notes)


def find_fillers(
    words: Sequence[Word], fillers: Sequence[str]
) -> list[tuple[str, Segment]]:
    """Each filler word or phrase spoken, with the stretch to cut for it."""
    patterns = sorted(
        {tuple(plain_word(part) for part in f.split()) for f in fillers} - {()},
        key=len,
        reverse=True,
    )
    plain = [plain_word(word.text) for word in words]

    found: list[tuple[str, Segment]] = []
    index = 0
    while index < len(words):
        size = _match_length(plain, index, patterns)
        if size == 0:
            index += 1
            continue
        span = _filler_span(words, index, index + size - 1)
        text = " ".join(word.text for word in words[index : index + size])
        if span.duration > 0:
            found.append((text, span))
        index += size
    return found


def _match_length(plain: list[str], index: int, patterns: list[tuple[str, ...]]) -> int:
    for pattern in patterns:
        if tuple(plain[index : index + len(pattern)]) == pattern:
            return len(pattern)
    return 0


def _filler_span(words: Sequence[Word], first: int, last: int) -> Segment:
    """From the word before the filler to the word after it, within reach."""
    start, end = words[first].start, words[last].end
    if first > 0:
        before = words[first - 1].end
        start = min(start, max(before + FILLER_GUARD, start - FILLER_REACH))
        start = max(start, before)
    if last + 1 < len(words):
        after = words[last + 1].start
        end = max(end, min(after - FILLER_GUARD, end + FILLER_REACH))
        end = min(end, after)
    return Segment(start, max(start, end))


def _phrases(
    words: Sequence[Word],
    fillers: Sequence[str],
    kept: list[Segment],
    energy: EnergyTrack,
    padding: float,
) -> list[Phrase]:
    """Phrases of the transcript, or without one the kept stretches, with their
    level; ``seconds`` counts the pause up to ``padding`` before the next one."""
    filler_words = {plain_word(part) for filler in fillers for part in filler.split()}
    spoken = [w for w in words if plain_word(w.text) not in filler_words]
    pieces = [
        (Segment(group[0].start, group[-1].end), " ".join(w.text for w in group))
        for group in _clauses(spoken)
    ] or [(segment, "") for segment in kept]

    phrases = []
    for index, (span, text) in enumerate(pieces):
        following = span.end
        if index + 1 < len(pieces):
            following = pieces[index + 1][0].start - padding
        reach = Segment(span.start, max(span.end, following))
        level = round(energy.level_db(span.start, span.end), 1)
        phrases.append(Phrase(span, text, level, _overlap(kept, reach)))
    return phrases


def _clauses(words: Sequence[Word]) -> list[list[Word]]:
    groups: list[list[Word]] = [[]]
    for word in words:
        previous = groups[-1][-1] if groups[-1] else None
        if previous is not None and (
            previous.text.rstrip().endswith(PHRASE_ENDS)
            or word.start - previous.end >= PHRASE_GAP
        ):
            groups.append([])
        groups[-1].append(word)
    return [group for group in groups if group]


def _overlap(segments: Sequence[Segment], span: Segment) -> float:
    return sum(
        max(0.0, min(s.end, span.end) - max(s.start, span.start)) for s in segments
    )


def choose_drops(phrases: Sequence[Phrase], length: float, target: float) -> set[int]:
    """Which phrases to drop from ``length`` seconds to land near ``target``.

    The quietest go first, as long as what is left stays above the target less
    :data:`TARGET_TOLERANCE`. While the rest is still longer than the target plus
    that tolerance, the phrase whose removal lands nearest the target goes next,
    if that brings the length nearer. The choice is greedy, so it lands near the
    target, not always as near as possible. One phrase always stays.
    """
    low, high = target * (1 - TARGET_TOLERANCE), target * (1 + TARGET_TOLERANCE)
    quietest = sorted(range(len(phrases)), key=lambda i: phrases[i].level_db)
    dropped: set[int] = set()

    for index in quietest:
        if length <= target or len(dropped) + 1 >= len(phrases):
            return dropped
        if length - phrases[index].seconds >= low:
            dropped.add(index)
            length -= phrases[index].seconds

    while length > high and len(dropped) + 1 < len(phrases):
        left = [i for i in quietest if i not in dropped]
        index = min(left, key=lambda i: abs(length - phrases[i].seconds - target))
        if abs(length - phrases[index].seconds - target) >= abs(length - target):
            break
        dropped.add(index)
        length -= phrases[index].seconds
    return dropped


def drop_spans(
    phrases: Sequence[Phrase], dropped: set[int], padding: float
) -> list[Segment]:
    """What to cut for the dropped phrases: each run of them, up to ``padding``
    before the next phrase that stays."""
    spans: list[Segment] = []
    index = 0
    while index < len(phrases):
        if index not in dropped:
            index += 1
            continue
        first = phrases[index].span.start
        while index + 1 in dropped:
            index += 1
        end = phrases[index].span.end
        if index + 1 < len(phrases):
            end = max(end, phrases[index + 1].span.start - padding)
        spans.append(Segment(first, end))
        index += 1
    return spans


def _all_silent(source: MediaFile, params: RoughCutParams) -> str:
    return (
        f"{source.path.name} is silent from start to end at {params.threshold_db:g} "
        "dB; nothing would be left. Lower threshold_db if the speech is quiet, or "
        "remove this step."
    )


def _metadata(
    params: RoughCutParams,
    source: MediaFile,
    plan: Plan,
    kept: list[Segment],
    transcribed: bool,
) -> dict[str, Any]:
    duration = source.info.duration
    metadata: dict[str, Any] = {
        **cut_metadata(kept, duration),
        "removed_silences": segments_json(plan.silences),
        "removed_fillers": [
            {"text": text, "start": round(s.start, 3), "end": round(s.end, 3)}
            for text, s in plan.fillers
        ],
        "dropped_phrases": [
            {
                "text": phrase.text,
                "start": round(phrase.span.start, 3),
                "end": round(phrase.span.end, 3),
                "level_db": phrase.level_db,
            }
            for phrase in plan.dropped
        ],
        "final_duration": round(total_seconds(kept), 3),
        "target_duration": params.target_duration,
        "transcript_used": transcribed,
    }
    if plan.notes:
        metadata["note"] = " ".join(plan.notes)
    return metadata
