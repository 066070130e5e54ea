"""Clips: pick the best moments of a video and render each as its own short clip.

Candidate windows of about ``target_duration`` seconds start and end, where it can,
on a shot change (ffmpeg ``scdet``) or at a pause in the sound (``silencedetect``).
Each window gets a score, the sum of:

- ``0.60 x level``: its mean loudness, placed between the quiet floor (10th
  percentile of 0.1 s windows) and the loud ceiling (95th percentile) of the video;
- ``0.25 x speech``: the share of its sound in the voice band (300-3400 Hz);
- ``0.15 x boundary``: 1 when it starts and ends on a shot change or a pause, 0.5
  for one of the two, 0 for neither;
- ``2.00 x relevance``, only with a ``prompt`` and a transcript: the share of the
  prompt's keywords spoken inside the window. Words match lowercase, without
  punctuation and with common English endings removed ("launching" matches
  "launched"); short function words of the prompt are ignored.

The best windows that do not overlap become the clips, best first (``clip-1.mp4``).
A window never cuts a transcribed word in two. Speech is transcribed only when a
prompt is given; without speech recognition installed the prompt is left aside and
the metadata says so.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from tilework.errors import Cancelled, TileError, TileworkError
from tilework.media.analysis import (
    EnergyTrack,
    detect_silences,
    scene_cuts,
    speech_energy,
)
from tilework.media.asr import Word, get_transcriber
from tilework.media.cuts import (
    Segment,
    TranscriberFactory,
    cut_metadata,
    frame_seconds,
    plain_word,
    render_segments,
    scaled_progress,
    try_transcribe,
)
from tilework.tiles.base import (
    MediaFile,
    PartialOutputs,
    Tile,
    TileContext,
    TileOutput,
    TileParams,
)

logger = logging.getLogger(__name__)

LEVEL_WEIGHT = 0.60
SPEECH_WEIGHT = 0.25
BOUNDARY_WEIGHT = 0.15
RELEVANCE_WEIGHT = 2.0
DURATION_TOLERANCE = 0.15
"""A clip lasts the target duration give or take this share of it."""
PAUSE_DB = -35.0
PAUSE_SECONDS = 0.3
PAUSE_LEAD = 0.15
"""Seconds of a pause kept before the sound a clip starts on, and after its end."""
FLOOR_PERCENTILE = 10
CEILING_PERCENTILE = 95
MIN_LEVEL_SPREAD_DB = 1.0
MIN_GRID_STEP = 0.25
MAX_GRID_STEP = 5.0
GRID_STEPS_PER_CLIP = 6
STEM_ENDINGS = ("ing", "ed", "es", "ly", "s")
MIN_STEM = 3
_STOPWORD_TEXT = (
    "a an and are as at be but by for from has have i in into is it its me my of "
    "on or our so that the their them there they this to was we were what when "
    "where which who will with you your about clip clips moment moments part "
    "show find"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

SCENES_END = 20.0
PAUSES_END = 30.0
ANALYSIS_END = 40.0
TRANSCRIBE_END = 70.0
"""Where each phase ends on the progress bar; rendering the clips takes the rest."""


class ClipsParams(TileParams):
    num_clips: int = Field(
        default=3, ge=1, le=20, description="How many clips to make at most."
    )
    target_duration: float = Field(
        default=30,
        ge=1,
        le=300,
        description="Length of each clip in seconds, give or take 15%.",
    )
    prompt: str | None = Field(
        default=None,
        max_length=1000,
        description=(
            "What the clips should be about, in plain words; clips where those "
            "words are spoken rank first. Needs speech recognition."
        ),
    )


@dataclass(frozen=True)
class Analysis:
    """What the video tells about where good clips are."""

    duration: float
    starts: tuple[float, ...]
    """Shot changes and the moments sound resumes after a pause."""
    ends: tuple[float, ...]
    """Shot changes and the moments sound stops before a pause."""
    energy: EnergyTrack | None
    frame: float
    """Seconds per frame: how near a boundary a window must start or end to be on it."""
    words: tuple[Word, ...] = ()
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Pick:
    segment: Segment
    score: float
    reason: str
    matched: tuple[str, ...] = ()


class Clips(Tile):
    node_type_id: ClassVar[str] = "bcc5cb04-76b7-48e9-a344-0e8a29c19be0"
    name: ClassVar[str] = "Clips"
    description: ClassVar[str] = (
        "Finds the liveliest moments of a video, or those about a prompt, and "
        "renders each as a short clip."
    )
    Params: ClassVar[type[TileParams]] = ClipsParams
    credits_per_minute: ClassVar[int] = 3

    def __init__(self, transcriber_factory: TranscriberFactory | None = None) -> None:
        self._transcriber_factory = transcriber_factory or get_transcriber

    def run(
        self, params: ClipsParams, source: MediaFile, ctx: TileContext
    ) -> list[TileOutput]:
        notes: list[str] = []
        analysis = self._analyse(params, source, ctx, notes)

        picks = pick_clips(analysis, params.num_clips, params.target_duration)
        notes += _shortfall_notes(analysis.duration, params, len(picks))
        if analysis.keywords and analysis.words and not any(p.matched for p in picks):
            notes.append(
                "None of the prompt's words is spoken in the chosen clips; they "
                "were ranked by loudness and speech."
            )

        outputs = _render_all(source, picks, analysis, notes, ctx)
        logger.debug("%s: %d clips", source.path.name, len(picks))
        return outputs

    def _analyse(
        self,
        params: ClipsParams,
        source: MediaFile,
        ctx: TileContext,
        notes: list[str],
    ) -> Analysis:
        info = source.info
        if not info.has_video:
            raise TileError(
                f"{source.path.name} has no video stream; Clips needs a video input."
            )

        cuts = scene_cuts(
            source.path,
            ffmpeg=ctx.ffmpeg,
            cancel=ctx.cancel,
            duration=info.duration,
            on_progress=scaled_progress(ctx.report_progress, 0.0, SCENES_END),
        )
        starts, ends = [0.0, *cuts], [*cuts, info.duration]
        energy = None
        if info.has_audio:
            pauses = self._pauses(source, ctx)
            starts += [p.end - PAUSE_LEAD for p in pauses if p.end < info.duration]
            ends += [p.start + PAUSE_LEAD for p in pauses if p.start > 0]
            energy = speech_energy(source.path, cancel=ctx.cancel)
        else:
            notes.append("The video has no sound, so clips follow the shot changes.")
        ctx.report_progress(ANALYSIS_END)

        words = self._words(params, source, ctx, notes)
        starts += [w.start for w in _after_pauses(words)]
        ends += [w.end for w in _before_pauses(words)]
        return Analysis(
            duration=info.duration,
            starts=tuple(sorted({max(0.0, t) for t in starts})),
            ends=tuple(sorted({min(info.duration, t) for t in ends})),
            energy=energy,
            words=words,
            keywords=prompt_keywords(params.prompt or "") if words else frozenset(),
            frame=frame_seconds(info),
        )

    def _pauses(self, source: MediaFile, ctx: TileContext) -> list[Segment]:
        return detect_silences(
            source.path,
            threshold_db=PAUSE_DB,
            min_silence=PAUSE_SECONDS,
            ffmpeg=ctx.ffmpeg,
            cancel=ctx.cancel,
            duration=source.info.duration,
            on_progress=scaled_progress(ctx.report_progress, SCENES_END, PAUSES_END),
        )

    def _words(
        self,
        params: ClipsParams,
        source: MediaFile,
        ctx: TileContext,
        notes: list[str],
    ) -> tuple[Word, ...]:
        if not params.prompt:
            return ()
        if not prompt_keywords(params.prompt):
            notes.append("The prompt has no words to look for, so it was not used.")
            return ()
        if not source.info.has_audio:
            notes.append("The prompt was not used: the video has no speech to match.")
            return ()

        transcript, problem = try_transcribe(
            self._transcriber_factory,
            source,
            ctx,
            tile=self.name,
            on_progress=scaled_progress(
                ctx.report_progress, ANALYSIS_END, TRANSCRIBE_END
            ),
        )
        if transcript is None:
            notes.append(
                f"The prompt was not used: {problem} Clips were ranked by loudness "
                "and speech."
            )
            return ()
        if not transcript.words:
            notes.append("The prompt was not used: no speech was recognised.")
        return tuple(transcript.words)


def pick_clips(analysis: Analysis, count: int, target: float) -> list[Pick]:
    """The ``count`` best windows of about ``target`` seconds that do not overlap,
    best first."""
    spoken = _Spoken(analysis.words)
    scale = _LevelScale.of(analysis.energy)
    if analysis.duration <= target:
        windows = {Segment(0.0, analysis.duration)}
    else:
        windows = _candidates(analysis, spoken, target)
    scored = sorted(
        (_score(analysis, spoken, scale, window) for window in windows),
        key=lambda pick: (-pick.score, pick.segment.start),
    )

    chosen: list[Pick] = []
    for pick in scored:
        if len(chosen) == count:
            break
        if not any(pick.segment.overlaps(other.segment) for other in chosen):
            chosen.append(pick)
    return chosen


class _Spoken:
    """The transcript's words, indexed by time."""

    def __init__(self, words: Sequence[Word]) -> None:
        self.words = list(words)
        self.starts = [word.start for word in words]
        by_middle = sorted(words, key=lambda word: word.start + word.end)
        self.middles = [(word.start + word.end) / 2 for word in by_middle]
        self.stems = [word_stem(word.text) for word in by_middle]

    def around(self, instant: float) -> Word | None:
        """The word being spoken at ``instant``, if one is."""
        index = bisect.bisect_left(self.starts, instant) - 1
        if index >= 0 and instant < self.words[index].end:
            return self.words[index]
        return None

    def stems_in(self, window: Segment) -> set[str]:
        first = bisect.bisect_left(self.middles, window.start)
        last = bisect.bisect_right(self.middles, window.end)
        return set(self.stems[first:last])


