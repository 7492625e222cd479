"""Tiny float64 models with known gradients for the attack tests."""

from __future__ import annotations

import torch
from torch import nn

from vidadv.models.common import ResidualBlock


class LinearVideo(nn.Module):
    """logits = W vec(x) + b: the CE gradient is W^T (softmax(z) - onehot(y))."""

    def __init__(self, shape: tuple[int, int, int, int], classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = int(torch.tensor(shape).prod())
        self.shape = shape
        self.weight = nn.Parameter(torch.randn(classes, d, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(classes, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.t() + self.bias

    def ce_grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Analytic d CE(z, y) / d x, per clip (sum over the batch)."""
        z = self.forward(x).detach()
        p = torch.softmax(z, dim=1)
        p[torch.arange(len(y)), y] -= 1.0
        return (p @ self.weight.detach()).view_as(x)


class TinyConv(nn.Module):
    """A small nonlinear 3-D conv net (any C/T/H/W) with a Grad-CAM layer `features`."""

    attention_layer = "features"

    def __init__(self, channels: int = 3, classes: int = 5, width: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv3d(channels, width, 3, padding=1), nn.Softplus(), nn.Conv3d(width, width, 3, padding=1)
        )
        self.act = nn.Tanh()
        self.temporal = nn.Linear(width, width)
        self.head = nn.Linear(2 * width, classes)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.act(self.features(x))  # (N, W, T, H, W)
        pooled = f.mean(dim=(3, 4))  # (N, W, T)
        T = pooled.shape[-1]
        # position-dependent temporal weighting makes the net sensitive to temporal shifts
        ramp = torch.linspace(-1.0, 1.0, T, dtype=x.dtype, device=x.device)
        ordered = (pooled * ramp).mean(-1)
        return self.head(torch.cat([pooled.mean(-1), self.temporal(ordered)], dim=1))


class CyclicShiftInvariant(nn.Module):
    """Circular 3-D convolution, then global average pooling: rolling the frames keeps the logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv3d(3, 4, 3, padding=1, padding_mode="circular")
        self.head = nn.Linear(4, 5)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.features(x)).mean(dim=(2, 3, 4)))


class _Block(ResidualBlock):
    def __init__(self, d: int, g: torch.Generator) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scale_residual_grad(self.lin(h))


class LinearResidual(nn.Module):
    """h = vec(x); out = h + scale_residual_grad(L h); logits = H out (a vidadv ResidualBlock)."""

    def __init__(self, shape: tuple[int, int, int, int], classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = int(torch.tensor(shape).prod())
        self.block = _Block(d, g)
        self.head = nn.Linear(d, classes).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x.flatten(1)))


class BasicBlock(nn.Module):
    """Foreign (torchvision-style name) residual block: h + relu(L h)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d).double()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.relu(self.lin(h))


class ForeignResNet(nn.Module):
    """Two BasicBlocks in `layer` (layer.0 is the first block of the stage), then a linear head."""

    def __init__(self, shape: tuple[int, int, int, int], classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        d = int(torch.tensor(shape).prod())
        self.layer = nn.Sequential(BasicBlock(d), BasicBlock(d))
        self.head = nn.Linear(d, classes).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x.flatten(1)))


class Recorder(nn.Module):
    """Wraps a model and records every batch it is called with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.detach().clone())
        return self.model(x)


def clips(n: int = 2, c: int = 3, t: int = 8, h: int = 6, w: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, c, t, h, w, generator=g, dtype=torch.float64)


def autograd_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d sum_b CE(model(x_b), y_b) / d x by plain autograd."""
    x = x.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


class SineVideo(nn.Module):
    """logits = [sum_{t,p} c_t sin(w_t x_tp + phi_p), 0]: a gradient that changes sign within a
    step and whose size differs by orders of magnitude between frames (to tell normalizations and
    variance terms apart)."""

    def __init__(self, shape: tuple[int, int, int, int], seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        C, T, H, W = shape
        self.frequency = nn.Parameter(50 + 250 * torch.rand(1, 1, T, 1, 1, generator=g, dtype=torch.float64))
        self.scale = nn.Parameter(10 ** (4 * torch.rand(1, 1, T, 1, 1, generator=g, dtype=torch.float64) - 2))
        self.phase = nn.Parameter(6.3 * torch.rand(1, C, T, H, W, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = (self.scale * torch.sin(self.frequency * x + self.phase)).flatten(1).sum(1)
        return torch.stack([value, torch.zeros_like(value)], dim=1)
