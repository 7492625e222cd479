"""Input-transform gradient estimators: each maps a batch of rows to a bigger batch of transformed
copies and maps the copies' gradients back to one gradient per input row.

Rows are ordered copy-major: copy k of input row b is output row ``k * B + b``. Nesting transforms
(outer to inner) therefore builds the full set of copies, which then go through the model in one
batched, chunked forward/backward pass; the gradients travel back through the transforms in reverse.

Every random draw of a row comes from the generator of the clip that row belongs to, in row order,
so a clip receives the same draws whether it is attacked alone or in a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from vidadv.attacks.temporal import check_clip_length, roll_frames, shift_offsets, temporal_weights

__all__ = [
    "Rows",
    "StepContext",
    "InputTransform",
    "TemporalTranslation",
    "DiverseInputs",
    "ScaleInvariance",
    "VarianceReduction",
    "VarianceTuning",
]


@dataclass
class Rows:
    """A batch of (possibly transformed) clips: `x` (R, C, T, H, W), the clip index of each row,
    and, when ATA needs it, the clean clips transformed the same way (`ref`)."""

    x: torch.Tensor
    clip: torch.Tensor
    ref: torch.Tensor | None = None


@dataclass
class StepContext:
    """Per-attack-call state shared by the transforms: one generator per clip, and a dict for
    state that lives across steps (e.g. VT's variance)."""

    generators: list[torch.Generator]
    eps: float
    state: dict[int, Any] = field(default_factory=dict)


def _repeat(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    if t is None:
        return None
    return t.repeat((k,) + (1,) * (t.dim() - 1))


class InputTransform:
    """Base class. `copies` is how many rows one input row becomes; `random_geometry` says whether the
    transform's geometry (and hence ATA's reference attention) changes from step to step."""

    name: str = ""
    copies: int = 1
    random_geometry: bool = False

    def check(self, x: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Validate clip shape constraints (raise ValueError)."""

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        raise NotImplementedError

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError


class TemporalTranslation(InputTransform):
    """TT: 2L+1 cyclically shifted copies; gradient = sum_i w_i roll(g_i, -s_i)."""

    name = "tt"

    def __init__(self, shift_length: int, weights: Any, strategy: str) -> None:
        self.shift_length = shift_length
        self.weights = temporal_weights(shift_length, weights)
        self.strategy = strategy
        self.copies = 2 * shift_length + 1
        self.random_geometry = strategy == "random" and shift_length > 0

    def check(self, x: torch.Tensor) -> None:
        check_clip_length(x.shape[2], self.shift_length)

    def _shifts(self, rows: Rows, ctx: StepContext) -> torch.Tensor:
        """(copies, B) integer shifts."""
        B, T = rows.x.shape[0], rows.x.shape[2]
        if self.strategy != "random":
            offsets = shift_offsets(self.shift_length, T, self.strategy)
            return torch.tensor(offsets, dtype=torch.long).view(-1, 1).expand(-1, B)
        per_row = [
            shift_offsets(self.shift_length, T, "random", ctx.generators[int(c)]) for c in rows.clip.tolist()
        ]
        return torch.tensor(per_row, dtype=torch.long).t().reshape(self.copies, B)

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        shifts = self._shifts(rows, ctx)
        x = torch.cat([roll_frames(rows.x, s) for s in shifts])
        ref = None if rows.ref is None else torch.cat([roll_frames(rows.ref, s) for s in shifts])
        return Rows(x, rows.clip.repeat(self.copies), ref), shifts

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        shifts: torch.Tensor = saved
        B = grad.shape[0] // self.copies
        weights = self.weights.tolist()
        out = torch.zeros_like(grad[:B])
        for k in range(self.copies):
            out.add_(roll_frames(grad[k * B : (k + 1) * B], -shifts[k]), alpha=float(weights[k]))
        return out


class DiverseInputs(InputTransform):
    """DI (Xie et al. CVPR 2019): with probability p, resize every frame of a clip to a random size
    rnd in [H, round(H*r)) (nearest), zero-pad at a random place to round(H*r), and resize back to
    H (as the TT repository's video DI: 224 -> [224, 250) -> pad 250 -> 224, i.e. r = 250/224).
    The same transform is used for all frames of a copy; it is drawn per row from its clip's
    generator at every step. Non-square frames scale W by the same factor."""

    name = "di"

    def __init__(self, diversity_prob: float, resize_rate: float) -> None:
        self.diversity_prob = diversity_prob
        self.resize_rate = resize_rate
        self.random_geometry = diversity_prob > 0

    def _draw(self, H: int, W: int, generator: torch.Generator) -> tuple[int, int, int, int, int, int] | None:
        device = generator.device
        apply = float(torch.rand((), generator=generator, device=device)) < self.diversity_prob
        if not apply:
            return None
        H_max = max(round(H * self.resize_rate), H)
        W_max = max(round(W * self.resize_rate), W)
        if H_max == H:
            return None
        rnd_h = int(torch.randint(H, H_max, (), generator=generator, device=device))
        rnd_w = min(max(round(W * rnd_h / H), W), W_max)
        top = int(torch.randint(0, H_max - rnd_h, (), generator=generator, device=device))
        left = int(torch.randint(0, max(W_max - rnd_w, 1), (), generator=generator, device=device))
        return rnd_h, rnd_w, top, left, H_max, W_max

    @staticmethod
    def _apply(clip: torch.Tensor, params: tuple[int, int, int, int, int, int]) -> torch.Tensor:
        C, T, H, W = clip.shape
        rnd_h, rnd_w, top, left, H_max, W_max = params
        frames = clip.reshape(1, C * T, H, W)
        resized = F.interpolate(frames, size=(rnd_h, rnd_w), mode="nearest")
        padded = F.pad(resized, [left, W_max - rnd_w - left, top, H_max - rnd_h - top])
        return F.interpolate(padded, size=(H, W), mode="nearest").reshape(C, T, H, W)

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        H, W = rows.x.shape[-2:]
        params = [self._draw(H, W, ctx.generators[int(c)]) for c in rows.clip.tolist()]
        if all(p is None for p in params):
            return rows, None
        source = rows.x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = torch.stack(
                [clip if p is None else self._apply(clip, p) for clip, p in zip(source, params, strict=True)]
            )
        ref = None
        if rows.ref is not None:
            ref = torch.stack(
                [c if p is None else self._apply(c, p) for c, p in zip(rows.ref, params, strict=True)]
            )
        return Rows(out.detach(), rows.clip, ref), (source, out)

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        if saved is None:
            return grad
        source, out = saved
        (back,) = torch.autograd.grad(out, source, grad_outputs=grad)
        return back


class ScaleInvariance(InputTransform):
    """SIM (Lin et al. ICLR 2020): copies x / 2^i, i = 0..m-1; gradient = mean_i 2^-i g_i, the exact
    gradient of mean_i J(x / 2^i) (the chain-rule factor 2^-i is what "scaled gradient" means)."""

    name = "sim"

    def __init__(self, sim_copies: int) -> None:
        self.copies = sim_copies

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        scales = [2.0**-i for i in range(self.copies)]
        x = torch.cat([rows.x * s for s in scales])
        ref = None if rows.ref is None else torch.cat([rows.ref * s for s in scales])
        return Rows(x, rows.clip.repeat(self.copies), ref), None

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        B = grad.shape[0] // self.copies
        out = torch.zeros_like(grad[:B])
        for i in range(self.copies):
            out += grad[i * B : (i + 1) * B] * (2.0**-i)
        return out / self.copies


class VarianceReduction(InputTransform):
    """VR (Wu et al. 2018, "Understanding and enhancing the transferability of adversarial
    examples"): gradient averaged over m copies x + N(0, sigma^2) (smoothed gradient)."""

    name = "vr"

    def __init__(self, vr_samples: int, vr_sigma: float) -> None:
        self.copies = vr_samples
        self.sigma = vr_sigma

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        B = rows.x.shape[0]
        noise = torch.empty((self.copies,) + tuple(rows.x.shape), dtype=rows.x.dtype, device=rows.x.device)
        for b, c in enumerate(rows.clip.tolist()):
            g = ctx.generators[c]
            noise[:, b] = torch.randn(
                (self.copies,) + tuple(rows.x.shape[1:]), generator=g, device=g.device, dtype=rows.x.dtype
            ).to(rows.x.device)
        x = (rows.x.unsqueeze(0) + self.sigma * noise).reshape((self.copies * B,) + tuple(rows.x.shape[1:]))
        return Rows(x, rows.clip.repeat(self.copies), _repeat(rows.ref, self.copies)), None

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        B = grad.shape[0] // self.copies
        return grad.view((self.copies, B) + tuple(grad.shape[1:])).mean(0)


class VarianceTuning(InputTransform):
    """VT (Wang & He CVPR 2021): returns g(x) + v, where v is the previous step's variance
    ``mean_j g(x + r_j) - g(x)`` with r_j ~ U[-beta*eps, beta*eps]^d (v = 0 at the first step).
    Copy 0 is the point itself, copies 1..N its neighbours, all in one batch. Always outermost."""

    name = "vt"

    def __init__(self, vt_samples: int, vt_beta: float) -> None:
        self.samples = vt_samples
        self.beta = vt_beta
        self.copies = vt_samples + 1

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        B = rows.x.shape[0]
        radius = self.beta * ctx.eps
        shape = (self.samples,) + tuple(rows.x.shape[1:])
        noise = torch.empty((self.samples,) + tuple(rows.x.shape), dtype=rows.x.dtype, device=rows.x.device)
        for b, c in enumerate(rows.clip.tolist()):
            g = ctx.generators[c]
            draw = torch.rand(shape, generator=g, device=g.device, dtype=rows.x.dtype).to(rows.x.device)
            noise[:, b] = (2.0 * draw - 1.0) * radius
        neighbours = (rows.x.unsqueeze(0) + noise).reshape((self.samples * B,) + tuple(rows.x.shape[1:]))
        x = torch.cat([rows.x, neighbours])
        return Rows(x, rows.clip.repeat(self.copies), _repeat(rows.ref, self.copies)), None

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        B = grad.shape[0] // self.copies
        point = grad[:B]
        neighbour_mean = grad[B:].view((self.samples, B) + tuple(grad.shape[1:])).mean(0)
        previous = ctx.state.get(id(self))
        tuned = point if previous is None else point + previous
        ctx.state[id(self)] = neighbour_mean - point
        return tuned


def total_copies(transforms: list[InputTransform]) -> int:
    return math.prod(t.copies for t in transforms)
