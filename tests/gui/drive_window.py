"""Runs inside a real Blender window (`blender --enable-event-simulate --python THIS -- OUT_DIR`) and uses the installed
extension as a person would, through simulated mouse and keyboard events (`Window.event_simulate`, as Blender's own
UI tests do): open the sidebar, switch to the Conductor tab, click Generate Conductor, watch the status bar, press
Ctrl+Z, click Generate again and press Esc, add a Rigify metarig and click the Rig Map's detect button, capture a
performer from a video, add them and compare, generate with sparse keys, then open the Gesture Vocabulary panel, load
its starter vocabulary and explain the conductor's motion, with nothing but the extension installed.

Buttons are found the way a person who cannot see would: the pointer is moved over the sidebar and Ctrl+C is pressed,
which over an operator's button copies its Python command. A screenshot of the whole X screen is taken at each step
(ImageMagick's `import`), and what each step found is written to OUT_DIR/results.json; tests/gui/test_real_blender.py
judges it. Anything unexpected ends Blender with the traceback in the results, never a hang.
"""

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import bpy

OUT = Path(sys.argv[sys.argv.index("--") + 1])
PERFORMER_VIDEO = Path(__file__).resolve().parents[1] / "fixtures" / "conductor_rig_25fps.mp4"
MODULE = "bl_ext.user_default.gesture_maestro"
STEP = 0.05  # seconds between simulated events, so that Blender handles and draws each one
GENERATION_TIMEOUT = 900.0

results = {"steps": []}
counts = {"conductor_panel": 0, "rig_map_panel": 0, "vocabulary_panel": 0, "viewport": 0, "ticks": []}


def record(step: str, **found) -> None:
    results["steps"].append(step)
    results[step] = found
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))


def screenshot(name: str) -> None:
    subprocess.run(["import", "-window", "root", str(OUT / f"{name}.png")], check=True, timeout=60)


def count_draws(panel_class, key: str) -> None:
    """Count the panel's draws (Blender draws a panel only when it is shown and open), and note whether a generation
    was running at the last one (the panel then shows its progress instead of the Generate button); its errors still
    surface."""
    draw = panel_class.draw

    def counted(self, context):
        counts[key] += 1
        counts[key + "_showed_progress"] = operators_module().GM_OT_generate.running is not None
        draw(self, context)

    panel_class.draw = counted


