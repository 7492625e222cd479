"""`convention="official"`: the baselines and TT exactly as the released TT code computes them.

vidadv's default convention ("vidadv") implements every method from its paper's definition. The
released code of Wei et al. (AAAI 2022; readable `attack_methods.py`, the baselines as compiled
files) differs in details that change the adversarial clips; `convention="official"` reproduces them:

- gradient space: the released code differentiates with respect to the *normalized* clip
  (x - mean) / std, i.e. every gradient is vidadv's times std per channel (this changes MI's and
  TI+TT's normalizations, not a sign step);
- SGM: a backward hook on every ReLU module whose qualified name contains ``relu`` but not
  ``0.relu`` (the SGM authors' ``register_hook_for_resnet``), scaling the gradient of every call by
  gamma**0.5; the names follow gluoncv's model definitions, which vidadv's networks mirror;
- SIM: copies (x - mean) / std / 2**i of the normalized clip (pixels move toward the mean), and
  the plain mean of their gradients (no chain-rule factor 2**-i);
- DI: the normalized clip is zero-padded, i.e. the clip is padded with the mean colour;
- TT: the 2L+1 copies go through the model in 5 chunks of ceil((2L+1)/5) copies (one copy per
  chunk on TPN) with the cross-entropy averaged within a chunk, so copy k's gradient carries the
  factor 1/(size of its chunk) (`released_copy_factors`); for the L that leave a chunk empty the
  released code fails, and so does `build_attack`. Remote and random copies are rolled back by
  their index i (not by their shift), and random offsets are drawn as Python's
  ``random.randint(0, 100) % T`` (`RANDOM_DRAW_HIGH`);
- TI+TT: each copy's gradient is TI-smoothed and divided by its mean absolute value over dims
  1, 2, 3 of (N, C, T, H, W) before the weighted sum;
- ATA: attention term ``1e-2 * ||A(x_k) - A(x)||_2`` (plain norm) per copy, Grad-CAM channel
  weights as constants, reference map of the clean *unshifted* clip for every copy;
- MI (and MI+TT): per-frame gradient normalization (``momentum_norm="frame"``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from vidadv.attacks.gradients import smooth_gradient
from vidadv.attacks.temporal import shift_offsets
from vidadv.attacks.transforms import (
    DiverseInputs,
    InputTransform,
    Rows,
    ScaleInvariance,
    StepContext,
    TemporalTranslation,
    VarianceReduction,
    VarianceTuning,
)
from vidadv.models.wrapper import VideoClassifier

__all__ = [
    "CONVENTIONS",
    "RELEASED_CHUNKS",
    "RANDOM_DRAW_HIGH",
    "OFFICIAL_DEFAULTS",
    "apply_official_defaults",
    "input_normalization",
    "gradient_scale",
    "sgm_relu_modules",
    "official_skip_gradient",
    "released_chunk_sizes",
    "released_copy_factors",
    "official_shift_offsets",
    "attention_distance",
    "OFFICIAL_ATTENTION",
    "OfficialTemporalTranslation",
    "OfficialScaleInvariance",
    "OfficialDiverseInputs",
    "official_transforms",
]

CONVENTIONS = ("vidadv", "official")
#: The released TT code splits the shifted copies into this many forward passes (`batch_times`).
RELEASED_CHUNKS = 5
#: Random TT offsets are ``random.randint(0, RANDOM_DRAW_HIGH) % T`` (Python's randint: both ends
#: included, so for T = 32 offsets 0-4 have probability 4/101 and 5-31 probability 3/101).
RANDOM_DRAW_HIGH = 100
#: Network classes that the released code runs one copy per forward pass (its `model_name == 'TPNet'`).
_ONE_COPY_PER_CHUNK = ("TPNet", "TPN")
#: Option values the released code fixes; an explicit different value contradicts the convention.
OFFICIAL_DEFAULTS: dict[str, tuple[tuple[str, ...], Any]] = {
    "momentum_norm": (("mi", "ni"), "frame"),
    "ata_weight": (("ata",), 1e-2),
}


def apply_official_defaults(
    resolved: dict[str, Any], methods: tuple[str, ...], given: Mapping[str, Any]
) -> None:
    """Set the released code's option values in `resolved`; ValueError if `given` contradicts one."""
    for name, (owners, value) in OFFICIAL_DEFAULTS.items():
        if not set(owners) & set(methods):
            continue
        if name in given and resolved[name] != value:
            raise ValueError(
                f"option {name}={given[name]!r} contradicts convention='official' (the released code "
                f"uses {name}={value!r}); drop the option or use convention='vidadv'"
            )
        resolved[name] = value


