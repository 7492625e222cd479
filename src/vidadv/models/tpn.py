"""Temporal Pyramid Network (TPN; Yang et al., CVPR 2020) on a slow-only 3D ResNet backbone.

Re-implements gluoncv's `tpn_resnet{50,101}_f32s2_kinetics400` (gluoncv 0.10.5, torch model zoo) with
the same `state_dict` layout, so its Kinetics-400 checkpoints load with `strict=True`. One class, `TPN`,
builds the whole family: depth (blocks per stage), width (base channels) and neck width are parameters,
so the small models of vidadv's embedded zoo come from the same code.

Architecture (gluoncv's configuration, the defaults here):

- Input: "f32s2" means 32 frames sampled with a temporal stride of 2 from the video. The stride is a
  data-loading matter; the network gets the 32 frames, (N, 3, 32, H, W), and never downsamples time in
  the backbone (stem, max-pool and all stages have temporal stride 1).
- Backbone (slow-only ResNet): stem conv 1x7x7 / stride (1, 2, 2) + BN + ReLU + max-pool 1x3x3 /
  stride (1, 2, 2); four stages of bottleneck blocks with spatial strides (1, 2, 2, 2). "Inflation" of
  stages 3 and 4 (`res4`, `res5`): every block's first 1x1x1 conv becomes 3x1x1 (temporal kernel 3);
  stages 1 and 2 are purely 2D (1x1x1, 1x3x3, 1x1x1).
- Neck (the temporal pyramid), fed by stages 3 and 4 (`layer3`, `layer4`):
  * spatial modulation: stage 3's features go through stride-2 1x3x3 conv + BN + ReLU blocks until
    they have stage 4's channels and resolution (one block); stage 4's pass unchanged;
  * temporal modulation: per level, a grouped (32 groups) 3x1x1 conv to the neck width, then a
    temporal max-pool of `temporal_scales[level]` frames (ceil mode): (32, 32) for ResNet-50 and
    (16, 32) for ResNet-101, i.e. 32 frames collapse to 1 (resp. 2 and 1) time steps;
  * information flow: top-down (each level adds the nearest-upsampled level above it) and bottom-up
    (each level adds a 3x1x1 conv + temporal max-pool of the level below it). As in gluoncv (and the
    original TPN code) the bottom-up pass starts from the *top-down-updated* features, because both
    passes edit one shared list in place;
  * level fusion: per flow, each level goes through a temporal max-pool to the coarsest level's
    length, a grouped 1x1x1 conv + BN + ReLU, then all levels are concatenated and fused by a 1x1x1
    conv + BN + ReLU (`level_fusion_op2` for the top-down flow, `level_fusion_op` for the bottom-up one);
  * pyramid fusion: both flows concatenated, 1x1x1 conv + BN + ReLU.
  * auxiliary head (`TPN_neck.aux_head`, on stage 3): a training-time deep-supervision classifier. It
    is in the state dict, but gluoncv's forward only evaluates it when a target is given, so it does
    not change the logits; here `forward_with_aux` exposes it for training.
- Head: global average pool, dropout 0.5, linear classifier.

Options beyond gluoncv's configuration (defaults reproduce it): `inflate` picks the inflated stages, and
`stem_temporal_kernel` / `stem_temporal_stride` give the stem a temporal extent and stride (the embedded
zoo's small TPNs use a 5x7x7 stem with temporal stride 4, see `vidadv.models.zoo`).

Where gluoncv has hard-wired sizes, this code derives them so that tiny inputs work: global pooling is
adaptive, the top-down upsampling interpolates to the lower level's size (at gluoncv's 32 frames that
equals gluoncv's broadcasting), and the per-level temporal pool factors of the bottom-up and fusion
steps follow from `temporal_scales` (they reproduce gluoncv's (1, 1, 1) / (2, 1, 1) settings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.models.common import (
    Bottleneck3d,
    bottleneck_stage,
    check_dropout,
    draws_from,
    init_resnet_weights,
    positive_int,
    positive_ints,
    stem_conv,
    stem_pool,
)

__all__ = [
    "TPN",
    "TemporalPyramidNeck",
    "tpn_resnet50_f32s2_kinetics400",
    "tpn_resnet101_f32s2_kinetics400",
]

RESNET50_LAYERS = (3, 4, 6, 3)
RESNET101_LAYERS = (3, 4, 23, 3)


class ConvBNReLU(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + ReLU; gluoncv's `ConvModule` (keys `conv`, `bn`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int],
        padding: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class AuxHead(nn.Module):
    """TPN's auxiliary (deep-supervision) classifier on stage 3; used only for a training loss."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.convs = ConvBNReLU(in_channels, 2 * in_channels, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2 * in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool3d(self.convs(x), 1).flatten(1)
        return self.fc(self.dropout(x))


