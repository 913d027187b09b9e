"""The panel's settings, stored per scene."""

from __future__ import annotations

import math

import bpy

from ..core import keys
from ..core.analysis import METER_ALIASES, METER_NAMES, MusicHints
from ..core.beats_file import read_beats
from ..core.tracker import MAX_BPM
from ..generators import registry


def key_tolerance_deg(settings) -> float | None:
    """The tolerance sparse keys are reduced to, in degrees; None keys every frame."""
    return math.degrees(settings.key_tolerance) if settings.sparse_keys else None


_generator_items: list[tuple[str, str, str]] = []


def generator_items(_self, _context):
    # Blender keeps only pointers to these strings: the list must outlive the call. Generators that need no weights
    # come first, so a new scene defaults to one that works out of the box.
    if not _generator_items:
        specs = sorted((registry.get(n) for n in registry.names()), key=lambda s: (s.needs_checkpoint, s.name))
        _generator_items.extend((s.name, s.label, s.description) for s in specs)
    return _generator_items


# A scene that has not chosen a generator or smoothing shows the preferences' defaults. A choice is kept by name:
# the enum's values are positions in the list, which change when a generator is added.
def _get_generator(self) -> int:
    from .preferences import default_generator

    names = [item[0] for item in generator_items(self, None)]
    name = self.get("generator_name", default_generator())
    return names.index(name) if name in names else 0


def _set_generator(self, value: int) -> None:
    self["generator_name"] = generator_items(self, None)[value][0]


def _get_smoothing(self) -> float:
    from .preferences import default_smoothing

    return self.get("smoothing", default_smoothing())


def _set_smoothing(self, value: float) -> None:
    self["smoothing"] = value


def _meter_items() -> list[tuple[str, str, str, int]]:
    # Explicit numbers keep a saved choice if the list grows.
    items = [("AUTO", "Detect", "Find the meter in the music", 0)]
    for number, (name, (per_bar, subdivision)) in enumerate(METER_NAMES.items(), start=1):
        aliases = [alias for alias, meaning in METER_ALIASES.items() if meaning == name]
        division = "three" if subdivision == 3 else "two"
        description = f"{per_bar} beats to the bar, each divided in {division}"
        items.append((name, name, description + (f" (also {', '.join(aliases)})" if aliases else ""), number))
    return items


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


def _option_property(option: registry.Option):
    make = {int: bpy.props.IntProperty, float: bpy.props.FloatProperty, bool: bpy.props.BoolProperty}[option.type]
    limits = {key: value for key, value in (("min", option.minimum), ("max", option.maximum)) if value is not None}
    return make(name=option.name.replace("_", " ").title(), description=option.help, default=option.default,
                **{key: option.type(value) for key, value in limits.items()})


def option_key(generator: str, option: registry.Option) -> str:
    return f"{generator}_{option.name}"


# One property per option of every registered generator, built from the registry: a generator that declares an
# option gets it in the panel without touching the Blender layer.
GM_GeneratorOptions = type(
    "GM_GeneratorOptions",
    (bpy.types.PropertyGroup,),
    {"__annotations__": {option_key(name, option): _option_property(option)
                         for name in registry.names() for option in registry.get(name).options}},
)


def music_hints(settings) -> MusicHints:
    """The meter, tempo and beats file the user gave (Detect, 0 and empty leave them to detection; a beats file
    leaves the tempo unused); AnalysisError if out of range, BeatsFileError for a file that cannot be read."""
    beats = read_beats(bpy.path.abspath(settings.beats_path)) if settings.beats_path else None
    return MusicHints(meter=None if settings.meter == "AUTO" else settings.meter,
                      tempo_bpm=None if beats is not None else settings.tempo or None, beats=beats)


def generator_options(settings) -> dict:
    """The chosen generator's options as the registry takes them."""
    spec = registry.get(settings.generator)
    return {option.name: getattr(settings.options, option_key(spec.name, option)) for option in spec.options}


class GM_ConductorSettings(bpy.types.PropertyGroup):
    audio_path: bpy.props.StringProperty(
        name="Audio", description="Music to conduct (wav, flac, ogg, mp3)", subtype="FILE_PATH"
    )
    generator: bpy.props.EnumProperty(
        name="Generator", items=generator_items, get=_get_generator, set=_set_generator
    )
    checkpoint: bpy.props.StringProperty(
        name="Checkpoint", description="Weights for generators that need one: an ONNX bundle (.onnx.zip); empty "
        "uses the add-on's own weights", subtype="FILE_PATH"
    )
    options: bpy.props.PointerProperty(type=GM_GeneratorOptions)
    meter: bpy.props.EnumProperty(
        name="Meter", items=_meter_items(), default="AUTO",
        description="The music's meter: Detect finds it; choose one when the detected bars are wrong",
    )
    tempo: bpy.props.FloatProperty(
        name="Tempo", description="The beat's tempo in BPM, roughly, when the detected beat runs at double, half or "
        "another speed; 0 detects it", min=0.0, max=MAX_BPM, precision=0,
    )
    score_path: bpy.props.StringProperty(
        name="Score", subtype="FILE_PATH",
        description="The music's score (MusicXML or MIDI): aligned to the recording, it gives the bars as numbered "
        "there, meter and tempo changes, fermatas, dynamics and the entrances to cue; with no audio file the score "
        "is rendered and conducted",
    )
    beats_path: bpy.props.StringProperty(
        name="Beats File", subtype="FILE_PATH",
        description="Beats to conduct instead of detecting them: the JSON analyze --json writes, an Audacity label "
        "track, or text/CSV with a time in seconds per line (and bar numbers, or 1 on downbeats, in a second "
        "column); empty detects the beats",
    )
    seed: bpy.props.IntProperty(name="Seed", description="Different seeds give different performances", min=0)
    smoothing: bpy.props.FloatProperty(
        name="Smoothing", description="How much to smooth the motion before keying", min=0.0, max=1.0,
        subtype="FACTOR", get=_get_smoothing, set=_set_smoothing,
    )
    sparse_keys: bpy.props.BoolProperty(
        name="Sparse Keys", description="Key only where the motion needs it, as Bézier curves within the tolerance, "
        "and play them from an NLA track so that your own keys go on a layer above; off keys every frame",
    )
    key_tolerance: bpy.props.FloatProperty(
        name="Tolerance", description="How far any bone may stray from the generated motion between sparse keys",
        subtype="ANGLE", default=math.radians(keys.DEFAULT_TOLERANCE_DEG), min=math.radians(keys.MIN_TOLERANCE_DEG),
        max=math.radians(keys.MAX_TOLERANCE_DEG), precision=2,
    )
    armature: bpy.props.PointerProperty(
        name="Armature", description="Rig to animate; empty adds the bundled conductor", type=bpy.types.Object,
        poll=_is_armature,
    )
    last_result: bpy.props.StringProperty(name="Last Result", options={"SKIP_SAVE"})