def _candidates(analysis: Analysis, spoken: _Spoken, length: float) -> set[Segment]:
    """Windows of about ``length`` seconds from each start point, and up to each
    end point; on boundaries where one is close enough, else on a grid."""
    duration = analysis.duration
    step = min(MAX_GRID_STEP, max(MIN_GRID_STEP, length / GRID_STEPS_PER_CLIP))
    grid = [float(x) for x in np.arange(0.0, max(duration - length, 0.0) + step, step)]
    low, high = length * (1 - DURATION_TOLERANCE), length * (1 + DURATION_TOLERANCE)

    windows: set[Segment] = set()
    for start in {*analysis.starts, *grid}:
        end = _nearest_within(analysis.ends, start + length, start + low, start + high)
        windows.add(Segment(start, min(duration, end)))
    for end in analysis.ends:
        start = _nearest_within(analysis.starts, end - length, end - high, end - low)
        windows.add(Segment(max(0.0, start), end))

    shortest = low - analysis.frame
    fitted = (_whole_words(window, spoken) for window in windows)
    return {window for window in fitted if window.duration >= shortest}


def _nearest_within(
    points: Sequence[float], wanted: float, low: float, high: float
) -> float:
    """The point of sorted ``points`` in ``low..high`` nearest ``wanted``, or
    ``wanted`` when there is none."""
    first = bisect.bisect_left(points, low)
    last = bisect.bisect_right(points, high)
    inside = points[first:last]
    return min(inside, key=lambda point: abs(point - wanted), default=wanted)