class TemporalModulation(nn.Module):
    """Per-level temporal modulation: grouped 3x1x1 conv, then temporal max-pool by `scale` frames."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False, groups=groups
        )
        self.pool = nn.MaxPool3d((scale, 1, 1), (scale, 1, 1), ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class TemporalDownsampling(nn.Module):
    """Bottom-up flow step: 3x1x1 conv, then temporal max-pool by `scale` (gluoncv's `Downampling`)."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False)
        self.pool = nn.MaxPool3d((scale, 1, 1), (scale, 1, 1), ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class LevelFusionBranch(nn.Module):
    """One level's input to level fusion: temporal max-pool, grouped 1x1x1 conv, BN, ReLU."""

    def __init__(self, channels: int, scale: int, groups: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool3d((scale, 1, 1), (scale, 1, 1), ceil_mode=True)
        self.conv = nn.Conv3d(channels, channels, 1, bias=False, groups=groups)
        self.norm = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(self.pool(x))))


class LevelFusion(nn.Module):
    """Level fusion: per-level branches to a common time length, concatenation, 1x1x1 fusion conv."""

    def __init__(self, channels: int, scales: Sequence[int], out_channels: int, groups: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(LevelFusionBranch(channels, scale, groups) for scale in scales)
        self.fusion_conv = nn.Sequential(
            nn.Conv3d(channels * len(scales), out_channels, 1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(),
        )

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fusion_conv(
            torch.cat([op(level) for op, level in zip(self.ops, levels, strict=True)], dim=1)
        )


class SpatialModulation(nn.Module):
    """Spatial modulation: stride-2 1x3x3 conv blocks bring every level to the top level's shape."""

    def __init__(self, level_channels: Sequence[int], top_channels: int) -> None:
        super().__init__()
        self.spatial_modulation = nn.ModuleList()
        for channels in level_channels:
            steps = (top_channels // channels).bit_length() - 1  # log2 of the channel ratio
            if steps < 1:
                self.spatial_modulation.append(nn.Identity())
                continue
            self.spatial_modulation.append(
                nn.ModuleList(
                    ConvBNReLU(channels * 2**i, channels * 2 ** (i + 1), (1, 3, 3), (1, 2, 2), (0, 1, 1))
                    for i in range(steps)
                )
            )

    def forward(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for op, level in zip(self.spatial_modulation, levels, strict=True):
            if isinstance(op, nn.ModuleList):
                for block in op:
                    level = block(level)
            else:
                level = op(level)
            outs.append(level)
        return outs


class TemporalPyramidNeck(nn.Module):
    """The temporal pyramid (gluoncv's `TPN` neck, attribute `TPN_neck` of the network).

    Args:
        level_channels: channels of the backbone features that feed the pyramid, fine to coarse.
        neck_channels: channels of every pyramid level after temporal modulation.
        fusion_channels: output channels of level fusion and of pyramid fusion.
        temporal_scales: per level, how many time steps temporal modulation max-pools into one.
        num_classes: classes of the auxiliary head.
        groups: groups of the temporal-modulation and level-fusion convs.
    """

    def __init__(
        self,
        level_channels: Sequence[int],
        neck_channels: int,
        fusion_channels: int,
        temporal_scales: Sequence[int],
        num_classes: int,
        groups: int = 32,
    ) -> None:
        super().__init__()
        top_channels = level_channels[-1]
        coarsest = temporal_scales[-1]
        self.temporal_modulation_ops = nn.ModuleList(
            TemporalModulation(top_channels, neck_channels, scale, groups) for scale in temporal_scales
        )
        # Between consecutive levels the bottom-up flow pools by the ratio of their temporal scales.
        self.downsampling_ops = nn.ModuleList(
            TemporalDownsampling(neck_channels, upper // lower)
            for lower, upper in zip(temporal_scales[:-1], temporal_scales[1:], strict=True)
        )
        fusion_scales = [coarsest // scale for scale in temporal_scales]
        self.level_fusion_op = LevelFusion(neck_channels, fusion_scales, fusion_channels, groups)
        self.spatial_modulation = SpatialModulation(level_channels, top_channels)
        self.level_fusion_op2 = LevelFusion(neck_channels, fusion_scales, fusion_channels, groups)
        self.pyramid_fusion_op = nn.Sequential(
            nn.Conv3d(2 * fusion_channels, fusion_channels, 1, bias=False),
            nn.BatchNorm3d(fusion_channels),
            nn.ReLU(),
        )
        self.aux_head = AuxHead(level_channels[-2], num_classes)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        levels = self.spatial_modulation(features)
        levels = [op(level) for op, level in zip(self.temporal_modulation_ops, levels, strict=True)]
        # Top-down flow: coarse to fine, each level adds the (nearest-)upsampled level above it.
        for i in range(len(levels) - 1, 0, -1):
            upsampled = F.interpolate(levels[i], size=levels[i - 1].shape[2:], mode="nearest")
            levels[i - 1] = levels[i - 1] + upsampled
        top_down = self.level_fusion_op2(levels)
        # Bottom-up flow: fine to coarse. Like gluoncv, it continues from the top-down-updated levels.
        for i in range(len(levels) - 1):
            levels[i + 1] = levels[i + 1] + self.downsampling_ops[i](levels[i])
        bottom_up = self.level_fusion_op(levels)
        return self.pyramid_fusion_op(torch.cat([top_down, bottom_up], dim=1))


class TPN(nn.Module):
    """Temporal Pyramid Network with a slow-only bottleneck ResNet backbone (gluoncv layout).

    Args:
        layers: bottleneck blocks per stage; (3, 4, 6, 3) = ResNet-50, (3, 4, 23, 3) = ResNet-101.
        base_channels: bottleneck width of stage 1 (64 in ResNet); stage i has `base * 2**i` and
            outputs 4x that, so stages 3 and 4 output `16 * base` and `32 * base` channels.
        neck_channels: width of each pyramid level (gluoncv: 1024).
        fusion_channels: width after level fusion and pyramid fusion, i.e. the classifier's input
            (gluoncv: 2048); default `2 * neck_channels`.
        temporal_scales: temporal max-pool factor of each pyramid level (stage 3, stage 4); each must
            divide the next. gluoncv f32s2: (32, 32) for ResNet-50, (16, 32) for ResNet-101. The last
            one is the clip length the pyramid is built for and the minimum number of frames.
        num_classes: classifier outputs.
        dropout: dropout probability before the classifier (gluoncv: 0.5).
        neck_groups: groups of the neck's temporal-modulation and level-fusion convs (gluoncv: 32).
        inflate: per stage, whether its blocks' first conv is 3x1x1 (gluoncv: stages 3 and 4 only).
        stem_temporal_kernel: temporal size of the stem conv, odd (gluoncv: 1, i.e. 1x7x7; 5 gives an
            I3D-style 5x7x7 stem that sees motion at full resolution).
        stem_temporal_stride: temporal stride of the stem conv (gluoncv: 1). With stride s the network
            works on T/s time steps, so it needs `temporal_scales[-1] * s` frames.
        in_channels: input channels (3 for RGB).
        generator: random generator for the weight initialization (Kaiming normal convs, BN 1/0,
            classifier N(0, 0.01)); None uses torch's global generator.

    Input: (N, C, T, H, W) clips, already normalized, with T >= `min_frames`. Output: (N, num_classes)
    logits. `default_attention_layer` ("layer4", the last backbone stage, output (N, 32*base, T, H/32,
    W/32)) is the layer Grad-CAM-based attacks use by default.
    """

    default_attention_layer = "layer4"

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        base_channels: int = 64,
        neck_channels: int = 1024,
        fusion_channels: int | None = None,
        temporal_scales: Sequence[int] = (32, 32),
        num_classes: int = 400,
        dropout: float = 0.5,
        neck_groups: int = 32,
        inflate: Sequence[bool] = (False, False, True, True),
        stem_temporal_kernel: int = 1,
        stem_temporal_stride: int = 1,
        in_channels: int = 3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        layers = positive_ints("layers", layers, 4)
        base_channels = positive_int("base_channels", base_channels)
        neck_channels = positive_int("neck_channels", neck_channels)
        fusion_channels = positive_int(
            "fusion_channels", 2 * neck_channels if fusion_channels is None else fusion_channels
        )
        temporal_scales = positive_ints("temporal_scales", temporal_scales, 2)
        num_classes = positive_int("num_classes", num_classes)
        neck_groups = positive_int("neck_groups", neck_groups)
        in_channels = positive_int("in_channels", in_channels)
        stem_temporal_kernel = positive_int("stem_temporal_kernel", stem_temporal_kernel)
        stem_temporal_stride = positive_int("stem_temporal_stride", stem_temporal_stride)
        if stem_temporal_kernel % 2 == 0:
            raise ValueError(f"stem_temporal_kernel must be odd, got {stem_temporal_kernel}")
        if not isinstance(inflate, Sequence) or len(inflate) != 4:
            raise ValueError(f"inflate must be a sequence of 4 bools (one per stage), got {inflate!r}")
        check_dropout(dropout)
        for lower, upper in zip(temporal_scales[:-1], temporal_scales[1:], strict=True):
            if upper % lower:
                raise ValueError(
                    f"each temporal scale must divide the next one (coarser level), got {temporal_scales}"
                )
        stage_out = [base_channels * 2**i * Bottleneck3d.expansion for i in range(4)]
        for name, channels in (("stage-4 output", stage_out[3]), ("neck_channels", neck_channels)):
            if channels % neck_groups:
                raise ValueError(f"neck_groups={neck_groups} must divide the {name} channels ({channels})")

        self.layers = layers
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.temporal_scales = temporal_scales
        self.min_frames = temporal_scales[-1] * stem_temporal_stride

        with draws_from(generator):
            self.conv1 = stem_conv(in_channels, base_channels, stem_temporal_kernel, stem_temporal_stride)
            self.bn1 = nn.BatchNorm3d(base_channels)
            self.relu = nn.ReLU()
            self.maxpool = stem_pool()
            stage_in = base_channels
            for i, (blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
                kernels = [3 if inflate[i] else 1] * blocks
                stage = bottleneck_stage(stage_in, base_channels * 2**i, kernels, stride)
                self.add_module(f"layer{i + 1}", stage)
                stage_in = stage_out[i]
            self.TPN_neck = TemporalPyramidNeck(
                stage_out[2:], neck_channels, fusion_channels, temporal_scales, num_classes, neck_groups
            )
            self.dropout = nn.Dropout(p=dropout)
            self.avg_pool = nn.AdaptiveAvgPool3d(1)
            self.fc = nn.Linear(fusion_channels, num_classes)
        init_resnet_weights(self, generator)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            kind = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"TPN expects a floating-point tensor (N, C, T, H, W), got {kind}")
        if x.dim() != 5:
            raise ValueError(f"TPN expects a 5-D input (N, C, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"TPN expects {self.in_channels} input channels (N, C, T, H, W), got C={x.shape[1]} "
                f"in shape {tuple(x.shape)}"
            )
        if x.shape[2] < self.min_frames:
            raise ValueError(
                f"TPN needs at least min_frames={self.min_frames} frames (its temporal pyramid pools "
                f"{self.temporal_scales} time steps per level, after a stem temporal stride of "
                f"{self.conv1.stride[0]}), got T={x.shape[2]} in shape {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone + neck: (fused pyramid features (N, fusion_channels, T', H', W'), stage-3 features)."""
        self._check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        stage3 = self.layer3(x)
        stage4 = self.layer4(stage3)
        return self.TPN_neck([stage3, stage4]), stage3

    def _classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avg_pool(features)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of clips (N, C, T, H, W); the auxiliary head is not evaluated."""
        features, _ = self.forward_features(x)
        return self._classify(features)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, auxiliary-head logits) for training with TPN's auxiliary loss (gluoncv weight 0.5)."""
        features, stage3 = self.forward_features(x)
        return self._classify(features), self.TPN_neck.aux_head(stage3)


def tpn_resnet50_f32s2_kinetics400(num_classes: int = 400, **kwargs: object) -> TPN:
    """gluoncv's TPN ResNet-50 f32s2 (32 frames, temporal scales (32, 32)); kwargs override TPN's args."""
    options: dict = {"layers": RESNET50_LAYERS, "temporal_scales": (32, 32), **kwargs}
    return TPN(num_classes=num_classes, **options)


def tpn_resnet101_f32s2_kinetics400(num_classes: int = 400, **kwargs: object) -> TPN:
    """gluoncv's TPN ResNet-101 f32s2 (32 frames, temporal scales (16, 32)); kwargs override TPN's args."""
    options: dict = {"layers": RESNET101_LAYERS, "temporal_scales": (16, 32), **kwargs}
    return TPN(num_classes=num_classes, **options)
