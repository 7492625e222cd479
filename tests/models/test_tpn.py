"""Tests of the TPN family against gluoncv's reference state dicts and logits, plus small-model properties."""

from __future__ import annotations

import pytest
import torch

from tests.models.gluoncv_ref import load_reference, recipe_input, recipe_state_dict
from vidadv.models import get_model_entry, tpn
from vidadv.models.common import Bottleneck3d, ResidualBlock, residual_blocks

GLUONCV_BUILDERS = {
    "tpn_resnet50_f32s2_kinetics400": tpn.tpn_resnet50_f32s2_kinetics400,
    "tpn_resnet101_f32s2_kinetics400": tpn.tpn_resnet101_f32s2_kinetics400,
}


def small_tpn(**overrides: object) -> tpn.TPN:
    options: dict = dict(
        layers=(1, 1, 1, 1),
        base_channels=8,
        neck_channels=32,
        neck_groups=8,
        num_classes=5,
        generator=torch.Generator().manual_seed(0),
    )
    options.update(overrides)
    return tpn.TPN(**options)


def state_dict_layout(net: torch.nn.Module) -> list[list]:
    return [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
        for key, value in net.state_dict().items()
    ]


@pytest.mark.parametrize("name", sorted(GLUONCV_BUILDERS))
def test_state_dict_matches_gluoncv_layout(name: str) -> None:
    reference = load_reference(name)
    net = GLUONCV_BUILDERS[name](num_classes=reference["num_classes"])
    assert state_dict_layout(net) == reference["state_dict"]


@pytest.mark.parametrize("name", sorted(GLUONCV_BUILDERS))
def test_builders_are_registered(name: str) -> None:
    assert get_model_entry(name).builder is GLUONCV_BUILDERS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GLUONCV_BUILDERS))
def test_logits_match_gluoncv(name: str) -> None:
    reference = load_reference(name)
    net = GLUONCV_BUILDERS[name](num_classes=reference["num_classes"]).eval()
    net.load_state_dict(recipe_state_dict(reference), strict=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            logits = net(recipe_input())
    finally:
        torch.set_num_threads(threads)
    expected = torch.tensor(reference["logits"], dtype=torch.float64)
    assert logits.shape == (1, reference["num_classes"])
    error = (logits[0].double() - expected).abs().max().item()
    assert error <= 1e-3 * reference["logits_abs_max"], f"max |logit error| {error}"


def test_gluoncv_structure_facts() -> None:
    net = tpn.tpn_resnet101_f32s2_kinetics400()
    # Slow-only inflation: temporal kernel 3 only in the first conv of stage-3/4 blocks.
    for stage, inflated in (("layer1", False), ("layer2", False), ("layer3", True), ("layer4", True)):
        for block in getattr(net, stage):
            assert block.conv1.kernel_size == ((3, 1, 1) if inflated else (1, 1, 1))
            assert block.conv2.kernel_size == (1, 3, 3)
            assert block.conv2.stride[0] == 1 and block.conv1.stride[0] == 1
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    neck = net.TPN_neck
    assert [op.pool.kernel_size for op in neck.temporal_modulation_ops] == [(16, 1, 1), (32, 1, 1)]
    assert [op.pool.kernel_size for op in neck.downsampling_ops] == [(2, 1, 1)]
    assert [op.pool.kernel_size for op in neck.level_fusion_op.ops] == [(2, 1, 1), (1, 1, 1)]
    assert net.min_frames == 32 and net.default_attention_layer == "layer4"
    assert net.dropout.p == 0.5


def test_small_config_forward_backward_at_32_pixels() -> None:
    net = small_tpn().train()
    blocks = residual_blocks(net)
    assert len(blocks) == 4 and all(isinstance(b, ResidualBlock) for b in blocks)
    assert all(isinstance(b, Bottleneck3d) for b in blocks)
    clip = torch.rand(2, 3, 32, 32, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
    logits = net(clip)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all() and clip.grad.abs().sum() > 0
    assert all(p.grad is not None for name, p in net.named_parameters() if "aux_head" not in name)
    main, aux = net.forward_with_aux(clip.detach())
    assert main.shape == aux.shape == (2, 5)


@pytest.mark.parametrize(
    ("size", "frames", "scales"),
    [(48, 32, (32, 32)), (112, 32, (16, 32)), (32, 64, (16, 32)), (40, 48, (8, 16))],
)
def test_small_config_other_sizes(size: int, frames: int, scales: tuple[int, int]) -> None:
    net = small_tpn(temporal_scales=scales).eval()
    with torch.no_grad():
        logits = net(torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(2)))
    assert logits.shape == (1, 5) and torch.isfinite(logits).all()


def test_eval_logits_do_not_depend_on_the_rest_of_the_batch() -> None:
    net = small_tpn().eval()
    clips = torch.rand(3, 3, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        together = net(clips)
        alone = torch.cat([net(clip[None]) for clip in clips])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_attention_layer_is_the_last_stage() -> None:
    net = small_tpn().eval()
    layer = dict(net.named_modules())[tpn.TPN.default_attention_layer]
    seen: list[torch.Tensor] = []
    layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        net(torch.rand(1, 3, 32, 64, 64))
    # Stage 4 of base width 8 outputs 32 * 8 channels, full time, 1/32 spatial resolution.
    assert seen[0].shape == (1, 256, 32, 2, 2)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 2.0])
