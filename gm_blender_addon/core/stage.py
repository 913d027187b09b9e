"""The orchestra in front of the conductor: a seating plan (data, `data/stage/*.json`) and where its seats are.

The conductor stands at the origin facing -Y (towards the bundled rig's camera), so the conductor's right is -X.
A section sits on an arc around the podium: centred `angle` degrees from straight ahead (positive to the conductor's
right) and `width` degrees wide, its front row `radius` metres away, rows behind it further out, each row holding as
many chairs as its arc has room for.  The Blender layer builds the stage from this; the
sections' places in the scene, which the user may move, are what cues and gaze turn towards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..resources import PACKAGE_DIR

SEAT_SPACING = 0.7  # metres between neighbouring chairs in a row
ROW_SPACING = 0.95  # metres between rows


class SeatingPlanError(ValueError):
    """A seating plan file that cannot be used."""


@dataclass(frozen=True)
class Section:
    name: str
    instruments: tuple[str, ...]  # lower-case words matched in a score's part names
    angle: float
    width: float
    radius: float
    rows: int

    def direction(self) -> np.ndarray:
        """Unit vector from the podium towards the section, on the floor."""
        theta = np.radians(self.angle)
        return np.array([-np.sin(theta), -np.cos(theta), 0.0])

    def centre(self) -> np.ndarray:
        """The middle of the section's seats, on the floor."""
        return (self.radius + 0.5 * (self.rows - 1) * ROW_SPACING) * self.direction()

    def seats(self) -> np.ndarray:
        """(N, 3) chair positions on the floor: each row as many chairs as its arc holds (at least one), centred on
        the section's angle."""
        out = []
        for row in range(self.rows):
            radius = self.radius + row * ROW_SPACING
            count = max(1, int(np.radians(self.width) * radius / SEAT_SPACING))
            theta = np.radians(self.angle) + (np.arange(count) - 0.5 * (count - 1)) * SEAT_SPACING / radius
            out.append(np.column_stack([-radius * np.sin(theta), -radius * np.cos(theta), np.zeros_like(theta)]))
        return np.concatenate(out)


@dataclass(frozen=True)
class SeatingPlan:
    name: str
    sections: tuple[Section, ...]

    @classmethod
    def load(cls, path: str | Path) -> "SeatingPlan":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sections = tuple(
                Section(str(s["name"]), tuple(str(w).lower() for w in s["instruments"]), float(s["angle"]),
                        float(s["width"]), float(s["radius"]), int(s["rows"]))
                for s in data["sections"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SeatingPlanError(f"{path.name} is not a seating plan ({exc}): each section needs a name, "
                                   "instruments, angle, width, radius and rows.") from exc
        bad = [s.name for s in sections if s.rows < 1 or s.width <= 0 or s.radius <= 0]
        if not sections or bad:
            raise SeatingPlanError(f"{path.name}: sections need at least one row and a positive width and radius"
                                   + (f" ({', '.join(bad)})" if bad else " (it has no sections)") + ".")
        return cls(str(data.get("name", path.stem)), sections)


    def section_for(self, *names: str) -> Section | None:
        """The section whose instrument words best match any of `names` (a part's name, its instrument): the
        longest word found wins, so "bass clarinet" goes to the clarinets, not the basses. None when none match."""
        best, best_length = None, 0
        for name in names:
            words = f" {re.sub(r'[^a-z0-9]+', ' ', name.lower())} "
            for section in self.sections:
                for word in section.instruments:
                    if len(word) > best_length and f" {word} " in words:
                        best, best_length = section, len(word)
        return best


def default_plan() -> SeatingPlan:
    return SeatingPlan.load(PACKAGE_DIR / "data" / "stage" / "orchestra.json")
