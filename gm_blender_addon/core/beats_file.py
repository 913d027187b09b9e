"""Beats the user gives in a file, read into `GivenBeats`.

Three kinds of file are read, told apart by their content:

- the JSON that `analyze --json` writes: "beats" (seconds), optionally "downbeats" and "meter" (or "beats_per_bar");
- an Audacity label track: `start<TAB>end<TAB>label` per line, a beat at each label's start; the label is empty or
  marks bars as the second column below;
- text or CSV: a time in seconds first on each line (comma, semicolon, tab or space separated), optionally a
  second column marking bars: bar numbers in order (on every beat or on downbeats only), or the beat's count in its
  bar (1 on downbeats, as beat trackers write it), or 1 on downbeats and 0 or nothing on the other beats.

Blank lines and lines starting with # are skipped, as is one header line at the top of a text file. The beats are
sorted by time. A file that cannot be read raises BeatsFileError naming the file, the line and the fix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .analysis import AnalysisError, GivenBeats, parse_meter


class BeatsFileError(ValueError):
    """A beats file that cannot be read, with the file, the line and how to fix it."""


@dataclass
class _Row:
    line: int
    time: float
    mark: int | None  # the bar column's number, if any


def read_beats(path: str | Path) -> GivenBeats:
    """The beats of a JSON, Audacity label or text/CSV beats file; BeatsFileError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise BeatsFileError(f"Beats file not found: {path}. Check the path, or leave it empty to detect the beats.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BeatsFileError(f"{path.name} cannot be read as text ({exc}): give a JSON, Audacity label or "
                             "text/CSV file of beat times.") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _from_json(path.name, text)
    return _from_rows(path.name, _rows(path.name, text))


def _fail(name: str, line: int, problem: str) -> BeatsFileError:
    return BeatsFileError(f"{name}:{line}: {problem}")


def _line_of(text: str, key: str) -> int:
    at = text.find(f'"{key}"')
    return text.count("\n", 0, max(at, 0)) + 1


def _from_json(name: str, text: str) -> GivenBeats:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(name, exc.lineno, f"not valid JSON ({exc.msg}); fix it, or write the beats as `analyze --json` "
                                      "does") from exc
    if not isinstance(data, dict) or not isinstance(data.get("beats"), list):
        raise _fail(name, 1, 'a JSON beats file needs a "beats" list of times in seconds, as `analyze --json` writes')

    def times(key: str) -> list[float]:
        values = data[key]
        if not isinstance(values, list) or not all(_is_time(v) for v in values):
            raise _fail(name, _line_of(text, key), f'"{key}" must be a list of times in seconds (numbers, 0 or more)')
        return [float(v) for v in values]

    beats = times("beats")
    downbeats = times("downbeats") if data.get("downbeats") is not None else None
    meter = data.get("meter")
    if meter is None and data.get("beats_per_bar") is not None:
        meter = f"{data['beats_per_bar']}/4"
    if meter is not None:
        try:
            parse_meter(str(meter))
        except AnalysisError as exc:
            key = "meter" if "meter" in data else "beats_per_bar"
            raise _fail(name, _line_of(text, key), str(exc)) from exc
    rows = [_Row(_line_of(text, "beats"), t, None) for t in beats]
    order = sorted(range(len(beats)), key=lambda i: beats[i])
    _check_times(name, [rows[i] for i in order])
    missing = [t for t in downbeats or () if t not in set(beats)]
    if missing:
        raise _fail(name, _line_of(text, "downbeats"), f"the downbeat at {missing[0]:g} s is not one of the beats; "
                                                       "every downbeat must also be in \"beats\"")
    return _given(name, [beats[i] for i in order], sorted(downbeats) if downbeats is not None else None,
                  str(meter) if meter is not None else None, _line_of(text, "downbeats"))


