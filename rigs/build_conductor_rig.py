"""Build rigs/conductor_rig.blend, the conductor mannequin bundled with Gesture Maestro.

Run it with the oldest Blender the add-on supports, so that every supported version can read the file (a .blend
saved by 5.0 has a header 4.2 cannot read); tests/run_blender_versions.sh sets up that bpy-as-a-module venv:

    .venv-bpy42/bin/python rigs/build_conductor_rig.py

The build starts from factory settings, so the saved file depends on this script
alone. Bump RIG_VERSION whenever the output changes: the tests compare it with the
version stored in the .blend to catch a file that was not rebuilt.

Conventions: metres, Z up, the conductor faces -Y, so their left side is +X.
Bone names follow the Rigify human metarig so users' rig maps stay familiar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy

# With bpy as a Python module, bmesh and mathutils only become importable once bpy is loaded.
import bmesh  # isort: skip
from mathutils import Matrix, Vector  # isort: skip

RIG_VERSION = 2
OUTPUT = Path(__file__).resolve().with_name("conductor_rig.blend")

FORWARD = Vector((0.0, -1.0, 0.0))
UP = Vector((0.0, 0.0, 1.0))
MIRROR_X = Matrix.Scale(-1.0, 4, (1.0, 0.0, 0.0))

# --------------------------------------------------------------------------- skeleton

HIPS = Vector((0.0, 0.020, 0.950))
# Tails of the connected spine chain, starting from HIPS; a slight S-curve in Y.
SPINE_TAILS = (
    ("spine", (0.0, 0.030, 1.060)),
    ("spine.001", (0.0, 0.030, 1.170)),
    ("spine.002", (0.0, 0.020, 1.280)),
    ("spine.003", (0.0, 0.010, 1.440)),  # chest
    ("spine.004", (0.0, 0.000, 1.500)),  # neck
    ("spine.005", (0.0, -0.005, 1.555)),  # upper neck
    ("spine.006", (0.0, -0.005, 1.755)),  # head, tail at the crown
)

SHOULDER_HEAD = Vector((0.020, 0.000, 1.420))
SHOULDER_TAIL = Vector((0.170, 0.020, 1.410))
UPPER_ARM_HEAD = Vector((0.190, 0.020, 1.400))
# Relaxed A-pose: (name, length, degrees below horizontal, degrees towards the front).
# The forearm turns further forward than the upper arm, which gives the elbow bend.
ARM = (
    ("upper_arm.L", 0.28, 40.0, 5.0),
    ("forearm.L", 0.26, 45.0, 20.0),
    ("hand.L", 0.09, 50.0, 20.0),
)

# Fingers in the left hand bone's frame (+Y along the hand, +X to the palm side, +Z to the thumb): each finger's
# knuckle, its three bones' lengths and its direction at the knuckle. The bones of a relaxed hand curve a little
# towards the palm, FINGER_CURVE more at each joint.
FINGERS = (
    ("thumb", (0.012, 0.012, 0.022), (0.040, 0.032, 0.027), (0.45, 0.75, 0.50)),
    ("f_index", (0.004, 0.084, 0.026), (0.040, 0.024, 0.020), (0.0, 1.0, 0.06)),
    ("f_middle", (0.004, 0.087, 0.008), (0.045, 0.028, 0.021), (0.0, 1.0, 0.0)),
    ("f_ring", (0.004, 0.084, -0.010), (0.042, 0.026, 0.020), (0.0, 1.0, -0.06)),
    ("f_pinky", (0.004, 0.077, -0.027), (0.032, 0.020, 0.018), (0.0, 1.0, -0.14)),
)
FINGER_CURVE = 0.12
FINGER_RADIUS = {"thumb": 0.0105, "f_index": 0.0085, "f_middle": 0.009, "f_ring": 0.0085, "f_pinky": 0.0075}

# Leg joints; the knee sits a little forward so the knee bends the right way.
LEG = (
    ("thigh.L", (0.095, 0.010, 0.930), (0.095, -0.005, 0.510)),
    ("shin.L", (0.095, -0.005, 0.510), (0.095, 0.025, 0.090)),
    ("foot.L", (0.095, 0.025, 0.090), (0.095, -0.085, 0.025)),
    ("toe.L", (0.095, -0.085, 0.025), (0.095, -0.155, 0.025)),
)


@dataclass(frozen=True)
class BoneSpec:
    head: Vector
    tail: Vector
    parent: str | None
    connect: bool
    z_hint: Vector  # where the bone's local Z axis should face; this sets the roll


def arm_direction(down_deg: float, forward_deg: float) -> Vector:
    down, forward = math.radians(down_deg), math.radians(forward_deg)
    horizontal = math.cos(forward)
    return Vector((math.cos(down) * horizontal, -math.sin(forward), -math.sin(down) * horizontal))


def mirror_name(name: str) -> str:
    return name[:-2] + ".R" if name.endswith(".L") else name


def mirror_point(point: Vector) -> Vector:
    return Vector((-point.x, point.y, point.z))


def bone_layout() -> dict[str, BoneSpec]:
    bones: dict[str, BoneSpec] = {}

    head, parent = HIPS, None
    for name, tail in SPINE_TAILS:
        bones[name] = BoneSpec(head, Vector(tail), parent, parent is not None, FORWARD)
        head, parent = Vector(tail), name

    left: dict[str, BoneSpec] = {
        "shoulder.L": BoneSpec(SHOULDER_HEAD, SHOULDER_TAIL, "spine.003", False, FORWARD),
    }
    joint, parent, connect = UPPER_ARM_HEAD, "shoulder.L", False
    for name, length, down, forward in ARM:
        tail = joint + length * arm_direction(down, forward)
        left[name] = BoneSpec(joint, tail, parent, connect, FORWARD)
        joint, parent, connect = tail, name, True

    hand = frame(left["hand.L"].head, left["hand.L"].tail - left["hand.L"].head, FORWARD)
    back_of_hand = -hand.col[0].to_3d()
    for finger, knuckle, lengths, direction in FINGERS:
        joint, parent, connect = hand @ Vector(knuckle), "hand.L", False
        for number, length in enumerate(lengths, start=1):
            local = Vector(direction).normalized() + FINGER_CURVE * number * Vector((1.0, 0.0, 0.0))
            tail = joint + length * (hand.to_3x3() @ local.normalized())
            name = f"{finger}.{number:02d}.L"
            left[name] = BoneSpec(joint, tail, parent, connect, back_of_hand)
            joint, parent, connect = tail, name, True

    parent, connect = "spine", False
    for name, head, tail in LEG:
        # Feet point forward, so "up" is the meaningful roll reference for them.
        hint = UP if name.startswith(("foot", "toe")) else FORWARD
        left[name] = BoneSpec(Vector(head), Vector(tail), parent, connect, hint)
        parent, connect = name, True

    bones.update(left)
    for name, spec in left.items():
        bones[mirror_name(name)] = BoneSpec(
            mirror_point(spec.head),
            mirror_point(spec.tail),
            mirror_name(spec.parent),
            spec.connect,
            spec.z_hint,
        )
    return bones


def build_armature(collection: bpy.types.Collection, layout: dict[str, BoneSpec]) -> bpy.types.Object:
    data = bpy.data.armatures.new("Conductor")
    data.display_type = "OCTAHEDRAL"
    obj = bpy.data.objects.new("Conductor", data)
    obj.show_in_front = True
    collection.objects.link(obj)

    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for name, spec in layout.items():
        bone = data.edit_bones.new(name)
        bone.head, bone.tail = spec.head, spec.tail
        bone.align_roll(spec.z_hint)
    for name, spec in layout.items():
        if spec.parent:
            bone = data.edit_bones[name]
            bone.parent = data.edit_bones[spec.parent]
            bone.use_connect = spec.connect
    bpy.ops.object.mode_set(mode="OBJECT")

    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    obj["gm_rig"] = "bundled"
    obj["gm_rig_version"] = RIG_VERSION
    return obj


# --------------------------------------------------------------------------- geometry


def frame(origin, y_axis, z_hint) -> Matrix:
    """Right-handed frame with Y along y_axis and Z as close to z_hint as allowed (bone convention)."""
    y = Vector(y_axis).normalized()
    hint = Vector(z_hint)
    z = (hint - hint.project(y)).normalized()
    matrix = Matrix((y.cross(z), y, z)).transposed().to_4x4()
    matrix.translation = origin
    return matrix


def upright(origin=(0.0, 0.0, 0.0)) -> Matrix:
    """Frame with local Y world up and local Z the conductor's front.

    Ring tuples in it read (height, half width, half depth).
    """
    return frame(origin, UP, FORWARD)


def bone_frame(spec: BoneSpec) -> Matrix:
    return frame(spec.head, spec.tail - spec.head, spec.z_hint)


# Profiles are sequences of rings (t, rx, rz[, dx, dz]): a ring at distance t along the
# local Y axis, an ellipse with half axes rx (local X) and rz (local Z), centred at
# (dx, dz). A ring with zero radii is a pole that closes the surface.


def capsule(length: float, r0: float, r1: float, steps: int = 6) -> list[tuple]:
    rings = []
    for i in range(steps + 1):
        a = 0.5 * math.pi * i / steps
        rings.append((-r0 * math.cos(a), r0 * math.sin(a), r0 * math.sin(a)))
    for i in range(steps + 1):
        a = 0.5 * math.pi * i / steps
        rings.append((length + r1 * math.sin(a), r1 * math.cos(a), r1 * math.cos(a)))
    return rings


def tube(start: float, end: float, r0: float, r1: float) -> list[tuple]:
    """A cylinder with lightly bevelled flat ends, like a sleeve or a trouser leg."""
    bevel = 0.15 * min(r0, r1)
    return [
        (start, 0.0, 0.0),
        (start, 0.8 * r0, 0.8 * r0),
        (start + bevel, r0, r0),
        (end - bevel, r1, r1),
        (end, 0.8 * r1, 0.8 * r1),
        (end, 0.0, 0.0),
    ]


def resample(rings, step: float) -> list[tuple]:
    """Rings at most `step` apart on a smooth curve through the given ones (strictly increasing t).

    Cubic Hermite interpolation over t with Catmull-Rom slopes: straight interpolation
    would leave visible shading creases at the original rings.
    """
    ts = [ring[0] for ring in rings]

    def slope(i: int) -> list[float]:
        lo, hi = max(i - 1, 0), min(i + 1, len(rings) - 1)
        return [(b - a) / (ts[hi] - ts[lo]) for a, b in zip(rings[lo], rings[hi])]

    out = [rings[0]]
    for i in range(len(rings) - 1):
        span = ts[i + 1] - ts[i]
        m0, m1 = slope(i), slope(i + 1)
        count = math.ceil(span / step)
        for k in range(1, count + 1):
            s = k / count
            h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
            h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
            out.append(
                tuple(
                    h00 * p0 + h10 * span * d0 + h01 * p1 + h11 * span * d1
                    for p0, p1, d0, d1 in zip(rings[i], rings[i + 1], m0, m1)
                )
            )
    return out


def ring_at(rings, t: float) -> tuple:
    """The ring a lofted profile passes through at t (profiles are linear between rings)."""
    for r0, r1 in zip(rings, rings[1:]):
        if r0[0] <= t <= r1[0] and r1[0] > r0[0]:
            f = (t - r0[0]) / (r1[0] - r0[0])
            return tuple(a + (b - a) * f for a, b in zip(r0, r1))
    raise ValueError(f"t={t} is outside the profile")


def ellipsoid(rx: float, ry: float, rz: float, steps: int = 10) -> list[tuple]:
    return [
        (-ry * math.cos(a), rx * math.sin(a), rz * math.sin(a))
        for a in (math.pi * i / steps for i in range(steps + 1))
    ]


class MeshBuilder:
    """Accumulates closed lofted parts in one bmesh, with materials and bone weights.

    While `mirrored` is set, parts land on the conductor's right: positions are
    reflected through X = 0 and ".L" bone names become ".R".
    """

    def __init__(self, materials: list[bpy.types.Material], groups: Sequence[str] = ()):
        self.bm = bmesh.new()
        self.materials = materials
        self.groups = {name: i for i, name in enumerate(groups)}
        self.deform = self.bm.verts.layers.deform.verify() if groups else None
        self.mirrored = False

    def loft(self, matrix: Matrix, rings, material, weights=None, segments: int = 24):
        """Skin elliptical rings (see Profiles above) into a closed surface."""
        angles = [2.0 * math.pi * i / segments for i in range(segments)]
        loops = []
        for t, rx, rz, *offset in rings:
            dx, dz = offset or (0.0, 0.0)
            if rx < 1e-9 and rz < 1e-9:
                loops.append([Vector((dx, t, dz))])
            else:
                loops.append([Vector((dx + rx * math.cos(a), t, dz + rz * math.sin(a))) for a in angles])
        self.loft_points(matrix, loops, material, weights)

    def loft_points(self, matrix: Matrix, loops, material, weights=None):
        """Skin loops of local points, all of one length except single-point poles, into a surface.

        `material` is a material name or a function from a face centre in the loft's local
        frame to one; `weights` is a bone name or a function from a (left side) world
        position to {bone: weight}.
        """
        if self.mirrored:
            matrix = MIRROR_X @ matrix
        loops = [[(p, self._vertex(matrix @ p, weights)) for p in points] for points in loops]
        segments = max(len(loop) for loop in loops)
        for a, b in zip(loops, loops[1:]):
            for i in range(segments):
                j = (i + 1) % segments
                quad = (a[i % len(a)], a[j % len(a)], b[j % len(b)], b[i % len(b)])
                corners = {vert: p for p, vert in quad}  # poles collapse quads to triangles
                face = self.bm.faces.new(corners)
                centre = sum(corners.values(), Vector()) / len(corners)
                name = material(centre) if callable(material) else material
                face.material_index = self.materials.index(bpy.data.materials[name])
                face.smooth = True

    def blob(self, matrix: Matrix, centre, radii, material: str, weights=None, segments: int = 16):
        """Ellipsoid with half axes `radii` along the local X, Y, Z of `matrix`, centred at local `centre`."""
        rx, ry, rz = radii
        self.loft(matrix @ Matrix.Translation(centre), ellipsoid(rx, ry, rz), material, weights, segments)

    def _vertex(self, co: Vector, weights):
        vert = self.bm.verts.new(co)
        if self.deform is None:
            return vert
        source = mirror_point(co) if self.mirrored else co
        table = weights(source) if callable(weights) else {weights: 1.0}
        for bone, weight in table.items():
            if weight > 0.0:
                name = mirror_name(bone) if self.mirrored else bone
                vert[self.deform][self.groups[name]] = weight
        return vert

    def both_sides(self, build, *args):
        for mirrored in (False, True):
            self.mirrored = mirrored
            build(self, *args)
        self.mirrored = False

    def to_mesh(self, mesh: bpy.types.Mesh) -> None:
        # Every part is a closed surface, so normals can simply be made consistent afterwards.
        bmesh.ops.recalc_face_normals(self.bm, faces=self.bm.faces)
        self.bm.to_mesh(mesh)
        self.bm.free()
        for material in self.materials:
            mesh.materials.append(material)


# --------------------------------------------------------------------------- materials

# Linear RGB. Workbench in MATERIAL colour mode reads diffuse_color, other engines the BSDF.
MATERIALS = {
    "Conductor_Suit": ((0.022, 0.024, 0.032), 0.55),
    "Conductor_Shirt": ((0.85, 0.85, 0.82), 0.6),
    "Conductor_Skin": ((0.70, 0.42, 0.30), 0.5),
    "Conductor_Hair": ((0.045, 0.028, 0.018), 0.6),
    "Conductor_Black": ((0.012, 0.010, 0.010), 0.2),
    "Conductor_EyeWhite": ((0.80, 0.80, 0.78), 0.2),
    "Conductor_Lips": ((0.42, 0.16, 0.13), 0.45),
    "Conductor_Shoes": ((0.008, 0.008, 0.008), 0.25),
    "Conductor_Baton": ((0.88, 0.87, 0.82), 0.3),
    "Conductor_Cork": ((0.40, 0.22, 0.10), 0.7),
}


def build_materials() -> None:
    for name, (colour, roughness) in MATERIALS.items():
        material = bpy.data.materials.new(name)
        material.diffuse_color = (*colour, 1.0)
        material.roughness = roughness
        if material.node_tree is None:  # 4.x makes materials without nodes; 5.0 always gives them a tree
            material.use_nodes = True
        bsdf = material.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = roughness


def lookup_materials(*names: str) -> list[bpy.types.Material]:
    return [bpy.data.materials[name] for name in names]


# --------------------------------------------------------------------------- body parts


def blend_along(knots):
    """Weights that fade linearly between bones placed at heights `knots` [(z, bone), ...]."""

    def weights(co: Vector) -> dict[str, float]:
        if co.z <= knots[0][0]:
            return {knots[0][1]: 1.0}
        for (z0, b0), (z1, b1) in zip(knots, knots[1:]):
            if co.z <= z1:
                f = (co.z - z0) / (z1 - z0)
                return {b0: 1.0 - f, b1: f}
        return {knots[-1][1]: 1.0}

    return weights


TORSO_WEIGHTS = blend_along([(0.96, "spine"), (1.11, "spine.001"), (1.23, "spine.002"), (1.36, "spine.003")])
NECK_WEIGHTS = blend_along([(1.47, "spine.004"), (1.53, "spine.005")])

# Jacket cross-sections (height, half width, half depth, 0, forward offset); the chest sits forward.
JACKET = (
    (0.770, 0.0, 0.0, 0.0, 0.0),
    (0.775, 0.175, 0.110, 0.0, 0.0),
    (0.800, 0.178, 0.115, 0.0, 0.0),
    (0.900, 0.178, 0.114, 0.0, 0.0),
    (0.960, 0.174, 0.112, 0.0, 0.0),
    (1.050, 0.162, 0.106, 0.0, 0.0),
    (1.150, 0.163, 0.112, 0.0, 0.005),
    (1.250, 0.178, 0.120, 0.0, 0.010),
    (1.340, 0.188, 0.118, 0.0, 0.010),
    (1.395, 0.190, 0.105, 0.0, 0.005),
    (1.430, 0.170, 0.085, 0.0, 0.000),
    (1.455, 0.120, 0.065, 0.0, 0.000),
    (1.470, 0.070, 0.050, 0.0, 0.000),
    (1.475, 0.0, 0.0, 0.0, 0.000),
)


def jacket_rings() -> list[tuple]:
    return resample(JACKET, 0.01)


# The white shirt showing in the jacket's V opening: (height, half width) at its point and top.
SHIRT_V = ((1.20, 0.0), (1.45, 0.066))


def shirt_front_loops(step: float = 0.005, arc_points: int = 8) -> list[list[Vector]]:
    """A thin shell hugging the jacket front inside the V, so its edges stay crisp.

    Each cross-section follows the jacket's own ellipse between the V edges, once just
    outside the jacket and once just inside, which closes it into a slim solid.
    """
    (bottom, _), (top, top_width) = SHIRT_V
    proud, depth = 0.003, 0.006
    jacket = jacket_rings()
    _, _, rz, _, dz = ring_at(jacket, bottom)
    loops = [[Vector((0.0, bottom, dz + rz))]]
    count = math.ceil((top - bottom) / step)
    for k in range(1, count + 1):
        t = bottom + (top - bottom) * k / count
        half_width = top_width * (t - bottom) / (top - bottom)
        _, rx, rz, _, dz = ring_at(jacket, t)
        edge = math.acos(half_width / rx)
        arc = [edge + (math.pi - 2.0 * edge) * i / (arc_points - 1) for i in range(arc_points)]
        outer = [Vector(((rx + proud) * math.cos(a), t, dz + (rz + proud) * math.sin(a))) for a in arc]
        inner = [
            Vector(((rx - depth) * math.cos(a), t, dz + (rz - depth) * math.sin(a))) for a in reversed(arc)
        ]
        loops.append(outer + inner)
    loops.append([sum(loops[-1], Vector()) / len(loops[-1])])
    return loops


# One wing of the bow tie, growing sideways from the knot: (t, half height, half depth).
BOW_TIE_KNOT = Vector((0.0, -0.066, 1.455))
BOW_TIE_WING = (
    (-0.001, 0.0, 0.0),
    (0.000, 0.008, 0.007),
    (0.008, 0.007, 0.006),
    (0.030, 0.017, 0.007),
    (0.038, 0.016, 0.006),
    (0.040, 0.0, 0.0),
)

# Head cross-sections: a narrower jaw and a chin that leads the face.
HEAD = (
    (1.528, 0.0, 0.0, 0.0, 0.030),
    (1.532, 0.030, 0.035, 0.0, 0.033),
    (1.548, 0.052, 0.062, 0.0, 0.026),
    (1.575, 0.065, 0.080, 0.0, 0.016),
    (1.600, 0.069, 0.088, 0.0, 0.010),
    (1.630, 0.075, 0.096, 0.0, 0.003),
    (1.660, 0.078, 0.098, 0.0, 0.000),
    (1.690, 0.077, 0.097, 0.0, -0.002),
    (1.720, 0.070, 0.088, 0.0, -0.004),
    (1.740, 0.056, 0.070, 0.0, -0.005),
    (1.755, 0.030, 0.040, 0.0, -0.005),
    (1.760, 0.0, 0.0, 0.0, -0.005),
)

# Hair covers the head above a tilted line, high over the forehead and low at the nape.
# The forehead part is level, so it follows the head's rings instead of stepping across them.
HAIRLINE_HEIGHT = 1.650  # above the ears
HAIRLINE_SLOPE = 0.55  # rise per metre towards the face
HAIRLINE_FOREHEAD = 1.697


def head_material(centre: Vector) -> str:
    hairline = min(HAIRLINE_HEIGHT + HAIRLINE_SLOPE * centre.z, HAIRLINE_FOREHEAD)
    return "Conductor_Hair" if centre.y > hairline else "Conductor_Skin"


# Face details as ellipsoids in the head's upright frame: (material, (x, height, forward), half axes).
FACE = (
    ("Conductor_Skin", (0.0, 1.625, 0.100), (0.013, 0.025, 0.018)),  # nose
    ("Conductor_Lips", (0.0, 1.585, 0.092), (0.022, 0.006, 0.008)),  # mouth
)
FACE_PAIRED = (
    ("Conductor_EyeWhite", (0.031, 1.655, 0.085), (0.013, 0.008, 0.008)),
    ("Conductor_Black", (0.031, 1.655, 0.091), (0.006, 0.006, 0.004)),  # iris
    ("Conductor_Hair", (0.032, 1.678, 0.086), (0.020, 0.005, 0.008)),  # eyebrow
    ("Conductor_Skin", (0.076, 1.635, -0.005), (0.015, 0.030, 0.020)),  # ear
)

# The palm in the hand bone's frame: +Y towards the fingers, +X out of the palm, +Z to the thumb (see FINGERS).
PALM = (
    (-0.012, 0.0, 0.0, 0.0, 0.0),
    (0.000, 0.018, 0.028, 0.0, 0.0),
    (0.035, 0.020, 0.040, 0.0, 0.0),
    (0.070, 0.018, 0.041, 0.0, 0.0),
    (0.086, 0.014, 0.039, 0.002, 0.0),
    (0.095, 0.008, 0.030, 0.003, 0.0),
    (0.098, 0.0, 0.0, 0.003, 0.0),
)

# Shoe in a frame on the ground under the heel, +Y forward, +Z up:
# (t, half width, half height, 0, centre height).
SHOE_HEEL = Vector((0.095, 0.070, 0.0))
SHOE = (
    (0.000, 0.0, 0.0, 0.0, 0.045),
    (0.005, 0.030, 0.035, 0.0, 0.045),
    (0.030, 0.040, 0.055, 0.0, 0.060),
    (0.070, 0.045, 0.055, 0.0, 0.058),
    (0.120, 0.050, 0.045, 0.0, 0.045),
    (0.170, 0.052, 0.035, 0.0, 0.035),
    (0.220, 0.048, 0.028, 0.0, 0.028),
    (0.260, 0.035, 0.022, 0.0, 0.022),
    (0.280, 0.0, 0.0, 0.0, 0.020),
)


def build_trunk(b: MeshBuilder) -> None:
    b.loft(upright((0.0, 0.020, 0.0)), jacket_rings(), "Conductor_Suit", TORSO_WEIGHTS, segments=32)
    # Same weights as the jacket underneath, so the two bend together.
    b.loft_points(upright((0.0, 0.020, 0.0)), shirt_front_loops(), "Conductor_Shirt", TORSO_WEIGHTS)
    b.loft(upright((0.0, 0.005, 0.0)), tube(1.43, 1.505, 0.066, 0.063), "Conductor_Shirt", "spine.003")
    b.both_sides(build_bow_tie)

    neck_base = Vector((0.0, 0.005, 1.42))
    neck_top = Vector((0.0, -0.005, 1.57))
    neck = frame(neck_base, neck_top - neck_base, FORWARD)
    b.loft(neck, capsule((neck_top - neck_base).length, 0.057, 0.054), "Conductor_Skin", NECK_WEIGHTS)


def build_bow_tie(b: MeshBuilder) -> None:
    sideways = frame(BOW_TIE_KNOT, (1.0, 0.0, 0.0), FORWARD)
    b.loft(sideways, BOW_TIE_WING, "Conductor_Black", "spine.003", segments=12)


def build_head(b: MeshBuilder) -> None:
    head = upright((0.0, -0.005, 0.0))
    b.loft(head, resample(HEAD, 0.003), head_material, "spine.006", segments=64)
    for material, centre, radii in FACE:
        b.blob(head, centre, radii, material, "spine.006", 12)
    b.both_sides(build_face_pair, head)


def build_face_pair(b: MeshBuilder, head: Matrix) -> None:
    for material, centre, radii in FACE_PAIRED:
        b.blob(head, centre, radii, material, "spine.006", 12)


def build_arm(b: MeshBuilder, layout: dict[str, BoneSpec]) -> None:
    upper, fore, hand = layout["upper_arm.L"], layout["forearm.L"], layout["hand.L"]
    upper_length = (upper.tail - upper.head).length
    fore_length = (fore.tail - fore.head).length

    b.loft(bone_frame(upper), capsule(upper_length, 0.052, 0.046), "Conductor_Suit", "upper_arm.L")
    b.loft(bone_frame(fore), tube(-0.040, fore_length - 0.045, 0.047, 0.042), "Conductor_Suit", "forearm.L")
    cuff = tube(fore_length - 0.060, fore_length - 0.012, 0.037, 0.036)
    b.loft(bone_frame(fore), cuff, "Conductor_Shirt", "forearm.L")

    b.loft(bone_frame(hand), PALM, "Conductor_Skin", "hand.L", segments=20)
    for finger, _, lengths, _ in FINGERS:
        for number in range(1, len(lengths) + 1):
            name = f"{finger}.{number:02d}.L"
            spec = layout[name]
            radius = FINGER_RADIUS[finger] * (1.0 - 0.08 * (number - 1))
            rings = capsule((spec.tail - spec.head).length, radius, 0.92 * radius, steps=3)
            b.loft(bone_frame(spec), rings, "Conductor_Skin", name, segments=10)


def build_leg(b: MeshBuilder, layout: dict[str, BoneSpec]) -> None:
    thigh, shin = layout["thigh.L"], layout["shin.L"]
    thigh_length = (thigh.tail - thigh.head).length
    shin_length = (shin.tail - shin.head).length
    b.loft(bone_frame(thigh), capsule(thigh_length, 0.075, 0.058), "Conductor_Suit", "thigh.L")
    # The hem is rounded and ends just inside the shoe's collar.
    b.loft(bone_frame(shin), capsule(shin_length - 0.070, 0.058, 0.050), "Conductor_Suit", "shin.L")

    toe_start_y = layout["toe.L"].head.y

    def shoe_weights(co: Vector) -> dict[str, float]:
        return {"foot.L": 1.0} if co.y > toe_start_y else {"toe.L": 1.0}

    b.loft(frame(SHOE_HEEL, FORWARD, UP), SHOE, "Conductor_Shoes", shoe_weights)


def build_body(
    collection: bpy.types.Collection, armature: bpy.types.Object, layout: dict[str, BoneSpec]
) -> bpy.types.Object:
    mesh = bpy.data.meshes.new("Conductor_Body")
    obj = bpy.data.objects.new("Conductor_Body", mesh)
    collection.objects.link(obj)
    for bone in layout:
        obj.vertex_groups.new(name=bone)

    builder = MeshBuilder(
        lookup_materials(
            "Conductor_Suit", "Conductor_Shirt", "Conductor_Skin", "Conductor_Hair",
            "Conductor_Black", "Conductor_EyeWhite", "Conductor_Lips", "Conductor_Shoes",
        ),
        list(layout),
    )
    build_trunk(builder)
    build_head(builder)
    builder.both_sides(build_arm, layout)
    builder.both_sides(build_leg, layout)
    builder.to_mesh(mesh)

    obj.parent = armature
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    return obj


# --------------------------------------------------------------------------- baton

BATON_LENGTH = 0.38
# Where the butt rests in the left hand's frame (see PALM); mirrored onto the right hand.
BATON_GRIP = Vector((0.018, 0.025, 0.0))
BATON_HANDLE = (
    (-0.003, 0.0, 0.0),
    (0.000, 0.007, 0.007),
    (0.008, 0.0105, 0.0105),
    (0.030, 0.011, 0.011),
    (0.048, 0.009, 0.009),
    (0.056, 0.005, 0.005),
    (0.058, 0.0, 0.0),
)
BATON_SHAFT = (
    (0.045, 0.0, 0.0),
    (0.045, 0.0045, 0.0045),
    (BATON_LENGTH - 0.002, 0.0016, 0.0016),
    (BATON_LENGTH, 0.0, 0.0),
)


def build_baton(
    collection: bpy.types.Collection, armature: bpy.types.Object, layout: dict[str, BoneSpec]
) -> bpy.types.Object:
    mesh = bpy.data.meshes.new("Conductor_Baton")
    builder = MeshBuilder(lookup_materials("Conductor_Baton", "Conductor_Cork"))
    builder.loft(Matrix.Identity(4), BATON_HANDLE, "Conductor_Cork", segments=16)
    builder.loft(Matrix.Identity(4), BATON_SHAFT, "Conductor_Baton", segments=12)
    builder.to_mesh(mesh)

    obj = bpy.data.objects.new("Conductor_Baton", mesh)
    collection.objects.link(obj)
    obj.parent = armature
    obj.parent_type = "BONE"
    obj.parent_bone = "hand.R"

    # Placed in world space at rest; Blender derives the bone-relative transform from it.
    left_hand = bone_frame(layout["hand.L"])
    grip = mirror_point(left_hand @ BATON_GRIP)
    along = mirror_point(left_hand.col[1].to_3d())
    bpy.context.view_layer.update()
    obj.matrix_world = frame(grip, along, FORWARD)
    return obj


# --------------------------------------------------------------------------- stage


def aim(obj: bpy.types.Object, location, target) -> None:
    obj.location = location
    obj.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()


# The orchestra's view: framing spans the hips to above hands raised at 2.1 m.
CAMERA_LOCATION = (0.0, -4.5, 1.35)
CAMERA_TARGET = (0.0, 0.0, 1.50)
CAMERA_LENS = 60.0

# (name, location, size, energy in watts); the conductor's left is +X.
LIGHTS = (
    ("Conductor_Key", (2.2, -3.0, 3.2), 1.5, 300.0),
    ("Conductor_Fill", (-3.0, -2.5, 1.8), 2.0, 100.0),
    ("Conductor_Rim", (-1.0, 3.0, 3.0), 1.0, 250.0),
)
LIGHT_TARGET = (0.0, 0.0, 1.30)
WORLD_GREY = (0.18, 0.18, 0.18)


def build_stage(scene: bpy.types.Scene, collection: bpy.types.Collection) -> None:
    camera = bpy.data.objects.new("Conductor_Camera", bpy.data.cameras.new("Conductor_Camera"))
    camera.data.lens = CAMERA_LENS
    camera.data.sensor_fit = "HORIZONTAL"
    aim(camera, CAMERA_LOCATION, CAMERA_TARGET)
    collection.objects.link(camera)
    scene.camera = camera

    for name, location, size, energy in LIGHTS:
        light = bpy.data.lights.new(name, "AREA")
        light.size = size
        light.energy = energy
        obj = bpy.data.objects.new(name, light)
        aim(obj, location, LIGHT_TARGET)
        collection.objects.link(obj)

    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = WORLD_GREY
    if world.node_tree is None:  # as for materials
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (*WORLD_GREY, 1.0)


def configure_scene(scene: bpy.types.Scene) -> None:
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.render.fps = 30
    scene.render.resolution_x = 640
    scene.render.resolution_y = 360
    scene.render.resolution_percentage = 100


def main() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    collection = bpy.data.collections.new("Conductor")
    scene.collection.children.link(collection)

    build_materials()
    layout = bone_layout()
    armature = build_armature(collection, layout)
    build_body(collection, armature, layout)
    build_baton(collection, armature, layout)
    build_stage(scene, collection)
    configure_scene(scene)

    # The file is regenerated from this script, so a .blend1 backup would only be clutter.
    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=str(OUTPUT), compress=True)


if __name__ == "__main__":
    main()
