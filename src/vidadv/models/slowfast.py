"""SlowFast networks (Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV 2019).

A SlowFast network runs two ResNet-3D pathways on the same clip:

* the **Slow pathway** sees every `alpha`-th frame (frames 0, alpha, 2*alpha, ...) with `base_channels`
  channels and uses temporal convolutions only in its last two stages (res4, res5);
* the **Fast pathway** sees all T frames with `base_channels / beta` channels (the paper's beta = 1/8 is
  `beta=8` here) and uses temporal convolutions (kernel 3) in every bottleneck.

After the stem and after res2, res3 and res4, a **lateral connection** (a time-strided convolution of
kernel `fusion_kernel_size` x 1 x 1, stride `alpha`, with `fusion_channel_ratio` times the fast width)
carries Fast features into the Slow pathway, where they are concatenated along channels. The head
averages each pathway over (T, H, W), concatenates (slow, fast), applies dropout and a linear classifier.

`SlowFast` reproduces the layout and the numerics of gluoncv 0.10.5's torch model zoo
(`slowfast_8x8_resnet{50,101}_kinetics400`): same submodule names, so a gluoncv state dict loads with
`strict=True`, and the same frame selection (the slow input is `x[:, :, ::alpha]`). Depth, width, alpha,
beta and the fusion kernel are constructor arguments, so the same code builds small models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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
    "GLUONCV_CONFIGS",
    "SlowFast",
    "slowfast_8x8_resnet50_kinetics400",
    "slowfast_8x8_resnet101_kinetics400",
]

#: Architecture arguments of the gluoncv Kinetics-400 SlowFast 8x8 models (32 input frames, alpha 4).
GLUONCV_CONFIGS: dict[str, dict[str, object]] = {
    "slowfast_8x8_resnet50_kinetics400": {
        "layers": (3, 4, 6, 3),
        "base_channels": 64,
        "alpha": 4,
        "beta": 8,
        "fusion_kernel_size": 7,
        "fusion_channel_ratio": 2,
    },
    "slowfast_8x8_resnet101_kinetics400": {
        "layers": (3, 4, 23, 3),
        "base_channels": 64,
        "alpha": 4,
        "beta": 8,
        "fusion_kernel_size": 5,
        "fusion_channel_ratio": 2,
    },
}


def _norm(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels)


def _make_stage(
    in_channels: int, planes: int, num_blocks: int, spatial_stride: int, temporal_kernel: int
) -> nn.Sequential:
    """One ResNet stage (res2..res5) of a pathway; gluoncv's SlowFast lists bn1 right after conv1."""
    return bottleneck_stage(
        in_channels, planes, [temporal_kernel] * num_blocks, spatial_stride, interleave_norms=True
    )


def _lateral(in_channels: int, out_channels: int, kernel_size: int, alpha: int) -> nn.Sequential:
    """Fast-to-slow lateral connection: time-strided conv (kernel x 1 x 1, stride alpha), BN, ReLU."""
    return nn.Sequential(
        nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size=(kernel_size, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel_size // 2, 0, 0),
            bias=False,
        ),
        _norm(out_channels),
        nn.ReLU(),
    )


