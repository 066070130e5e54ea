"""Cut lists rendered for real: picture and sound stay together, whatever the input."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import av
import numpy as np
import pytest

import media_factory
from media_factory import FAST_VIDEO, make_rotated, make_video, run_ffmpeg
from tilework.errors import Cancelled, TileError
from tilework.media.analysis import (
    detect_silences,
    parse_silences,
    scene_cuts,
    speech_energy,
)
from tilework.media.cuts import (
    Segment,
    complement,
    cut_metadata,
    normalize,
    render_segments,
    subtract,
    total_seconds,
)
from tilework.media.probe import MediaInfo, probe
from tilework.tiles.base import MediaFile, PartialOutputs, TileContext, TileOutput

FPS = 30
EVENT_FRAMES = (16, 52, 88, 124, 164, 208, 240, 268)
"""Frames where a beep and a flash start together; all multiples of 4, so the VFR
copy (two frames kept, two dropped) still shows each flash from its first frame."""
EVENT_SECONDS = 0.1
SYNC_TOLERANCE = 0.010
"""Each beep starts 2 ms before its flash's frame; a gap under 10 ms is sync to the
sample, well inside the one frame (33 ms) asked for."""
CUTS = [Segment(0.2, 1.1), Segment(1.5, 3.33), Segment(4.0, 6.01), Segment(7.05, 9.5)]
LATE_CUTS = [Segment(4.07, 6.01), Segment(6.5, 6.6), Segment(7.05, 9.5)]
"""Cuts that start past the seek margin, so the render seeks into the input."""


def events() -> list[float]:
    return [frame / FPS for frame in EVENT_FRAMES]


def make_sync_video(path: Path, *, vfr: bool = False, seconds: float = 10.0) -> Path:
    """Black video with a white flash and a 1 kHz beep at the same instants."""
    gate = "+".join(
        f"between(t,{start - 0.002:.4f},{start + EVENT_SECONDS:.4f})"
        for start in events()
    )
    video = (
        f"color=black:s=320x240:r={FPS}:d={seconds},"
        f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{gate}'"
    )
    audio = f"aevalsrc='0.8*sin(2*PI*1000*t)*({gate})':s=48000:d={seconds}"
    frames = ["-vf", "select='lt(mod(n,4),2)'", "-fps_mode", "vfr"] if vfr else []
    run_ffmpeg(
        *("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio),
        *frames,
        *FAST_VIDEO,
        *("-c:a", "aac", "-shortest", str(path)),
    )
    return path


def flash_onsets(path: Path) -> list[float]:
    onsets: list[float] = []
    lit = False
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            bright = float(frame.to_ndarray(format="gray").mean()) > 128
            if bright and not lit and frame.time is not None:
                onsets.append(frame.time)
            lit = bright
    return onsets


def beep_onsets(path: Path, *, quiet_gap: float = 0.05) -> list[float]:
    rate = 48000
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        first = None
        for frame in container.decode(stream):
            first = frame.time if first is None else first
            chunks += [
                part.to_ndarray().reshape(-1) for part in resampler.resample(frame)
            ]
    loud = np.flatnonzero(np.abs(np.concatenate(chunks)) > 0.3)
    gaps = [b for a, b in itertools.pairwise(loud) if b - a > quiet_gap * rate]
    starts = [loud[0], *gaps]
    return [(first or 0.0) + index / rate for index in starts]


def media(path: Path) -> MediaFile:
    return MediaFile(path=path, info=probe(path))


def expected_events(kept: list[Segment]) -> int:
    return sum(
        1
        for start in events()
        if any(s.start <= start and start + EVENT_SECONDS <= s.end for s in kept)
    )


def assert_in_sync(out: Path, kept: list[Segment]) -> None:
    flashes, beeps = flash_onsets(out), beep_onsets(out)

    assert len(flashes) == len(beeps) == expected_events(kept)
    offsets = [abs(f - b) for f, b in zip(flashes, beeps, strict=True)]
    assert max(offsets) <= SYNC_TOLERANCE, offsets


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cuts")


@pytest.fixture(scope="module")
def synced(folder: Path) -> Path:
    return make_sync_video(folder / "synced.mp4")


@pytest.fixture(scope="module")
def vfr_synced(folder: Path) -> Path:
    """The same, with frames in irregular pairs: two shown, two skipped."""
    return make_sync_video(folder / "vfr.mp4", vfr=True)


@pytest.fixture
def ctx(tmp_path: Path) -> TileContext:
    return media_factory.tile_context(tmp_path / "scratch", [])


@pytest.mark.parametrize("cuts", [CUTS, LATE_CUTS], ids=["from-start", "seeking"])
def test_cuts_keep_beeps_on_flashes(
    synced: Path, ctx: TileContext, cuts: list[Segment]
) -> None:
    assert flash_onsets(synced) == pytest.approx(events(), abs=0.002)
    out = ctx.scratch / "cut.mp4"

    kept = render_segments(media(synced), cuts, out, ctx=ctx)

    assert_in_sync(out, kept)
    info = probe(out)
    assert info.duration == pytest.approx(total_seconds(kept), abs=1 / FPS)
    assert total_seconds(kept) == pytest.approx(total_seconds(cuts), abs=4 / FPS)
    assert media_factory.count_video_frames(out) == round(total_seconds(kept) * FPS)


def test_cuts_land_on_frames(synced: Path, ctx: TileContext) -> None:
    kept = render_segments(media(synced), CUTS, ctx.scratch / "cut.mp4", ctx=ctx)

    for segment in kept:
        for instant in (segment.start, segment.end):
            assert instant * FPS == pytest.approx(round(instant * FPS), abs=1e-6)
    bounds = [instant for s in kept for instant in (s.start, s.end)]
    assert bounds == pytest.approx(
        [instant for s in CUTS for instant in (s.start, s.end)], abs=0.5 / FPS
    )


@pytest.mark.parametrize("cuts", [CUTS, LATE_CUTS], ids=["from-start", "seeking"])
def test_variable_frame_rate_input_stays_in_sync(
    vfr_synced: Path, ctx: TileContext, cuts: list[Segment]
) -> None:
    vfr = vfr_synced
    info = probe(vfr)
    assert info.vfr
    out = ctx.scratch / "cut.mp4"

    kept = render_segments(media(vfr), cuts, out, ctx=ctx)

    result = probe(out)
    assert not result.vfr and result.fps is not None
    assert_in_sync(out, kept)
    assert result.duration == pytest.approx(total_seconds(kept), abs=1 / result.fps)


def test_input_without_audio(folder: Path, ctx: TileContext) -> None:
    silent = make_video(folder / "silent.mp4", seconds=3.0, audio=False)
    out = ctx.scratch / "cut.mp4"

    kept = render_segments(
        media(silent), [Segment(0.5, 1.0), Segment(2.0, 2.9)], out, ctx=ctx
    )

    info = probe(out)
    assert not info.has_audio
    assert info.duration == pytest.approx(1.4, abs=1 / FPS)
    assert total_seconds(kept) == pytest.approx(1.4, abs=1 / FPS)


def test_many_segments_in_one_pass(folder: Path, ctx: TileContext) -> None:
    source = make_video(folder / "long.mp4", seconds=30.0)
    step = 30.0 / 250
    wanted = [Segment(i * step, i * step + step / 2) for i in range(250)]
    out = ctx.scratch / "many.mp4"

    started = time.monotonic()
    kept = render_segments(media(source), wanted, out, ctx=ctx)
    elapsed = time.monotonic() - started

    assert len(kept) == 250
    info = probe(out)
    assert info.duration == pytest.approx(total_seconds(kept), abs=1 / FPS)
    assert media_factory.count_video_frames(out) == round(total_seconds(kept) * FPS)
    assert elapsed < 30
    assert not list(ctx.scratch.glob(".*"))


def test_rotated_odd_and_non_ascii_input(folder: Path, ctx: TileContext) -> None:
    odd = make_video(folder / "odd.mp4", size="321x241", seconds=2.0)
    turned = make_rotated(odd, folder / "téléphone été.mp4", clockwise=90)
    out = ctx.scratch / "cut.mp4"

    render_segments(media(turned), [Segment(0.2, 0.8), Segment(1.2, 1.9)], out, ctx=ctx)

    info = probe(out)
    assert (info.display_width, info.display_height) == (240, 320)
    assert info.rotation == 0
    assert info.duration == pytest.approx(1.3, abs=1 / FPS)


def test_segment_past_the_end_is_clamped(synced: Path, ctx: TileContext) -> None:
    out = ctx.scratch / "cut.mp4"

    kept = render_segments(media(synced), [Segment(9.0, 50.0)], out, ctx=ctx)

    assert kept == [Segment(9.0, 10.0)]
    assert probe(out).duration == pytest.approx(1.0, abs=1 / FPS)


def test_nothing_longer_than_a_frame_is_an_error(
    synced: Path, ctx: TileContext
) -> None:
    with pytest.raises(TileError, match="shorter than one frame"):
        render_segments(
            media(synced), [Segment(1.0, 1.01)], ctx.scratch / "cut.mp4", ctx=ctx
        )
    with pytest.raises(TileError):
        render_segments(media(synced), [], ctx.scratch / "cut.mp4", ctx=ctx)


def test_cancelled_render_leaves_nothing(synced: Path, ctx: TileContext) -> None:
    ctx.cancel.cancel()

    with pytest.raises(Cancelled):
        render_segments(media(synced), CUTS, ctx.scratch / "cut.mp4", ctx=ctx)

    assert list(ctx.scratch.iterdir()) == []


def test_cut_metadata_lists_kept_source_ranges() -> None:
    data = cut_metadata([Segment(0.0, 1.5), Segment(3.25, 4.0)], 5.0)

    assert data == {
        "cuts": [
            {"source_start": 0.0, "source_end": 1.5},
            {"source_start": 3.25, "source_end": 4.0},
        ],
        "source_duration": 5.0,
    }


def test_normalize_sorts_merges_clamps_and_drops() -> None:
    messy = [
        Segment(5.0, 12.0),
        Segment(1.0, 2.0),
        Segment(1.5, 3.0),
        Segment(3.01, 4.0),
        Segment(6.0, 6.0),
        Segment(-1.0, 0.01),
        Segment(11.0, 11.02),
    ]

    tidy = normalize(messy, 10.0, min_length=1 / 30)

    assert tidy == [Segment(1.0, 4.0), Segment(5.0, 10.0)]


def test_complement_and_subtract() -> None:
    kept = [Segment(1.0, 2.0), Segment(3.0, 5.0)]

    assert complement(kept, 6.0) == [
        Segment(0.0, 1.0),
        Segment(2.0, 3.0),
        Segment(5.0, 6.0),
    ]
    assert complement([], 2.0) == [Segment(0.0, 2.0)]
    assert subtract(kept, [Segment(1.5, 3.5), Segment(4.0, 4.5)]) == [
        Segment(1.0, 1.5),
        Segment(3.5, 4.0),
        Segment(4.5, 5.0),
    ]
    with pytest.raises(ValueError):
        Segment(2.0, 1.0)


def test_parse_silences_closes_a_silence_open_at_the_end() -> None:
    stderr = "\n".join(
        [
            "[silencedetect @ 0x1] silence_start: -0.00133",
            "[silencedetect @ 0x1] silence_end: 1.25 | silence_duration: 1.25",
            "[silencedetect @ 0x1] silence_start: 3.5",
        ]
    )

    assert parse_silences(stderr, 4.0) == [Segment(0.0, 1.25), Segment(3.5, 4.0)]


def test_silences_scenes_and_energy_of_real_media(
    folder: Path, ctx: TileContext
) -> None:
    path = folder / "two-shots.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "color=red:s=160x120:r=30:d=2"),
        *("-f", "lavfi", "-i", "color=blue:s=160x120:r=30:d=2"),
        *("-f", "lavfi", "-i", "aevalsrc='0.5*sin(2*PI*440*t)*lt(t,1.5)':s=48000:d=4"),
        *("-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]"),
        *("-map", "[v]", "-map", "2:a", *FAST_VIDEO, "-c:a", "aac", str(path)),
    )

    silences = detect_silences(
        path, threshold_db=-35, min_silence=0.5, ffmpeg=ctx.ffmpeg, cancel=ctx.cancel
    )
    shots = scene_cuts(path, ffmpeg=ctx.ffmpeg, cancel=ctx.cancel)
    energy = speech_energy(path, cancel=ctx.cancel)

    assert len(silences) == 1
    assert silences[0].start == pytest.approx(1.5, abs=0.05)
    assert silences[0].end == pytest.approx(4.0, abs=0.05)
    assert shots == pytest.approx([2.0], abs=1 / 30)
    assert energy.duration == pytest.approx(4.0, abs=0.1)
    assert energy.level_db(0.0, 1.5) == pytest.approx(-9.0, abs=1.5)
    assert energy.level_db(2.0, 4.0) < -60
    assert energy.speech_share(0.0, 1.5) > 0.95


def test_partial_outputs_names_what_failed(tmp_path: Path) -> None:
    made = TileOutput(path=tmp_path / "clip-1.mp4")

    error = PartialOutputs([made], ["Clip 2 could not be rendered: disk full."])

    assert isinstance(error, TileError)
    assert error.outputs == [made]
    assert "1 of 2 outputs were made" in str(error)
    assert "Clip 2" in str(error)


def test_frame_grid_of_a_source_with_unusual_rate(
    folder: Path, ctx: TileContext
) -> None:
    path = folder / "rate25.mp4"
    make_video(path, seconds=2.0, fps=25)
    info: MediaInfo = probe(path)
    out = ctx.scratch / "cut.mp4"

    kept = render_segments(MediaFile(path, info), [Segment(0.3, 1.3)], out, ctx=ctx)

    assert (kept[0].start, kept[0].end) == pytest.approx((0.32, 1.32))
    assert media_factory.count_video_frames(out) == 25
