"""I3D ResNet with non-local blocks (the "NL" models of the TT paper).

An inflated 3D ResNet (I3D, Carreira & Zisserman CVPR 2017) whose bottleneck blocks have either a
3x1x1 temporal kernel ("inflated") or a 1x1x1 one, with embedded-Gaussian non-local blocks (Wang et al.,
"Non-local Neural Networks", CVPR 2018) after some blocks. `I3DNonLocal` reproduces gluoncv's
`I3D_ResNetV1` (state-dict keys, shapes and eval-mode outputs) for `i3d_nl5_resnet50_v1_kinetics400` and
`i3d_nl5_resnet101_v1_kinetics400`, and, with other depth/width arguments, builds the small models of
vidadv's embedded benchmark.

Layer facts (from gluoncv's definition):
- stem: conv 5x7x7, stride (2,2,2) -> BN -> ReLU -> max-pool 1x3x3, stride (2,2,2);
- a temporal max-pool 2x1x1 (stride 2) after the first residual stage ("pool2");
- bottleneck: conv1 (3x1x1 if inflated, else 1x1x1) -> conv2 1x3x3 (carries the spatial stride) -> conv3
  1x1x1 (4x channels); the non-local block, when present, follows the block's final ReLU;
- inflation pattern: first stage all blocks, middle stages every other block starting with the first,
  last stage every other block starting with the second;
- nl5: 5 non-local blocks, in stages res3 (blocks 1, 3) and res4 (ResNet-50: blocks 1, 3, 5; ResNet-101:
  blocks 6, 13, 20), no sub-sampling of phi/g, BN after W;
- head: global average pool (adaptive, any spatial size) -> dropout 0.5 -> linear. gluoncv registers
  the linear layer twice (`fc` and `head.1`, one module), and the non-local output conv+BN twice (`W`,
  `bn` and `W_bn`); vidadv does the same, so gluoncv checkpoints load with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.models.common import (
    Bottleneck3d,
    ResidualBlock,
    bottleneck_stage,
    check_dropout,
    draws_from,
    init_default_weights,
    positive_int,
    positive_ints,
    stem_conv,
    stem_pool,
)

__all__ = [
    "I3DNonLocal",
    "NonLocalBlock",
    "I3DBottleneck",
    "default_inflation",
    "alternate_blocks_ending_last",
    "i3d_nl5_resnet50_v1_kinetics400",
    "i3d_nl5_resnet101_v1_kinetics400",
]


class NonLocalBlock(ResidualBlock):
    """Embedded-Gaussian non-local block: z = x + BN(W(softmax(theta(x)^T phi(x) / sqrt(d)) g(x))).

    theta, phi and g are 1x1x1 convolutions to `embed_channels` (default half the input channels); the
    affinity is scaled by 1/sqrt(embed_channels) as in gluoncv. With `subsample=True`, phi and g are
    max-pooled 1x2x2 (Wang et al.'s cheaper variant; gluoncv's nl5 models do not use it). The BN after W
    starts at zero scale, so a freshly built block is the identity.
    """

    def __init__(
        self,
        in_channels: int,
        embed_channels: int | None = None,
        subsample: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        embed_channels = in_channels // 2 if embed_channels is None else embed_channels
        if embed_channels < 1:
            raise ValueError(f"non-local embed_channels must be >= 1, got {embed_channels}")
        self.embed_channels = embed_channels
        self.subsample = subsample
        self.theta = nn.Conv3d(in_channels, embed_channels, kernel_size=1)
        self.phi = nn.Conv3d(in_channels, embed_channels, kernel_size=1)
        self.g = nn.Conv3d(in_channels, embed_channels, kernel_size=1)
        self.W = nn.Conv3d(embed_channels, in_channels, kernel_size=1)
        self.bn = nn.BatchNorm3d(in_channels, momentum=bn_momentum)
        # Same two modules registered again under gluoncv's second name (keys W_bn.0.*, W_bn.1.*).
        self.W_bn = nn.Sequential(self.W, self.bn)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x)
        phi = self.phi(x)
        g = self.g(x)
        if self.subsample:
            phi = F.max_pool3d(phi, kernel_size=(1, 2, 2), stride=(1, 2, 2), ceil_mode=True)
            g = F.max_pool3d(g, kernel_size=(1, 2, 2), stride=(1, 2, 2), ceil_mode=True)
        queries = theta.flatten(2).transpose(1, 2)  # (N, L, d)
        keys = phi.flatten(2)  # (N, d, L')
        values = g.flatten(2).transpose(1, 2)  # (N, L', d)
        affinity = torch.bmm(queries, keys) * (self.embed_channels**-0.5)
        attention = torch.softmax(affinity, dim=-1)
        y = torch.bmm(attention, values).transpose(1, 2).reshape(theta.shape)
        return x + self.scale_residual_grad(self.W_bn(y))


class I3DBottleneck(Bottleneck3d):
    """`Bottleneck3d` (temporal kernel 3 if inflated, else 1) with an optional non-local block after the
    block's output ReLU (gluoncv's placement, key `nonlocal_block`)."""

    def __init__(
        self,
        in_channels: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_kernel: int = 3,
        use_nonlocal: bool = False,
        nonlocal_subsample: bool = False,
    ) -> None:
        super().__init__(in_channels, planes, spatial_stride, temporal_kernel)
        self.nonlocal_block = (
            NonLocalBlock(planes * self.expansion, subsample=nonlocal_subsample) if use_nonlocal else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.nonlocal_block is not None:
            out = self.nonlocal_block(out)
        return out


def default_inflation(layers: Sequence[int]) -> tuple[tuple[bool, ...], ...]:
    """gluoncv's inflation pattern: first stage all blocks; middle stages blocks 0, 2, 4, ...; last
    stage blocks 1, 3, ... (for (3,4,6,3): (111)(1010)(101010)(010))."""
    pattern = []
    for stage, num_blocks in enumerate(layers):
        if stage == 0:
            pattern.append((True,) * num_blocks)
        elif stage == len(layers) - 1:
            pattern.append(tuple(i % 2 == 1 for i in range(num_blocks)))
        else:
            pattern.append(tuple(i % 2 == 0 for i in range(num_blocks)))
    return tuple(pattern)


def alternate_blocks_ending_last(num_blocks: int) -> tuple[int, ...]:
    """Every other block index, counted back from the last one (4 blocks -> (1, 3); 1 block -> (0,))."""
    return tuple(i for i in range(num_blocks) if (num_blocks - 1 - i) % 2 == 0)


class I3DNonLocal(nn.Module):
    """I3D ResNet (bottleneck blocks) with non-local blocks; gluoncv's `I3D_ResNetV1`.

    Args:
        layers: blocks per residual stage, e.g. (3, 4, 6, 3) for ResNet-50, (3, 4, 23, 3) for ResNet-101,
            (1, 1, 1, 1) for a tiny model.
        base_channels: stem width; stage i has `base_channels * 2**i` bottleneck channels and outputs 4x
            that (64 in the ResNets).
        num_classes: size of the linear classifier.
        in_channels: input channels (3 for RGB).
        inflate: per stage, per block, whether conv1 is 3x1x1 (True) or 1x1x1; default
            `default_inflation(layers)`.
        nonlocal_stages: stages that get non-local blocks on every other block, ending with the last
            (ignored when `nonlocal_blocks` is given).
        nonlocal_blocks: explicit placement, stage index -> block indices, e.g. {1: (1, 3), 2: (1, 3, 5)}.
        nonlocal_subsample: max-pool phi and g 1x2x2 in the non-local blocks.
        spatial_strides: spatial stride of each stage's first block; default (1, 2, 2, ...).
        conv1_kernel_t, conv1_stride_t: temporal kernel and stride of the stem convolution.
        pool1_stride_t: temporal stride of the stem max-pool.
        pool2_stride_t: temporal max-pool (kernel = stride) after the first stage; 1 disables it.
        dropout: dropout before the classifier (active only in train mode).
        generator: draws the initialization (PyTorch's default for convolutions, N(0, 0.01) classifier,
            zero-scale BN after each non-local W); None uses torch's global generator.

    Input: normalized clips (N, C, T, H, W); output logits (N, num_classes). Any spatial size >= 1 works
    (the head pools adaptively); the temporal size must be at least `min_frames`.
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        base_channels: int = 64,
        num_classes: int = 400,
        in_channels: int = 3,
        inflate: Sequence[Sequence[bool | int]] | None = None,
        nonlocal_stages: Sequence[int] = (),
        nonlocal_blocks: Mapping[int, Sequence[int]] | None = None,
        nonlocal_subsample: bool = False,
        spatial_strides: Sequence[int] | None = None,
        conv1_kernel_t: int = 5,
        conv1_stride_t: int = 2,
        pool1_stride_t: int = 2,
        pool2_stride_t: int = 2,
        dropout: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        layers = positive_ints("layers", layers)
        base_channels = positive_int("base_channels", base_channels)
        num_classes = positive_int("num_classes", num_classes)
        in_channels = positive_int("in_channels", in_channels)
        for value, what in (
            (conv1_kernel_t, "conv1_kernel_t"),
            (conv1_stride_t, "conv1_stride_t"),
            (pool1_stride_t, "pool1_stride_t"),
            (pool2_stride_t, "pool2_stride_t"),
        ):
            positive_int(what, value)
        check_dropout(dropout)

        inflation = default_inflation(layers) if inflate is None else tuple(tuple(s) for s in inflate)
        if len(inflation) != len(layers) or any(len(s) != n for s, n in zip(inflation, layers, strict=False)):
            raise ValueError(
                f"inflate must give one flag per block of each stage, shaped like layers={layers}; got "
                f"lengths {[len(s) for s in inflation]}"
            )
        nonlocal_placement = self._nonlocal_placement(layers, nonlocal_stages, nonlocal_blocks)
        strides = (1,) + (2,) * (len(layers) - 1) if spatial_strides is None else tuple(spatial_strides)
        if len(strides) != len(layers):
            raise ValueError(f"spatial_strides needs one entry per stage ({len(layers)}), got {strides}")
        for stage, stride in enumerate(strides):
            positive_int(f"spatial_strides[{stage}]", stride)

        self.layers = layers
        self.base_channels = base_channels
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv1_kernel_t = conv1_kernel_t
        self.conv1_stride_t = conv1_stride_t
        self.pool1_stride_t = pool1_stride_t
        self.pool2_stride_t = pool2_stride_t

        with draws_from(generator):
            self.first_stage = nn.Sequential(
                stem_conv(
                    in_channels,
                    base_channels,
                    conv1_kernel_t,
                    conv1_stride_t,
                    temporal_padding=(conv1_kernel_t - 1) // 2,
                ),
                nn.BatchNorm3d(base_channels),
                nn.ReLU(),
                stem_pool(pool1_stride_t),
            )
            self.pool2: nn.Module = (
                nn.MaxPool3d(kernel_size=(pool2_stride_t, 1, 1), stride=(pool2_stride_t, 1, 1))
                if pool2_stride_t > 1
                else nn.Identity()
            )
            stages = []
            channels = base_channels
            for stage, num_blocks in enumerate(layers):
                planes = base_channels * 2**stage
                stages.append(
                    bottleneck_stage(
                        channels,
                        planes,
                        [3 if inflation[stage][index] else 1 for index in range(num_blocks)],
                        strides[stage],
                        block=I3DBottleneck,
                        block_options=[
                            {
                                "use_nonlocal": index in nonlocal_placement.get(stage, ()),
                                "nonlocal_subsample": nonlocal_subsample,
                            }
                            for index in range(num_blocks)
                        ],
                    )
                )
                channels = planes * I3DBottleneck.expansion
            self.res_layers = nn.Sequential(*stages)
            self.feature_channels = channels
            self.st_avg = nn.AdaptiveAvgPool3d(1)
            self.dp = nn.Dropout(dropout)
            self.fc = nn.Linear(channels, num_classes)
        if generator is not None:
            init_default_weights(self, generator)
        nn.init.normal_(self.fc.weight, 0.0, 0.01, generator=generator)
        nn.init.zeros_(self.fc.bias)
        # gluoncv registers the classifier a second time as head = (dropout, fc): keys head.1.*.
        self.head = nn.Sequential(self.dp, self.fc)

        #: Default Grad-CAM layer (relative to this network): the last residual stage.
        self.attention_layer = f"res_layers.{len(layers) - 1}"
        #: Fewest input frames for which every temporal stage keeps at least one frame.
        self.min_frames = self._minimum_frames()

    @staticmethod
    def _nonlocal_placement(
        layers: tuple[int, ...],
        nonlocal_stages: Sequence[int],
        nonlocal_blocks: Mapping[int, Sequence[int]] | None,
    ) -> dict[int, tuple[int, ...]]:
        if nonlocal_blocks is None:
            placement = {}
            for stage in nonlocal_stages:
                if not isinstance(stage, int) or not 0 <= stage < len(layers):
                    raise ValueError(
                        f"nonlocal_stages entries must be stage indices 0..{len(layers) - 1}, got {stage!r}"
                    )
                placement[stage] = alternate_blocks_ending_last(layers[stage])
            return placement
        placement = {}
        for stage, blocks in nonlocal_blocks.items():
            if not isinstance(stage, int) or not 0 <= stage < len(layers):
                raise ValueError(
                    f"nonlocal_blocks keys must be stage indices 0..{len(layers) - 1}, got {stage!r}"
                )
            blocks = tuple(blocks)
            bad = [b for b in blocks if not isinstance(b, int) or not 0 <= b < layers[stage]]
            if bad:
                raise ValueError(
                    f"nonlocal_blocks[{stage}] has block indices {bad} outside 0..{layers[stage] - 1}"
                )
            placement[stage] = blocks
        return placement

    def temporal_output_size(self, frames: int) -> int:
        """Number of time steps left after the stem and pool2 for a clip of `frames` frames."""
        pad = (self.conv1_kernel_t - 1) // 2
        steps = (frames + 2 * pad - self.conv1_kernel_t) // self.conv1_stride_t + 1
        if steps < 1:
            return 0
        steps = (steps - 1) // self.pool1_stride_t + 1
        return steps // self.pool2_stride_t

    def _minimum_frames(self) -> int:
        frames = 1
        while self.temporal_output_size(frames) < 1:
            frames += 1
        return frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_stage(x)
        for index, stage in enumerate(self.res_layers):
            x = stage(x)
            if index == 0:
                x = self.pool2(x)
        features = self.st_avg(x).flatten(1)
        return self.head(features)


