"""Procedural action clips: the dataset of vidadv's embedded transfer benchmark.

Pretrained Kinetics-400 weights cannot be used offline on a laptop CPU, so vidadv ships a small benchmark in
which the question of Wei et al. (AAAI 2022) can still be asked honestly: do adversarial clips crafted on one
video architecture transfer to others, and does Temporal Translation (cyclic temporal shifts) help?

Each class is defined by *motion over time*, never by the look of a single frame. The 12 classes form six
**time-reversed pairs** (class ``2k`` played backwards is class ``2k + 1``), so temporal order is necessary:
the unordered set of frames of a clip has exactly the same distribution for both classes of a pair.

=====  ============  ==========================================================  ===========
label  name          motion of the primary object over the sequence              reversed
=====  ============  ==========================================================  ===========
0      move_right    translates left -> right (direction jitter +-15 deg)         move_left
1      move_left     translates right -> left                                     move_right
2      move_down     translates top -> bottom (image y points down)               move_up
3      move_up       translates bottom -> top                                     move_down
4      zoom_in       grows by a factor 2.2-3.2 over the sequence (exponential)    zoom_out
5      zoom_out      shrinks by a factor 2.2-3.2 over the sequence                zoom_in
6      rotate_cw     rotates clockwise on screen, 200-360 deg per sequence        rotate_ccw
7      rotate_ccw    rotates counter-clockwise on screen                          rotate_cw
8      fade_in       opacity ramps 0 -> 1 (linear ramp, random width and centre)  fade_out
9      fade_out      opacity ramps 1 -> 0                                         fade_in
10     meet          two objects approach each other until they (almost) touch    part
11     part          two touching objects move apart                              meet
=====  ============  ==========================================================  ===========

Everything else is random per clip: background (two oriented gratings, colours, contrast), object shapes
(ellipse to rectangle continuum or triangle, aspect ratio), striped object textures, colours (the object
always differs in luminance from the background by 0.25-0.5), sizes, start position and phase, a static
distractor object (in the non-"meet/part" classes), camera jitter (smooth shake of up to ~1 pixel at 32x32),
lighting gain and flicker, and sensor noise. Clips are 8-bit quantized (multiples of 1/255), like decoded
video, and laid out ``(C, T, H, W)`` with values in ``[0, 1]``.

A clip of ``frames`` frames is a temporal window of a longer generated sequence of ``sequence_length``
frames (default ``3 * frames // 2``, i.e. 48 for 32-frame clips). The motion is defined over the whole
sequence (progress ``p = t / (L - 1)`` in ``[0, 1]``; the reversed class uses ``1 - p`` and plays camera
shake, flicker and noise backwards too), so a clip sees ``frames / sequence_length`` of the action and,
with ``random_window``, may start anywhere in it, as with real video. A fixed window is the centred one.

Determinism and splits: every random choice comes from a ``torch.Generator``. In :class:`ProceduralActions`
item ``i`` of split ``s`` uses its own generator seeded with ``item_seed(seed, s, i)`` (splitmix64 of the
seed, a per-split constant and the index), so an item does not depend on access order, batch composition or
dataset size, and train / val / test draw from different seed streams (disjoint in practice; the tests check
that no clip repeats across splits). Random windows use a second stream ``window_seed(item_seed, epoch)``;
call :meth:`ProceduralActions.set_epoch` to draw new windows each epoch. :func:`generate_batch` draws a
fresh batch from one generator, for training on unlimited data.

Rendering is vectorized over clips, frames and pixels (analytic shapes on coordinate grids, no per-pixel
Python loops); see ``benchmarks/synthetic_data.py`` for its speed.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidadv.utils.checks import check_labels
from vidadv.utils.io import atomic_save_tensors

__all__ = [
    "CLASS_NAMES",
    "CLASS_MOTIONS",
    "REVERSED_PAIRS",
    "SPLITS",
    "GENERATOR_VERSION",
    "ProceduralActions",
    "generate_batch",
    "build_synthetic_dataset",
    "describe",
    "item_seed",
    "window_seed",
    "default_cache_dir",
]

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


# --------------------------------------------------------------------------------------------- rendering
# Rendering is split in two stages. _plan() turns the scene of a block of clips into small tensors: per-clip
# and per-frame constants and 1-D functions of the pixel column (N, T, W) or row (N, T, H). Everything the
# renderer draws is either linear in (x, y) -- object coordinates, stripe phase -- or separable -- grating
# backgrounds, via sin(a + b) = sin a cos b + cos a sin b -- so each full-size (N, T, H, W) quantity costs one
# broadcast pass. _render_chunk() then runs a fixed sequence of in-place passes over preallocated buffers for
# a few clips at a time, small enough to stay in cache.
_PLAN_BLOCK = 128  # clips planned at once (bounds the memory of the 1-D tensors)


def _object_plan(
    prefix: str,
    look: dict[str, Tensor],
    cx: Tensor,
    cy: Tensor,
    angle: Tensor,
    scale: Tensor,
    opacity: Tensor,
    xs: Tensor,
    ys: Tensor,
    gain255: Tensor,
    pixels_per_unit: float,
) -> dict[str, Tensor]:
    """1-D ingredients of one textured analytic shape (see _render_chunk for how they combine)."""
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    inv_scale = (1.0 / scale)[..., None]
    inv_width = inv_scale / look["aspect"][:, None, None]
    dx = xs - cx[..., None]  # (N, T, W)
    dy = ys - cy[..., None]  # (N, T, H)
    # Anti-aliased coverage alpha = clamp(0.5 + radius_px * (1 - distance)), where the shape "distance"
    # (1 on the outline) is a per-clip blend of disc (hypot) and box (max-norm) distances, or a triangle's.
    radius_px = scale * pixels_per_unit  # (N, T)
    squareness = look["squareness"][:, None]
    triangle = look["is_triangle"].to(torch.float32)[:, None]
    k_cos = (look["stripe_freq"] * torch.cos(look["stripe_angle"]))[:, None, None]
    k_sin = (look["stripe_freq"] * torch.sin(look["stripe_angle"]))[:, None, None]
    return {
        # Object-local coordinates in units of the radius: u = ux[x] + uy[y] (long axis), v = vx[x] + vy[y].
        prefix + "ux": dx * (cos * inv_width),
        prefix + "uy": dy * (sin * inv_width),
        prefix + "vx": dx * (-sin * inv_scale),
        prefix + "vy": dy * (cos * inv_scale),
        prefix + "w_disc": -radius_px * (1.0 - squareness) * (1.0 - triangle),
        prefix + "w_box": -radius_px * squareness * (1.0 - triangle) / _SQUARE_HALF_SIDE,
        prefix + "w_tri": -radius_px * triangle / _TRIANGLE_INRADIUS,
        prefix + "bias": radius_px + 0.5,
        prefix + "triangle": look["is_triangle"],
        prefix + "opacity": opacity,
        # Stripe phase k * (u cos b + v sin b) + phase, fixed to the object so that it turns with it.
        prefix + "sx": dx * (k_cos * cos * inv_width - k_sin * sin * inv_scale)
        + look["stripe_phase"][:, None, None],
        prefix + "sy": dy * (k_cos * sin * inv_width + k_sin * cos * inv_scale),
        prefix + "mid": look["color_mid"][:, :, None] * gain255[:, None, :],  # (N, 3, T), 8-bit units
        prefix + "half": look["color_half_diff"][:, :, None] * gain255[:, None, :],
    }


def _plan(
    labels: Tensor, uniforms: Tensor, times: Tensor, size: int, sequence_length: int
) -> dict[str, Tensor]:
    """Scene of clips ``labels`` at absolute frame indices ``times`` (N, T), as tensors with leading dim N."""
    reversed_class = labels % 2 == 1
    last = float(sequence_length - 1)
    motion_time = torch.where(reversed_class[:, None], last - times, times)
    progress = motion_time / max(last, 1.0)
    scene = _sample_scene(uniforms, labels, progress, motion_time)

    pixel_centres = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    xs = pixel_centres + scene["shake_x"][..., None]  # (N, T, W): scene coordinates under camera shake
    ys = pixel_centres + scene["shake_y"][..., None]  # (N, T, H)
    gain255 = scene["gain"] * 255.0  # (N, T): lighting, in 8-bit units

    plan: dict[str, Tensor] = {
        "reversed": reversed_class,
        "bg_base": scene["bg_base"][:, :, None] * gain255[:, None, :],
        "bg_contrast": scene["bg_contrast"][:, :, None] * gain255[:, None, :],
        "noise_scale": scene["noise_std"] * (math.sqrt(12.0) * 255.0),
    }
    for index, (kx, ky, phase) in enumerate(scene["gratings"]):
        weight = (scene["grating_mix"] if index == 0 else 1.0 - scene["grating_mix"])[:, None, None]
        a = xs * kx[:, None, None] + phase[:, None, None]
        b = ys * ky[:, None, None]
        plan[f"g{index}_sa"], plan[f"g{index}_ca"] = torch.sin(a) * weight, torch.cos(a) * weight
        plan[f"g{index}_sb"], plan[f"g{index}_cb"] = torch.sin(b), torch.cos(b)
    for index, (look, cx, cy, angle, scale, opacity) in enumerate(scene["objects"]):
        plan.update(
            _object_plan(f"o{index}_", look, cx, cy, angle, scale, opacity, xs, ys, gain255, size / 2.0)
        )
    return plan


class _Workspace:
    """Preallocated (CHUNK, T, H, W) float buffers, reused by every chunk of one render call."""

    def __init__(self, frames: int, size: int) -> None:
        self.shape = (_CHUNK, frames, size, size)
        self.buffers: dict[str, Tensor] = {}

    def __call__(self, name: str, n: int) -> Tensor:
        buffer = self.buffers.get(name)
        if buffer is None:
            buffer = self.buffers[name] = torch.empty(self.shape)
        return buffer[:n]


def _row(t: Tensor) -> Tensor:
    return t[:, :, None, :]  # (N, T, W) -> (N, T, 1, W)


def _col(t: Tensor) -> Tensor:
    return t[:, :, :, None]  # (N, T, H) -> (N, T, H, 1)


def _per_frame(t: Tensor) -> Tensor:
    return t[:, :, None, None]  # (N, T) -> (N, T, 1, 1)


def _render_chunk(plan: dict[str, Tensor], noise: Tensor, out: Tensor, work: _Workspace) -> None:
    """Render one chunk of planned clips into ``out`` (n, 3, T, H, W), 8-bit quantized.

    ``noise`` (n, T, H, W) holds U(0, 1) draws in the forward class's playback order; reversed classes play
    it backwards, like every other function of time. uint8 ``out`` gets 0..255, float ``out`` k / 255.
    """
    n = out.shape[0]
    # Background: weighted sum of two gratings, around a base colour.
    pattern = work("pattern", n)
    torch.mul(_row(plan["g0_sa"]), _col(plan["g0_cb"]), out=pattern)
    pattern.addcmul_(_row(plan["g0_ca"]), _col(plan["g0_sb"]))
    pattern.addcmul_(_row(plan["g1_sa"]), _col(plan["g1_cb"]))
    pattern.addcmul_(_row(plan["g1_ca"]), _col(plan["g1_sb"]))
    planes = []
    for c in range(3):
        plane = work(f"plane{c}", n)
        torch.mul(pattern, _per_frame(plan["bg_contrast"][:, c]), out=plane).add_(
            _per_frame(plan["bg_base"][:, c])
        )
        planes.append(plane)

    u, v, alpha, scratch, color = (work(name, n) for name in ("u", "v", "alpha", "scratch", "color"))
    for prefix in ("o0_", "o1_"):  # the distractor / partner first, the primary object on top
        torch.add(_row(plan[prefix + "ux"]), _col(plan[prefix + "uy"]), out=u)
        torch.add(_row(plan[prefix + "vx"]), _col(plan[prefix + "vy"]), out=v)
        torch.mul(u, u, out=alpha).addcmul_(v, v).sqrt_()  # disc distance (faster than torch.hypot)
        alpha.mul_(_per_frame(plan[prefix + "w_disc"])).add_(_per_frame(plan[prefix + "bias"]))
        abs_u = u.abs_()
        torch.abs(v, out=scratch)
        torch.maximum(abs_u, scratch, out=scratch)
        alpha.addcmul_(scratch, _per_frame(plan[prefix + "w_box"]))
        if bool(plan[prefix + "triangle"].any()):
            # Equilateral triangle (apex up) of inradius 1: max(v, sqrt(3)/2 |u| - v/2).
            abs_u.sub_(v, alpha=1.0 / math.sqrt(3.0)).mul_(_SQRT3_HALF)
            torch.maximum(v, abs_u, out=scratch)
            alpha.addcmul_(scratch, _per_frame(plan[prefix + "w_tri"]))
        alpha.clamp_(0.0, 1.0)
        opacity = plan[prefix + "opacity"]
        if not bool((opacity == 1.0).all()):
            alpha.mul_(_per_frame(opacity))
        stripe = torch.add(_row(plan[prefix + "sx"]), _col(plan[prefix + "sy"]), out=u).sin_()
        for c, plane in enumerate(planes):
            torch.mul(stripe, _per_frame(plan[prefix + "half"][:, c]), out=color)
            color.add_(_per_frame(plan[prefix + "mid"][:, c]))
            plane.lerp_(color, alpha)

    # Zero-mean uniform sensor noise (shared by the channels), then 8-bit quantization.
    scaled_noise = work("noise", n)
    scaled_noise.copy_(noise)
    reversed_class = plan["reversed"]
    if bool(reversed_class.any()):
        scaled_noise[reversed_class] = noise[reversed_class].flip(1)
    scale = plan["noise_scale"][:, None, None, None]
    scaled_noise.mul_(scale).sub_(0.5 * scale)
    for c, plane in enumerate(planes):
        plane.add_(scaled_noise).clamp_(0.0, 255.0).round_()
        if out.is_floating_point():
            plane.div_(255.0)  # exactly k / 255, like uint8 clips converted to float
        out[:, c].copy_(plane)


def _render(
    labels: Tensor,
    uniforms: Tensor,
    times: Tensor,
    size: int,
    sequence_length: int,
    fill_noise,
    as_uint8: bool,
) -> Tensor:
    """Render clips (N, 3, T, H, W); ``fill_noise(start, stop, buffer)`` fills U(0, 1) noise of those clips.

    Clips are planned in blocks and drawn in fixed chunks of ``_CHUNK`` clips (results never depend on how
    a caller batches them beyond that).
    """
    n, frames = times.shape
    out = torch.empty((n, 3, frames, size, size), dtype=torch.uint8 if as_uint8 else torch.float32)
    work = _Workspace(frames, size)
    for block_start in range(0, n, _PLAN_BLOCK):
        block_stop = min(block_start + _PLAN_BLOCK, n)
        block = slice(block_start, block_stop)
        plan = _plan(labels[block], uniforms[block], times[block], size, sequence_length)
        for start in range(block_start, block_stop, _CHUNK):
            stop = min(start + _CHUNK, block_stop)
            noise = work("raw_noise", stop - start)
            fill_noise(start, stop, noise)
            chunk_plan = {key: value[start - block_start : stop - block_start] for key, value in plan.items()}
            _render_chunk(chunk_plan, noise, out[start:stop], work)
    return out


def generate_batch(
    labels: Tensor | Sequence[int],
    generator: torch.Generator | None = None,
    size: int = 32,
    frames: int = 32,
    *,
    sequence_length: int | None = None,
    random_window: bool = True,
) -> Tensor:
    """Render fresh random clips of the given classes: float32 (N, 3, frames, size, size) in [0, 1].

    For training on unlimited data: each call draws new scenes (and, with ``random_window``, a random
    temporal window of the ``sequence_length``-frame sequence, uniform over all start frames) from
    ``generator``. With ``random_window=False`` the centred window is used. The same generator state gives
    the same batch; a clip of class ``b`` is the time mirror of the clip of its reversed class ``a`` drawn
    from the same state (exactly so for the centred window when ``sequence_length - frames`` is even).
    """
    labels = check_labels(labels, num_classes=len(CLASS_NAMES))
    size, frames, sequence_length = _resolve_lengths(size, frames, sequence_length)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    n = labels.shape[0]
    uniforms = torch.rand((n, _NUM_UNIFORMS), generator=generator)
    if random_window:
        starts = torch.randint(0, sequence_length - frames + 1, (n,), generator=generator)
    else:
        starts = torch.full((n,), (sequence_length - frames) // 2)
    times = (starts[:, None] + torch.arange(frames)[None, :]).to(torch.float32)

    def fill_noise(start: int, stop: int, buffer: Tensor) -> None:
        buffer.uniform_(0.0, 1.0, generator=generator)

    return _render(labels, uniforms, times, size, sequence_length, fill_noise, as_uint8=False)


def _render_items(
    split: str, seed: int, indices: Sequence[int], labels: Tensor, size: int, sequence_length: int
) -> Tensor:
    """Full ``sequence_length``-frame sequences (uint8, N x 3 x L x H x W) of dataset items ``indices``."""
    generators = [torch.Generator().manual_seed(item_seed(seed, split, i)) for i in indices]
    uniforms = torch.stack([torch.rand(_NUM_UNIFORMS, generator=g) for g in generators])
    times = torch.arange(sequence_length, dtype=torch.float32).expand(len(indices), sequence_length)

    def fill_noise(start: int, stop: int, buffer: Tensor) -> None:
        for row, g in enumerate(generators[start:stop]):
            buffer[row].uniform_(0.0, 1.0, generator=g)

    return _render(labels, uniforms, times, size, sequence_length, fill_noise, as_uint8=True)


# --------------------------------------------------------------------------------------------- dataset
def default_cache_dir() -> Path:
    """``$VIDADV_CACHE`` if set, else ``~/.cache/vidadv``."""
    root = os.environ.get("VIDADV_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "vidadv"


class ProceduralActions(Dataset):
    """Procedural action clips of one split, as a torch ``Dataset`` of ``(clip, label, clip_id)``.

    ``clip`` is float32 (3, frames, size, size) in [0, 1]; ``label`` an int in ``[0, 12)`` (see
    :data:`CLASS_NAMES`); ``clip_id`` a string ``"<split>-s<seed>-<index>"``. Labels are balanced:
    item ``i`` has label ``i % 12``. Items are rendered lazily in chunks and kept (as uint8) in memory:
    ``num_clips * 3 * size**2`` bytes times ``sequence_length`` (random windows: whole sequences are kept)
    or ``frames`` (fixed centred window) -- e.g. 354 MB for 2400 random-window clips at 32x32, L = 48.
    Before using DataLoader workers call :meth:`materialize` (or pass ``cache``), so that the workers share
    the rendered clips instead of each rendering its own copy.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; each split has its own seed stream.
        size: frame height and width in pixels (>= 16; 32 is the CPU default, 64 or 112 also work).
        frames: clip length T (>= 2).
        num_clips: number of items (default 2400 / 600 / 1200 for train / val / test).
        seed: base seed of the dataset.
        sequence_length: length L of the generated sequence the clip is cut from (default ``3*frames//2``).
        random_window: cut a random window (new per epoch, see :meth:`set_epoch`) instead of the centred
            one. Default: True for ``"train"``, False otherwise.
        cache: False (render on the fly), True (cache the whole split as .safetensors under
            :func:`default_cache_dir`), or a folder to cache in.
        progress: show a progress bar while rendering a whole split (caching, :meth:`materialize`).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        frames: int = 32,
        num_clips: int | None = None,
        seed: int = 0,
        sequence_length: int | None = None,
        random_window: bool | None = None,
        cache: bool | str | os.PathLike = False,
        progress: bool = True,
    ) -> None:
        self.split = _check_split(split)
        self.size, self.frames, self.sequence_length = _resolve_lengths(size, frames, sequence_length)
        self.num_clips = _check_int(
            "num_clips", _DEFAULT_NUM_CLIPS[self.split] if num_clips is None else num_clips, 1
        )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        if random_window is None:
            random_window = self.split == "train"
        if not isinstance(random_window, bool):
            raise TypeError(f"random_window must be a bool or None, got {type(random_window).__name__}")
        self.random_window = random_window
        self.progress = progress
        self.epoch = 0
        self.labels = torch.arange(self.num_clips) % len(CLASS_NAMES)
        # Stored frames: whole sequences when windows move between epochs, else just the centred window.
        self._stored_frames = self.sequence_length if random_window else self.frames
        self._store = torch.empty(
            (self.num_clips, 3, self._stored_frames, self.size, self.size), dtype=torch.uint8
        )
        self._rendered = torch.zeros(math.ceil(self.num_clips / _CHUNK), dtype=torch.bool)
        self._window_cache: dict[int, int] = {}
        self.cache_path: Path | None = None
        if cache is not False and cache is not None:
            folder = default_cache_dir() / "synthetic" if cache is True else Path(cache)
            self.cache_path = folder / self._cache_name()
            self._load_or_create_cache()

    # ------------------------------------------------------------------ public
    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    @property
    def num_classes(self) -> int:
        return len(CLASS_NAMES)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[Tensor, int, str]:
        index = self._check_index(index)
        self._ensure_rendered(index // _CHUNK)
        start = self._window_start(index)
        clip = self._store[index, :, start : start + self.frames].to(torch.float32).div_(255.0)
        return clip, int(self.labels[index]), self.clip_id(index)

    def clips(self, indices: Sequence[int] | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Batch access: float32 clips (N, 3, T, H, W) and labels (N,) of ``indices`` (default: all)."""
        if indices is None:
            indices = range(self.num_clips)
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        indices = [self._check_index(i) for i in indices]
        for chunk in sorted({i // _CHUNK for i in indices}):
            self._ensure_rendered(chunk)
        out = torch.empty((len(indices), 3, self.frames, self.size, self.size), dtype=torch.float32)
        for row, i in enumerate(indices):
            start = self._window_start(i)
            out[row] = self._store[i, :, start : start + self.frames]
        return out.div_(255.0), self.labels[indices]

    def clip_id(self, index: int) -> str:
        return f"{self.split}-s{self.seed}-{index:06d}"

    def set_epoch(self, epoch: int) -> None:
        """Select the random temporal windows of ``epoch`` (no effect without ``random_window``)."""
        self.epoch = _check_int("epoch", epoch, 0)
        self._window_cache.clear()

    def materialize(self) -> ProceduralActions:
        """Render every item now (with a progress bar); returns self."""
        from tqdm.auto import tqdm

        pending = [c for c in range(len(self._rendered)) if not self._rendered[c]]
        for chunk in tqdm(
            pending, desc=f"rendering {self.split} clips", unit="chunk", disable=not self.progress
        ):
            self._ensure_rendered(chunk)
        return self

    def __repr__(self) -> str:
        return (
            f"ProceduralActions(split={self.split!r}, size={self.size}, frames={self.frames}, "
            f"num_clips={self.num_clips}, seed={self.seed}, sequence_length={self.sequence_length}, "
            f"random_window={self.random_window})"
        )

    # ------------------------------------------------------------------ internals
    def _check_index(self, index: int) -> int:
        if isinstance(index, bool):
            raise TypeError("index must be an int, got bool")
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an int, got {type(index).__name__}") from None
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return index

    def _ensure_rendered(self, chunk: int) -> None:
        if self._rendered[chunk]:
            return
        # Always render whole aligned chunks (padding past the end) so an item never depends on num_clips.
        indices = list(range(chunk * _CHUNK, (chunk + 1) * _CHUNK))
        labels = torch.tensor(indices) % len(CLASS_NAMES)
        sequences = _render_items(self.split, self.seed, indices, labels, self.size, self.sequence_length)
        keep = min(_CHUNK, self.num_clips - chunk * _CHUNK)
        if not self.random_window:
            centre = (self.sequence_length - self.frames) // 2
            sequences = sequences[:, :, centre : centre + self.frames]
        self._store[chunk * _CHUNK : chunk * _CHUNK + keep] = sequences[:keep]
        self._rendered[chunk] = True

    def _window_start(self, index: int) -> int:
        if not self.random_window:
            return 0
        start = self._window_cache.get(index)
        if start is None:
            generator = torch.Generator().manual_seed(
                window_seed(item_seed(self.seed, self.split, index), self.epoch)
            )
            start = int(torch.randint(0, self.sequence_length - self.frames + 1, (1,), generator=generator))
            self._window_cache[index] = start
        return start

    def _cache_name(self) -> str:
        return (
            f"procedural_actions_v{GENERATOR_VERSION}_{self.split}_seed{self.seed}_n{self.num_clips}"
            f"_s{self.size}_t{self.frames}_l{self.sequence_length}_{'rw' if self.random_window else 'cw'}"
            ".safetensors"
        )

    def _metadata(self) -> dict[str, str]:
        return {
            "generator_version": str(GENERATOR_VERSION),
            "split": self.split,
            "seed": str(self.seed),
            "num_clips": str(self.num_clips),
            "size": str(self.size),
            "frames": str(self.frames),
            "sequence_length": str(self.sequence_length),
            "random_window": str(self.random_window),
        }

    def _load_or_create_cache(self) -> None:
        assert self.cache_path is not None
        if self.cache_path.is_file():
            from safetensors import safe_open

            try:
                with safe_open(str(self.cache_path), framework="pt") as handle:
                    metadata = handle.metadata() or {}
                    clips = handle.get_tensor("clips")
                if (
                    metadata == self._metadata()
                    and clips.shape == self._store.shape
                    and clips.dtype == torch.uint8
                ):
                    self._store = clips
                    self._rendered[:] = True
                    return
            except Exception:  # unreadable or foreign file: regenerate and overwrite it
                pass
        self.materialize()
        atomic_save_tensors(
            self.cache_path, {"clips": self._store, "labels": self.labels}, metadata=self._metadata()
        )


_SPEC_KEYS = ("split", "num_clips", "size", "frames", "seed", "sequence_length", "random_window", "cache")


def build_synthetic_dataset(**spec: object) -> ProceduralActions:
    """Build a :class:`ProceduralActions` from a spec dict (e.g. a YAML config section).

    Valid keys: split, num_clips, size, frames, seed, sequence_length, random_window, cache.
    """
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ValueError(f"unknown synthetic dataset key(s) {unknown}; valid keys: {', '.join(_SPEC_KEYS)}")
    return ProceduralActions(**spec)  # type: ignore[arg-type]


def describe() -> str:
    """Markdown table of the classes, their motion and their time-reversed partner."""
    partner = {a: b for a, b in REVERSED_PAIRS} | {b: a for a, b in REVERSED_PAIRS}
    lines = ["| label | class | motion | reversed class |", "|---|---|---|---|"]
    for label, (name, motion) in enumerate(zip(CLASS_NAMES, CLASS_MOTIONS, strict=True)):
        lines.append(f"| {label} | {name} | {motion} | {CLASS_NAMES[partner[label]]} |")
    return "\n".join(lines)
