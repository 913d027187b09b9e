"""Generators register by name: each module in this package that defines `GENERATOR` is one entry.

Adding a generator is adding one file. Modules are discovered, not listed, and must import heavy libraries (torch)
inside their functions so that listing the generators stays instant.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.analysis import MusicAnalysis, Progress
from ..core.audio import Audio
from ..core.motion import Motion
from ..weights import default_checkpoint


class GeneratorError(ValueError):
    """A generator that cannot run as asked (unknown name, missing or wrong checkpoint, bad option)."""


@dataclass(frozen=True)
class Option:
    """A generator-specific setting, exposed by the CLI as --<name> and by the panel (within its limits)."""

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value) -> None:
        if self.type is bool:
            if not isinstance(value, bool):
                raise GeneratorError(f"--{self.name.replace('_', '-')} is on or off (True or False), got {value!r}.")
            return
        low = -float("inf") if self.minimum is None else self.minimum
        high = float("inf") if self.maximum is None else self.maximum
        if not low <= value <= high:
            raise GeneratorError(f"--{self.name.replace('_', '-')} must be between {self.minimum:g} and "
                                 f"{self.maximum:g}, got {value}.")


@dataclass
class Request:
    """What a generator is asked to do: the music, a seed, its own options and a progress callback.

    `audio` is None only for generators that declare they work from the analysis alone (`needs_audio=False`)."""

    audio: Audio | None
    analysis: MusicAnalysis
    seed: int = 0
    checkpoint: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(fraction, message)


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    label: str
    description: str
    generate: Callable[[Request], Motion]
    # A generator that needs a checkpoint falls back to the ONNX export of the shipped weights listed under its
    # name in weights/manifest.json when the request names none.
    needs_checkpoint: bool = False
    options: tuple[Option, ...] = ()
    # False for a generator that reads only the analysis: conducting to corrected beats then skips decoding the audio.
    needs_audio: bool = True


_generators: dict[str, GeneratorSpec] = {}


def _discover() -> dict[str, GeneratorSpec]:
    if not _generators:
        package = Path(__file__).parent
        for module in pkgutil.iter_modules([str(package)]):
            if module.name in ("registry",) or module.ispkg:
                continue
            spec = getattr(importlib.import_module(f"{__package__}.{module.name}"), "GENERATOR", None)
            if isinstance(spec, GeneratorSpec):
                _generators[spec.name] = spec
    return _generators


def names() -> list[str]:
    return sorted(_discover())


def get(name: str) -> GeneratorSpec:
    generators = _discover()
    if name not in generators:
        raise GeneratorError(f"Unknown generator {name!r}. Available: {', '.join(sorted(generators))}.")
    return generators[name]


def generate(name: str, request: Request) -> Motion:
    spec = get(name)
    if spec.needs_checkpoint and request.checkpoint is None:
        try:
            default = default_checkpoint(spec.name, onnx=True)
        except ValueError as exc:
            raise GeneratorError(str(exc)) from exc
        if default is None:
            raise GeneratorError(
                f"The {spec.label} generator needs a checkpoint: pass --checkpoint PATH (no project-trained "
                f"{spec.label} weights are installed)."
            )
        request = Request(**{**request.__dict__, "checkpoint": default})
    unknown = set(request.options) - {option.name for option in spec.options}
    if unknown:
        raise GeneratorError(f"{spec.label} has no option(s) {', '.join(sorted(unknown))}.")
    options = {option.name: option.default for option in spec.options} | request.options
    for option in spec.options:
        option.check(options[option.name])
    request = Request(**{**request.__dict__, "options": options})
    motion = spec.generate(request)
    motion.meta.update(generator=spec.name, seed=request.seed, duration=request.analysis.duration)
    if request.audio is not None:
        motion.meta.update(audio_file=request.audio.name, audio_sha256=request.audio.sha256)
    return motion
