"""The scenes of the procedural action benchmark (`vidadv.data.synthetic`): its classes, seed streams,
argument checks and the per-clip random scene parameters (what each clip shows, before any pixel is drawn).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Bump whenever the rendering or the parameter draws change: cached files carry it in their name.
GENERATOR_VERSION = 1

CLASS_NAMES: list[str] = [
    "move_right",
    "move_left",
    "move_down",
    "move_up",
    "zoom_in",
    "zoom_out",
    "rotate_cw",
    "rotate_ccw",
    "fade_in",
    "fade_out",
    "meet",
    "part",
]

#: One-line description of each class's motion (same order as :data:`CLASS_NAMES`).
CLASS_MOTIONS: list[str] = [
    "object translates left -> right",
    "object translates right -> left",
    "object translates top -> bottom",
    "object translates bottom -> top",
    "object grows (scale x2.2-3.2 per sequence)",
    "object shrinks (scale /2.2-3.2 per sequence)",
    "object rotates clockwise on screen",
    "object rotates counter-clockwise on screen",
    "object fades in (opacity 0 -> 1)",
    "object fades out (opacity 1 -> 0)",
    "two objects approach until they touch",
    "two touching objects move apart",
]

#: ``(a, b)``: class ``b`` is class ``a`` played backwards (and vice versa).
REVERSED_PAIRS: list[tuple[int, int]] = [(k, k + 1) for k in range(0, len(CLASS_NAMES), 2)]

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_CODES = {"train": 0x5EED_7EA1_0000_0001, "val": 0x5EED_7A1D_0000_0002, "test": 0x5EED_7E57_0000_0003}
_DEFAULT_NUM_CLIPS = {"train": 2400, "val": 600, "test": 1200}

# Motion families (label // 2).
_TRANSLATE_H, _TRANSLATE_V, _ZOOM, _ROTATE, _FADE, _MEET = range(6)

_MIN_SIZE = 16
_MIN_FRAMES = 2
_CHUNK = 4  # clips rendered together; fixed so results never depend on the caller's batch size
_MASK64 = (1 << 64) - 1

# Equal-area normalisation of the unit shapes (area pi, like the unit disc).
_SQUARE_HALF_SIDE = math.sqrt(math.pi) / 2.0  # 0.886
_TRIANGLE_INRADIUS = math.sqrt(math.pi / (3.0 * math.sqrt(3.0)))  # 0.778
_SQRT3_HALF = math.sqrt(3.0) / 2.0


# --------------------------------------------------------------------------------------------- seeds
def _splitmix64(value: int) -> int:
    """One step of the splitmix64 mixer (Steele et al. 2014): a bijective 64-bit hash."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def item_seed(seed: int, split: str, index: int) -> int:
    """Seed of item ``index`` of ``split``: splitmix64(splitmix64(seed) ^ split code) mixed with index."""
    split = _check_split(split)
    mixed = _splitmix64(_splitmix64(_splitmix64(int(seed) & _MASK64) ^ _SPLIT_CODES[split]) ^ int(index))
    return mixed >> 1  # 63 bits: always accepted by torch.Generator.manual_seed


def window_seed(item_seed_value: int, epoch: int) -> int:
    """Seed of the random temporal window of one clip in one epoch (a stream separate from the clip's)."""
    return _splitmix64(_splitmix64(int(item_seed_value) ^ 0x57D0_A11C_E000_0000) ^ int(epoch)) >> 1


# --------------------------------------------------------------------------------------------- checks
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return str(split)


def _resolve_lengths(size: object, frames: object, sequence_length: object) -> tuple[int, int, int]:
    size = _check_int("size", size, _MIN_SIZE)
    frames = _check_int("frames", frames, _MIN_FRAMES)
    if sequence_length is None:
        sequence_length = frames * 3 // 2
    sequence_length = _check_int("sequence_length", sequence_length, frames)
    return size, frames, sequence_length


# --------------------------------------------------------------------------------------------- parameters
# Number of uniform draws per clip. Every clip draws all of them, whatever its class, so that a clip and the
# clip of the reversed class drawn from the same generator state are exact time mirrors of each other.
_NUM_UNIFORMS = 96


