"""Pieces shared by every model family: the residual-block marker, the 3-D ResNet bottleneck and its
stage builder, and the weight-initialization convention.

`ResidualBlock` is the marker base class of every residual block in vidadv's own networks. The
skip-gradient method (SGM, Wu et al. ICLR 2020) multiplies the gradient that flows back through the
residual branch of each block by gamma, leaving the skip connection's gradient untouched. A block does
that by passing its residual-branch output through `self.scale_residual_grad(out)` just before the
addition with the shortcut; attacks set `residual_grad_scale` on every block (1.0 = plain gradient).

Initialization convention: every family constructor takes `generator: torch.Generator | None`. With a
generator, every random draw of the initialization comes from it and torch's global generator is left
as it was (`draws_from`); with None, the global generator is used. Each family keeps its own scheme
(`init_resnet_weights` for SlowFast and TPN, `init_default_weights` for I3D-NL).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "Bottleneck3d",
    "ResidualBlock",
    "bottleneck_stage",
    "draws_from",
    "init_default_weights",
    "init_resnet_weights",
    "positive_int",
    "residual_blocks",
    "scale_grad",
]


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


def positive_ints(name: str, value: object, length: int | None = None, meaning: str = "") -> tuple[int, ...]:
    """`value` as a tuple if it is a non-empty sequence of positive ints (exactly `length` of them when
    given), else a ValueError naming `name` (and the bad entry, e.g. ``layers[1]``) and `meaning`; e.g. a
    ResNet's `layers` (bottleneck blocks per stage)."""
    if not isinstance(value, Sequence) or not value or (length is not None and len(value) != length):
        count = "" if length is None else f"{length} "
        explained = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be a sequence of {count}positive ints{explained}, got {value!r}")
    return tuple(positive_int(f"{name}[{index}]", entry) for index, entry in enumerate(value))


def check_dropout(value: float) -> None:
    """Raise a ValueError unless the classifier's dropout probability `value` is in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")


# ------------------------------------------------------------------------------------------ blocks


class Bottleneck3d(ResidualBlock):
    """3-D ResNet bottleneck: conv1 (Tk x 1 x 1) -> conv2 (1 x 3 x 3, carries the spatial stride) ->
    conv3 (1 x 1 x 1, `expansion` x planes channels), each followed by BN (ReLU after the first two), plus a
    shortcut (a 1x1x1 conv + BN projection when the stride or the channel count changes), then ReLU.

    The residual branch passes through `scale_residual_grad` before the addition (SGM). Submodule names
    (`conv1`, `conv2`, `bn1`, `bn2`, `conv3`, `bn3`, `downsample.0/1`) are gluoncv's for its I3D, SlowFast
    and TPN models, so their checkpoints load unchanged.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_kernel: int = 1,
        interleave_norms: bool = False,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        # Registration order sets the state-dict order: gluoncv's I3D and TPN list conv1, conv2, bn1, bn2;
        # its SlowFast lists conv1, bn1, conv2, bn2 (`interleave_norms`).
        self.conv1 = nn.Conv3d(
            in_channels,
            planes,
            kernel_size=(temporal_kernel, 1, 1),
            padding=(temporal_kernel // 2, 0, 0),
            bias=False,
        )
        if interleave_norms:
            self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(
            planes,
            planes,
            kernel_size=(1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
            bias=False,
        )
        if not interleave_norms:
            self.bn1 = nn.BatchNorm3d(planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample: nn.Sequential | None = None
        if spatial_stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(
                    in_channels,
                    out_channels,
                    kernel_size=1,
                    stride=(1, spatial_stride, spatial_stride),
                    bias=False,
                ),
                nn.BatchNorm3d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(shortcut + self.scale_residual_grad(out))


def stem_conv(
    in_channels: int,
    out_channels: int,
    temporal_kernel: int,
    temporal_stride: int = 1,
    temporal_padding: int | None = None,
) -> nn.Conv3d:
    """The 3-D ResNet stem convolution: kernel (kt, 7, 7), stride (st, 2, 2), no bias; the temporal padding
    defaults to kt // 2."""
    padding_t = temporal_kernel // 2 if temporal_padding is None else temporal_padding
    return nn.Conv3d(
        in_channels,
        out_channels,
        kernel_size=(temporal_kernel, 7, 7),
        stride=(temporal_stride, 2, 2),
        padding=(padding_t, 3, 3),
        bias=False,
    )


def stem_pool(temporal_stride: int = 1) -> nn.MaxPool3d:
    """The 3-D ResNet stem max-pool: kernel (1, 3, 3), stride (st, 2, 2), padding (0, 1, 1)."""
    return nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(temporal_stride, 2, 2), padding=(0, 1, 1))


def bottleneck_stage(
    in_channels: int,
    planes: int,
    temporal_kernels: Sequence[int],
    spatial_stride: int = 1,
    block: type[Bottleneck3d] = Bottleneck3d,
    block_options: Sequence[dict] | None = None,
    **common_options: object,
) -> nn.Sequential:
    """One ResNet stage: a block per entry of `temporal_kernels`; the first carries `spatial_stride` and
    projects the shortcut, the others keep the shape. `block` may be a `Bottleneck3d` subclass; every block
    gets `common_options`, and block i also `block_options[i]`."""
    options = block_options if block_options is not None else [{}] * len(temporal_kernels)
    blocks = []
    channels = in_channels
    for index, (kernel, extra) in enumerate(zip(temporal_kernels, options, strict=True)):
        stride = spatial_stride if index == 0 else 1
        blocks.append(block(channels, planes, stride, kernel, **common_options, **extra))
        channels = planes * block.expansion
    return nn.Sequential(*blocks)


# ------------------------------------------------------------------------------------ initialization


@contextlib.contextmanager
def draws_from(generator: torch.Generator | None) -> Iterator[None]:
    """Build a network inside this block: with a generator, torch's global (CPU) generator is restored
    afterwards, so the default initialization of the submodules leaves no trace (the family then draws
    its own initialization from `generator`); with None, nothing changes."""
    with torch.random.fork_rng(devices=[], enabled=generator is not None):
        yield


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


def init_default_weights(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialization of every convolution and linear layer (weights Kaiming-uniform
    with a = sqrt(5), biases uniform in +-1/sqrt(fan_in)), drawn from `generator` in module order: the
    same values the constructors draw from a global generator seeded like `generator`."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv3d, nn.Linear)):
            nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
            if sub.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(sub.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