# ----------------------------------------------------------------------------------------------
# The model's normalization: the released code works on normalized clips
# ----------------------------------------------------------------------------------------------


def input_normalization(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std), each (1, C, 1, 1, 1), of a `VideoClassifier`; None for a bare network."""
    if isinstance(model, VideoClassifier):
        return model.mean, model.std
    return None


def _required_normalization(model: nn.Module, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    stats = input_normalization(model)
    if stats is None:
        raise ValueError(
            f"convention='official' {method} works on the normalized clip (x - mean) / std and needs the "
            f"model's normalization: wrap the network in vidadv.models.VideoClassifier(network, mean, std), "
            f"got a bare {type(model).__name__}"
        )
    return stats


def gradient_scale(model: nn.Module) -> torch.Tensor | None:
    """std (1, C, 1, 1, 1): d loss / d normalized clip = std * d loss / d clip. None: no normalization."""
    stats = input_normalization(model)
    return None if stats is None else stats[1]


# ----------------------------------------------------------------------------------------------
# SGM: the SGM authors' name rule for ReLU backward hooks
# ----------------------------------------------------------------------------------------------


def sgm_relu_modules(model: nn.Module) -> list[tuple[str, nn.ReLU]]:
    """The ReLU modules the released SGM hooks: qualified name contains ``relu`` but not ``0.relu``.

    With gluoncv's names this skips the first block of every stage (``layer1.0.relu``) and, in the
    long stage of ResNet-101, blocks 10 and 20 (``...10.relu``, ``...20.relu``); it includes the
    stem ReLUs named ``relu``/``fast_relu``/``slow_relu`` and TPN's level-fusion ReLU ``ops.1.relu``.
    """
    return [
        (name, module)
        for name, module in model.named_modules()
        if "relu" in name and "0.relu" not in name and isinstance(module, nn.ReLU)
    ]


class _ScaleOutputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


def check_official_sgm(model: nn.Module) -> None:
    if not sgm_relu_modules(model):
        raise ValueError(
            "convention='official' SGM hooks the nn.ReLU modules whose qualified name contains 'relu' "
            f"(gluoncv's naming, e.g. 'layer2.1.relu'); {type(model).__name__} has none"
        )


@contextlib.contextmanager
def official_skip_gradient(model: nn.Module, gamma: float) -> Iterator[None]:
    """During the block, every call of every `sgm_relu_modules` ReLU multiplies its gradient by
    gamma**0.5 (a ReLU is linear in its output gradient, so scaling before or after it is equal)."""
    check_official_sgm(model)
    scale = gamma**0.5

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return _ScaleOutputGrad.apply(output, scale)

    handles = [module.register_forward_hook(hook) for _, module in sgm_relu_modules(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# TT: chunked cross-entropy, shifts, roll-back by index
# ----------------------------------------------------------------------------------------------


def _network_class_name(model: nn.Module) -> str:
    network = model.network if isinstance(model, VideoClassifier) else model
    return type(network).__name__


def released_chunk_sizes(copies: int, one_copy_per_chunk: bool = False) -> list[int]:
    """Sizes of the released code's forward passes over `copies` shifted copies (possibly 0)."""
    if one_copy_per_chunk:
        return [1] * copies
    size = math.ceil(copies / RELEASED_CHUNKS)
    return [max(0, min((i + 1) * size, copies) - i * size) for i in range(RELEASED_CHUNKS)]


def _working_lengths(limit: int = 15) -> list[int]:
    return [L for L in range(limit + 1) if 0 not in released_chunk_sizes(2 * L + 1)]