def _whole_words(window: Segment, spoken: _Spoken) -> Segment:
    """``window`` widened so that it cuts no word in two."""
    first = spoken.around(window.start)
    last = spoken.around(window.end)
    start = first.start if first is not None else window.start
    end = last.end if last is not None else window.end
    return Segment(start, end)


@dataclass(frozen=True)
class _LevelScale:
    """Maps a level in dB to 0..1 between the video's quiet floor and loud ceiling."""

    floor: float
    ceiling: float

    @classmethod
    def of(cls, energy: EnergyTrack | None) -> _LevelScale:
        if energy is None or len(energy.power) == 0:
            return cls(0.0, 0.0)
        levels = energy.window_levels_db()
        floor = float(np.percentile(levels, FLOOR_PERCENTILE))
        ceiling = float(np.percentile(levels, CEILING_PERCENTILE))
        return cls(floor, ceiling)

    def __call__(self, level_db: float) -> float:
        if self.ceiling - self.floor < MIN_LEVEL_SPREAD_DB:
            return 0.5
        share = (level_db - self.floor) / (self.ceiling - self.floor)
        return min(1.0, max(0.0, share))


def _score(
    analysis: Analysis, spoken: _Spoken, scale: _LevelScale, window: Segment
) -> Pick:
    level_db, level, speech = -120.0, 0.0, 0.0
    if analysis.energy is not None:
        level_db = analysis.energy.level_db(window.start, window.end)
        level = scale(level_db)
        speech = analysis.energy.speech_share(window.start, window.end)
    on_start = _on_point(window.start, analysis.starts, analysis.frame)
    on_end = _on_point(window.end, analysis.ends, analysis.frame)
    boundary = (on_start + on_end) / 2
    matched = tuple(sorted(analysis.keywords & spoken.stems_in(window)))
    relevance = len(matched) / len(analysis.keywords) if analysis.keywords else 0.0

    score = (
        LEVEL_WEIGHT * level
        + SPEECH_WEIGHT * speech
        + BOUNDARY_WEIGHT * boundary
        + RELEVANCE_WEIGHT * relevance
    )
    reason = _reason(analysis, level_db, speech, on_start, on_end, matched)
    return Pick(window, round(score, 4), reason, matched)


def _on_point(instant: float, points: Sequence[float], frame: float) -> float:
    index = bisect.bisect_left(points, instant - frame)
    return 1.0 if index < len(points) and points[index] <= instant + frame else 0.0


