"""Pieces shared by every model family.

`ResidualBlock` is the marker base class of every residual block in vidadv's own networks. The
skip-gradient method (SGM, Wu et al. ICLR 2020) multiplies the gradient that flows back through the
residual branch of each block by gamma, leaving the skip connection's gradient untouched. A block does
that by passing its residual-branch output through `self.scale_residual_grad(out)` just before the
addition with the shortcut; attacks set `residual_grad_scale` on every block (1.0 = plain gradient).
"""

from __future__ import annotations

import torch
from torch import nn


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by `scale` in the backward pass."""
    if scale == 1.0:
        return x
    return _ScaleGrad.apply(x, scale)


class ResidualBlock(nn.Module):
    """Marker base class for residual blocks (out = shortcut(x) + residual_branch(x))."""

    residual_grad_scale: float = 1.0

    def scale_residual_grad(self, out: torch.Tensor) -> torch.Tensor:
        return scale_grad(out, self.residual_grad_scale)


def residual_blocks(module: nn.Module) -> list[ResidualBlock]:
    """All vidadv residual blocks inside `module`."""
    return [m for m in module.modules() if isinstance(m, ResidualBlock)]


def positive_int(name: str, value: object) -> int:
    """`value` if it is a positive int (not a bool), else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def init_resnet_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """He-normal (fan-out) convolutions, unit/zero BatchNorm with fresh running statistics, and an
    N(0, 0.01) linear classifier with zero bias; random draws from `generator` (torch's global one if None).
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv3d):
            nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(sub, nn.BatchNorm3d):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
            sub.reset_running_stats()
        elif isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=0.01, generator=generator)
            nn.init.zeros_(sub.bias)