class _Draws:
    """Hands out consecutive columns of a (N, _NUM_UNIFORMS) tensor of U(0, 1) draws."""

    def __init__(self, uniforms: Tensor) -> None:
        self.uniforms = uniforms
        self.next = 0

    def take(self, low: float = 0.0, high: float = 1.0, count: int | None = None) -> Tensor:
        width = 1 if count is None else count
        cols = self.uniforms[:, self.next : self.next + width]
        self.next += width
        if self.next > self.uniforms.shape[1]:
            raise RuntimeError("internal error: _NUM_UNIFORMS too small")
        out = low + (high - low) * cols
        return out[:, 0] if count is None else out


def _color(luminance: Tensor, saturation: Tensor, rgb: Tensor) -> Tensor:
    """RGB (N, 3) with mean ~ ``luminance`` and a random chroma of strength ``saturation``."""
    chroma = rgb - rgb.mean(dim=1, keepdim=True)
    return (luminance[:, None] + 2.0 * saturation[:, None] * chroma).clamp(0.0, 1.0)


def _object_appearance(draws: _Draws, background_luminance: Tensor) -> dict[str, Tensor]:
    """Colours, texture and shape of one object; its luminance differs from the background by 0.25-0.5."""
    delta = draws.take(0.25, 0.5)
    sign = torch.where(draws.take() < 0.5, -1.0, 1.0)
    luminance = background_luminance + sign * delta
    flip = (luminance < 0.05) | (luminance > 0.95)
    luminance = torch.where(flip, background_luminance - sign * delta, luminance).clamp(0.05, 0.95)
    color_a = _color(luminance, draws.take(0.0, 0.4), draws.take(count=3))
    stripe_color = draws.take(count=3)
    stripe_contrast = draws.take(0.15, 0.4)
    color_b = (color_a + stripe_contrast[:, None] * (2.0 * stripe_color - 1.0)).clamp(0.0, 1.0)
    return {
        "color_mid": 0.5 * (color_a + color_b),
        "color_half_diff": 0.5 * (color_b - color_a),
        "stripe_freq": draws.take(1.0, 2.5) * math.pi,  # rad per object radius: 1-2.5 half-cycles per radius
        "stripe_angle": draws.take(0.0, math.pi),
        "stripe_phase": draws.take(0.0, 2.0 * math.pi),
        "is_triangle": draws.take() < 0.25,
        "squareness": draws.take(),  # 0: ellipse ... 1: rectangle
        "aspect": draws.take(0.55, 0.9),
        "angle": draws.take(0.0, 2.0 * math.pi),
    }


