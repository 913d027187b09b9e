"""3D joints → bone rotations on any humanoid armature, by a closed-form per-bone solve.

Each bone's target is a world orientation; its local rotation is measured against the orientation it would have
with its parent already posed and itself unrotated, so the rig's rest pose (T, A, N) and bone rolls do not matter.
Rigs are described by rig maps: JSON data naming which bone plays which part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import rotations as rot
from .lift import NOSE_DROP, Proportions
from .motion import FINGER_NAMES, HAND_SIDES, JOINT

REQUIRED = ("spine", "chest", "neck", "head", "upper_arm.L", "forearm.L", "hand.L", "upper_arm.R", "forearm.R", "hand.R")
# Finger parts take the Rigify metarig's names: each finger's three bones from the knuckle out.
FINGER_PARTS = {"thumb": "thumb", "index": "f_index", "middle": "f_middle", "ring": "f_ring", "little": "f_pinky"}
SIDES = {"left": "L", "right": "R"}


def finger_part(finger: str, joint: int, side: str) -> str:
    """The rig-map part of `finger`'s bone `joint` (1 at the knuckle … 3 at the tip) on side "L" or "R"."""
    return f"{FINGER_PARTS[finger]}.{joint:02d}.{side}"


FINGER_BONE_PARTS = tuple(finger_part(finger, joint, side) for side in "LR" for finger in FINGER_NAMES
                          for joint in (1, 2, 3))
# With the hips and both legs mapped, the hips move as the motion's do (a weight shift, a give of the knees) and the
# legs bend to keep the feet where they stand.
LEG_PARTS = tuple(f"{bone}.{side}" for side in "LR" for bone in ("thigh", "shin", "foot"))
OPTIONAL = ("hips", "shoulder.L", "shoulder.R") + LEG_PARTS + FINGER_BONE_PARTS
# How far each bone of a finger bends at a full curl, in degrees, knuckle first: a fist for the fingers, the thumb
# folded across the palm.
FINGER_BEND = {"thumb": (20.0, 35.0, 50.0), "index": (75.0, 95.0, 60.0), "middle": (75.0, 95.0, 60.0),
               "ring": (75.0, 95.0, 60.0), "little": (75.0, 95.0, 60.0)}
# Turning the palm over is the forearm's work (the radius rolls round the ulna); the wrist itself adds the rest.
FOREARM_TURN_SHARE = 0.7
# How much of the torso's turn the lower spine takes, how much of the head's turn the neck takes, and how much of
# an arm's lift the collarbone follows: shares that make the motion read as a body rather than a stick figure.
SPINE_SHARE = 0.5
NECK_SHARE = 0.5
CLAVICLE_SHARE = 0.15
# At the top of a breath in, the chest leans back and the collarbones lift by these angles.
BREATH_CHEST = np.radians(4.0)
BREATH_CLAVICLE = np.radians(6.0)
# A leg stretches to at most this share of its length, so the knee keeps a definite bend.
MAX_LEG_REACH = 0.995
# Below this elbow bend the arm's bending plane is undefined and is carried over from the nearest bent frame.
STRAIGHT_ARM = np.radians(8.0)
# Conductors flex the wrist so the hand (and baton) points towards the orchestra rather than along the forearm:
# the hand aims along forearm + WRIST_FORWARD × the chest's forward direction.
WRIST_FORWARD = 0.8


class RigMapError(ValueError):
    """A rig map that does not fit the armature, or a map file that is not valid."""


@dataclass(frozen=True)
class Follow:
    """A constraint by which a bone follows another bone of the rig (Copy Rotation or Copy Transforms).

    In world space the bone's pose is blended towards the target's; in local space its basis towards the target's
    basis. Rigs built from constraints (Rigify's controls and mechanism bones) pass motion on this way rather than
    through parenting, so the solver must know about it to place the bones below.
    """

    target: int
    influence: float
    rotation_only: bool  # Copy Rotation keeps the bone's own location
    local: bool