class SlowFast(nn.Module):
    """SlowFast ResNet-3D video classifier on clips (N, C, T, H, W) -> logits (N, num_classes).

    Args:
        layers: bottleneck blocks in res2..res5 of each pathway; (3, 4, 6, 3) is ResNet-50,
            (3, 4, 23, 3) ResNet-101.
        base_channels: stem width of the Slow pathway (gluoncv's `width_per_group`); stage widths are
            4x, 8x, 16x, 32x this. Must be divisible by `beta`.
        alpha: frame-rate ratio; the Slow pathway sees frames 0, alpha, 2*alpha, ... of the clip.
        beta: channel ratio; the Fast pathway has `base_channels // beta` stem channels (gluoncv's
            `beta_inv`).
        fusion_kernel_size: temporal kernel of the lateral convolutions (odd).
        fusion_channel_ratio: lateral output channels = this times the Fast pathway's channels there.
        num_classes: size of the classifier output.
        dropout: dropout probability before the classifier (active in train mode only).
        in_channels: input colour channels.
        generator: draws the initialization (He-normal convolutions, N(0, 0.01) classifier); None uses
            torch's global generator.

    Input requirements: a float tensor of rank 5 with `in_channels` channels and T a positive multiple of
    `alpha`. Any H, W >= 1 works (the head pools adaptively); the network downsamples space by 32.
    """

    #: Dotted name (relative to this network) of the default Grad-CAM layer: the output of the Slow
    #: pathway's last stage. It has the most semantic channels and feeds beta/(beta+1) of the classifier
    #: features (2048 of 2304 in gluoncv). `fast_res5` is the alternative with full temporal resolution.
    default_attention_layer: str = "slow_res5"

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        base_channels: int = 64,
        alpha: int = 4,
        beta: int = 8,
        fusion_kernel_size: int = 7,
        fusion_channel_ratio: int = 2,
        num_classes: int = 400,
        dropout: float = 0.5,
        in_channels: int = 3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        layers = positive_ints("layers", layers, 4, "the block counts of 4 stages, res2..res5")
        for name, value in (
            ("base_channels", base_channels),
            ("alpha", alpha),
            ("beta", beta),
            ("fusion_kernel_size", fusion_kernel_size),
            ("fusion_channel_ratio", fusion_channel_ratio),
            ("num_classes", num_classes),
            ("in_channels", in_channels),
        ):
            positive_int(name, value)
        if base_channels % beta != 0:
            raise ValueError(
                f"base_channels ({base_channels}) must be divisible by beta ({beta}) so that the Fast "
                "pathway has base_channels // beta channels"
            )
        if fusion_kernel_size % 2 != 1:
            raise ValueError(f"fusion_kernel_size must be odd, got {fusion_kernel_size}")
        check_dropout(dropout)

        self.layers = layers
        self.base_channels = base_channels
        self.alpha = alpha
        self.beta = beta
        self.fusion_kernel_size = fusion_kernel_size
        self.fusion_channel_ratio = fusion_channel_ratio
        self.num_classes = num_classes
        self.in_channels = in_channels

        expansion = Bottleneck3d.expansion
        slow_inner = [base_channels * 2**stage for stage in range(4)]
        fast_width = base_channels // beta
        fast_inner = [fast_width * 2**stage for stage in range(4)]
        fast_out = [width * expansion for width in fast_inner]
        slow_out = [width * expansion for width in slow_inner]
        strides = (1, 2, 2, 2)

        with draws_from(generator):
            # Fast pathway (registered first, as in gluoncv, so state-dict order matches too).
            self.fast_conv1 = stem_conv(in_channels, fast_width, temporal_kernel=5)
            self.fast_bn1 = _norm(fast_width)
            self.fast_relu = nn.ReLU()
            self.fast_maxpool = stem_pool()
            fast_in = [fast_width] + fast_out[:3]
            self.fast_res2 = _make_stage(fast_in[0], fast_inner[0], layers[0], strides[0], 3)
            self.fast_res3 = _make_stage(fast_in[1], fast_inner[1], layers[1], strides[1], 3)
            self.fast_res4 = _make_stage(fast_in[2], fast_inner[2], layers[2], strides[2], 3)
            self.fast_res5 = _make_stage(fast_in[3], fast_inner[3], layers[3], strides[3], 3)

            # Lateral connections from the Fast stem and res2..res4 outputs.
            lateral_out = [channels * fusion_channel_ratio for channels in fast_in]
            self.lateral_p1 = _lateral(fast_in[0], lateral_out[0], fusion_kernel_size, alpha)
            self.lateral_res2 = _lateral(fast_in[1], lateral_out[1], fusion_kernel_size, alpha)
            self.lateral_res3 = _lateral(fast_in[2], lateral_out[2], fusion_kernel_size, alpha)
            self.lateral_res4 = _lateral(fast_in[3], lateral_out[3], fusion_kernel_size, alpha)

            # Slow pathway; each stage input is the previous output concatenated with the lateral features.
            self.slow_conv1 = stem_conv(in_channels, base_channels, temporal_kernel=1)
            self.slow_bn1 = _norm(base_channels)
            self.slow_relu = nn.ReLU()
            self.slow_maxpool = stem_pool()
            slow_in = [
                width + lateral
                for width, lateral in zip([base_channels] + slow_out[:3], lateral_out, strict=True)
            ]
            temporal_kernels = (1, 1, 3, 3)  # the Slow pathway is non-temporal in res2 and res3
            self.slow_res2 = _make_stage(
                slow_in[0], slow_inner[0], layers[0], strides[0], temporal_kernels[0]
            )
            self.slow_res3 = _make_stage(
                slow_in[1], slow_inner[1], layers[1], strides[1], temporal_kernels[1]
            )
            self.slow_res4 = _make_stage(
                slow_in[2], slow_inner[2], layers[2], strides[2], temporal_kernels[2]
            )
            self.slow_res5 = _make_stage(
                slow_in[3], slow_inner[3], layers[3], strides[3], temporal_kernels[3]
            )

            # Head: global average pooling per pathway, concat (slow, fast), dropout, linear.
            self.pool = nn.AdaptiveAvgPool3d(1)
            self.dropout = nn.Dropout(p=float(dropout))
            self.feature_dim = slow_out[3] + fast_out[3]
            self.fc = nn.Linear(self.feature_dim, num_classes)

        self.reset_parameters(generator)

    @property
    def min_frames(self) -> int:
        """Fewest frames a clip may have (T must also be a multiple of `alpha`)."""
        return self.alpha

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He-normal (fan-out) convolutions, unit/zero BatchNorm, N(0, 0.01) classifier with zero bias."""
        init_resnet_weights(self, generator)

    def check_input(self, clips: torch.Tensor) -> None:
        """Raise TypeError/ValueError unless `clips` is a float (N, C, T, H, W) batch this network accepts."""
        if not isinstance(clips, torch.Tensor):
            raise TypeError(f"SlowFast expects a torch.Tensor of shape (N, C, T, H, W), got {type(clips)!r}")
        if not clips.is_floating_point():
            raise TypeError(f"SlowFast expects a floating-point tensor, got dtype {clips.dtype}")
        if clips.dim() != 5:
            raise ValueError(
                f"SlowFast expects a rank-5 tensor (N, C, T, H, W), got rank {clips.dim()} "
                f"with shape {tuple(clips.shape)}"
            )
        channels, frames = clips.shape[1], clips.shape[2]
        if channels != self.in_channels:
            raise ValueError(
                f"SlowFast expects {self.in_channels} channels in dim 1 of (N, C, T, H, W), got {channels} "
                f"(shape {tuple(clips.shape)})"
            )
        if frames < self.alpha or frames % self.alpha != 0:
            raise ValueError(
                f"SlowFast with alpha={self.alpha} needs T (dim 2) to be a positive multiple of alpha "
                f"(>= {self.alpha}), got T={frames}"
            )

    def _fast_pathway(self, clips: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fast pathway on all frames; returns its final feature map and the four lateral tensors."""
        x = self.fast_maxpool(self.fast_relu(self.fast_bn1(self.fast_conv1(clips))))
        laterals = [self.lateral_p1(x)]
        x = self.fast_res2(x)
        laterals.append(self.lateral_res2(x))
        x = self.fast_res3(x)
        laterals.append(self.lateral_res3(x))
        x = self.fast_res4(x)
        laterals.append(self.lateral_res4(x))
        return self.fast_res5(x), laterals

    def _slow_pathway(self, clips: torch.Tensor, laterals: list[torch.Tensor]) -> torch.Tensor:
        """Slow pathway on the subsampled frames, fusing each lateral by channel concatenation."""
        x = self.slow_maxpool(self.slow_relu(self.slow_bn1(self.slow_conv1(clips))))
        x = self.slow_res2(torch.cat((x, laterals[0]), dim=1))
        x = self.slow_res3(torch.cat((x, laterals[1]), dim=1))
        x = self.slow_res4(torch.cat((x, laterals[2]), dim=1))
        return self.slow_res5(torch.cat((x, laterals[3]), dim=1))

    def extract_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Pooled (slow, fast) features (N, feature_dim) that the classifier sees (before dropout)."""
        self.check_input(clips)
        fast_map, laterals = self._fast_pathway(clips)
        slow_map = self._slow_pathway(clips[:, :, :: self.alpha], laterals)
        return torch.cat((self.pool(slow_map).flatten(1), self.pool(fast_map).flatten(1)), dim=1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for clips (N, C, T, H, W)."""
        return self.fc(self.dropout(self.extract_features(clips)))


