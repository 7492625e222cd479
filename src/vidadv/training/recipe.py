"""The zoo training recipe: hyper-parameters, learning-rate schedule and training-batch augmentation.

The recipe and why it is so are described in docs/zoo.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FLIP_LABEL_SWAPS",
    "Recipe",
    "augment_clips",
    "flip_label_map",
    "one_cycle",
    "parameter_groups",
]

#: Class-name pairs a horizontal flip exchanges (all other classes are mirror-symmetric).
FLIP_LABEL_SWAPS: tuple[tuple[str, str], ...] = (("move_right", "move_left"), ("rotate_cw", "rotate_ccw"))


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of the zoo training recipe (recorded in the manifest).

    Optimization: AdamW(lr, betas, weight_decay on conv/linear weights only), one-cycle schedule (linear
    warm-up over `warmup_fraction` of the steps from lr/25, then cosine decay to ~0), cross-entropy with
    `label_smoothing`, gradient-norm clipping at `grad_clip`, TPN auxiliary loss weighted `aux_loss_weight`.
    Data: `train_clips` clips of `ProceduralActions("train", seed=train_seed)` (48-frame sequences, a new
    random 32-frame window per clip and epoch), batches of `batch_size`. Augmentation (see
    `augment_clips`): crop side `crop_scale` of the frame (uniform per axis) at a random position, resampled
    to 32x32; contrast factor 1 +- `contrast`, brightness offset +- `brightness`; horizontal flip with
    probability `flip_probability` and label swap. Validation on `val_clips` clips of the val split every
    `eval_every` steps (monitoring only; nothing is selected on it).
    """

    steps: int = 3000
    batch_size: int = 24
    lr: float = 3e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    aux_loss_weight: float = 0.5
    train_clips: int = 2400
    train_seed: int = 0
    val_clips: int = 240
    val_seed: int = 0
    eval_every: int = 250
    crop_scale: tuple[float, float] = (0.75, 1.0)
    brightness: float = 0.1
    contrast: float = 0.2
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "train_clips", "val_clips", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe.{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError("Recipe.batch_size must be >= 2 (BatchNorm needs more than one clip)")
        if not self.lr > 0:
            raise ValueError(f"Recipe.lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"Recipe.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"Recipe.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale!r}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"Recipe.flip_probability must be in [0, 1], got {self.flip_probability!r}")

    def to_json(self) -> dict[str, Any]:
        """The recipe as a JSON-compatible dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def one_cycle(step: int, steps: int, warmup_fraction: float) -> float:
    """LR multiplier: linear warm-up from 1/25 over the first `warmup_fraction`, then cosine to 1e-4."""
    warmup = int(round(warmup_fraction * steps))
    if step < warmup:
        return 1.0 / 25.0 + (1.0 - 1.0 / 25.0) * step / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(
    network: nn.Module, weight_decay: float, no_decay: Collection[str] = ()
) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on conv/linear weights, none on biases, BatchNorm/LayerNorm parameters
    (every parameter with fewer than 2 dimensions) and the parameters named in `no_decay`."""
    decay, undecayed, seen = [], [], set()
    for name, parameter in network.named_parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if parameter.dim() > 1 and name not in no_decay else undecayed).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": undecayed, "weight_decay": 0.0}]


def flip_label_map(class_names: Sequence[str]) -> torch.Tensor:
    """Label of each class after a horizontal flip (identity except the pairs in `FLIP_LABEL_SWAPS`)."""
    mapping = torch.arange(len(class_names))
    index = {n: i for i, n in enumerate(class_names)}
    for left, right in FLIP_LABEL_SWAPS:
        if left in index and right in index:
            mapping[index[left]], mapping[index[right]] = index[right], index[left]
    return mapping


def augment_clips(
    clips: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    recipe: Recipe,
    flip_labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial augmentation of a training batch (N, C, T, H, W) in [0, 1]; returns (clips, labels).

    Per clip, the same transform for every frame: a crop whose sides are `recipe.crop_scale` of the frame
    (independently per axis, so also a mild aspect jitter) at a uniform random position, resampled to the
    input size (trilinear `grid_sample`, exact along time); a horizontal flip with probability
    `recipe.flip_probability`, with the label mapped through `flip_labels` (left/right motion classes swap);
    contrast scaling around the clip mean by 1 +- `recipe.contrast` and a brightness offset of
    +- `recipe.brightness`, clamped to [0, 1].
    """
    n = clips.shape[0]

    def uniform(low: float, high: float, size: tuple[int, ...] = (n,)) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    low, high = recipe.crop_scale
    scale = uniform(low, high, (n, 2))  # (x, y) half-extent of the crop in normalized coordinates
    offset = (2.0 * torch.rand((n, 2), generator=generator) - 1.0) * (1.0 - scale)
    flip = torch.rand(n, generator=generator) < recipe.flip_probability
    sign_x = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(n, 3, 4)
    theta[:, 0, 0] = scale[:, 0] * sign_x
    theta[:, 0, 3] = offset[:, 0]
    theta[:, 1, 1] = scale[:, 1]
    theta[:, 1, 3] = offset[:, 1]
    theta[:, 2, 2] = 1.0
    grid = F.affine_grid(theta.to(clips.dtype), list(clips.shape), align_corners=False)
    out = F.grid_sample(clips, grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = torch.where(flip, flip_labels[labels], labels)

    contrast = uniform(1.0 - recipe.contrast, 1.0 + recipe.contrast).view(n, 1, 1, 1, 1)
    brightness = uniform(-recipe.brightness, recipe.brightness).view(n, 1, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3, 4), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp_(0.0, 1.0)
    return out, labels
