"""`VideoClassifier`: any PyTorch video network plus its input normalization.

Attacks and evaluation in vidadv see one kind of model: an `nn.Module` taking clips (N, C, T, H, W) with
values in [0, 1] and returning logits (N, K). `VideoClassifier` turns a bare network into that: it checks
the clip, subtracts the mean and divides by the standard deviation per channel, rearranges the clip to the
layout the network wants, optionally splits it into pathways, and calls the network.

Wrapping third-party models (vidadv does not depend on torchvision or pytorchvideo)::

    # torchvision R3D-18 / R(2+1)D / MC3: (N, C, T, H, W), Kinetics mean/std
    from torchvision.models.video import r3d_18, R3D_18_Weights
    model = VideoClassifier(r3d_18(weights=R3D_18_Weights.KINETICS400_V1),
                            mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989),
                            attention_layer="network.layer4")

    # torchvision MViT-V1-B: (N, C, T, H, W), exactly 16 frames of 224x224
    from torchvision.models.video import mvit_v1_b, MViT_V1_B_Weights
    model = VideoClassifier(mvit_v1_b(weights=MViT_V1_B_Weights.KINETICS400_V1),
                            mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), min_frames=16)

    # pytorchvideo SlowFast-R50: a list [slow, fast]; slow = alpha-times temporally subsampled clip
    net = torch.hub.load("facebookresearch/pytorchvideo", "slowfast_r50", pretrained=True)
    model = VideoClassifier(net, mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), alpha=4,
                            attention_layer="network.blocks.4.multipathway_blocks.0")  # slow res5

    # a network that wants (N, T, C, H, W)
    model = VideoClassifier(my_net, input_layout="NTCHW")

Put the wrapped model in eval mode (`model.eval()`) before attacking it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "INPUT_LAYOUTS", "VideoClassifier", "subsample_frames"]

#: ImageNet channel statistics (RGB, [0, 1] pixel scale); gluoncv's Kinetics models use them.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
INPUT_LAYOUTS = ("NCTHW", "NTCHW")

PathwayFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def subsample_frames(clip: torch.Tensor, alpha: int) -> torch.Tensor:
    """Keep T // alpha frames of an (N, C, T, H, W) clip, evenly spaced from the first to the last frame.

    This is how pytorchvideo builds the slow pathway of SlowFast (indices linspace(0, T-1, T//alpha)).
    """
    frames = clip.shape[2]
    count = max(frames // alpha, 1)
    index = torch.linspace(0, frames - 1, count, device=clip.device).long()
    return clip.index_select(2, index)


def _channel_stats(values: Sequence[float] | torch.Tensor, what: str) -> torch.Tensor:
    try:
        stats = torch.as_tensor(values, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what} must be a sequence of per-channel numbers, got {values!r}") from error
    if stats.numel() == 0 or not torch.isfinite(stats).all():
        raise ValueError(f"{what} must be a non-empty sequence of finite numbers, got {values!r}")
    return stats


def _infer_num_classes(network: nn.Module) -> int | None:
    value = getattr(network, "num_classes", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    last_linear = None
    for module in network.modules():
        if isinstance(module, nn.Linear):
            last_linear = module
    return None if last_linear is None else last_linear.out_features


class VideoClassifier(nn.Module):
    """A video network with its normalization: clips (N, C, T, H, W) in [0, 1] -> logits (N, K).

    Args:
        network: the bare network (expects normalized input); kept as `.network`.
        mean, std: per-channel statistics in [0, 1] pixel units (default ImageNet).
        input_layout: layout the network expects, "NCTHW" (vidadv, torchvision, pytorchvideo) or "NTCHW".
        pathways: callable mapping the normalized (N, C, T, H, W) clip to a list of pathway clips (each is
            then put in `input_layout`); the network receives the list.
        alpha: shortcut for SlowFast-style networks that take [slow, fast]: slow keeps T // alpha evenly
            spaced frames (`subsample_frames`), fast is the whole clip. Exclusive with `pathways`.
        attention_layer: dotted submodule name, relative to this classifier, used by Grad-CAM / ATA;
            default "network." + `network.attention_layer` (or `default_attention_layer`) when defined.
        min_frames: fewest frames accepted; default `network.min_frames`, else `alpha`, else 1.
        num_classes: number of logits; default `network.num_classes` or the last `nn.Linear`'s width.
        in_channels: channel count of the clips; default the length of `mean`.
    """

    def __init__(
        self,
        network: nn.Module,
        mean: Sequence[float] | torch.Tensor = IMAGENET_MEAN,
        std: Sequence[float] | torch.Tensor = IMAGENET_STD,
        input_layout: str = "NCTHW",
        pathways: PathwayFn | None = None,
        *,
        alpha: int | None = None,
        attention_layer: str | None = None,
        min_frames: int | None = None,
        num_classes: int | None = None,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, got {input_layout!r}")
        if pathways is not None and alpha is not None:
            raise ValueError("give either pathways (a callable) or alpha (SlowFast subsampling), not both")
        if pathways is not None and not callable(pathways):
            raise TypeError("pathways must be a callable mapping a clip to a list of pathway clips")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int) or alpha < 1):
            raise ValueError(f"alpha must be a positive integer, got {alpha!r}")

        mean_t = _channel_stats(mean, "mean")
        std_t = _channel_stats(std, "std")
        if (std_t <= 0).any():
            raise ValueError(f"std must be positive in every channel, got {std_t.tolist()}")
        if mean_t.numel() != std_t.numel() and 1 not in (mean_t.numel(), std_t.numel()):
            raise ValueError(
                f"mean has {mean_t.numel()} values but std has {std_t.numel()}; give one value per channel"
            )
        channels = max(mean_t.numel(), std_t.numel()) if in_channels is None else in_channels
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        for stats, what in ((mean_t, "mean"), (std_t, "std")):
            if stats.numel() not in (1, channels):
                raise ValueError(f"{what} has {stats.numel()} values but the clips have {channels} channels")

        self.network = network
        self.input_layout = input_layout
        self.pathways = pathways
        self.alpha = alpha
        self.in_channels = channels
        self.register_buffer("mean", mean_t.reshape(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.reshape(1, -1, 1, 1, 1), persistent=False)

        if min_frames is None:
            network_min = getattr(network, "min_frames", None)
            min_frames = network_min if isinstance(network_min, int) else (alpha or 1)
        if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 1:
            raise ValueError(f"min_frames must be a positive integer, got {min_frames!r}")
        self.min_frames = min_frames

        self.num_classes = _infer_num_classes(network) if num_classes is None else num_classes

        if attention_layer is None:
            network_layer = getattr(network, "attention_layer", None) or getattr(
                network, "default_attention_layer", None
            )
            if isinstance(network_layer, str):
                attention_layer = f"network.{network_layer}"
        if attention_layer is not None:
            try:
                self.get_submodule(attention_layer)
            except AttributeError as error:
                raise ValueError(
                    f"attention_layer {attention_layer!r} is not a submodule of the classifier (names are "
                    f"relative to it and start with 'network.', e.g. 'network.layer4')"
                ) from error
        self.attention_layer = attention_layer

    def check_clip(self, clip: torch.Tensor) -> None:
        """Raise ValueError unless `clip` is a float (N, C, T, H, W) batch this model accepts."""
        if not isinstance(clip, torch.Tensor):
            raise ValueError(f"expected a clip tensor (N, C, T, H, W), got {type(clip).__name__}")
        if clip.dim() != 5:
            raise ValueError(
                f"expected a 5-D clip batch (N, C, T, H, W), got shape {tuple(clip.shape)}; add a batch "
                f"dimension with clip.unsqueeze(0) for a single clip"
            )
        if not clip.is_floating_point():
            raise ValueError(f"expected a floating-point clip with values in [0, 1], got dtype {clip.dtype}")
        if clip.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} channels in dimension 1 of (N, C, T, H, W), got shape "
                f"{tuple(clip.shape)} (a (N, T, C, H, W) clip needs clip.permute(0, 2, 1, 3, 4))"
            )
        if clip.shape[2] < self.min_frames:
            raise ValueError(f"this model needs at least {self.min_frames} frames, got {clip.shape[2]}")

    def normalize(self, clip: torch.Tensor) -> torch.Tensor:
        """(clip - mean) / std per channel, for (N, C, T, H, W) clips in [0, 1]."""
        return (clip - self.mean.to(clip.dtype)) / self.std.to(clip.dtype)

    def _to_layout(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.transpose(1, 2) if self.input_layout == "NTCHW" else clip

    def network_input(self, clip: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """What the bare network receives for `clip` (normalized, re-laid-out, split into pathways)."""
        normalized = self.normalize(clip)
        if self.alpha is not None:
            return [self._to_layout(subsample_frames(normalized, self.alpha)), self._to_layout(normalized)]
        if self.pathways is not None:
            return [self._to_layout(p) for p in self.pathways(normalized)]
        return self._to_layout(normalized)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        return self.network(self.network_input(clip))

    def extra_repr(self) -> str:
        stats = f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
        return (
            f"{stats}, input_layout={self.input_layout!r}, alpha={self.alpha}, min_frames={self.min_frames}"
        )