def _sample_scene(uniforms: Tensor, labels: Tensor, progress: Tensor, motion_time: Tensor) -> dict:
    """Map per-clip uniforms to a scene: per-clip constants (N,) and per-frame trajectories (N, T)."""
    draws = _Draws(uniforms)
    family = labels // 2
    p = progress  # (N, T), in [0, 1]; already mirrored for reversed classes

    # Background: two oriented sinusoidal gratings, colour, contrast.
    bg_luminance = draws.take(0.2, 0.8)
    bg_base = _color(bg_luminance, draws.take(0.0, 0.35), draws.take(count=3))
    bg_contrast = draws.take(0.05, 0.22)[:, None] * draws.take(0.5, 1.0, count=3)
    gratings = []
    for _ in range(2):
        freq = draws.take(1.0, 4.0) * math.pi  # 1-4 cycles across the frame (width 2)
        orientation = draws.take(0.0, math.pi)
        gratings.append(
            (freq * torch.cos(orientation), freq * torch.sin(orientation), draws.take(0.0, 2 * math.pi))
        )
    grating_mix = draws.take(0.2, 0.8)

    # Camera shake (normalized units; 0.06 = 1 pixel at 32x32), lighting, sensor noise.
    shake_amp = draws.take(0.0, 0.06)
    shake = []
    for _ in range(2):
        omega, phase = draws.take(0.3, 1.3), draws.take(0.0, 2 * math.pi)
        shake.append(shake_amp[:, None] * torch.sin(omega[:, None] * motion_time + phase[:, None]))
    gain = draws.take(0.85, 1.15)[:, None] + draws.take(0.0, 0.06)[:, None] * torch.sin(
        draws.take(0.05, 0.4)[:, None] * motion_time + draws.take(0.0, 2 * math.pi)[:, None]
    )
    noise_std = draws.take(0.0, 0.04)

    primary = _object_appearance(draws, bg_luminance)
    second = _object_appearance(draws, bg_luminance)

    # Primary object: static defaults, then each family's motion.
    radius = draws.take(0.25, 0.45)
    centre = draws.take(-0.25, 0.25, count=2)
    travel = draws.take(1.0, 1.6)
    direction_jitter = draws.take(-math.pi / 12, math.pi / 12)
    zoom_log_factor = torch.log(draws.take(2.2, 3.2))
    rotation_total = draws.take(200.0, 360.0) * (math.pi / 180.0)
    fade_width = draws.take(0.5, 0.85)
    fade_centre = draws.take(0.42, 0.58)
    meet_axis = draws.take(0.0, 2 * math.pi)
    meet_gap = draws.take(0.02, 0.12)
    meet_span = draws.take(0.9, 1.25)
    meet_radii = draws.take(0.15, 0.25, count=2)
    distractor_radius = draws.take(0.15, 0.28)
    distractor_centre = draws.take(-0.7, 0.7, count=2)

    ones = torch.ones_like(p)
    fam = family[:, None]
    cx1, cy1 = centre[:, 0:1] * ones, centre[:, 1:2] * ones
    scale1 = radius[:, None] * ones
    angle1 = primary["angle"][:, None] * ones
    opacity1 = ones.clone()

    heading = torch.where(family == _TRANSLATE_V, math.pi / 2, 0.0) + direction_jitter
    offset = (p - 0.5) * travel[:, None]
    is_translation = (fam == _TRANSLATE_H) | (fam == _TRANSLATE_V)
    cx1 = torch.where(is_translation, cx1 + offset * torch.cos(heading)[:, None], cx1)
    cy1 = torch.where(is_translation, cy1 + offset * torch.sin(heading)[:, None], cy1)
    scale1 = torch.where(
        fam == _ZOOM, scale1 * 0.85 * torch.exp((p - 0.5) * zoom_log_factor[:, None]), scale1
    )
    # Image y points down, so an increasing angle turns the object clockwise on screen.
    angle1 = torch.where(fam == _ROTATE, angle1 + (p - 0.5) * rotation_total[:, None], angle1)
    scale1 = torch.where(fam == _ROTATE, scale1 * 1.2, scale1)
    fade = (0.5 + (p - fade_centre[:, None]) / fade_width[:, None]).clamp(0.0, 1.0)
    opacity1 = torch.where(fam == _FADE, fade, opacity1)

    # Second object: a static distractor, or the partner in meet / part.
    cx2 = distractor_centre[:, 0:1] * ones
    cy2 = distractor_centre[:, 1:2] * ones
    scale2 = distractor_radius[:, None] * ones
    angle2 = second["angle"][:, None] * ones
    is_meet = fam == _MEET
    # Distance between centres shrinks linearly to (1.15 * (r1 + r2) + gap) at p = 1.
    contact = 1.15 * (meet_radii[:, 0] + meet_radii[:, 1]) + meet_gap
    half_distance = 0.5 * (contact[:, None] + meet_span[:, None] * (1.0 - p))
    ux, uy = torch.cos(meet_axis)[:, None], torch.sin(meet_axis)[:, None]
    meet_centre = 0.4 * centre  # keep both objects in view
    cx1 = torch.where(is_meet, meet_centre[:, 0:1] + half_distance * ux, cx1)
    cy1 = torch.where(is_meet, meet_centre[:, 1:2] + half_distance * uy, cy1)
    cx2 = torch.where(is_meet, meet_centre[:, 0:1] - half_distance * ux, cx2)
    cy2 = torch.where(is_meet, meet_centre[:, 1:2] - half_distance * uy, cy2)
    scale1 = torch.where(is_meet, meet_radii[:, 0:1] * ones, scale1)
    scale2 = torch.where(is_meet, meet_radii[:, 1:2] * ones, scale2)

    return {
        "bg_base": bg_base,
        "bg_contrast": bg_contrast,
        "gratings": gratings,
        "grating_mix": grating_mix,
        "shake_x": shake[0],
        "shake_y": shake[1],
        "gain": gain,
        "noise_std": noise_std,
        "objects": [
            # drawn in this order: the second (distractor / partner) first, the primary on top
            (second, cx2, cy2, angle2, scale2, torch.ones_like(p)),
            (primary, cx1, cy1, angle1, scale1, opacity1),
        ],
    }
