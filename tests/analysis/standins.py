"""Tiny stand-in video models and clips for the analysis tests (no zoo, no real data)."""

from __future__ import annotations

import torch
from torch import nn


class FrameMask(nn.Module):
    """Elementwise layer that keeps only frame `frame` (times `scale`) of an (N, C, T, H, W) input."""

    def __init__(self, frame: int, scale: float) -> None:
        super().__init__()
        self.frame = frame
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(x.shape[2], dtype=x.dtype, device=x.device)
        mask[self.frame] = self.scale
        return x * mask.view(1, 1, -1, 1, 1)


class FrameModel(nn.Module):
    """Classifier that only looks at frame `frame`: logit of class c = scale * mean of channel c there.

    Its Grad-CAM layer (`attention_layer = "features"`) is zero outside that frame; removing any other
    frame leaves the logits bit-identical.
    """

    def __init__(self, frame: int, scale: float = 6.0, mean: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.features = FrameMask(frame, scale)
        self.attention_layer = "features"
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Mean over T, H, W of the masked activations, times T: the spatial mean of the kept frame.
        return self.features(x).mean(dim=(2, 3, 4)) * x.shape[2]


class TinyConvNet(nn.Module):
    """A small 3D conv net with random weights (mixes neighbouring frames), K classes."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, num_classes)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        self.attention_layer = "conv"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


class CountingModel(nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        return self.inner(x)


def channel_clips(labels: list[int], frames: int = 8, size: int = 4, seed: int = 0) -> torch.Tensor:
    """Clips (N, 3, T, H, W) in [0, 1] whose brightest channel in every frame is the clip's label."""
    generator = torch.Generator().manual_seed(seed)
    clips = 0.1 + 0.2 * torch.rand(len(labels), 3, frames, size, size, generator=generator)
    for n, label in enumerate(labels):
        clips[n, label] += 0.5 + 0.2 * torch.rand(frames, size, size, generator=generator)
    return clips
