"""Caption lines from words, SRT/WebVTT files, and ASS scripts drawn by libass."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pysubs2
import pytest

from media_factory import run_ffmpeg
from tilework.media.asr import Word
from tilework.media.subtitles import (
    HIGHLIGHTS,
    AssScript,
    Box,
    Cue,
    Look,
    Shadow,
    ass_alpha,
    ass_color,
    ass_escape,
    ass_filter,
    group_words,
    parse_hex_color,
    plain_rows,
    plain_words,
    text_paint,
    typed_words,
    wrap_rows,
    write_srt,
    write_vtt,
)


def steady_words(count: int, *, start: float = 0.0, step: float = 0.3) -> list[Word]:
    """Words spoken one after another without pauses: w0, w1, ..."""
    return [
        Word(start + index * step, start + index * step + step * 0.8, f"w{index}")
        for index in range(count)
    ]


def look(**changes: object) -> Look:
    base: dict[str, object] = {
        "font": "DejaVu Sans",
        "weight": 700,
        "size": 24,
        "color": "#FFFFFF",
        "highlight_color": "#00FF00",
        "stroke_color": "#000000",
        "stroke_width": 2.0,
    }
    base.update(changes)
    return Look(**base)  # type: ignore[arg-type]


def test_lines_keep_between_min_and_max_words() -> None:
    cues = group_words(steady_words(10), min_words=2, max_words=4, max_chars=200)

    assert [len(cue.words) for cue in cues] == [4, 3, 3]
    assert [word.text for cue in cues for word in cue.words] == [
        f"w{index}" for index in range(10)
    ]


def test_max_words_of_one_gives_a_line_per_word() -> None:
    cues = group_words(steady_words(5), min_words=1, max_words=1, max_chars=200)

    assert [cue.text for cue in cues] == ["w0", "w1", "w2", "w3", "w4"]


def test_a_pause_ends_a_line_even_below_the_minimum() -> None:
    words = [*steady_words(3), *steady_words(3, start=5.0)]

    cues = group_words(words, min_words=3, max_words=8, max_chars=200)

    assert [cue.text for cue in cues] == ["w0 w1 w2", "w0 w1 w2"]
    assert cues[0].end <= cues[1].start


def test_sentences_end_lines_once_they_are_long_enough() -> None:
    texts = ["Yes.", "We", "can.", "Go", "now"]
    words = [Word(i * 0.3, i * 0.3 + 0.25, text) for i, text in enumerate(texts)]

    cues = group_words(words, min_words=2, max_words=6, max_chars=200)

    assert [cue.text for cue in cues] == ["Yes. We can.", "Go now"]


def test_long_words_split_lines_by_characters() -> None:
    texts = ["extraordinary", "circumstances", "require", "unconventional"]
    words = [Word(i * 0.5, i * 0.5 + 0.4, text) for i, text in enumerate(texts)]

    cues = group_words(words, min_words=1, max_words=4, max_chars=30)

    assert all(len(cue.text) <= 30 for cue in cues)
    assert len(cues) == 2


def test_lines_stay_up_briefly_but_never_overlap() -> None:
    cues = group_words(steady_words(8), min_words=1, max_words=2, max_chars=200)

    for current, following in pairwise(cues):
        assert current.end <= following.start
    assert cues[-1].end > cues[-1].words[-1].end


def test_rows_are_balanced() -> None:
    cue = Cue(words=tuple(steady_words(6)), start=0.0, end=2.0)

    assert wrap_rows(cue, max_chars=40).breaks == frozenset()
    assert wrap_rows(cue, max_chars=12).breaks == {3}
    assert plain_rows(wrap_rows(cue, max_chars=12)) == "w0 w1 w2\\Nw3 w4 w5"


def test_srt_and_vtt_round_trip_through_pysubs2(tmp_path: Path) -> None:
    words = [Word(0.0, 0.4, "Ünïcode"), Word(0.5, 0.9, "{braces}"), Word(1, 1.4, "ok")]
    cues = group_words(words, min_words=1, max_words=2, max_chars=200)

    for writer, name in ((write_srt, "subs.srt"), (write_vtt, "subs.vtt")):
        path = writer(cues, tmp_path / name)

        loaded = pysubs2.load(str(path))
        assert [event.plaintext for event in loaded] == ["Ünïcode (braces)", "ok"]
        assert loaded[0].start == 0 and loaded[1].start == 1000
        assert loaded[0].end <= loaded[1].start
    assert (tmp_path / "subs.vtt").read_text().startswith("WEBVTT")


def test_colours_are_converted_to_ass_order() -> None:
    assert parse_hex_color("#1a2B3c") == (0x1A, 0x2B, 0x3C)
    assert ass_color("#112233") == "&H332211&"
    assert ass_alpha(1.0) == "&H00&" and ass_alpha(0.0) == "&HFF&"
    with pytest.raises(ValueError, match="#RRGGBB"):
        parse_hex_color("red")


def test_ass_styles_carry_the_colours(tmp_path: Path) -> None:
    shadow = Shadow(color="#0000FF", opacity=0.5, blur=3, offset=2)
    box = Box(color="#FF00FF", opacity=0.75, padding=6)
    script = AssScript(320, 240, look(shadow=shadow, box=box))
    cue = Cue(words=tuple(steady_words(3)), start=0.0, end=1.0)

    script.add(cue, line_tags="\\an5\\pos(160,200)", words_text=HIGHLIGHTS["colored"])
    loaded = pysubs2.load(str(script.save(tmp_path / "captions.ass")))

    text_style, box_style = loaded.styles["Text"], loaded.styles["Box"]
    assert text_style.primarycolor == pysubs2.Color(255, 255, 255, 0)
    assert text_style.outlinecolor == pysubs2.Color(0, 0, 0, 0)
    assert text_style.outline == 2 and text_style.fontname == "DejaVu Sans"
    assert box_style.borderstyle == 3
    assert box_style.outlinecolor == pysubs2.Color(255, 0, 255, 64)
    assert [event.layer for event in loaded] == [0, 1, 2]
    shadow_text, main_text = loaded[1].text, loaded[2].text
    assert "\\4c&HFF0000&" in shadow_text and "\\4a&H80&" in shadow_text
    assert "\\blur3" in shadow_text
    assert "\\1c&H00FF00&" in main_text and "\\b700" in main_text
    assert loaded.info["PlayResX"] == "320" and loaded.info["PlayResY"] == "240"


def test_each_highlight_marks_words_at_their_times() -> None:
    words = (Word(1.0, 1.4, "one"), Word(1.5, 1.9, "two"), Word(2.0, 2.6, "three"))
    cue = Cue(words=words, start=1.0, end=3.0)
    paint = text_paint(look())

    colored = HIGHLIGHTS["colored"](cue, paint)
    scaling = HIGHLIGHTS["scaling"](cue, paint)
    karaoke = HIGHLIGHTS["karaoke"](cue, paint)

    assert "\\t(500,501,\\1c&H00FF00&)" in colored
    assert "\\t(1000,1100,\\1c&H00FF00&\\fscx125\\fscy125)" in scaling
    durations = [int(value) for value in re.findall(r"\\kf(\d+)", karaoke)]
    assert durations == [50, 50, 100]
    assert "\\2c&HFFFFFF&" in karaoke


def test_typewriter_reveals_every_letter_in_order() -> None:
    cue = Cue(words=(Word(0.0, 0.4, "abcd"), Word(0.5, 0.7, "ef")), start=0, end=1)

    text = typed_words(cue, text_paint(look()))

    times = [int(value) for value in re.findall(r"\\t\((\d+),", text)]
    assert times == [0, 100, 200, 300, 500, 600]
    assert re.sub(r"\{[^}]*\}", "", text) == "abcd ef"


def test_markup_in_words_is_neutralised() -> None:
    assert ass_escape("a{\\b1}b\nc") == "a(/b1)b c"


def test_burned_script_changes_pixels_under_a_hostile_path(tmp_path: Path) -> None:
    folder = tmp_path / "scratch ü: it's [a], b; c"
    folder.mkdir()
    script = AssScript(320, 240, look(size=32))
    cue = Cue(words=tuple(steady_words(2)), start=0.0, end=2.0)
    script.add(cue, line_tags="\\an5\\pos(160,200)", words_text=plain_words)
    saved = script.save(folder / "cap 'q'.ass")
    plain, burned = tmp_path / "plain.png", tmp_path / "burned.png"

    for out, filters in ((plain, "null"), (burned, ass_filter(saved))):
        run_ffmpeg(
            *("-f", "lavfi", "-i", "color=c=0x3060A0:s=320x240:d=1"),
            *("-filter_complex", f"[0:v]{filters}[v]", "-map", "[v]"),
            *("-frames:v", "1", "-update", "1", str(out)),
        )

    changed = np.abs(
        cv2.imread(str(plain)).astype(int) - cv2.imread(str(burned)).astype(int)
    ).max(axis=2)
    assert (changed[170:230] > 60).mean() > 0.03
    assert (changed[:150] > 60).mean() == 0