def _reason(
    analysis: Analysis,
    level_db: float,
    speech: float,
    on_start: float,
    on_end: float,
    matched: tuple[str, ...],
) -> str:
    parts = []
    if analysis.energy is not None:
        parts.append(f"mean level {level_db:.1f} dBFS, {speech:.0%} in the voice band")
    if on_start:
        parts.append("starts on a shot change or after a pause")
    if on_end:
        parts.append("ends on a shot change or at a pause")
    if matched:
        parts.append("mentions " + ", ".join(matched))
    return "; ".join(parts) or "evenly placed in a video without sound or shots"


def prompt_keywords(prompt: str) -> frozenset[str]:
    """The words of a prompt worth looking for, as stems."""
    words = (plain_word(part) for part in prompt.split())
    return frozenset(
        word_stem(word) for word in words if len(word) > 1 and word not in STOPWORDS
    )


def word_stem(text: str) -> str:
    """A word reduced for matching: lowercase, no punctuation, a common English
    ending (-ing, -ed, -es, -ly, -s but not -ss) removed when three letters remain,
    then a doubled last consonant made single and a last "e" dropped, so that
    "planning", "planned" and "plans" all become "plan"."""
    word = plain_word(text)
    for ending in STEM_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= MIN_STEM:
            if ending != "s" or not word.endswith("ss"):
                word = word[: -len(ending)]
            break
    if len(word) > MIN_STEM and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    if len(word) > MIN_STEM and word.endswith("e"):
        word = word[:-1]
    return word


def _after_pauses(words: Sequence[Word]) -> list[Word]:
    """Words that follow a gap of at least a pause, and the first word."""
    return [
        word
        for index, word in enumerate(words)
        if index == 0 or word.start - words[index - 1].end >= PAUSE_SECONDS
    ]


def _before_pauses(words: Sequence[Word]) -> list[Word]:
    """Words followed by a gap of at least a pause, and the last word."""
    last = len(words) - 1
    return [
        word
        for index, word in enumerate(words)
        if index == last or words[index + 1].start - word.end >= PAUSE_SECONDS
    ]


def _shortfall_notes(duration: float, params: ClipsParams, made: int) -> list[str]:
    if duration < params.target_duration:
        return [
            f"The video lasts {duration:.1f} s, shorter than the "
            f"{params.target_duration:g} s asked for each clip, so there is one "
            "clip of the whole video."
        ]
    if made < params.num_clips:
        clips = "clip" if made == 1 else "clips"
        return [
            f"Only {made} {clips} of about {params.target_duration:g} s fit in the "
            f"{duration:.1f} s video without overlapping; {params.num_clips} were "
            "asked for."
        ]
    return []


def _render_all(
    source: MediaFile,
    picks: list[Pick],
    analysis: Analysis,
    notes: list[str],
    ctx: TileContext,
) -> list[TileOutput]:
    """Render every pick; clips that fail are reported, the others kept."""
    outputs: list[TileOutput] = []
    errors: list[str] = []
    share = (100.0 - TRANSCRIBE_END) / max(1, len(picks))
    for rank, pick in enumerate(picks, start=1):
        out = ctx.scratch / f"clip-{rank}.mp4"
        low = TRANSCRIBE_END + share * (rank - 1)
        try:
            kept = render_segments(
                source,
                [pick.segment],
                out,
                ctx=ctx,
                on_progress=scaled_progress(ctx.report_progress, low, low + share),
            )
        except Cancelled:
            raise
        except TileworkError as exc:
            logger.warning("clip %d of %s failed: %s", rank, source.path.name, exc)
            errors.append(f"Clip {rank} could not be rendered: {exc}")
            continue
        metadata = _clip_metadata(rank, pick, kept, analysis, notes)
        outputs.append(TileOutput(path=out, name=out.name, metadata=metadata))

    if errors and not outputs:
        raise TileError(" ".join(errors))
    if errors:
        raise PartialOutputs(outputs, errors)
    return outputs


def _clip_metadata(
    rank: int,
    pick: Pick,
    kept: list[Segment],
    analysis: Analysis,
    notes: list[str],
) -> dict[str, Any]:
    segment = kept[0]
    metadata: dict[str, Any] = {
        **cut_metadata(kept, analysis.duration),
        "rank": rank,
        "score": pick.score,
        "reason": pick.reason,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "duration": round(segment.duration, 3),
        "transcript_used": bool(analysis.words),
    }
    if pick.matched:
        metadata["matched_keywords"] = list(pick.matched)
    if notes:
        metadata["note"] = " ".join(notes)
    return metadata