def test_residual_grad_scale_scales_only_the_residual_branch(gamma: float) -> None:
    """out = relu(branch(x) + x): d/dx = mask * (gamma * J_branch + I), linear in gamma (SGM)."""
    torch.manual_seed(4)
    block = Bottleneck3d(16, 4, temporal_kernel=3).eval()
    x = torch.randn(1, 16, 3, 4, 4)
    v = torch.randn(1, 16, 3, 4, 4)

    def input_grad(scale: float) -> torch.Tensor:
        block.residual_grad_scale = scale
        xi = x.clone().requires_grad_(True)
        (block(xi) * v).sum().backward()
        return xi.grad

    shortcut_only, plain = input_grad(0.0), input_grad(1.0)
    torch.testing.assert_close(input_grad(gamma), shortcut_only + gamma * (plain - shortcut_only))
    with torch.no_grad():
        mask = (block(x) > 0).float()
    torch.testing.assert_close(shortcut_only, v * mask)


def test_bad_input_raises_clear_errors() -> None:
    net = small_tpn().eval()
    with pytest.raises(ValueError, match=r"5-D input .*\(1, 3, 32, 32\)"):
        net(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"3 input channels.*C=1"):
        net(torch.rand(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match=r"min_frames=32.*T=16"):
        net(torch.rand(1, 3, 16, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.zeros(1, 3, 32, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temporal_scales": (16, 24)}, "divide the next"),
        ({"neck_groups": 7}, "neck_groups=7"),
        ({"layers": (1, 1, 1)}, "layers must be a sequence of 4"),
        ({"base_channels": 0}, "base_channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"stem_temporal_kernel": 4}, "stem_temporal_kernel must be odd"),
        ({"stem_temporal_stride": 0}, "stem_temporal_stride"),
    ],
)
def test_bad_constructor_arguments_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_tpn(**overrides)


def test_stem_temporal_stride_equals_subsampling_the_frames() -> None:
    """Stem temporal stride s sees frames 0, s, 2s, ...: same logits as stride 1 on x[:, :, ::s]."""
    strided = small_tpn(stem_temporal_stride=2, temporal_scales=(16, 16)).eval()
    plain = small_tpn(temporal_scales=(16, 16)).eval()
    plain.load_state_dict(strided.state_dict())
    clip = torch.rand(2, 3, 32, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(strided(clip), plain(clip[:, :, ::2]), rtol=1e-4, atol=1e-5)
    assert strided.min_frames == 32 and plain.min_frames == 16


def test_temporal_stem_shapes_and_min_frames() -> None:
    """The embedded zoo's TPN front end: 5x7x7 stem, temporal stride 4, all stages inflated, scales (8, 8)."""
    net = small_tpn(
        stem_temporal_kernel=5, stem_temporal_stride=4, temporal_scales=(8, 8), inflate=(True,) * 4
    ).eval()
    assert net.conv1.weight.shape == (8, 3, 5, 7, 7) and net.min_frames == 32
    assert all(block.conv1.kernel_size == (3, 1, 1) for block in residual_blocks(net))
    seen: list[torch.Tensor] = []
    net.layer4.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        logits = net(torch.rand(1, 3, 32, 32, 32, generator=torch.Generator().manual_seed(6)))
    assert logits.shape == (1, 5) and seen[0].shape == (1, 256, 8, 1, 1)
    with pytest.raises(ValueError, match=r"min_frames=32.*stride of 4.*T=28"):
        net(torch.rand(1, 3, 28, 32, 32))