def released_copy_factors(shift_length: int, one_copy_per_chunk: bool = False) -> torch.Tensor:
    """Factor of each of the 2L+1 copies' gradients in the released TT: 1 / (size of its chunk),
    from the cross-entropy averaged within a chunk (float64). ValueError for the L whose chunking
    leaves a forward pass empty (the released code runs an empty batch through the model there)."""
    copies = 2 * shift_length + 1
    sizes = released_chunk_sizes(copies, one_copy_per_chunk)
    if 0 in sizes:
        raise ValueError(
            f"convention='official' cannot run TT with shift_length={shift_length}: the released code "
            f"splits the {copies} shifted copies into {RELEASED_CHUNKS} forward passes of "
            f"ceil({copies}/{RELEASED_CHUNKS}) = {math.ceil(copies / RELEASED_CHUNKS)} copies, chunk sizes "
            f"{sizes}, and fails on the empty one; shift lengths that run: "
            f"{', '.join(map(str, _working_lengths()))}, ... (or use convention='vidadv')"
        )
    factors = [1.0 / size for size in sizes for _ in range(size)]
    return torch.tensor(factors, dtype=torch.float64)


def official_shift_offsets(
    shift_length: int, num_frames: int, strategy: str, generator: torch.Generator | None = None
) -> list[int]:
    """The released code's shifts s_{-L..L}; ``random`` draws sign(i) * (randint(0, 100) % T)."""
    if strategy != "random":
        return shift_offsets(shift_length, num_frames, strategy)
    shift_offsets(shift_length, num_frames, "adjacent")  # validates L and T
    device = generator.device if generator is not None else "cpu"
    draws = torch.randint(0, RANDOM_DRAW_HIGH + 1, (2 * shift_length,), generator=generator, device=device)
    nonzero = iter((draws % num_frames).tolist())
    return [(1 if i > 0 else -1) * next(nonzero) if i else 0 for i in range(-shift_length, shift_length + 1)]


class OfficialTemporalTranslation(TemporalTranslation):
    """TT as the released `TemporalTranslation` / `TemporalTranslation_TI` classes compute it.

    gradient = sum_k w_k roll(N(TI(f_k g_k)), -i_k), where g_k is copy k's gradient, f_k its chunk
    factor (`released_copy_factors`), i_k its index in -L..L (its shift for adjacent copies), and TI
    with the per-(clip, column) normalization N only for TI+TT. The ATA reference stays the clean,
    unshifted clip for every copy.
    """

    def __init__(
        self,
        shift_length: int,
        weights: Any,
        strategy: str,
        copy_factors: torch.Tensor,
        ti_kernel: torch.Tensor | None = None,
    ) -> None:
        super().__init__(shift_length, weights, strategy)
        if copy_factors.shape != (self.copies,):
            raise ValueError(f"copy_factors needs {self.copies} values, got {tuple(copy_factors.shape)}")
        self.copy_factors = copy_factors
        self.ti_kernel = ti_kernel

    def _shifts(self, rows: Rows, ctx: StepContext) -> torch.Tensor:
        B, T = rows.x.shape[0], rows.x.shape[2]
        if self.strategy != "random":
            return super()._shifts(rows, ctx)
        per_row = [
            official_shift_offsets(self.shift_length, T, "random", ctx.generators[int(c)])
            for c in rows.clip.tolist()
        ]
        return torch.tensor(per_row, dtype=torch.long).t().reshape(self.copies, B)

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        shifted, shifts = super().expand(rows, ctx)
        ref = None if rows.ref is None else rows.ref.repeat((self.copies,) + (1,) * (rows.ref.dim() - 1))
        return Rows(shifted.x, shifted.clip, ref), shifts

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        B = grad.shape[0] // self.copies
        weights = self.weights.tolist()
        factors = self.copy_factors.tolist()
        out = torch.zeros_like(grad[:B])
        for k, index in enumerate(range(-self.shift_length, self.shift_length + 1)):
            copy = grad[k * B : (k + 1) * B] * factors[k]
            if self.ti_kernel is not None:
                copy = smooth_gradient(copy, self.ti_kernel)
                scale = copy.abs().mean(dim=(1, 2, 3), keepdim=True)
                copy = copy / scale.clamp_min(torch.finfo(copy.dtype).tiny)
            out.add_(torch.roll(copy, -index, dims=2), alpha=float(weights[k]))
        return out


