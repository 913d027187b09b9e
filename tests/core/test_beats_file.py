"""Beats files the user gives: each format read into beats and bars, and a file that cannot be read refused with
its name, the line and the fix."""

import json

import numpy as np
import pytest

from gm_blender_addon.core.beats_file import BeatsFileError, read_beats


def _read(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return read_beats(path)


def test_the_json_analyze_writes(tmp_path):
    analysis = {"beats": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], "downbeats": [1.0, 2.5], "beats_per_bar": 3,
                "tempo": 120.0, "meter": "3/4", "tracker": "tcn"}
    given = _read(tmp_path, "waltz.json", json.dumps(analysis) + "\n")
    assert given.beats == tuple(analysis["beats"]) and given.downbeats == (1.0, 2.5) and given.meter == "3/4"
    assert given.source == "waltz.json"


def test_plain_times_one_per_line_with_comments(tmp_path):
    given = _read(tmp_path, "beats.txt", "# tapped by hand\n0.5\n\n1.02\n1.5\n")
    assert given.beats == (0.5, 1.02, 1.5) and given.downbeats is None


def test_csv_with_a_header_crlf_and_bar_numbers_on_downbeats_after_a_pickup(tmp_path):
    text = "\ufefftime,bar\r\n0.5,\r\n1.0,1\r\n1.5,\r\n2.0,\r\n2.5,2\r\n3.0,\r\n3.5,\r\n4.0,3\r\n"
    given = _read(tmp_path, "bars.csv", text)
    assert given.beats == (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    assert given.downbeats == (1.0, 2.5, 4.0)


def test_bar_numbers_on_every_beat_with_bar_0_for_the_pickup(tmp_path):
    given = _read(tmp_path, "bars.tsv", "0.5\t0\n1.0\t1\n1.5\t1\n2.0\t2\n2.5\t2\n3.0\t3\n")
    assert given.downbeats == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("column", [["3", "1", "2", "3", "1", "2"], ["0", "1", "0", "0", "1", "0"]])
def test_counts_of_the_beat_in_its_bar_or_flags_mark_downbeats_with_1(tmp_path, column):
    text = "".join(f"{0.5 * (i + 1)} {mark}\n" for i, mark in enumerate(column))
    given = _read(tmp_path, "counts.txt", text)
    assert given.beats == (0.5, 1.0, 1.5, 2.0, 2.5, 3.0) and given.downbeats == (1.0, 2.5)


def test_an_audacity_label_track_with_empty_and_bar_number_labels(tmp_path):
    text = ("0.500000\t0.500000\t\n"
            "1.000000\t1.000000\t1\n"
            "\\\t120.000000\t2400.000000\n"  # a spectral selection: Audacity's frequency line
            "1.500000\t1.500000\t\n"
            "2.000000\t2.200000\t2\n"
            "2.500000\t2.500000\t\n")
    given = _read(tmp_path, "labels.txt", text)
    assert given.beats == (0.5, 1.0, 1.5, 2.0, 2.5) and given.downbeats == (1.0, 2.0)


def test_beats_out_of_order_are_sorted(tmp_path):
    assert _read(tmp_path, "b.txt", "1.5\n0.5\n1.0\n").beats == (0.5, 1.0, 1.5)


@pytest.mark.parametrize(
    "name, text, where, fix",
    [
        ("beats.txt", "0.5\n1.0\nabout 1.5\n2.0\n", "beats.txt:3:", "not a time in seconds"),
        ("beats.csv", "time,bar\n# tapped\nseconds,bar\n0.5,\n", "beats.csv:3:", "only the first line may be"),
        ("beats.txt", "0.5\n1.0\n1,5\n", "beats.txt:3:", "a point before the decimals"),
        ("beats.txt", "0.5\n1.0\n1.0\n", "beats.txt:3:", "remove one"),
        ("beats.txt", "-0.5\n1.0\n", "beats.txt:1:", "seconds from its start"),
        ("beats.txt", "# only\n0.5\n", "beats.txt:2:", "at least two"),
        ("beats.csv", "0.5,1\n1.0,x\n", "beats.csv:2:", "leave it empty on beats"),
        ("beats.csv", "0.5,1\n1.0,2\n1.5,3\n2.0,2\n", "beats.csv:4:", "count the beats of each bar from 1"),
        ("labels.txt", "0.5\t0.5\t\n1.0\t1.0\n", "labels.txt:2:", "three tab-separated fields"),
        ("six.csv", "".join(f"{0.5 * i},{1 if i % 6 == 0 else ''}\n" for i in range(1, 20)), "six.csv:6:",
         "beats 1 to 4 to the bar"),
        ("beats.json", '{"beats": [0.5,\n 1.0,,]}', "beats.json:2:", "not valid JSON"),
        ("beats.json", '{"tempo": 120}', "beats.json:1:", '"beats" list'),
        ("beats.json", '{"beats": [0.5, 1.0, 1.5],\n "downbeats": [0.7]}', "beats.json:2:",
         'must also be in "beats"'),
        ("beats.json", '{"beats": [0.5, 1.0],\n "meter": "5/4"}', "beats.json:2:", "Unsupported meter"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_line_and_fix(tmp_path, name, text, where, fix):
    with pytest.raises(BeatsFileError) as error:
        _read(tmp_path, name, text)
    assert str(error.value).startswith(where) and fix in str(error.value)


def test_a_missing_or_binary_file_is_refused(tmp_path):
    with pytest.raises(BeatsFileError, match="not found"):
        read_beats(tmp_path / "none.txt")
    with pytest.raises(BeatsFileError, match="cannot be read as text"):
        _read(tmp_path, "noise.wav", bytes(np.arange(256, dtype=np.uint8)))
