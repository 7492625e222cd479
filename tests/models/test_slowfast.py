"""Tests of vidadv.models.slowfast against gluoncv's reference files and against SlowFast's definition."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.gluoncv_ref import load_reference, recipe_input, recipe_state_dict
from vidadv.models import get_model_entry
from vidadv.models.common import Bottleneck3d, ResidualBlock, residual_blocks
from vidadv.models.slowfast import (
    GLUONCV_CONFIGS,
    SlowFast,
    slowfast_8x8_resnet50_kinetics400,
    slowfast_8x8_resnet101_kinetics400,
)

GLUONCV_NAMES = sorted(GLUONCV_CONFIGS)
BUILDERS = {
    "slowfast_8x8_resnet50_kinetics400": slowfast_8x8_resnet50_kinetics400,
    "slowfast_8x8_resnet101_kinetics400": slowfast_8x8_resnet101_kinetics400,
}
SMALL = {"layers": (1, 1, 1, 1), "base_channels": 8, "alpha": 4, "beta": 4, "fusion_kernel_size": 5}


def small_model(num_classes: int = 5, seed: int = 0, **overrides: object) -> SlowFast:
    generator = torch.Generator().manual_seed(seed)
    return SlowFast(**{**SMALL, "num_classes": num_classes, "generator": generator, **overrides})  # type: ignore[arg-type]


def clips(n: int = 2, t: int = 32, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


# --- gluoncv layout and numerics -------------------------------------------------------------------


@pytest.mark.parametrize("name", GLUONCV_NAMES)
def test_state_dict_keys_and_shapes_match_gluoncv(name: str) -> None:
    reference = load_reference(name)
    with torch.device("meta"):  # shapes only, no memory or init cost
        model = BUILDERS[name](num_classes=reference["num_classes"])
    ours = [
        [key, list(tensor.shape), str(tensor.dtype).removeprefix("torch.")]
        for key, tensor in model.state_dict().items()
    ]
    assert [entry[0] for entry in ours] == [entry[0] for entry in reference["state_dict"]]
    assert ours == reference["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("name", GLUONCV_NAMES)
def test_logits_match_gluoncv(name: str) -> None:
    reference = load_reference(name)
    torch.set_num_threads(2)
    model = BUILDERS[name](num_classes=reference["num_classes"]).eval()
    model.load_state_dict(recipe_state_dict(reference), strict=True)
    with torch.no_grad():
        logits = model(recipe_input())
    expected = torch.tensor(reference["logits"], dtype=torch.float64)
    assert logits.shape == (1, reference["num_classes"])
    error = (logits[0].double() - expected).abs().max().item()
    assert error <= 1e-3 * reference["logits_abs_max"], error


def test_builders_refuse_architecture_overrides() -> None:
    with pytest.raises(TypeError, match="layers"):
        slowfast_8x8_resnet50_kinetics400(layers=(1, 1, 1, 1))


def test_builder_passes_num_classes_and_options() -> None:
    with torch.device("meta"):
        model = slowfast_8x8_resnet101_kinetics400(num_classes=7, dropout=0.0)
    assert model.fc.out_features == 7 and model.dropout.p == 0.0
    assert model.layers == (3, 4, 23, 3) and model.fusion_kernel_size == 5


def test_catalogue_resolves_names_and_aliases() -> None:
    assert get_model_entry("slowfast50").builder is slowfast_8x8_resnet50_kinetics400
    assert get_model_entry("slowfast_8x8_resnet101_kinetics400").builder is slowfast_8x8_resnet101_kinetics400


# --- structure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [(1, 1, 1, 1), (2, 2, 2, 2), (3, 4, 6, 3)])
def test_blocks_are_residual_blocks(layers: tuple[int, int, int, int]) -> None:
    with torch.device("meta"):
        model = SlowFast(layers=layers, base_channels=16, beta=8, num_classes=3)
    blocks = residual_blocks(model)
    assert len(blocks) == 2 * sum(layers)  # one chain per pathway
    assert all(isinstance(block, Bottleneck3d) and isinstance(block, ResidualBlock) for block in blocks)


def test_channel_widths_follow_base_and_beta() -> None:
    model = small_model(base_channels=16, beta=8)  # slow width 16, fast width 2
    assert model.slow_conv1.out_channels == 16 and model.fast_conv1.out_channels == 2
    assert model.fc.in_features == model.feature_dim == 16 * 32 + 2 * 32
    # Slow res2 input = slow stem + lateral (fusion ratio 2 x fast stem width).
    assert model.slow_res2[0].conv1.in_channels == 16 + 2 * 2


# --- forward behaviour -----------------------------------------------------------------------------


def test_slow_pathway_sees_every_alpha_th_frame_from_zero() -> None:
    model = small_model(alpha=4).eval()
    x = clips(n=1, t=16, size=16)
    seen: list[torch.Tensor] = []
    model.slow_conv1.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(seen[0], x[:, :, [0, 4, 8, 12]], rtol=0, atol=0)


def test_small_model_trains_at_32x32_with_32_frames() -> None:
    torch.manual_seed(0)
    model = small_model(num_classes=5).train()
    x = clips(n=2, t=32, size=32).requires_grad_(True)
    labels = torch.tensor([1, 3])
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    # Both pathways and a lateral connection receive gradient.
    for name in ("fast_conv1.weight", "slow_conv1.weight", "lateral_res4.0.weight", "fc.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 2),
    multiple=st.integers(1, 4),
    alpha=st.sampled_from([2, 4]),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
)
def test_any_valid_clip_gives_logits(n: int, multiple: int, alpha: int, height: int, width: int) -> None:
    model = small_model(num_classes=3, alpha=alpha).eval()
    x = torch.rand(n, 3, alpha * multiple, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (n, 3) and torch.isfinite(logits).all()


def test_eval_mode_is_deterministic_and_batch_independent() -> None:
    model = small_model().eval()
    x = clips(n=3, size=24)
    with torch.no_grad():
        batch = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(model(x).detach(), batch)
    torch.testing.assert_close(single, batch[1:2], rtol=1e-4, atol=1e-5)


def test_attention_layer_output_is_what_the_classifier_pools() -> None:
    model = small_model().eval()
    x = clips(n=2, t=16, size=64)
    captured: list[torch.Tensor] = []
    layer = model.get_submodule(model.default_attention_layer)
    layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    with torch.no_grad():
        features = model.extract_features(x)
    (activation,) = captured
    assert activation.shape == (2, 8 * 32, 16 // 4, 2, 2)  # (N, 32 * base, T / alpha, H / 32, W / 32)
    torch.testing.assert_close(features[:, : activation.shape[1]], activation.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(model.fc(features), model(x))


def test_generator_controls_initialisation_and_leaves_the_global_one_alone() -> None:
    before = torch.random.get_rng_state()
    first, again, other = small_model(seed=3), small_model(seed=3), small_model(seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert not torch.equal(first.fast_conv1.weight, other.fast_conv1.weight)


# --- skip-gradient hook ----------------------------------------------------------------------------


def test_residual_grad_scale_scales_only_the_residual_branch() -> None:
    block = Bottleneck3d(in_channels=16, planes=4, temporal_kernel=3).eval()
    assert block.downsample is None  # identity shortcut
    x = torch.randn(1, 16, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(1, 16, 4, 5, 5, generator=torch.Generator().manual_seed(1))

    def input_grad(scale: float) -> torch.Tensor:
        block.residual_grad_scale = scale
        xi = x.clone().requires_grad_(True)
        (block(xi) * weights).sum().backward()
        return xi.grad

    full, skip_only, half = input_grad(1.0), input_grad(0.0), input_grad(0.5)
    # d out / d x = shortcut part + gamma * residual part (the ReLU mask does not depend on gamma).
    torch.testing.assert_close(half, skip_only + 0.5 * (full - skip_only), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(full, skip_only)


def test_zero_residual_grad_scale_cuts_gradient_to_every_block() -> None:
    model = small_model().eval()
    x = clips(n=1, t=8, size=32)
    reference_logits = model(x).detach()
    for block in residual_blocks(model):
        block.residual_grad_scale = 0.0
    logits = model(x)
    torch.testing.assert_close(logits.detach(), reference_logits)  # forward unchanged
    logits.sum().backward()
    for block in residual_blocks(model):
        for conv in (block.conv1, block.conv2, block.conv3):
            assert conv.weight.grad is not None and conv.weight.grad.abs().max() == 0
    assert model.slow_conv1.weight.grad.abs().sum() > 0  # the skip path still carries gradient


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ((3, 32, 32, 32), "rank-5.*got rank 4"),
        ((1, 1, 32, 32, 32), "3 channels.*got 1"),
        ((1, 3, 2, 32, 32), "alpha=4.*T=2"),
        ((1, 3, 30, 32, 32), "multiple of alpha.*T=30"),
        ((1, 3, 0, 32, 32), "T=0"),
    ],
)
def test_bad_input_shapes_raise_value_error(shape: tuple[int, ...], pattern: str) -> None:
    model = small_model()
    with pytest.raises(ValueError, match=pattern):
        model(torch.zeros(shape))


def test_bad_input_types_raise_type_error() -> None:
    model = small_model()
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 8, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"layers": (1, 1, 1)}, "4 stages"),
        ({"layers": (1, 0, 1, 1)}, r"layers\[1\]"),
        ({"base_channels": 12, "beta": 8}, "divisible by beta"),
        ({"fusion_kernel_size": 4}, "odd"),
        ({"alpha": 0}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(overrides: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        small_model(**overrides)
