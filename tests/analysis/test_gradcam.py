"""Grad-CAM against a manual computation, layer resolution, and differentiability."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.attacks.tiny_models import TinyConv, clips
from vidadv.models.gradcam import grad_cam, resolve_layer


class Wrapped(nn.Module):
    """Mimics vidadv.models.VideoClassifier: the bare net lives in `.network`."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.attention_layer = "network.features"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def _manual(model: TinyConv, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    A = model.features(x).detach().requires_grad_(True)
    f = model.act(A)
    pooled = f.mean(dim=(3, 4))
    ramp = torch.linspace(-1.0, 1.0, pooled.shape[-1], dtype=x.dtype)
    z = model.head(torch.cat([pooled.mean(-1), model.temporal((pooled * ramp).mean(-1))], dim=1))
    cams = []
    for n in range(x.shape[0]):
        (dA,) = torch.autograd.grad(z[n, labels[n]], A, retain_graph=True)
        weights = dA[n].mean(dim=(1, 2, 3))  # one weight per channel
        cams.append(torch.relu(torch.einsum("c,cthw->thw", weights, A[n].detach())))
    return torch.stack(cams)


def test_grad_cam_matches_manual_computation() -> None:
    model = TinyConv()
    x, labels = clips(3, t=5), torch.tensor([0, 4, 2])
    cam = grad_cam(model, x, labels)
    assert cam.shape == (3, 5, 6, 6)
    assert (cam >= 0).all() and not cam.requires_grad
    assert torch.allclose(cam, _manual(model, x, labels), atol=1e-12)


def test_layer_resolution_and_network_fallback() -> None:
    net = TinyConv()
    wrapped = Wrapped(net)
    assert resolve_layer(wrapped, "network.features") is net.features
    assert resolve_layer(wrapped, "features.0") is net.features[0]  # relative to .network
    x, labels = clips(2), torch.tensor([1, 2])
    expected = grad_cam(net, x, labels, "features")
    assert torch.allclose(grad_cam(wrapped, x, labels), expected)  # default: attention_layer
    assert torch.allclose(grad_cam(wrapped, x, labels, net.features), expected)


def test_unknown_layer_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"no layer 'layer4'.*features"):
        resolve_layer(TinyConv(), "layer4")
    with pytest.raises(ValueError, match="attention_layer"):
        grad_cam(nn.Sequential(TinyConv()), clips(1), torch.tensor([0]))


def test_bad_labels() -> None:
    model = TinyConv()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        grad_cam(model, clips(2), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        grad_cam(model, clips(1), torch.tensor([7]))


def test_four_dimensional_activations_get_a_time_axis() -> None:
    class Frames(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1).double()
            self.head = nn.Linear(4, 2).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.conv(x[:, :, 0]).mean(dim=(2, 3)))

    cam = grad_cam(Frames(), clips(2), torch.tensor([0, 1]), "conv")
    assert cam.shape == (2, 1, 6, 6)


def test_create_graph_makes_the_map_differentiable() -> None:
    model = TinyConv(width=2)
    x = clips(1, t=3, h=3, w=3).requires_grad_(True)
    labels = torch.tensor([1])
    cam = grad_cam(model, x, labels, create_graph=True)
    assert cam.requires_grad

    def total(inp: torch.Tensor) -> torch.Tensor:
        return grad_cam(model, inp, labels, create_graph=True).pow(2).sum()

    (analytic,) = torch.autograd.grad(total(x), x)
    # central differences on a few coordinates (Softplus/Tanh net: smooth except the final ReLU)
    for index in [(0, 0, 0, 0, 0), (0, 1, 1, 1, 2), (0, 2, 2, 2, 1)]:
        step = torch.zeros_like(x)
        step[index] = 1e-6
        numeric = ((total(x.detach() + step) - total(x.detach() - step)) / 2e-6).detach()
        assert float(analytic[index]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-10)
