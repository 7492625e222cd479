"""I3D non-local family: gluoncv layout and outputs, non-local math, small variants, SGM hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.gluoncv_ref import load_reference, recipe_input, recipe_state_dict
from vidadv.models import build_network
from vidadv.models.checkpoint import load_network_state
from vidadv.models.common import residual_blocks
from vidadv.models.i3d import (
    I3DBottleneck,
    I3DNonLocal,
    NonLocalBlock,
    alternate_blocks_ending_last,
    default_inflation,
)

I3D_MODELS = ["i3d_nl5_resnet50_v1_kinetics400", "i3d_nl5_resnet101_v1_kinetics400"]


def tiny(**kwargs) -> I3DNonLocal:
    config = {"layers": (1, 1, 1, 1), "base_channels": 4, "num_classes": 5, "nonlocal_stages": (1, 2)}
    config.update(kwargs)
    return I3DNonLocal(**config)


# ----------------------------------------------------------------------------- gluoncv reference


@pytest.mark.parametrize("name", I3D_MODELS)
def test_state_dict_keys_shapes_and_order_match_gluoncv(name: str) -> None:
    reference = load_reference(name)
    with torch.device("meta"):
        network = build_network(name)
    ours = [
        [key, list(t.shape), str(t.dtype).removeprefix("torch.")] for key, t in network.state_dict().items()
    ]
    assert ours == reference["state_dict"]


@pytest.mark.parametrize("alias, name", [("nl50", I3D_MODELS[0]), ("nl101", I3D_MODELS[1])])
def test_aliases_build_the_same_layout(alias: str, name: str) -> None:
    with torch.device("meta"):
        a, b = build_network(alias), build_network(name)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", I3D_MODELS)
def test_logits_match_gluoncv(name: str) -> None:
    reference = load_reference(name)
    torch.set_num_threads(2)
    network = build_network(name).eval()
    load_network_state(network, recipe_state_dict(reference))
    with torch.no_grad():
        logits = network(recipe_input())
    expected = torch.tensor(reference["logits"], dtype=torch.float32)
    assert logits.shape == (1, 400)
    tolerance = 1e-3 * reference["logits_abs_max"]
    assert (logits[0] - expected).abs().max().item() <= tolerance


def test_ucf101_class_count() -> None:
    with torch.device("meta"):
        network = build_network("nl50", num_classes=101)
    assert network.fc.weight.shape == (101, 2048)
    assert network.head[1] is network.fc


def test_nl5_placement_and_inflation_counts() -> None:
    with torch.device("meta"):
        r50, r101 = build_network("nl50"), build_network("nl101")
    for network in (r50, r101):
        assert sum(isinstance(m, NonLocalBlock) for m in network.modules()) == 5
    r101_nl = [i for i, b in enumerate(r101.res_layers[2]) if b.nonlocal_block is not None]
    assert r101_nl == [6, 13, 20]
    inflated = [[b.conv1.kernel_size[0] == 3 for b in stage] for stage in r50.res_layers]
    assert inflated == [[True] * 3, [True, False] * 2, [True, False] * 3, [False, True, False]]


# --------------------------------------------------------------------------------- non-local block


def test_nonlocal_block_is_softmax_attention_plus_residual() -> None:
    torch.manual_seed(0)
    block = NonLocalBlock(in_channels=6).eval()
    with torch.no_grad():
        for module in (block.bn,):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.1, 0.1)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 3, 4, 5)
    n, c, t, h, w = x.shape

    def tokens(conv: torch.nn.Conv3d) -> torch.Tensor:  # (N, 1, L, d)
        return conv(x).reshape(n, -1, t * h * w).transpose(1, 2).unsqueeze(1)

    # Independent reference: torch's scaled dot-product attention (scale 1/sqrt(d) by default).
    y = F.scaled_dot_product_attention(tokens(block.theta), tokens(block.phi), tokens(block.g))
    y = y.squeeze(1).transpose(1, 2).reshape(n, 3, t, h, w)
    expected = x + block.bn(block.W(y))
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_nonlocal_subsample_pools_keys_and_values() -> None:
    torch.manual_seed(1)
    block = NonLocalBlock(in_channels=4, subsample=True).eval()
    torch.nn.init.ones_(block.bn.weight)
    x = torch.randn(1, 4, 2, 4, 6)

    def tokens(z: torch.Tensor) -> torch.Tensor:
        return z.flatten(2).transpose(1, 2).unsqueeze(1)

    pooled_phi = F.max_pool3d(block.phi(x), (1, 2, 2))
    pooled_g = F.max_pool3d(block.g(x), (1, 2, 2))
    y = F.scaled_dot_product_attention(tokens(block.theta(x)), tokens(pooled_phi), tokens(pooled_g))
    expected = x + block.bn(block.W(y.squeeze(1).transpose(1, 2).reshape(1, 2, 2, 4, 6)))
    assert torch.allclose(block(x), expected, atol=1e-5)
    assert block(torch.randn(1, 4, 2, 1, 1)).shape == (1, 4, 2, 1, 1)


def test_fresh_nonlocal_block_is_identity() -> None:
    block = NonLocalBlock(in_channels=8).eval()
    x = torch.randn(1, 8, 2, 3, 3)
    assert torch.equal(block(x), x)


def test_nonlocal_modules_registered_twice_like_gluoncv() -> None:
    block = NonLocalBlock(in_channels=8)
    assert block.W_bn[0] is block.W and block.W_bn[1] is block.bn


# ------------------------------------------------------------------------------ small variants


@pytest.mark.parametrize("size", [32, 56, 112])
def test_small_models_run_at_small_sizes(size: int) -> None:
    network = tiny(layers=(2, 2, 2, 2), base_channels=4, num_classes=12).eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 32, size, size))
    assert out.shape == (2, 12)
    assert torch.isfinite(out).all()


def test_small_model_nonlocal_options() -> None:
    one = tiny(nonlocal_blocks={2: (0,)})
    two = tiny(nonlocal_stages=(1, 2))
    none = tiny(nonlocal_stages=())
    count = [sum(isinstance(m, NonLocalBlock) for m in n.modules()) for n in (one, two, none)]
    assert count == [1, 2, 0]
    assert tiny(nonlocal_subsample=True).eval()(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)


def test_placement_rules() -> None:
    assert alternate_blocks_ending_last(4) == (1, 3)
    assert alternate_blocks_ending_last(6) == (1, 3, 5)
    assert alternate_blocks_ending_last(1) == (0,)
    assert default_inflation((3, 4, 6, 3)) == (
        (True,) * 3,
        (True, False, True, False),
        (True, False) * 3,
        (False, True, False),
    )


def test_gradient_flows_to_input_in_train_mode() -> None:
    network = tiny().train()
    x = torch.randn(2, 3, 8, 32, 32, requires_grad=True)
    network(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(
    conv1_stride_t=st.integers(1, 2),
    pool1_stride_t=st.integers(1, 2),
    pool2_stride_t=st.integers(1, 3),
    frames=st.integers(1, 12),
)
def test_min_frames_is_exact(
    conv1_stride_t: int, pool1_stride_t: int, pool2_stride_t: int, frames: int
) -> None:
    network = tiny(
        base_channels=2,
        nonlocal_stages=(),
        conv1_stride_t=conv1_stride_t,
        pool1_stride_t=pool1_stride_t,
        pool2_stride_t=pool2_stride_t,
    ).eval()
    x = torch.randn(1, 3, frames, 8, 8)
    with torch.no_grad():
        if frames >= network.min_frames:
            assert network(x).shape == (1, 5)
        else:
            with pytest.raises(RuntimeError):
                network(x)


def test_gluoncv_min_frames() -> None:
    # conv1 stride 2 and pool1 stride 2 leave ceil(T/4) steps; pool2 (kernel 2) needs 2 of them.
    assert tiny().min_frames == 5


# ------------------------------------------------------------------------------------ SGM hooks


def test_residual_blocks_are_marked() -> None:
    network = tiny(layers=(2, 1, 1, 1), nonlocal_stages=(1,))
    blocks = residual_blocks(network)
    assert sum(isinstance(b, I3DBottleneck) for b in blocks) == 5
    assert sum(isinstance(b, NonLocalBlock) for b in blocks) == 1


def _bottleneck() -> torch.nn.Module:
    return I3DBottleneck(8, 2, spatial_stride=2)


def _nonlocal() -> torch.nn.Module:
    block = NonLocalBlock(8)
    torch.nn.init.ones_(block.bn.weight)
    return block


@pytest.mark.parametrize("make_block", [_bottleneck, _nonlocal])
def test_residual_grad_scale_scales_only_the_branch(make_block) -> None:
    # The input gradient of a block is (skip part) + scale * (branch part): linear in the scale.
    torch.manual_seed(0)
    block = make_block().eval()
    x = torch.randn(1, 8, 3, 6, 6)
    weights = torch.randn_like(block(x))

    def input_grad(scale: float) -> torch.Tensor:
        block.residual_grad_scale = scale
        xi = x.clone().requires_grad_(True)
        (block(xi) * weights).sum().backward()
        return xi.grad

    g0, g_half, g1, g2 = input_grad(0.0), input_grad(0.5), input_grad(1.0), input_grad(2.0)
    assert torch.allclose(g_half, (g0 + g1) / 2, atol=1e-5)
    assert torch.allclose(g2, 2 * g1 - g0, atol=1e-4)
    assert not torch.allclose(g0, g1)
    # The forward pass does not depend on the scale.
    with torch.no_grad():
        block.residual_grad_scale = 0.3
        out_scaled = block(x)
        block.residual_grad_scale = 1.0
        assert torch.equal(out_scaled, block(x))


# --------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": ()}, "layers"),
        ({"layers": (1, 0, 1, 1)}, "layers\\[1\\]"),
        ({"base_channels": 0}, "base_channels"),
        ({"num_classes": 0}, "num_classes"),
        ({"inflate": ((1,), (1,), (1,))}, "inflate"),
        ({"nonlocal_stages": (4,)}, "nonlocal_stages"),
        ({"nonlocal_blocks": {1: (1,)}}, "outside"),
        ({"spatial_strides": (1, 2)}, "spatial_strides"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


# ----------------------------------------------------------------------------- initialization


@pytest.mark.parametrize("seed", [0, 101])
def test_generator_init_equals_a_seeded_global_construction(seed: int) -> None:
    """With a generator, I3D draws PyTorch's default initialization (and the N(0, 0.01) classifier) from
    it, in construction order: the same tensors as building it after torch.manual_seed(seed) (the
    convention the zoo's nl-s/nl-l weights were trained from), and the global generator is left alone."""
    config = {"nonlocal_stages": (1, 2), "nonlocal_subsample": True}
    before = torch.random.get_rng_state()
    drawn = tiny(generator=torch.Generator().manual_seed(seed), **config).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = tiny(**config).state_dict()
    assert list(drawn) == list(reference)
    for key, value in reference.items():
        assert torch.equal(drawn[key], value), key