# ----------------------------------------------------------------------------------------------
# SIM and DI on the normalized clip
# ----------------------------------------------------------------------------------------------


class OfficialScaleInvariance(ScaleInvariance):
    """SIM on the normalized clip: copies with (x - mean) / std / 2**i, i.e. x_i = mean + (x - mean)
    / 2**i; gradient = mean_i g_i (the released code has no chain-rule factor 2**-i)."""

    def __init__(self, sim_copies: int, mean: torch.Tensor) -> None:
        super().__init__(sim_copies)
        self.mean = mean.detach().reshape(1, -1, 1, 1, 1)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(device=x.device, dtype=x.dtype)
        return torch.cat([mean + (x - mean) * 2.0**-i for i in range(self.copies)])

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        ref = None if rows.ref is None else self._scaled(rows.ref)
        return Rows(self._scaled(rows.x), rows.clip.repeat(self.copies), ref), None

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        B = grad.shape[0] // self.copies
        return grad.view((self.copies, B) + tuple(grad.shape[1:])).mean(0)


class OfficialDiverseInputs(DiverseInputs):
    """DI that zero-pads the normalized clip: the padding has the mean colour (nearest resizing
    commutes with the per-channel normalization, so only the pad value changes)."""

    def __init__(self, diversity_prob: float, resize_rate: float, mean: torch.Tensor) -> None:
        super().__init__(diversity_prob, resize_rate)
        self.mean = mean.detach().reshape(-1, 1, 1, 1)

    def _apply(self, clip: torch.Tensor, params: tuple[int, int, int, int, int, int]) -> torch.Tensor:  # type: ignore[override]
        mean = self.mean.to(device=clip.device, dtype=clip.dtype)
        return DiverseInputs._apply(clip - mean, params) + mean


# ----------------------------------------------------------------------------------------------
# ATA and assembly
# ----------------------------------------------------------------------------------------------


def attention_distance(cam: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The released ATA+TT attention term per row: the plain L2 norm ||A - A_ref||_2 (not squared)."""
    return (cam - reference).flatten(1).norm(dim=1)


#: `ModelGradient` arguments of the released ATA+TT attention term.
OFFICIAL_ATTENTION: dict[str, Any] = {"ata_distance": attention_distance, "ata_second_order": False}


def official_transforms(
    methods: tuple[str, ...],
    options: Mapping[str, Any],
    model: nn.Module,
    ti_kernel: torch.Tensor | None,
    transform_order: tuple[str, ...],
) -> list[InputTransform]:
    """The input transforms of `methods` (outer -> inner) under the released code's convention.
    VT and VR keep vidadv's definition; TT takes over TI's smoothing when both are in the spec."""
    transforms: list[InputTransform] = []
    for name in transform_order:
        if name not in methods:
            continue
        if name == "vt":
            transforms.append(VarianceTuning(options["vt_samples"], options["vt_beta"]))
        elif name == "vr":
            transforms.append(VarianceReduction(options["vr_samples"], options["vr_sigma"]))
        elif name == "sim":
            mean, _ = _required_normalization(model, "SIM")
            transforms.append(OfficialScaleInvariance(options["sim_copies"], mean))
        elif name == "di":
            mean, _ = _required_normalization(model, "DI")
            transforms.append(OfficialDiverseInputs(options["diversity_prob"], options["resize_rate"], mean))
        elif name == "tt":
            one_per_chunk = _network_class_name(model) in _ONE_COPY_PER_CHUNK
            factors = released_copy_factors(options["shift_length"], one_per_chunk)
            transforms.append(
                OfficialTemporalTranslation(
                    options["shift_length"], options["weights"], options["strategy"], factors, ti_kernel
                )
            )
    return transforms
