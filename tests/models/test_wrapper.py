"""VideoClassifier: normalization, layouts, pathways, attributes and input validation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vidadv.models import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier
from vidadv.models.i3d import I3DNonLocal
from vidadv.models.wrapper import subsample_frames


class Recorder(nn.Module):
    """Stores what it receives; returns a (N, num_classes) linear readout of the mean of its input(s)."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.received: object = None
        self.fc = nn.Linear(1, num_classes)

    def forward(self, x):
        self.received = x
        first = x[0] if isinstance(x, list) else x
        return self.fc(first.mean(dim=(1, 2, 3, 4)).unsqueeze(1))


def clip(n: int = 2, c: int = 3, t: int = 8, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.rand(n, c, t, h, w, generator=torch.Generator().manual_seed(0))


def test_normalization_uses_per_channel_mean_and_std() -> None:
    net = Recorder()
    model = VideoClassifier(net)
    x = clip()
    model(x)
    for channel in range(3):
        expected = (x[:, channel] - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(net.received[:, channel], expected, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    mean=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    std=st.lists(st.floats(0.05, 2.0), min_size=3, max_size=3),
)
def test_normalization_is_invertible(mean: list[float], std: list[float]) -> None:
    net = Recorder()
    model = VideoClassifier(net, mean=mean, std=std)
    x = clip(n=1)
    model(x)
    restored = net.received * torch.tensor(std).view(1, 3, 1, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1, 1)
    assert torch.allclose(restored, x, atol=1e-5)


def test_ntchw_layout() -> None:
    net = Recorder()
    model = VideoClassifier(net, mean=(0, 0, 0), std=(1, 1, 1), input_layout="NTCHW")
    x = clip(t=6)
    model(x)
    assert net.received.shape == (2, 6, 3, 4, 5)
    assert torch.equal(net.received, x.permute(0, 2, 1, 3, 4))


def test_alpha_pathways_follow_pytorchvideo() -> None:
    net = Recorder()
    model = VideoClassifier(net, mean=(0, 0, 0), std=(1, 1, 1), alpha=4)
    x = clip(t=32)
    model(x)
    slow, fast = net.received
    assert torch.equal(fast, x)
    # pytorchvideo PackPathway: index_select with linspace(0, T - 1, T // alpha).long()
    expected_index = [0, 4, 8, 13, 17, 22, 26, 31]
    assert torch.equal(slow, x[:, :, expected_index])
    assert model.min_frames == 4


def test_subsample_frames_keeps_first_and_last() -> None:
    x = torch.arange(10.0).view(1, 1, 10, 1, 1)
    assert subsample_frames(x, 3).flatten().tolist() == [0.0, 4.0, 9.0]
    assert subsample_frames(torch.zeros(1, 1, 2, 1, 1), 8).shape[2] == 1


def test_pathways_callable_and_layout_per_pathway() -> None:
    net = Recorder()

    def two_pathways(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, :, ::2], x]

    model = VideoClassifier(net, mean=(0, 0, 0), std=(1, 1, 1), pathways=two_pathways, input_layout="NTCHW")
    x = clip(t=8)
    model(x)
    assert [p.shape for p in net.received] == [(2, 4, 3, 4, 5), (2, 8, 3, 4, 5)]


def test_gradient_reaches_the_clip() -> None:
    model = VideoClassifier(Recorder())
    x = clip().requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_attributes_from_i3d() -> None:
    network = I3DNonLocal(layers=(1, 1, 1, 1), base_channels=4, num_classes=6)
    model = VideoClassifier(network)
    assert model.network is network
    assert model.attention_layer == "network.res_layers.3"
    assert model.get_submodule(model.attention_layer) is network.res_layers[3]
    assert model.min_frames == network.min_frames == 5
    assert model.num_classes == 6


def test_attributes_of_a_generic_model() -> None:
    model = VideoClassifier(Recorder(num_classes=9))
    assert model.attention_layer is None
    assert model.min_frames == 1
    assert model.num_classes == 9
    named = VideoClassifier(Recorder(), attention_layer="network.fc", min_frames=3, num_classes=4)
    assert (named.attention_layer, named.min_frames, named.num_classes) == ("network.fc", 3, 4)


def test_normalization_buffers_follow_the_module_but_not_the_state_dict() -> None:
    model = VideoClassifier(Recorder()).to(torch.float64)
    assert model.mean.dtype == torch.float64
    assert all(key.startswith("network.") for key in model.state_dict())


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(3, 8, 4, 4), "5-D"),
        (torch.rand(1, 1, 8, 4, 4), "3 channels"),
        (torch.rand(1, 8, 3, 4, 4), "3 channels"),
        (torch.rand(1, 3, 4, 4, 4), "at least 5 frames"),
        (torch.randint(0, 255, (1, 3, 8, 4, 4), dtype=torch.uint8), "floating-point"),
        ([1, 2, 3], "tensor"),
    ],
)
def test_bad_clips_raise_clear_errors(x, message: str) -> None:
    model = VideoClassifier(Recorder(), min_frames=5)
    with pytest.raises(ValueError, match=message):
        model(x)


def test_configured_channel_count() -> None:
    model = VideoClassifier(Recorder(), mean=(0.5,), std=(0.5,))
    assert model(torch.rand(1, 1, 2, 3, 3)).shape == (1, 7)
    with pytest.raises(ValueError, match="1 channels"):
        model(torch.rand(1, 3, 2, 3, 3))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_layout": "NHWC"}, ValueError, "input_layout"),
        ({"std": (0.2, 0.0, 0.2)}, ValueError, "positive"),
        ({"mean": (0.1, 0.2)}, ValueError, "mean has 2 values but std has 3"),
        (
            {"mean": (0.1, 0.2), "std": (1.0, 1.0), "in_channels": 3},
            ValueError,
            "2 values but the clips have 3 channels",
        ),
        ({"mean": "abc"}, ValueError, "mean"),
        ({"alpha": 0}, ValueError, "alpha"),
        ({"alpha": 2, "pathways": lambda x: [x]}, ValueError, "not both"),
        ({"attention_layer": "network.layer4"}, ValueError, "not a submodule"),
        ({"min_frames": 0}, ValueError, "min_frames"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        VideoClassifier(Recorder(), **kwargs)


def test_network_must_be_a_module() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        VideoClassifier(lambda x: x)  # type: ignore[arg-type]