def _is_time(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


_SEPARATORS = ("\t", ";", ",")


def _rows(name: str, text: str) -> list[_Row]:
    """The data lines of a label track or text/CSV file as (line, time, bar mark)."""
    rows: list[_Row] = []
    separator = audacity = None  # both decided by the first data line
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        # Audacity writes a label's frequency range on a line of its own starting with a backslash.
        if not stripped or stripped.startswith("#") or stripped.startswith("\\"):
            continue
        first_field = re.split(r"[\t;, ]", stripped)[0]
        if audacity is None and re.search(r"[A-Za-z]", first_field) and not _is_number(first_field):
            if number != _first_line(text):
                raise _fail(name, number, f"{stripped[:40]!r} is not a beat: only the first line may be a header")
            continue
        first_data_line = audacity is None
        if first_data_line:
            separator = next((s for s in _SEPARATORS if s in stripped), None)
        fields = [field.strip() for field in line.split(separator)]
        if first_data_line:
            audacity = (separator == "\t" and len(fields) == 3 and _is_number(fields[0]) and _is_number(fields[1])
                        and float(fields[1]) >= float(fields[0]))
        if audacity and len(fields) != 3:
            raise _fail(name, number, "an Audacity label line has three tab-separated fields: start, end and label "
                                      "(empty, or the bar number on downbeats)")
        mark = fields[2] if audacity else (fields[1] if len(fields) > 1 else "")
        rows.append(_Row(number, _time(name, number, fields[0]), _mark(name, number, mark)))
    return rows


def _first_line(text: str) -> int:
    """The number of the first line that is neither blank nor a comment."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.strip().startswith("#"):
            return number
    return 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _time(name: str, line: int, text: str) -> float:
    if not _is_number(text) or not math.isfinite(float(text)):
        raise _fail(name, line, f"{text!r} is not a time in seconds: the first column holds times like 12.5 (a point "
                                "before the decimals)")
    if float(text) < 0:
        raise _fail(name, line, f"{text} s is before the music starts: times count in seconds from its start")
    return float(text)


def _mark(name: str, line: int, text: str) -> int | None:
    if not text:
        return None
    if not _is_number(text) or not float(text).is_integer() or float(text) < 0:
        raise _fail(name, line, f"{text!r} is not a bar mark: leave it empty on beats, and write the bar number "
                                "(or 1) on downbeats")
    return int(float(text))


def _check_times(name: str, rows: list[_Row]) -> None:
    """Rows sorted by time: at least two, each after the one before it."""
    if len(rows) < 2:
        raise _fail(name, rows[0].line if rows else 1, f"{len(rows)} beat time(s) found; at least two are needed: "
                                                        "give one time in seconds per line (first column)")
    for previous, row in zip(rows, rows[1:]):
        if row.time <= previous.time:
            where = f"line {previous.line}" if previous.line != row.line else "another beat"
            raise _fail(name, row.line, f"the beat at {row.time:g} s repeats {where}: remove one of them")


def _from_rows(name: str, rows: list[_Row]) -> GivenBeats:
    rows = sorted(rows, key=lambda row: row.time)
    _check_times(name, rows)
    downbeats = _downbeats(name, rows)
    first_bar = next((row.line for row in rows if row.time in set(downbeats or ())), rows[0].line)
    return _given(name, [row.time for row in rows], downbeats, None, first_bar)


def _downbeats(name: str, rows: list[_Row]) -> list[float] | None:
    """The downbeats the bar column marks, read as bar numbers in order, else as counts of the beat in its bar (or
    0/1 flags), where 1 is a downbeat; None if the column is empty."""
    marked = [row for row in rows if row.mark is not None]
    if not marked:
        return None
    numbers = [row.mark for row in marked]
    if max(numbers) > 1 and all(b >= a for a, b in zip(numbers, numbers[1:])):
        # Bar numbers: a bar starts where its number first appears; bar 0 is a pickup.
        return [row.time for previous, row in zip([None, *marked], marked)
                if row.mark >= 1 and (previous is None or row.mark != previous.mark)]
    # Counts: after a counted beat comes the next count, or 1 (or 0) on a new bar.
    for previous, row in zip(rows, rows[1:]):
        if None not in (previous.mark, row.mark) and row.mark > 1 and row.mark != previous.mark + 1:
            raise _fail(name, row.line, f"bar mark {row.mark} after {previous.mark} is neither the next beat of the "
                                        "bar nor a bar number in order: number the bars in order, or count the "
                                        "beats of each bar from 1")
    return [row.time for row in rows if row.mark == 1]


def _given(name: str, beats: list[float], downbeats: list[float] | None, meter: str | None,
           bars_line: int) -> GivenBeats:
    """The checked beats as GivenBeats; what is left for it to refuse (bars too long to beat) is reported at the
    line of the first bar."""
    try:
        return GivenBeats(tuple(beats), None if downbeats is None else tuple(downbeats), meter, source=name)
    except AnalysisError as exc:
        raise _fail(name, bars_line, str(exc)) from exc