class Window:
    """The main window's 3D viewport and its sidebar, driven through simulated events."""

    def __init__(self):
        self.window = bpy.context.window_manager.windows[0]
        self.area = next(a for a in self.window.screen.areas if a.type == "VIEW_3D")

    def region(self, kind: str):
        return next(r for r in self.area.regions if r.type == kind)

    def viewport_centre(self) -> tuple[int, int]:
        view = self.region("WINDOW")
        return view.x + view.width // 3, view.y + view.height // 2

    def move(self, x: int, y: int):
        self.window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        yield STEP

    def key(self, key: str, at: tuple[int, int], **modifiers):
        """Press and release a key with the pointer at `at` (simulated events go where their coordinates say)."""
        yield from self.move(*at)
        self.window.event_simulate(type=key, value="PRESS", x=at[0], y=at[1], **modifiers)
        yield STEP
        self.window.event_simulate(type=key, value="RELEASE", x=at[0], y=at[1], **modifiers)
        yield STEP

    def click(self, x: int, y: int):
        yield from self.key("LEFTMOUSE", (x, y))

    def find_button(self, command: str, xs=None, ys=None, shift: bool = False):
        """Set `found` to the (x, y) of the sidebar button whose Python command is `command` (None if there is none),
        searched top to bottom with Ctrl+C, by default down the middle of the whole sidebar. With `shift`, Ctrl+Shift+C
        finds a property's field by its data path instead."""
        sidebar = self.region("UI")
        for x in xs or (sidebar.x + sidebar.width // 2,):
            for y in ys or range(sidebar.y + sidebar.height - 10, sidebar.y + 10, -8):
                bpy.context.window_manager.clipboard = ""
                yield from self.key("C", (x, y), ctrl=True, shift=shift)
                if bpy.context.window_manager.clipboard == command:
                    self.found = (x, y)
                    return
        self.found = None

    def scroll_sidebar(self, ticks: int):
        """Scroll the sidebar down (ticks > 0) or up, as the mouse wheel over it does."""
        sidebar = self.region("UI")
        at = (sidebar.x + sidebar.width // 2, sidebar.y + sidebar.height // 2)
        yield from self.move(*at)
        for _ in range(abs(ticks)):
            self.window.event_simulate(type="WHEELDOWNMOUSE" if ticks > 0 else "WHEELUPMOUSE", value="PRESS",
                                       x=at[0], y=at[1])
            yield STEP


def operators_module():
    return sys.modules[MODULE + ".blender.operators"]


def scene_state() -> dict:
    scene = bpy.context.scene
    return {
        "armatures": sorted(o.name for o in scene.objects if o.type == "ARMATURE"),
        "markers": len(scene.timeline_markers),
        "last_result": scene.gm_conductor.last_result,
        "audio": scene.gm_conductor.audio_path,
        "actions": sorted(a.name for a in bpy.data.actions),
    }


def wait_for_generation(samples: list, shot_at: float):
    """Yield until the running generation ends, sampling its progress and screenshotting it once past `shot_at` or,
    on the first run after installing (numba compiling for about 20 s, then the rest in under a second), once it
    has waited a few seconds at the same step."""
    started, shot = time.monotonic(), False
    while operators_module().GM_OT_generate.running is not None:
        job = operators_module().GM_OT_generate.running
        fraction, message = job.progress
        samples.append((round(time.monotonic() - started, 2), fraction, message, counts["viewport"]))
        if not shot and (fraction >= shot_at or time.monotonic() - started > 5.0):
            screenshot("02-generating")
            shot = True
        if time.monotonic() - started > GENERATION_TIMEOUT:
            raise TimeoutError(f"the generation did not end within {GENERATION_TIMEOUT:.0f} s: {samples[-3:]}")
        yield 0.25


def steps():
    window = Window()
    bpy.types.SpaceView3D.draw_handler_add(lambda: counts.__setitem__("viewport", counts["viewport"] + 1),
                                           (), "WINDOW", "POST_PIXEL")
    panels = sys.modules[MODULE + ".blender.panels"]
    count_draws(panels.GM_PT_conductor, "conductor_panel")
    count_draws(panels.GM_PT_rig_map, "rig_map_panel")
    count_draws(sys.modules[MODULE + ".blender.vocabulary_panels"].GM_PT_vocabulary, "vocabulary_panel")
    record("installed", enabled=MODULE in bpy.context.preferences.addons, blender=bpy.app.version_string,
           python=sys.version.split()[0])
    yield 1.0

    # The splash screen goes with Esc; N opens the sidebar; Ctrl+wheel over it steps through its tabs.
    yield from window.key("ESC", window.viewport_centre())
    yield from window.key("N", window.viewport_centre())
    yield 0.5
    sidebar = window.region("UI")
    tabs = []
    for _ in range(12):
        tabs.append(sidebar.active_panel_category)
        if sidebar.active_panel_category == "Conductor":
            break
        at = (sidebar.x + sidebar.width - 10, sidebar.y + sidebar.height // 2)
        yield from window.move(*at)
        window.window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", ctrl=True, x=at[0], y=at[1])
        yield 0.3
    yield 0.5
    screenshot("01-conductor-tab")
    record("conductor_tab", category=sidebar.active_panel_category, tabs_seen=tabs,
           panel_draws=counts["conductor_panel"], sidebar_width=sidebar.width)

    # Generate: the demo that the extension carries, onto the bundled conductor, with the pointer's own click.
    installed = Path(sys.modules[MODULE].__file__).parent
    bpy.context.scene.gm_conductor.audio_path = str(installed / "data" / "demo" / "demo.ogg")
    bpy.ops.ed.undo_push(message="Audio File")  # as editing the field in the panel does
    yield from window.find_button("bpy.ops.gm.generate()")
    generate_at = window.found
    if generate_at is None:
        raise LookupError("no Generate Conductor button in the sidebar")
    before = scene_state()
    draws_before, ticks_before = counts["viewport"], len(counts["ticks"])
    started = time.monotonic()
    yield from window.click(*generate_at)
    samples = []
    yield from wait_for_generation(samples, shot_at=0.2)
    seconds = time.monotonic() - started
    # How long Blender's main thread went without running this script's timer while the job ran (it asks every 0.25 s).
    ticks = counts["ticks"][ticks_before:]
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    yield 0.5
    screenshot("03-generated")
    record("generate", button=generate_at, before=before, after=scene_state(), seconds=round(seconds, 1),
           progress=samples, viewport_draws=counts["viewport"] - draws_before,
           longest_tick_gap=round(max(gaps, default=0.0), 2))

    # One Ctrl+Z over the viewport undoes the whole generation.
    yield from window.key("Z", window.viewport_centre(), ctrl=True)
    yield 1.0
    screenshot("04-undone")
    record("undo", after=scene_state())

    # Generate again, with the slower Diffusion generator, and press Esc while it runs.
    bpy.context.scene.gm_conductor.generator = "diffusion"
    bpy.ops.ed.undo_push(message="Generator")
    yield from window.find_button("bpy.ops.gm.generate()")
    if window.found is None:
        raise LookupError("no Generate Conductor button after the undo")
    yield from window.click(*window.found)
    waited = time.monotonic()
    while operators_module().GM_OT_generate.running is not None and time.monotonic() - waited < 60:
        if operators_module().GM_OT_generate.running.progress[0] > 0.02:
            break
        yield 0.25
    job = operators_module().GM_OT_generate.running
    running_before_esc = job is not None
    progress_before_esc = job.progress if job else None
    screenshot("05-running-before-esc")
    yield from window.key("ESC", window.viewport_centre())
    yield 1.0
    # The pointer stays still over the viewport: whether the panel shows the Generate button again is up to the
    # add-on, not to hovering.
    redrawn_after_esc = not counts["conductor_panel_showed_progress"]
    if job is not None:
        job.wait(120)  # the worker stops at its next progress report
    yield 1.0
    screenshot("06-cancelled")
    record("cancel", running_before_esc=running_before_esc, progress_before_esc=progress_before_esc,
           running_after_esc=operators_module().GM_OT_generate.running is not None,
           panel_redrawn_after_esc=redrawn_after_esc, after=scene_state())

    # A Rigify metarig, added as from Add › Armature, made active; the Rig Map panel opened from its header; its
    # detect button clicked.
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    view = window.region("WINDOW")
    with bpy.context.temp_override(window=window.window, area=window.area, region=view):
        bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.view_layer.objects.active
    yield 0.5
    yield from window.find_button("bpy.ops.gm.generate()")
    rig_map_header = None
    for offset in range(24, 80, 6):  # below the button (about 20 pixels high), never on it
        if counts["rig_map_panel"]:
            break
        rig_map_header = (sidebar.x + 40, window.found[1] - offset)
        yield from window.click(*rig_map_header)
        yield 0.2
    # The detect button sits at the right of the first row under the header.
    yield from window.find_button("bpy.ops.gm.rig_map_detect()",
                                  xs=range(sidebar.x + sidebar.width - 30, sidebar.x + sidebar.width // 2, -20),
                                  ys=range(rig_map_header[1] - 12, rig_map_header[1] - 60, -6))
    detect_at = window.found
    if detect_at is not None:
        yield from window.click(*detect_at)
        yield 0.5
    yield from window.move(*window.viewport_centre())
    yield 0.5
    screenshot("07-rig-map")
    rig_map = metarig.gm_rig_map
    record("rig_map", armature=metarig.name, panel_opened=counts["rig_map_panel"] > 0, header=rig_map_header,
           detect_button=detect_at, map=rig_map.name, parts=len(rig_map.bones))
    yield from window.click(*rig_map_header)  # closed again, so that the capture panel fits in the sidebar

    # Capture a performer from a video, add them beside the conductor, and compare, with the capture panel's buttons.
    capture = bpy.context.scene.gm_capture
    bpy.context.scene.gm_conductor.generator = "procedural"
    capture.video_path, capture.output_dir = str(PERFORMER_VIDEO), str(OUT / "compare")
    bpy.ops.ed.undo_push(message="Capture Settings")
    found = {}
    # The conductor's panel and the capture panel together are taller than the window: scroll, as a user would.
    yield from window.scroll_sidebar(8)
    for step, command, busy, picture in (("capture", "bpy.ops.gm.capture_video()", "running", "08-captured"),
                                         ("add_performer", "bpy.ops.gm.add_performer()", None, "09-performer-added"),
                                         ("compare", "bpy.ops.gm.compare_performer()", "comparing", "10-compared")):
        yield from window.find_button(command)
        if window.found is None:
            raise LookupError(f"no button for {command} in the sidebar")
        found[step] = window.found
        yield from window.click(*window.found)
        waited = time.monotonic()
        yield 0.5
        while busy and getattr(bpy.context.scene.gm_capture, busy) and time.monotonic() - waited < GENERATION_TIMEOUT:
            yield 0.25
        found[step + "_seconds"] = round(time.monotonic() - waited, 1)
        found[step + "_status"] = bpy.context.scene.gm_capture.status
        yield 1.0
        screenshot(picture)
    capture = bpy.context.scene.gm_capture
    keypoints = Path(bpy.path.abspath(capture.keypoints_path)) if capture.keypoints_path else None
    record("capture_and_compare", **found, keypoints=str(keypoints),
           keypoints_written=bool(keypoints and keypoints.is_file()),
           performer="Performer" in bpy.data.objects, metrics=capture.metrics.splitlines(),
           files=sorted(p.name for p in (OUT / "compare").glob("*")))

    # Sparse keys: the panel's checkbox ticked with the pointer, then Generate Conductor.
    yield from window.scroll_sidebar(-20)
    yield from window.find_button("gm_conductor.sparse_keys", shift=True)
    checkbox = window.found
    if checkbox is None:
        raise LookupError("no Sparse Keys checkbox in the sidebar")
    yield from window.click(*checkbox)
    yield 0.5
    yield from window.find_button("bpy.ops.gm.generate()")
    if window.found is None:
        raise LookupError("no Generate Conductor button with Sparse Keys ticked")
    yield from window.click(*window.found)
    yield 0.5
    yield from wait_for_generation([], shot_at=2.0)
    yield 1.0
    screenshot("11-sparse-keys")
    conductor = bpy.context.scene.gm_conductor.armature
    animation = conductor.animation_data if conductor is not None else None
    tracks = {t.name: [s.action.name for s in t.strips] for t in animation.nla_tracks} if animation else {}
    record("sparse_keys", checkbox=checkbox, ticked=bpy.context.scene.gm_conductor.sparse_keys,
           last_result=bpy.context.scene.gm_conductor.last_result,
           active_action=animation.action.name if animation and animation.action else None, tracks=tracks,
           blend=animation.action_blend_type if animation else None)

    # The Gesture Vocabulary panel, the last in the tab and closed: opened from its header at the bottom of the
    # sidebar, its starter vocabulary loaded and the conductor's motion explained, with its buttons.
    bpy.context.view_layer.objects.active = conductor
    yield from window.scroll_sidebar(30)
    header = None
    for y in range(sidebar.y + 14, sidebar.y + sidebar.height // 2, 6):  # from the bottom up, below any button
        if counts["vocabulary_panel"]:
            break
        header = (sidebar.x + 40, y)
        yield from window.click(*header)
        yield 0.2
    yield from window.scroll_sidebar(30)  # the panel opened downwards, out of sight
    clicked = {}
    for command in ("bpy.ops.gm.vocabulary_starter()", "bpy.ops.gm.vocabulary_explain()"):
        yield from window.find_button(command)
        clicked[command] = window.found
        if window.found is not None:
            yield from window.click(*window.found)
            yield 1.0
            yield from window.scroll_sidebar(30)  # the loaded gestures push the rest of the panel down
    yield from window.move(*window.viewport_centre())
    yield 0.5
    screenshot("12-vocabulary")
    group = bpy.context.scene.get(sys.modules[MODULE + ".blender.vocabulary_operators"].VOCABULARY)
    record("vocabulary", panel_opened=counts["vocabulary_panel"] > 0, header=header, buttons=clicked,
           trained=bool(group is not None and "model" in json.loads(str(group["record_json"]))),
           explained=sorted(m.name for m in bpy.context.scene.timeline_markers if m.name.startswith("≈ ")))


def run():
    """Advance the steps from a timer: each `yield` hands control back to Blender for that many seconds."""
    sequence = steps()

    def tick():
        counts["ticks"].append(time.monotonic())
        try:
            return next(sequence)
        except StopIteration:
            results["finished"] = True
        except Exception:
            results["error"] = traceback.format_exc()
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(tick, first_interval=2.0)


run()