@dataclass
class Skeleton:
    """A snapshot of an armature, in armature space, that the solver needs: no bpy objects inside.

    `rest` holds each bone's rest matrix (Blender's `bone.matrix_local`); `basis` its current pose basis
    (`pose_bone.matrix_basis`), which is what bones that are not keyed keep showing. `follows` lists, per bone
    index, the constraints that make it follow other bones, in stack order.
    """

    names: list[str]
    parents: list[int]
    rest: np.ndarray  # (B, 4, 4)
    basis: np.ndarray  # (B, 4, 4)
    follows: dict[int, tuple[Follow, ...]] = field(default_factory=dict)

    def __post_init__(self):
        # Blender gives these in single precision. Made exact rotations where they are rotations up to that rounding
        # (a bone's basis may hold a real scale, which stays), the poses built from them are rotations to double
        # precision, which the solve then need not settle frame by frame (see _orthonormal).
        self.rest, self.basis = _exact_rotations(self.rest), _exact_rotations(self.basis)
        depends = [
            [p for p in [parent] if p >= 0] + [f.target for f in self.follows.get(i, ())]
            for i, parent in enumerate(self.parents)
        ]
        order = []
        placed = set()
        while len(order) < len(self.names):
            progressed = False
            for i in range(len(self.names)):
                if i not in placed and all(d in placed for d in depends[i]):
                    order.append(i)
                    placed.add(i)
                    progressed = True
            if not progressed:
                raise ValueError("bone parents and constraint targets form a cycle")
        self.order = order
        self.index = {name: i for i, name in enumerate(self.names)}
        self._depends = depends

    def placing(self, bones) -> set[int]:
        """The bones whose poses place `bones` (indices): themselves, their parents and the bones they follow, on up."""
        found, todo = set(), list(bones)
        while todo:
            b = todo.pop()
            if b not in found:
                found.add(b)
                todo.extend(self._depends[b])
        return found

    def head(self, name: str) -> np.ndarray:
        return self.rest[self.index[name], :3, 3]


