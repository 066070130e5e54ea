"""Timeline exports an editor opens elsewhere, and cut lists mapped to the source."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import opentimelineio as otio
import pytest

from media_factory import FAST_VIDEO, make_video, run_ffmpeg
from tilework.media.probe import MediaInfo, probe
from tilework.media.timeline import Span, compose, export_timeline, frame_rate

CUTS = [Span(0.5, 1.2), Span(2.0, 2.9), Span(3.1, 3.6)]
RATES = {"25": Fraction(25), "30": Fraction(30), "30000/1001": Fraction(30000, 1001)}
FCP_RATES = {
    Fraction(25): ("25", "FALSE"),
    Fraction(30): ("30", "FALSE"),
    Fraction(30000, 1001): ("30", "TRUE"),
}
ODD_NAME = "Mé diá & co.mp4"
ODD_TITLE = "Cut & <keep> \"this\" 'one'"


@dataclass(frozen=True)
class Export:
    rate: Fraction
    info: MediaInfo
    folder: Path
    """Where the zip was extracted, away from where it was written."""
    asked: str = ""
    """The frame rate the test video was made at, as ffmpeg was told it."""

    @property
    def xml(self) -> str:
        return (self.folder / "timeline.xml").read_text(encoding="utf-8")

    def text(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")


def make_rated_video(path: Path, rate: str, *, seconds: float = 4.0) -> Path:
    run_ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}:d={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:d={seconds}:sample_rate=48000"),
        *FAST_VIDEO,
        *("-c:a", "aac", "-shortest", str(path)),
    )
    return path


def export_and_extract(
    tmp: Path,
    media: Path,
    *,
    name: str = "Rough cut",
    spans: list[Span] = CUTS,
    media_name: str | None = None,
) -> Export:
    info = probe(media)
    written = tmp / "written"
    written.mkdir()
    out_zip = export_timeline(
        name=name,
        media=media,
        info=info,
        spans=spans,
        out_zip=written / "timeline.zip",
        media_name=media_name,
    )

    folder = tmp / "elsewhere" / "extracted"
    with zipfile.ZipFile(out_zip) as archive:
        archive.extractall(folder)
    return Export(frame_rate(info.fps), info, folder)


@pytest.fixture(scope="module", params=list(RATES))
def export(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    tmp = tmp_path_factory.mktemp("timeline")
    media = make_rated_video(tmp / "source clip.mp4", request.param)
    return replace(export_and_extract(tmp, media), asked=request.param)


def clip_items(root: ET.Element, kind: str) -> list[ET.Element]:
    return root.findall(f"./project/children/sequence/media/{kind}/track/clipitem")


def frames_off(frames: int, seconds: float, rate: Fraction) -> float:
    return abs(frames - seconds * float(rate))


def test_rate_is_exact(export: Export) -> None:
    assert export.rate == RATES[export.asked]
    assert export.info.fps is not None
    assert float(export.rate) == pytest.approx(export.info.fps, abs=0.01)


def test_fcp_xml_raw_elements(export: Export) -> None:
    root = ET.fromstring(export.xml)
    sequence = root.find("./project/children/sequence")
    assert sequence is not None
    timebase, ntsc = FCP_RATES[export.rate]
    assert sequence.findtext("./rate/timebase") == timebase
    assert sequence.findtext("./rate/ntsc") == ntsc

    sample = sequence.find("./media/video/format/samplecharacteristics")
    assert sample is not None
    assert (sample.findtext("width"), sample.findtext("height")) == ("320", "240")
    assert sample.findtext("rate/timebase") == timebase
    assert sample.findtext("rate/ntsc") == ntsc

    for kind in ("video", "audio"):
        items = clip_items(root, kind)
        assert len(items) == len(CUTS)
        position = 0
        for item, span in zip(items, CUTS, strict=True):
            assert item.findtext("rate/timebase") == timebase
            assert item.findtext("rate/ntsc") == ntsc
            first, end = int(item.findtext("in", "")), int(item.findtext("out", ""))
            assert frames_off(first, span.start, export.rate) <= 0.5
            assert frames_off(end, span.end, export.rate) <= 0.5
            assert int(item.findtext("start", "")) == position
            position = int(item.findtext("end", ""))
            assert position - int(item.findtext("start", "")) == end - first

    paths = {element.text for element in root.iter("pathurl")}
    assert paths == {"media/source%20clip.mp4"}


def test_fcp_xml_reads_back_with_distinct_audio_and_video(export: Export) -> None:
    timeline = otio.adapters.read_from_string(export.xml, "fcp_xml")

    video = [clip for track in timeline.video_tracks() for clip in track]
    audio = [clip for track in timeline.audio_tracks() for clip in track]
    assert len(video) == len(audio) == len(CUTS)
    assert {clip.name for clip in video}.isdisjoint(clip.name for clip in audio)
    for clips in (video, audio):
        for clip, span in zip(clips, CUTS, strict=True):
            source = clip.source_range
            start = source.start_time.to_seconds()
            end = source.end_time_exclusive().to_seconds()
            half_frame = 0.5 / float(export.rate) + 1e-9
            assert start == pytest.approx(span.start, abs=half_frame)
            assert end == pytest.approx(span.end, abs=half_frame)
            assert clip.media_reference.target_url == "media/source%20clip.mp4"


def test_otio_round_trips(export: Export) -> None:
    timeline = otio.adapters.read_from_string(export.text("timeline.otio"), "otio_json")
    from_xml = otio.adapters.read_from_string(export.xml, "fcp_xml")

    clips = list(timeline.find_clips())
    assert len(clips) == 2 * len(CUTS)
    assert len(timeline.audio_tracks()) == len(timeline.video_tracks()) == 1
    for clip, xml_clip in zip(clips, from_xml.find_clips(), strict=True):
        assert clip.source_range.start_time.rate == pytest.approx(float(export.rate))
        assert (
            clip.source_range.start_time.value == xml_clip.source_range.start_time.value
        )
        assert clip.source_range.duration.value == xml_clip.source_range.duration.value
        assert clip.media_reference.target_url == "media/source%20clip.mp4"


def test_edl_reads_back(export: Export) -> None:
    text = export.text("timeline.edl")
    timeline = otio.adapters.read_from_string(text, "cmx_3600", rate=float(export.rate))

    clips = list(timeline.find_clips())
    assert len(timeline.audio_tracks()) == 0
    assert len(clips) == len(CUTS)
    for clip, span in zip(clips, CUTS, strict=True):
        source = clip.source_range
        first = round(source.start_time.value)
        end = round(source.end_time_exclusive().value)
        assert frames_off(first, span.start, export.rate) <= 0.5
        assert frames_off(end, span.end, export.rate) <= 0.5

    reels = {line.split()[1] for line in text.splitlines() if line[:3].isdigit()}
    assert reels == {"SOURCECL"}
    drop_frame = export.rate == Fraction(30000, 1001)
    assert ("FCM: DROP FRAME" in text) == drop_frame


def test_media_resolves_next_to_the_extracted_timeline(export: Export) -> None:
    xml_path = export.folder / "timeline.xml"
    root = ET.fromstring(export.xml)
    urls = {element.text or "" for element in root.iter("pathurl")}
    otio_timeline = otio.adapters.read_from_file(str(export.folder / "timeline.otio"))
    urls |= {clip.media_reference.target_url for clip in otio_timeline.find_clips()}

    for url in urls:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc
        media = xml_path.parent / unquote(parsed.path)
        assert media.is_file()
        assert probe(media).duration == pytest.approx(export.info.duration)


def test_zip_layout(tmp_path: Path) -> None:
    media = make_video(tmp_path / "plain.mp4", seconds=4.0, audio=False)
    info = probe(media)
    out_zip = tmp_path / "out" / "project.zip"
    out_zip.parent.mkdir()

    export_timeline(
        name="No sound", media=media, info=info, spans=CUTS, out_zip=out_zip
    )

    with zipfile.ZipFile(out_zip) as archive:
        entries = {entry.filename: entry for entry in archive.infolist()}
        xml = archive.read("timeline.xml").decode("utf-8")
    assert set(entries) == {
        "timeline.xml",
        "timeline.otio",
        "timeline.edl",
        "media/plain.mp4",
    }
    assert entries["media/plain.mp4"].compress_type == zipfile.ZIP_STORED
    assert entries["media/plain.mp4"].file_size == media.stat().st_size
    assert entries["timeline.otio"].compress_type == zipfile.ZIP_DEFLATED
    assert [path.name for path in out_zip.parent.iterdir()] == ["project.zip"]

    root = ET.fromstring(xml)
    assert len(clip_items(root, "video")) == len(CUTS)
    assert clip_items(root, "audio") == []
    assert root.find(".//file/media/audio") is None


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    media = make_video(tmp_path / "gone.mp4", seconds=4.0)
    info = probe(media)
    media.unlink()
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(FileNotFoundError):
        export_timeline(
            name="x", media=media, info=info, spans=CUTS, out_zip=out / "t.zip"
        )

    assert list(out.iterdir()) == []


def test_odd_names_survive(tmp_path: Path) -> None:
    media = make_rated_video(tmp_path / "upload.mp4", "30")
    export = export_and_extract(tmp_path, media, name=ODD_TITLE, media_name=ODD_NAME)

    assert (export.folder / "media" / ODD_NAME).is_file()
    xml = export.xml
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "&amp; &lt;keep&gt;" in xml
    assert "Mé diá &amp; co.mp4" in xml

    root = ET.fromstring(xml)
    assert root.findtext("./project/children/sequence/name") == ODD_TITLE
    assert root.findtext(".//file/name") == ODD_NAME
    expected_url = "media/" + quote(ODD_NAME, safe="")
    assert expected_url == "media/M%C3%A9%20di%C3%A1%20%26%20co.mp4"
    assert {element.text for element in root.iter("pathurl")} == {expected_url}

    timeline = otio.adapters.read_from_string(xml, "fcp_xml")
    assert timeline.name == ODD_TITLE
    assert {clip.media_reference.name for clip in timeline.find_clips()} == {ODD_NAME}
    assert (export.folder / unquote(expected_url)).is_file()


def test_spans_outside_the_media_are_clipped_or_dropped(tmp_path: Path) -> None:
    media = make_video(tmp_path / "short.mp4", seconds=2.0)
    spans = [Span(0.0, 0.01), Span(1.5, 3.0), Span(2.5, 3.0)]

    export = export_and_extract(tmp_path, media, spans=spans)

    root = ET.fromstring(export.xml)
    items = clip_items(root, "video")
    assert [(item.findtext("in"), item.findtext("out")) for item in items] == [
        ("45", "60")
    ]


def test_frame_rate_snaps_to_standard_rates() -> None:
    assert frame_rate(29.97) == Fraction(30000, 1001)
    assert frame_rate(23.976) == Fraction(24000, 1001)
    assert frame_rate(59.94) == Fraction(60000, 1001)
    assert frame_rate(24.999) == Fraction(25)
    assert frame_rate(12.5) == Fraction(25, 2)


def piecewise(spans: list[Span], instant: float) -> float:
    """Where ``instant`` of the spans joined end to end falls in their source."""
    offset = 0.0
    for span in spans:
        if instant < offset + span.duration:
            return float(span.start + instant - offset)
        offset += span.duration
    raise AssertionError(f"{instant} is past the end of {spans}")


def random_spans(rng: random.Random, count: int, limit: float) -> list[Span]:
    spans = []
    for _ in range(count):
        start = rng.uniform(0, limit)
        spans.append(Span(start, min(limit, start + rng.uniform(0.01, limit / 3))))
    return spans


def test_compose_maps_every_instant_like_direct_lookup() -> None:
    rng = random.Random(20240607)
    for _ in range(500):
        parent = random_spans(rng, rng.randint(1, 6), 100.0)
        total = sum(span.duration for span in parent)
        child = random_spans(rng, rng.randint(1, 6), total)

        composed = compose(parent, child)

        child_total = sum(span.duration for span in child)
        assert sum(span.duration for span in composed) == pytest.approx(child_total)
        for _ in range(20):
            instant = rng.uniform(0, child_total)
            direct = piecewise(parent, piecewise(child, instant))
            assert piecewise(composed, instant) == pytest.approx(direct, abs=1e-6)


def test_compose_splits_at_joins_and_drops_what_is_past_the_end() -> None:
    parent = [Span(10.0, 12.0), Span(20.0, 23.0)]

    assert compose(parent, [Span(1.5, 2.5)]) == [Span(11.5, 12.0), Span(20.0, 20.5)]
    assert compose(parent, [Span(4.0, 9.0)]) == [Span(22.0, 23.0)]
    assert compose(parent, [Span(6.0, 7.0)]) == []
    assert compose([Span(0.0, 5.0)], CUTS) == CUTS


def test_span_refuses_backward_times() -> None:
    with pytest.raises(ValueError):
        Span(2.0, 1.0)
    with pytest.raises(ValueError):
        Span(-1.0, 1.0)