_NL5_RESNET50_BLOCKS = {1: (1, 3), 2: (1, 3, 5)}
_NL5_RESNET101_BLOCKS = {1: (1, 3), 2: (6, 13, 20)}


def _build(layers: tuple[int, ...], nonlocal_blocks: dict, num_classes: int, overrides: dict) -> I3DNonLocal:
    config: dict = {"layers": layers, "nonlocal_blocks": nonlocal_blocks}
    if "layers" in overrides and "nonlocal_blocks" not in overrides:
        # Other depths: the fixed placement no longer fits; use the res3/res4 alternating rule.
        config.pop("nonlocal_blocks")
        config["nonlocal_stages"] = (1, 2)
    if "nonlocal_stages" in overrides and "nonlocal_blocks" not in overrides:
        config.pop("nonlocal_blocks", None)
    config.update(overrides)
    return I3DNonLocal(num_classes=num_classes, **config)


def i3d_nl5_resnet50_v1_kinetics400(num_classes: int = 400, **overrides) -> I3DNonLocal:
    """gluoncv's I3D-NL5 ResNet-50 (`overrides` change any `I3DNonLocal` argument, e.g. for tests)."""
    return _build((3, 4, 6, 3), _NL5_RESNET50_BLOCKS, num_classes, overrides)


def i3d_nl5_resnet101_v1_kinetics400(num_classes: int = 400, **overrides) -> I3DNonLocal:
    """gluoncv's I3D-NL5 ResNet-101 (`overrides` change any `I3DNonLocal` argument, e.g. for tests)."""
    return _build((3, 4, 23, 3), _NL5_RESNET101_BLOCKS, num_classes, overrides)
