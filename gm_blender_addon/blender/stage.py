"""The stage around the bundled conductor: a podium, a music stand, and the orchestra's sections as empties with
their chairs (core.stage's seating plan), in the collection "GM Stage".

It is built once, the first time the bundled conductor is added to a scene; generating again leaves it as the user
left it, so that a section moved in the scene stays where it was put. Each section's empty carries the section's
name and instruments as custom properties (`gm_section`, `gm_instruments`): what looks and cues towards a section
read from the scene.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.stage import SeatingPlan, Section, default_plan

STAGE = "GM Stage"
FLOOR_Z = -0.22  # the podium's top is the floor the conductor stands on (z = 0)
PODIUM = (1.1, 1.1, 0.22)
STAND_DISTANCE = 0.8  # beyond the baton's reach (its tip comes about 0.65 m forward), so it never hides the hands
WOOD, SEAT, FLOOR = (0.18, 0.11, 0.07, 1.0), (0.32, 0.06, 0.06, 1.0), (0.09, 0.09, 0.1, 1.0)


def _boxes(boxes) -> tuple[list, list]:
    """(vertices, faces) of boxes given as (centre (3,), size (3,), turn about z in radians)."""
    corners = np.array([[x, y, z] for z in (-0.5, 0.5) for y in (-0.5, 0.5) for x in (-0.5, 0.5)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    vertices, faces = [], []
    for centre, size, turn in boxes:
        c, s = np.cos(turn), np.sin(turn)
        local = corners * np.asarray(size)
        rotated = local @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        base = len(vertices)
        vertices.extend((rotated + np.asarray(centre)).tolist())
        faces.extend(tuple(base + i for i in quad) for quad in quads)
    return vertices, faces


def _material(name: str, colour) -> bpy.types.Material:
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    material.diffuse_color = colour
    return material


def _mesh_object(collection, name: str, boxes, colour, location=(0.0, 0.0, 0.0)):
    mesh = bpy.data.meshes.new(name)
    vertices, faces = _boxes(boxes)
    mesh.from_pydata(vertices, [], faces)
    mesh.materials.append(_material(f"{STAGE} {name}", colour))
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    collection.objects.link(obj)
    return obj


def _chairs(seats: np.ndarray, centre: np.ndarray) -> list:
    """A seat and a back per chair, relative to the section's centre; the back on the side away from the podium."""
    boxes = []
    for seat in seats:
        outward = seat / max(np.linalg.norm(seat), 1e-9)
        turn = float(np.arctan2(outward[0], -outward[1]))
        boxes.append((seat - centre + np.array([0.0, 0.0, 0.45]), (0.45, 0.42, 0.05), turn))
        boxes.append((seat - centre + 0.2 * outward + np.array([0.0, 0.0, 0.62]), (0.45, 0.04, 0.35), turn))
    return boxes


def add_stage(scene, conductor, plan: SeatingPlan | None = None) -> bool:
    """Build the stage around `conductor` unless the scene has one; returns whether it was built."""
    existing = bpy.data.collections.get(STAGE)
    if existing is not None and scene.user_of_id(existing):
        return False
    plan = plan or default_plan()
    origin = np.array(conductor.matrix_world.translation)
    collection = bpy.data.collections.new(STAGE)
    scene.collection.children.link(collection)
    floor = origin + np.array([0.0, 0.0, FLOOR_Z])
    _mesh_object(collection, "GM Podium", [((0.0, 0.0, -0.5 * PODIUM[2]), PODIUM, 0.0)], WOOD, tuple(origin))
    # Low enough (desk top 0.95 m) that from the orchestra the hands, which beat above 1.1 m, stay in view.
    stand = [((0.0, 0.0, 0.0), (0.03, 0.03, 0.8), 0.0), ((0.0, 0.0, -0.39), (0.4, 0.4, 0.02), 0.0)]
    pole = _mesh_object(collection, "GM Music Stand", stand, WOOD,
                        tuple(origin + np.array([0.0, -STAND_DISTANCE, 0.4])))
    # The desk, tilted towards the conductor, as a child so the stand moves as one.
    desk = _mesh_object(collection, "GM Music Stand Desk", [((0.0, 0.0, 0.0), (0.5, 0.02, 0.3), 0.0)], WOOD,
                        (0.0, 0.0, 0.43))
    desk.rotation_euler = (np.radians(-35.0), 0.0, 0.0)
    desk.parent = pole
    radius = max(s.radius + s.rows * 1.0 for s in plan.sections) + 1.0
    ring = [((0.0, 0.0, -0.01), (2 * radius, 2 * radius, 0.02), 0.0)]
    _mesh_object(collection, "GM Stage Floor", ring, FLOOR, tuple(floor))
    for section in plan.sections:
        centre = section.centre()
        empty = bpy.data.objects.new(f"GM {section.name}", None)
        empty.empty_display_type = "SPHERE"
        empty.empty_display_size = 0.3
        empty.show_name = True
        empty.location = tuple(floor + centre)
        empty["gm_section"] = section.name
        empty["gm_instruments"] = ", ".join(section.instruments)
        collection.objects.link(empty)
        chairs = _mesh_object(collection, f"GM {section.name} Chairs", _chairs(section.seats(), centre), SEAT)
        chairs.parent = empty
    return True


def scene_plan(scene, conductor) -> SeatingPlan:
    """The seating plan as the scene has it: each section's empty where the user left it, seen from `conductor`
    (its angle, positive to the conductor's right, from the rig facing -Y); the default plan without a stage."""
    collection = bpy.data.collections.get(STAGE)
    if collection is None or not scene.user_of_id(collection):
        return default_plan()
    origin = np.array(conductor.matrix_world.translation) if conductor is not None else np.zeros(3)
    sections = []
    for obj in collection.objects:
        if "gm_section" not in obj:
            continue
        offset = np.array(obj.matrix_world.translation) - origin
        angle = float(np.degrees(np.arctan2(-offset[0], -offset[1])))
        words = tuple(w.strip() for w in str(obj.get("gm_instruments", "")).split(",") if w.strip())
        sections.append(Section(str(obj["gm_section"]), words, angle, 10.0, float(np.hypot(*offset[:2])), 1))
    return SeatingPlan(default_plan().name, tuple(sections)) if sections else default_plan()