_ARCHITECTURE_KEYS = tuple(GLUONCV_CONFIGS["slowfast_8x8_resnet50_kinetics400"])


def _build_gluoncv(name: str, num_classes: int, kwargs: dict[str, object]) -> SlowFast:
    fixed = sorted(set(kwargs) & set(_ARCHITECTURE_KEYS))
    if fixed:
        raise TypeError(
            f"{name} fixes the architecture argument(s) {', '.join(fixed)}; "
            "build vidadv.models.slowfast.SlowFast(...) directly for other architectures"
        )
    return SlowFast(num_classes=num_classes, **GLUONCV_CONFIGS[name], **kwargs)  # type: ignore[arg-type]


def slowfast_8x8_resnet50_kinetics400(num_classes: int = 400, **kwargs: object) -> SlowFast:
    """gluoncv's SlowFast 8x8 ResNet-50 (alpha 4, beta 8, fusion kernel 7); 32-frame input."""
    return _build_gluoncv("slowfast_8x8_resnet50_kinetics400", num_classes, kwargs)


def slowfast_8x8_resnet101_kinetics400(num_classes: int = 400, **kwargs: object) -> SlowFast:
    """gluoncv's SlowFast 8x8 ResNet-101 (alpha 4, beta 8, fusion kernel 5); 32-frame input."""
    return _build_gluoncv("slowfast_8x8_resnet101_kinetics400", num_classes, kwargs)