@dataclass
class RigMap:
    """Which bone plays which part, and optionally custom properties to hold while the generated action plays.

    JSON: {"name", "description", "bones": {part: bone}, "properties": {bone: {property: value}}}; "properties" is
    optional and sets rig switches, e.g. Rigify's `upper_arm_parent.L["IK_FK"] = 1.0` so that the FK controls the
    map keys are the ones that move the arm.
    """

    name: str
    description: str
    bones: dict[str, str]  # part → bone name
    path: Path | None = None
    properties: dict[str, dict[str, float]] = field(default_factory=dict)  # bone → {custom property: value}

    @classmethod
    def load(cls, path: str | Path) -> "RigMap":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rig_map = cls(
                name=str(data["name"]), description=str(data.get("description", "")), bones=dict(data["bones"]),
                path=path,
                properties={
                    str(bone): {str(k): float(v) for k, v in values.items()}
                    for bone, values in data.get("properties", {}).items()
                },
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RigMapError(f"{path.name} is not a valid rig map ({exc}); it needs 'name' and 'bones'.") from exc
        unknown = set(rig_map.bones) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise RigMapError(f"{path.name} maps unknown parts {sorted(unknown)}; known parts: {REQUIRED + OPTIONAL}.")
        return rig_map

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = {"name": self.name, "description": self.description, "bones": self.bones}
        if self.properties:
            data["properties"] = self.properties
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    def missing(self, bone_names: list[str]) -> list[str]:
        """The bones this map needs (required parts and switch bones) that the armature does not have."""
        lookup = {_plain(b) for b in bone_names}
        needed = [b for p, b in self.bones.items() if p in REQUIRED] + list(self.properties)
        return [b for b in needed if b not in bone_names and _plain(b) not in lookup]

    def resolve(self, bone_names: list[str], armature: str = "the armature") -> dict[str, str]:
        """Part → actual bone name, matching case-insensitively and ignoring namespace prefixes like 'mixamorig:'."""
        resolved = {}
        for part, bone in self.bones.items():
            actual = _find(bone, bone_names)
            if actual is not None:
                resolved[part] = actual
        missing = self.missing(bone_names)
        unmapped = [p for p in REQUIRED if p not in self.bones]
        if missing or unmapped:
            detail = []
            if missing:
                detail.append(f"missing bones {', '.join(missing)}")
            if unmapped:
                detail.append(f"no bone given for {', '.join(unmapped)}")
            raise RigMapError(
                f"{armature} does not fit the '{self.name}' rig map: {'; '.join(detail)}. "
                "Choose the rig map that matches this armature, or edit the map to name its bones."
            )
        return resolved

    def exact_matches(self, bone_names: list[str]) -> int:
        """How many of the map's bones, for any part, the armature has under exactly that name."""
        names = set(bone_names)
        return sum(bone in names for bone in self.bones.values())

    def resolve_properties(self, bone_names: list[str]) -> dict[str, dict[str, float]]:
        """The switch properties by actual bone name (call after `resolve`, which reports missing bones)."""
        return {_find(bone, bone_names): values for bone, values in self.properties.items()}

    def coverage(self, bone_names: list[str]) -> float:
        needed = [b for p, b in self.bones.items() if p in REQUIRED] + list(self.properties)
        return 1.0 - len(self.missing(bone_names)) / len(needed) if needed else 0.0


def _plain(bone: str) -> str:
    return bone.rsplit(":", 1)[-1].lower()


def _find(bone: str, bone_names: list[str]) -> str | None:
    if bone in bone_names:
        return bone
    return {_plain(b): b for b in bone_names}.get(_plain(bone))


def builtin_maps(folder: Path) -> list[RigMap]:
    return [RigMap.load(p) for p in sorted(folder.glob("*.json"))]


def detect_map(bone_names: list[str], maps: list[RigMap]) -> RigMap | None:
    """The map that names the most of this armature's bones, if one names them all."""
    complete = [m for m in maps if m.coverage(bone_names) == 1.0]
    return max(complete, key=lambda m: len(set(m.bones) & set(OPTIONAL)), default=None)


def _hip_centre(skeleton: Skeleton, parts: dict[str, str]) -> np.ndarray:
    return skeleton.head(parts["hips"]) if "hips" in parts else skeleton.head(parts["spine"])


def body_axes(skeleton: Skeleton, parts: dict[str, str]) -> np.ndarray:
    """The character's left, back and up as armature-space columns, each snapped to the nearest armature axis.

    Lifting and the solve think in a frame where the character faces −Y with +Z up. Most rigs are built that way;
    rigs imported from FBX (Mixamo, Unreal) are Y-up in armature space, and some face +Y. Mapping through these
    axes treats them all alike. Snapping keeps a slightly leaning rest pose from tilting the whole performance.
    """

    def snapped(v: np.ndarray) -> np.ndarray:
        axis = np.zeros(3)
        i = int(np.argmax(np.abs(v)))
        axis[i] = np.sign(v[i])
        return axis

    left = snapped(skeleton.head(parts["upper_arm.L"]) - skeleton.head(parts["upper_arm.R"]))
    up = 0.5 * (skeleton.head(parts["upper_arm.L"]) + skeleton.head(parts["upper_arm.R"])) - _hip_centre(skeleton, parts)
    up = snapped(up - np.dot(up, left) * left)
    if abs(np.dot(left, up)) > 0.5:
        raise RigMapError("the rig's shoulders and spine point the same way: the rig map names the wrong bones.")
    return np.stack([left, np.cross(up, left), up], axis=1)


def proportions(skeleton: Skeleton, parts: dict[str, str]) -> Proportions:
    """The rig's proportions for lifting, with the hip centre in the upright frame of `body_axes`."""
    head = lambda part: skeleton.head(parts[part])  # noqa: E731 - a local shorthand keeps the table readable
    return Proportions(
        shoulder_width=float(np.linalg.norm(head("upper_arm.L") - head("upper_arm.R"))),
        upper_arm=tuple(float(np.linalg.norm(head(f"forearm.{s}") - head(f"upper_arm.{s}"))) for s in "LR"),
        forearm=tuple(float(np.linalg.norm(head(f"hand.{s}") - head(f"forearm.{s}"))) for s in "LR"),
        hip_centre=body_axes(skeleton, parts).T @ _hip_centre(skeleton, parts),
    )


def to_armature_space(joints: np.ndarray, skeleton: Skeleton, parts: dict[str, str]) -> np.ndarray:
    """Lifted joints (…, 3) from the upright frame into the rig's armature space."""
    return joints @ body_axes(skeleton, parts).T


def stands_on_legs(parts: dict[str, str]) -> bool:
    """Whether the rig map names the hips and both legs, so the solve can move the hips and plant the feet."""
    return "hips" in parts and all(part in parts for part in LEG_PARTS)


def _leg(skeleton: Skeleton, parts: dict[str, str], side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rest positions of a leg's hip joint, knee and ankle."""
    return tuple(skeleton.head(parts[f"{bone}.{side}"]) for bone in ("thigh", "shin", "foot"))


def pelvis_offsets(travel: np.ndarray, skeleton: Skeleton, parts: dict[str, str]) -> np.ndarray | None:
    """(T, 3) armature-space offsets of the hips from their rest place for the motion's `hip_travel` (core.lift),
    lowered wherever a leg could not otherwise reach its foot where it stands; None for a rig without legs mapped."""
    if not stands_on_legs(parts):
        return None
    axes = body_axes(skeleton, parts)
    offsets = to_armature_space(travel, skeleton, parts)
    up = axes[:, 2]
    drop = np.zeros(len(offsets))
    for side in "LR":
        hip, knee, ankle = _leg(skeleton, parts, side)
        reach = MAX_LEG_REACH * (np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))
        # How far the hip joint must come down (along up) to lie `reach` from the ankle.
        v = hip + offsets - ankle
        along = v @ up
        drop = np.maximum(drop, along - np.sqrt(np.maximum(along**2 - np.sum(v * v, axis=1) + reach**2, 0.0)))
    return offsets - drop[:, None] * up


def hips_location(pelvis: np.ndarray, skeleton: Skeleton, parts: dict[str, str]) -> np.ndarray:
    """(T, 3) the hips bone's pose location (in its own rest axes) that moves it by `pelvis` (armature space)."""
    b = skeleton.index[parts["hips"]]
    parent = skeleton.parents[b]
    if parent < 0:
        unrotated = skeleton.rest[b]
    else:
        parent_world = _walk(skeleton, 1, lambda *_: None, skeleton.placing({parent}))[parent][0]
        unrotated = parent_world @ _affine_inverse(skeleton.rest[parent]) @ skeleton.rest[b]
    # A location t in the basis moves the bone by unrotated @ t in armature space.
    return pelvis @ unrotated[:3, :3]


def _two_bone(start: np.ndarray, end: np.ndarray, first: float, second: float, pole: np.ndarray) -> np.ndarray:
    """The middle joint (T, 3) of a two-bone chain of lengths `first` and `second` from `start` to `end`, bending
    towards `pole`; `end` must be within reach."""
    span = end - start
    dist = np.maximum(np.linalg.norm(span, axis=-1, keepdims=True), 1e-9)
    axis = span / dist
    along = (first**2 - second**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(first**2 - along**2, 0.0))
    bend = pole - np.sum(pole * axis, axis=-1, keepdims=True) * axis
    return start + along * axis + height * rot.normalise(bend)


def _leg_targets(pelvis: np.ndarray, skeleton: Skeleton, parts: dict[str, str]) -> dict:
    """World targets that bend each leg so its ankle stays where it stands while the hips move by `pelvis`, and keep
    the foot flat as it rests."""
    forward = -body_axes(skeleton, parts)[:, 1]
    targets = {}
    for side in "LR":
        hip, knee, ankle = _leg(skeleton, parts, side)
        straight = rot.normalise(ankle - hip)
        pole = (knee - hip) - np.dot(knee - hip, straight) * straight
        # A straight rest leg says nothing of where the knee goes: it goes forward, as knees do.
        pole = pole if np.linalg.norm(pole) > 1e-3 * np.linalg.norm(knee - hip) else forward
        moved = hip + pelvis
        bent = _two_bone(moved, np.broadcast_to(ankle, moved.shape), np.linalg.norm(knee - hip),
                         np.linalg.norm(ankle - knee), np.broadcast_to(pole, moved.shape))
        foot_rest = skeleton.rest[skeleton.index[parts[f"foot.{side}"]], :3, :3]
        targets[f"thigh.{side}"] = lambda r0, d=bent - moved: rot.swing(r0[..., 1], d) @ r0
        targets[f"shin.{side}"] = lambda r0, d=ankle - bent: rot.swing(r0[..., 1], d) @ r0
        targets[f"foot.{side}"] = lambda r0, rest=foot_rest: np.broadcast_to(rest, r0.shape)
    return targets


def _torso_frame(right: np.ndarray, up: np.ndarray) -> np.ndarray:
    # Columns X (character's left), Y (backwards), Z (up): the armature's own axes for a rig at rest.
    z = rot.normalise(up)
    x = rot.normalise(right - np.sum(right * z, -1, keepdims=True) * z)
    return np.stack([x, np.cross(z, x), z], axis=-1)


def _hinge_axis(skeleton: Skeleton, parts: dict[str, str], side: str) -> np.ndarray:
    """The elbow's flexion axis in the upper arm's local frame, read from the rest pose (or the anatomy if straight)."""
    upper, fore, hand = (skeleton.index[parts[f"{p}.{side}"]] for p in ("upper_arm", "forearm", "hand"))
    u = skeleton.rest[fore, :3, 3] - skeleton.rest[upper, :3, 3]
    f = skeleton.rest[hand, :3, 3] - skeleton.rest[fore, :3, 3]
    axis = np.cross(u, f)
    if np.linalg.norm(axis) < np.sin(np.radians(3)) * np.linalg.norm(u) * np.linalg.norm(f):
        axis = skeleton.rest[fore, :3, 0]
        # Flexion must carry the forearm forward (the way the character faces) from a hanging arm.
        if np.dot(np.cross(axis, u), -body_axes(skeleton, parts)[:, 1]) < 0:
            axis = -axis
    return skeleton.rest[upper, :3, :3].T @ rot.normalise(axis)


def _bend_normals(d1: np.ndarray, d2: np.ndarray) -> np.ndarray | None:
    """Per-frame normal of the arm's bending plane, carried over frames where the arm is nearly straight."""
    normal = np.cross(d1, d2)
    valid = np.linalg.norm(normal, axis=1) > np.sin(STRAIGHT_ARM)
    if not valid.any():
        return None
    idx = np.where(valid, np.arange(len(valid)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = np.flatnonzero(valid)[0]
    return rot.normalise(normal[idx])


def _cofactors(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cofactor matrices, determinants) of 3×3 matrices (..., 3, 3): the inverse is cofactorsᵀ / determinant."""
    c0, c1, c2 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    cofactors = np.stack([np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1)], axis=-1)
    return cofactors, np.sum(c0 * cofactors[..., :, 0], axis=-1)


# The solve handles one matrix per frame and bone: numpy's batched inv and svd call LAPACK once per 3×3 or 4×4
# matrix, which made them 2 s of a 5-minute piece's 2.4 s solve. The closed forms below are exact and vectorised.
def _affine_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of affine matrices (..., 4, 4) (last row 0 0 0 1), as bone matrices are."""
    cofactors, det = _cofactors(m[..., :3, :3])
    linear = np.swapaxes(cofactors, -1, -2) / det[..., None, None]
    out = np.zeros(m.shape)
    out[..., :3, :3] = linear
    out[..., :3, 3] = -(linear @ m[..., :3, 3:])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def _exact_rotations(matrices: np.ndarray) -> np.ndarray:
    """Affine matrices (B, 4, 4) with each 3×3 part that is a rotation up to single-precision rounding made exact."""
    out = np.array(matrices, dtype=np.float64)
    linear = out[:, :3, :3]
    rounded = np.abs(np.swapaxes(linear, -1, -2) @ linear - np.eye(3)).max(axis=(-2, -1), initial=0.0) < 1e-5
    out[rounded, :3, :3] = _orthonormal(linear[rounded])
    return out


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """The rotation nearest each matrix (..., 3, 3), i.e. U Vᵀ of its SVD, by Newton's polar iteration X ← (X + X⁻ᵀ)/2.

    Bone matrices are rotations up to a little scale and rounding, which the iteration settles in a few quadratic
    steps; a degenerate (zero-scaled) matrix, which has no inverse, takes the SVD. Matrices that are rotations to
    within 1e-12 already (the poses the solve builds from exact rest rotations) are returned as they are.
    """
    x = np.array(m, dtype=np.float64)
    if np.abs(np.swapaxes(x, -1, -2) @ x - np.eye(3)).max(initial=0.0) < 1e-12:
        return x
    for _ in range(30):
        cofactors, det = _cofactors(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = 0.5 * (x + cofactors / det[..., None, None])
        change = np.abs(step - x).max(axis=(-2, -1))
        x = step
        # The iteration converges quadratically: after a step this small the error left is about its square.
        if not (change > 1e-7).any():
            break
    unsettled = ~(np.abs(np.swapaxes(x, -1, -2) @ x - np.eye(3)).max(axis=(-2, -1)) < 1e-9)
    if unsettled.any():
        u, _, vt = np.linalg.svd(m[unsettled])
        x[unsettled] = u @ vt
    return x


def palm_normal(skeleton: Skeleton, parts: dict[str, str], side: str) -> np.ndarray | None:
    """Which way the palm of hand `side` ("L" or "R") faces at rest, in the hand bone's own frame; None where the rig
    map names no index and little finger to tell it by."""
    index, little = finger_part("index", 1, side), finger_part("little", 1, side)
    if index not in parts or little not in parts:
        return None
    rest = skeleton.rest[skeleton.index[parts[f"hand.{side}"]], :3, :3]
    along = rest[:, 1]
    towards_thumb = skeleton.head(parts[index]) - skeleton.head(parts[little])
    # The palm is on the same side of the hand on both sides, and a mirror image turns a cross product over.
    palm = np.cross(along, towards_thumb) if side == "L" else np.cross(towards_thumb, along)
    return rest.T @ rot.normalise(palm - np.dot(palm, along) * along)


def _finger_rotations(skeleton: Skeleton, parts: dict[str, str], side: str, palm_local: np.ndarray,
                      curls: np.ndarray) -> dict[int, np.ndarray]:
    """Local quaternions of the mapped finger bones of one hand for curls (T, 5): each bone turns about the axis
    that carries it towards the palm, found in its rest pose."""
    hand = skeleton.rest[skeleton.index[parts[f"hand.{side}"]], :3, :3]
    palm = hand @ palm_local
    out = {}
    for f, finger in enumerate(FINGER_NAMES):
        for joint, bend in zip((1, 2, 3), FINGER_BEND[finger]):
            part = finger_part(finger, joint, side)
            if part not in parts:
                continue
            b = skeleton.index[parts[part]]
            rest = skeleton.rest[b, :3, :3]
            axis = rest.T @ rot.normalise(np.cross(rest[:, 1], palm))
            half = 0.5 * np.radians(bend) * curls[:, f].astype(np.float64)
            out[b] = np.column_stack([np.cos(half), np.sin(half)[:, None] * axis])
    return out


def _hand_frames(aim: np.ndarray, down: np.ndarray, medial: np.ndarray, wrist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where the hand points, where its palm faces), per frame, for a hand that would point along `aim`, turned and
    flexed by `wrist` (T, 2) = (flexion, turn): the palm faces `down` at turn 0, `medial` at π/2, up at π."""
    across_down = rot.normalise(down - np.sum(down * aim, -1, keepdims=True) * aim)
    across_medial = rot.normalise(np.cross(aim, across_down))
    across_medial *= np.sign(np.sum(across_medial * medial, -1, keepdims=True) + 1e-12)
    flexion, turn = wrist[:, :1], wrist[:, 1:]
    palm = np.cos(turn) * across_down + np.sin(turn) * across_medial
    return np.cos(flexion) * aim + np.sin(flexion) * palm, np.cos(flexion) * palm - np.sin(flexion) * aim


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle (T,) turning a into b about axis, all (T, 3), measured across the axis."""
    a = a - np.sum(a * axis, -1, keepdims=True) * axis
    b = b - np.sum(b * axis, -1, keepdims=True) * axis
    return np.arctan2(np.sum(np.cross(a, b) * axis, -1), np.sum(a * b, -1))


def solve(joints: np.ndarray, skeleton: Skeleton, parts: dict[str, str], fingers: np.ndarray | None = None,
          wrists: np.ndarray | None = None, breath: np.ndarray | None = None,
          pelvis: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Local rotation quaternions (T, 4), sign-continuous, for every keyed bone, by bone name.

    With the motion's `fingers` (T, 2, 5) and `wrists` (T, 2, 2) (see core.motion.Motion), a rig whose map names
    finger bones gets its fingers curled and each palm turned and the wrist flexed as they say. With its `breath`
    (T,), the chest lifts and the collarbones rise as the conductor breathes in. With `pelvis` (T, 3; see
    `pelvis_offsets`), the hips bone is taken to move so (its location is `hips_location`'s) and the legs bend to
    keep the feet planted.
    """
    n = len(joints)
    j = lambda name: joints[:, JOINT[name]]  # noqa: E731
    rest_rot = lambda part: skeleton.rest[skeleton.index[parts[part]], :3, :3]  # noqa: E731

    rest_right = skeleton.head(parts["upper_arm.L"]) - skeleton.head(parts["upper_arm.R"])
    rest_up = 0.5 * (skeleton.head(parts["upper_arm.L"]) + skeleton.head(parts["upper_arm.R"])) - _hip_centre(skeleton, parts)
    shoulders = 0.5 * (j("left_shoulder") + j("right_shoulder"))
    hips = 0.5 * (j("left_hip") + j("right_hip"))
    torso = _torso_frame(j("left_shoulder") - j("right_shoulder"), shoulders - hips) @ _torso_frame(rest_right, rest_up).T

    axes = body_axes(skeleton, parts)
    ears = 0.5 * (j("left_ear") + j("right_ear"))
    forward = j("nose") - ears + NOSE_DROP * axes[:, 2]
    # The head's turn away from facing straight ahead with the ears level, as an armature-space rotation.
    head = rot.frame(j("left_ear") - j("right_ear"), -forward) @ axes.T

    inhaled = np.zeros(n) if breath is None else np.asarray(breath, dtype=np.float64)
    # Leaning the chest back turns its up towards the back (+Y at rest): about the body's left, the negative way.
    chest = rot.axis_angle(torso @ axes[:, 0], -BREATH_CHEST * inhaled) @ torso
    world_targets = {
        "spine": lambda _: rot.partial(torso, SPINE_SHARE) @ rest_rot("spine"),
        "chest": lambda _: chest @ rest_rot("chest"),
        "neck": lambda _: rot.matrix_from_quat(rot.slerp(rot.quat_from_matrix(torso), rot.quat_from_matrix(head), NECK_SHARE)) @ rest_rot("neck"),
        "head": lambda _: head @ rest_rot("head"),
    }
    local_rotations = {}
    for side, key in (("L", "left"), ("R", "right")):
        d1 = rot.normalise(j(f"{key}_elbow") - j(f"{key}_shoulder"))
        d2 = rot.normalise(j(f"{key}_wrist") - j(f"{key}_elbow"))
        world_targets[f"upper_arm.{side}"] = _upper_arm_target(d1, d2, _hinge_axis(skeleton, parts, side))
        world_targets[f"forearm.{side}"] = lambda r0, d=d2: rot.swing(r0[..., 1], d) @ r0
        aim = rot.normalise(d2 + WRIST_FORWARD * (torso @ -axes[:, 1]))  # the chest's forward, in armature space
        world_targets[f"hand.{side}"] = lambda r0, aim=aim: rot.swing(r0[..., 1], aim) @ r0
        if f"shoulder.{side}" in parts:
            arm_rest = torso @ rot.normalise(skeleton.head(parts[f"forearm.{side}"]) - skeleton.head(parts[f"upper_arm.{side}"]))
            lift = rot.partial(rot.swing(arm_rest, d1), CLAVICLE_SHARE)
            # A collarbone's outer end rises about the axis pointing forward for the left, backward for the right.
            rise = rot.axis_angle(torso @ (-axes[:, 1] if side == "L" else axes[:, 1]), BREATH_CLAVICLE * inhaled)
            world_targets[f"shoulder.{side}"] = lambda r0, lift=rise @ lift: lift @ r0
        palm_local = palm_normal(skeleton, parts, side)
        if wrists is None or palm_local is None:
            continue
        hand = HAND_SIDES.index(key)
        medial = torso @ (axes[:, 0] if side == "R" else -axes[:, 0])
        pointing, palm = _hand_frames(aim, torso @ -axes[:, 2], medial, wrists[:, hand].astype(np.float64))
        hand_local = rot.frame(np.array([0.0, 1.0, 0.0]), palm_local)
        world_targets[f"hand.{side}"] = lambda _, p=pointing, q=palm, h=hand_local: rot.frame(p, q) @ h.T
        rest_fore, rest_hand = (skeleton.rest[skeleton.index[parts[f"{b}.{side}"]], :3, :3] for b in ("forearm", "hand"))
        palm_on_forearm = rest_fore.T @ rest_hand @ palm_local

        def forearm(r0, d=d2, palm=palm, palm_on_forearm=palm_on_forearm):
            swung = rot.swing(r0[..., 1], d) @ r0
            turn = np.unwrap(_signed_angle(swung @ palm_on_forearm, palm, d))
            return rot.axis_angle(d, FOREARM_TURN_SHARE * turn) @ swung

        world_targets[f"forearm.{side}"] = forearm
        local_rotations.update(_finger_rotations(skeleton, parts, side, palm_local, fingers[:, hand]))

    locations = {}
    if pelvis is not None:
        world_targets.update(_leg_targets(pelvis, skeleton, parts))
        locations[skeleton.index[parts["hips"]]] = hips_location(pelvis, skeleton, parts)
    keyed = {skeleton.index[parts[p]]: p for p in world_targets if p in parts}
    result = {}

    def keyed_rotation(b: int, unrotated: np.ndarray) -> np.ndarray | None:
        if b not in keyed:
            return None
        r0 = _orthonormal(unrotated[:, :3, :3])
        local = np.swapaxes(r0, -1, -2) @ world_targets[keyed[b]](r0)
        result[skeleton.names[b]] = rot.continuous(rot.quat_from_matrix(local))
        return result[skeleton.names[b]]

    # Only the bones aimed at world targets need the chain above them posed; fingers turn in their own frames.
    _walk(skeleton, n, keyed_rotation, skeleton.placing(keyed), locations)
    result.update({skeleton.names[b]: q for b, q in local_rotations.items()})
    return result


def _walk(skeleton: Skeleton, n: int, local_rotation, bones: set[int] | None = None,
          locations: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Pose the chain parents first; `local_rotation(bone, unrotated world)` gives a bone's quaternions or None.

    Returns world (armature-space) matrices (T, 4, 4) by bone index, of `bones` only where given (with all that
    place them). Bones without a rotation keep their current basis; `locations` (T, 3) by bone index replace a
    basis's location. (Each bone's frames are one contiguous array: a (T, B, 4, 4) array would be read and written
    with a stride of B matrices at every step.)
    """
    world: dict[int, np.ndarray] = {}
    bases: dict[int, np.ndarray] = {}
    for b in skeleton.order:
        if bones is not None and b not in bones:
            continue
        parent = skeleton.parents[b]
        offset = skeleton.rest[b] if parent < 0 else _affine_inverse(skeleton.rest[parent]) @ skeleton.rest[b]
        unrotated = np.broadcast_to(offset if parent < 0 else world[parent] @ offset, (n, 4, 4))
        basis = np.broadcast_to(skeleton.basis[b], (n, 4, 4)).copy()
        if locations and b in locations:
            basis[:, :3, 3] = locations[b]
        q = local_rotation(b, unrotated)
        if q is not None:
            basis[:, :3, :3] = rot.matrix_from_quat(q)
        pose = unrotated @ basis
        follows = skeleton.follows.get(b, ())
        for follow in follows:
            if follow.local:
                basis = _blend(_affine_inverse(unrotated) @ pose, bases[follow.target], follow)
                pose = unrotated @ basis
            else:
                pose = _blend(pose, world[follow.target], follow)
        world[b] = pose
        # Only a constraint makes the pose differ from what the basis alone gives.
        bases[b] = _affine_inverse(unrotated) @ pose if follows else basis
    return world


def _blend(own: np.ndarray, target: np.ndarray, follow: Follow) -> np.ndarray:
    """What a Copy Rotation / Copy Transforms constraint makes of `own` (T, 4, 4): rotations slerped by the
    influence and, for Copy Transforms, locations mixed too (scale is taken as 1, as it is on conducting rigs)."""
    out = own.copy()
    q = rot.slerp(rot.quat_from_matrix(_orthonormal(own[:, :3, :3])), rot.quat_from_matrix(_orthonormal(target[:, :3, :3])), follow.influence)
    out[:, :3, :3] = rot.matrix_from_quat(q)
    if not follow.rotation_only:
        out[:, :3, 3] += follow.influence * (target[:, :3, 3] - own[:, :3, 3])
    return out


def _upper_arm_target(d1: np.ndarray, d2: np.ndarray, hinge_local: np.ndarray):
    """Point the upper arm along d1 and twist it so the elbow's flexion axis lies across the arm's bending plane."""
    normals = _bend_normals(d1, d2)

    def target(r0: np.ndarray) -> np.ndarray:
        if normals is None:
            return rot.swing(r0[..., 1], d1) @ r0
        local_frame = rot.frame(np.array([0.0, 1.0, 0.0]), hinge_local)
        world_frame = rot.frame(d1, normals)
        return world_frame @ local_frame.T

    return target


def forward_kinematics(skeleton: Skeleton, rotations: dict[str, np.ndarray],
                       locations: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """World (armature-space) matrices (T, B, 4, 4) with `rotations` as the keyed bones' local quaternions and
    `locations` as their pose locations."""
    n = len(next(iter(rotations.values())))
    by_index = {skeleton.index[name]: loc for name, loc in (locations or {}).items()}
    world = _walk(skeleton, n, lambda b, _: rotations.get(skeleton.names[b]), locations=by_index)
    return np.stack([world[b] for b in range(len(skeleton.names))], axis=1)
