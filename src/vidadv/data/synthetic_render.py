"""Rendering of the procedural action benchmark (`vidadv.data.synthetic`): scene parameters to planned
per-frame tensors to 8-bit clips, vectorized over clips, frames and pixels; and `generate_batch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from vidadv.data.synthetic_scene import (
    _CHUNK,
    _NUM_UNIFORMS,
    _SQRT3_HALF,
    _SQUARE_HALF_SIDE,
    _TRIANGLE_INRADIUS,
    CLASS_NAMES,
    _resolve_lengths,
    _sample_scene,
    item_seed,
)
from vidadv.utils.checks import check_labels

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
