"""convention="official" against the released TT code's behaviour, computed from its definition.

Each test writes down what the released code computes (gradients with respect to the normalized
clip, per-copy chunk factors, SGM's ReLU name rule, ...) on a model small enough for the answer to
be explicit, and compares `build_attack(..., convention="official")` with it.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.attacks.tiny_models import LinearVideo, SineVideo, TinyConv, clips
from vidadv.attacks import build_attack, temporal_weights, ti_kernel
from vidadv.attacks.core import clip_generators
from vidadv.attacks.official import (
    RANDOM_DRAW_HIGH,
    OfficialDiverseInputs,
    official_shift_offsets,
    released_copy_factors,
    sgm_relu_modules,
)
from vidadv.attacks.transforms import DiverseInputs, StepContext
from vidadv.models import VideoClassifier
from vidadv.models.i3d import I3DNonLocal
from vidadv.models.slowfast import SlowFast
from vidadv.models.tpn import TPN

SHAPE = (3, 8, 5, 5)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESNET101 = (3, 4, 23, 3)
RESNET50 = (3, 4, 6, 3)


def _mean() -> torch.Tensor:
    # VideoClassifier keeps its statistics as float32 buffers (then .double())
    return torch.tensor(MEAN, dtype=torch.float32).double().view(1, 3, 1, 1, 1)


def _std() -> torch.Tensor:
    return torch.tensor(STD, dtype=torch.float32).double().view(1, 3, 1, 1, 1)


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return (x - _mean()) / _std()


@pytest.fixture
def network() -> LinearVideo:
    return LinearVideo(SHAPE, classes=4, seed=3)


@pytest.fixture
def wrapped(network: LinearVideo) -> VideoClassifier:
    return VideoClassifier(network, mean=MEAN, std=STD).double()


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return clips(2, *SHAPE, seed=4), torch.tensor([1, 3])


# ----------------------------------------------------------------------------------------------
# 1. SGM: the ReLU modules named like gluoncv's, gamma**0.5 per call
# ----------------------------------------------------------------------------------------------


def _gluoncv_block_relus(prefix: str, layers: tuple[int, ...], stage_names: list[str]) -> set[str]:
    """gluoncv's `<stage>.<block>.relu` names, minus those containing '0.relu' (blocks 0, 10, 20)."""
    return {
        f"{prefix}{stage}.{block}.relu"
        for stage, count in zip(stage_names, layers, strict=True)
        for block in range(count)
        if block not in (0, 10, 20)
    }


def _call_counts(model: nn.Module, names: list[str], x: torch.Tensor) -> Counter:
    counts: Counter = Counter()
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda *_, n=name: counts.update([n])) for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return counts


def _i3d(layers: tuple[int, ...]) -> I3DNonLocal:
    blocks = {1: (1, 3), 2: (6, 13, 20)} if layers[2] == 23 else {1: (1, 3), 2: (1, 3, 5)}
    return I3DNonLocal(layers=layers, base_channels=2, num_classes=3, nonlocal_blocks=blocks).eval()


@pytest.mark.parametrize("layers", [RESNET50, RESNET101])
def test_sgm_hooks_i3d_nonlocal_like_gluoncv(layers: tuple[int, ...]) -> None:
    model = VideoClassifier(_i3d(layers)).eval()
    hooked = [name for name, _ in sgm_relu_modules(model)]
    expected = _gluoncv_block_relus("network.res_layers.", layers, ["0", "1", "2", "3"])
    assert set(hooked) == expected
    # gluoncv's Bottleneck calls its one ReLU three times; the stem ReLU is `first_stage.2` (not hooked)
    assert len(hooked) == (12 if layers == RESNET50 else 27)
    counts = _call_counts(model, hooked, torch.rand(1, 3, 8, 32, 32))
    assert counts == Counter({name: 3 for name in expected})
    if layers == RESNET101:
        assert "network.res_layers.2.10.relu" not in hooked and "network.res_layers.2.11.relu" in hooked


def test_sgm_hooks_slowfast_like_gluoncv() -> None:
    network = SlowFast(
        layers=RESNET101, base_channels=8, alpha=4, beta=4, fusion_kernel_size=5, num_classes=3
    )
    model = VideoClassifier(network.eval()).eval()
    hooked = [name for name, _ in sgm_relu_modules(model)]
    stages = ["res2", "res3", "res4", "res5"]
    expected = (
        _gluoncv_block_relus("network.fast_", RESNET101, stages)
        | _gluoncv_block_relus("network.slow_", RESNET101, stages)
        | {"network.fast_relu", "network.slow_relu"}
    )
    assert set(hooked) == expected and len(hooked) == 56
    counts = _call_counts(model, hooked, torch.rand(1, 3, 8, 32, 32))
    assert sum(counts.values()) == 54 * 3 + 2


def test_sgm_hooks_tpn_backbone_and_neck_like_gluoncv() -> None:
    network = TPN(
        layers=RESNET101,
        base_channels=8,
        neck_channels=32,
        neck_groups=8,
        temporal_scales=(4, 8),
        inflate=(True, True, True, True),
        num_classes=3,
    )
    model = VideoClassifier(network.eval()).eval()
    hooked = [name for name, _ in sgm_relu_modules(model)]
    neck = {
        "network.TPN_neck.level_fusion_op.ops.1.relu",
        "network.TPN_neck.level_fusion_op2.ops.1.relu",
        "network.TPN_neck.aux_head.convs.relu",  # hooked, but not called by the classifier
    }
    expected = (
        _gluoncv_block_relus("network.layer", RESNET101, ["1", "2", "3", "4"]) | {"network.relu"} | neck
    )
    assert set(hooked) == expected and len(hooked) == 31
    # not hooked: spatial modulation `...spatial_modulation.0.0.relu`, level fusion `ops.0.relu`
    assert "network.TPN_neck.spatial_modulation.spatial_modulation.0.0.relu" not in hooked
    counts = _call_counts(model, hooked, torch.rand(1, 3, 8, 32, 32))
    assert sum(counts.values()) == 27 * 3 + 1 + 2


class _NamedRelus(nn.Module):
    """x -> [relu(relu(x)) (one module called twice), stage.0.relu(x) (never hooked)] summed with
    weights a, b: for x > 0 the gradient is a * gamma (two hooked calls) + b."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.stage = nn.Sequential(nn.Module())
        self.stage[0].relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hooked = self.relu(self.relu(x)).flatten(1).sum(1)
        skipped = self.stage[0].relu(x).flatten(1).sum(1)
        return torch.stack([2.0 * hooked + 3.0 * skipped, torch.zeros_like(hooked)], dim=1)


def test_official_sgm_scales_every_call_by_sqrt_gamma() -> None:
    model = _NamedRelus()
    x = clips(1, 1, 3, 2, 2)
    gamma = 0.3
    attack = build_attack("sgm", model, convention="official", sgm_gamma=gamma)
    grad = attack.estimate_gradient(x, torch.tensor([1]))
    # CE of label 1 with logits (s, 0): dCE/ds = softmax(s)_0
    s = model(x)[0, 0]
    p0 = torch.softmax(torch.stack([s, torch.tensor(0.0, dtype=s.dtype)]), 0)[0]
    expected = p0 * (2.0 * gamma**0.5 * gamma**0.5 + 3.0)
    assert torch.allclose(grad, expected.expand_as(grad), rtol=1e-12)


def test_official_sgm_needs_relu_modules() -> None:
    with pytest.raises(ValueError, match="relu"):
        build_attack("sgm", LinearVideo(SHAPE), convention="official")


# ----------------------------------------------------------------------------------------------
# 2. SIM on the normalized clip, 3. DI padding with the mean colour (linear network)
# ----------------------------------------------------------------------------------------------


def _network_grad(network: LinearVideo, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d CE / d (network input u): W^T (softmax(W u + b) - onehot(y))."""
    return network.ce_grad(u, y)


def test_official_sim_scales_the_normalized_clip(network, wrapped, data) -> None:
    x, y = data
    grad = build_attack("sim", wrapped, convention="official", sim_copies=4).estimate_gradient(x, y)
    # released: copies (x - mean)/std/2**i, plain mean of d loss / d copy, no 2**-i factor
    expected = sum(_network_grad(network, _normalized(x) / 2**i, y) for i in range(4)) / 4
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)
    clean = build_attack("sim", wrapped, sim_copies=4).estimate_gradient(x, y)
    assert not torch.allclose(clean * _std(), expected, rtol=1e-3)


def test_official_sim_and_di_need_the_model_normalization(network) -> None:
    for spec in ("sim", "di"):
        with pytest.raises(ValueError, match="VideoClassifier"):
            build_attack(spec, network, convention="official")


def _di_params(x: torch.Tensor, seed: int, resize_rate: float) -> list:
    """The DI draws of each clip, replayed from vidadv's per-clip generators."""
    di = DiverseInputs(1.0, resize_rate)
    H, W = x.shape[-2:]
    return [di._draw(H, W, g) for g in clip_generators(x, seed)]


def test_official_di_zero_pads_the_normalized_clip() -> None:
    x, y = clips(2, 3, 8, 12, 12, seed=5), torch.tensor([0, 2])
    net = LinearVideo((3, 8, 12, 12), classes=4, seed=6)
    model = VideoClassifier(net, mean=MEAN, std=STD).double()
    attack = build_attack("di", model, convention="official", diversity_prob=1.0, resize_rate=16 / 12)
    grad = attack.estimate_gradient(x, y)
    expected = torch.empty_like(x)
    for b, params in enumerate(_di_params(x, 0, 16 / 12)):
        assert params is not None
        rnd_h, rnd_w, top, left, H_max, W_max = params
        u = _normalized(x[b : b + 1]).requires_grad_(True)
        frames = u.reshape(1, 3 * 8, 12, 12)
        resized = F.interpolate(frames, size=(rnd_h, rnd_w), mode="nearest")
        padded = F.pad(resized, [left, W_max - rnd_w - left, top, H_max - rnd_h - top], value=0.0)
        out = F.interpolate(padded, size=(12, 12), mode="nearest").reshape(1, 3, 8, 12, 12)
        loss = F.cross_entropy(net(out), y[b : b + 1], reduction="sum")
        expected[b] = torch.autograd.grad(loss, u)[0][0]
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)


def test_official_di_pads_with_the_mean_colour() -> None:
    di = OfficialDiverseInputs(1.0, 16 / 12, torch.tensor(MEAN, dtype=torch.float64))
    clip = torch.ones(3, 2, 12, 12, dtype=torch.float64)
    out = di._apply(clip, (12, 12, 2, 3, 16, 16))  # shrunk by the final resize: padding is visible
    mean = torch.tensor(MEAN, dtype=torch.float64)
    colours = {tuple(out[:, 0, i, j].tolist()) for i in range(12) for j in range(12)}
    assert colours == {(1.0, 1.0, 1.0), tuple(mean.tolist())}


# ----------------------------------------------------------------------------------------------
# 4. TI+TT, 8. chunked cross-entropy, 7. random shifts
# ----------------------------------------------------------------------------------------------


def test_released_copy_factors_weight_vector() -> None:
    # 5 chunks of ceil(K/5) copies, cross-entropy averaged within a chunk
    assert released_copy_factors(2).tolist() == [1.0] * 5
    assert released_copy_factors(4).tolist() == [0.5] * 8 + [1.0]  # last copy x2
    assert released_copy_factors(6).tolist() == [1 / 3] * 12 + [1.0]  # last copy x3
    assert released_copy_factors(7).tolist() == [1 / 3] * 15
    assert released_copy_factors(9).tolist() == [0.25] * 16 + [1 / 3] * 3
    assert released_copy_factors(5, one_copy_per_chunk=True).tolist() == [1.0] * 11  # TPNet
    for failing in (0, 1, 3, 5):  # a chunk would be empty
        with pytest.raises(ValueError, match=f"shift_length={failing}"):
            released_copy_factors(failing)
        with pytest.raises(ValueError, match="chunk sizes"):
            build_attack("tt", LinearVideo(SHAPE), convention="official", shift_length=failing)


@pytest.mark.parametrize(
    ("shift_length", "factors"), [(4, [0.5] * 8 + [1.0]), (6, [1 / 3] * 12 + [1.0]), (2, [1.0] * 5)]
)
def test_official_tt_weights_copies_by_chunk(shift_length: int, factors: list[float]) -> None:
    network = LinearVideo((3, 16, 4, 4), classes=4, seed=3)
    model = VideoClassifier(network, mean=MEAN, std=STD).double()
    x, y = clips(2, 3, 16, 4, 4, seed=4), torch.tensor([1, 3])
    L = shift_length
    grad = build_attack("tt", model, convention="official", shift_length=L).estimate_gradient(x, y)
    w = temporal_weights(L, "gaussian")
    expected = sum(
        w[k] * factors[k] * torch.roll(_network_grad(network, _normalized(torch.roll(x, i, 2)), y), -i, 2)
        for k, i in enumerate(range(-L, L + 1))
    )
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)


def test_official_ti_tt_normalizes_each_copy(data) -> None:
    x, y = clips(2, 3, 8, 6, 6, seed=7), torch.tensor([2, 0])
    network = LinearVideo((3, 8, 6, 6), classes=4, seed=8)
    model = VideoClassifier(network, mean=MEAN, std=STD).double()
    L = 2
    attack = build_attack("ti+tt", model, convention="official", shift_length=L, kernel_size=3)
    grad = attack.estimate_gradient(x, y)
    kernel = ti_kernel(3, 3.0)
    w = temporal_weights(L, "gaussian")
    expected = torch.zeros_like(x)
    for k, i in enumerate(range(-L, L + 1)):
        g = _network_grad(network, _normalized(torch.roll(x, i, 2)), y)
        smoothed = torch.zeros_like(g)
        for c in range(3):  # TI per frame and channel, zero padding
            smoothed[:, c] = F.conv2d(
                g[:, c].reshape(-1, 1, 6, 6), kernel.view(1, 1, 3, 3), padding=1
            ).reshape(g[:, c].shape)
        # one scale per clip and width column: mean |.| over C, T, H
        smoothed = smoothed / smoothed.abs().mean(dim=(1, 2, 3), keepdim=True)
        expected += w[k] * torch.roll(smoothed, -i, 2)
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)


def test_official_random_shift_frequencies() -> None:
    T, draws = 32, 202_000
    generator = torch.Generator().manual_seed(0)
    counts = Counter()
    for _ in range(draws // 14):
        offsets = official_shift_offsets(7, T, "random", generator)
        assert offsets[7] == 0
        counts.update(abs(s) for k, s in enumerate(offsets) if k != 7)
        assert all((s >= 0) == (k > 7) or s == 0 for k, s in enumerate(offsets))
    total = sum(counts.values())
    # Python's random.randint(0, 100) % 32: 101 equally likely values
    for offset in range(T):
        p = (4 if offset <= RANDOM_DRAW_HIGH % T else 3) / (RANDOM_DRAW_HIGH + 1)
        sd = math.sqrt(p * (1 - p) / total)
        assert abs(counts[offset] / total - p) < 5 * sd, (offset, counts[offset] / total, p)
    assert counts[0] / total > 0.038 and counts[31] / total < 0.032


def test_official_random_tt_rolls_back_by_index(network) -> None:
    x, y = clips(1, 3, 8, 5, 5, seed=9), torch.tensor([1])
    model = LinearVideo((3, 8, 5, 5), classes=4, seed=3)
    L = 2
    attack = build_attack("tt", model, convention="official", shift_length=L, strategy="random", seed=5)
    grad = attack.estimate_gradient(x, y)
    shifts = official_shift_offsets(L, 8, "random", clip_generators(x, 5)[0])
    w = temporal_weights(L, "gaussian")
    expected = sum(
        w[k] * torch.roll(model.ce_grad(torch.roll(x, s, 2), y), -i, 2)
        for k, (i, s) in enumerate(zip(range(-L, L + 1), shifts, strict=True))
    )
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# 5. ATA+TT, 6. MI per-frame normalization
# ----------------------------------------------------------------------------------------------


def _cam_with_constant_weights(model: TinyConv, x: torch.Tensor, y: torch.Tensor):
    """(logits, Grad-CAM at `features`) with the channel weights detached (computed by hand)."""
    captured = []
    handle = model.features.register_forward_hook(lambda _m, _i, out: captured.append(out))
    logits = model(x)
    handle.remove()
    activation = captured[0]
    (dz,) = torch.autograd.grad(logits.gather(1, y.view(-1, 1)).sum(), activation, retain_graph=True)
    weights = dz.mean(dim=(2, 3, 4), keepdim=True).detach()
    return logits, torch.relu((weights * activation).sum(1))


def test_official_ata_tt_attention_term() -> None:
    model = TinyConv(classes=5)
    x, y = clips(1, 3, 6, 5, 5, seed=11), torch.tensor([3])
    L = 2
    attack = build_attack("ata+tt", model, convention="official", shift_length=L, steps=2)
    # second step: the clip has moved, so the attention term is nonzero
    x1 = (x + 0.03 * torch.sign(attack.estimate_gradient(x, y))).clamp(0, 1)
    grad = attack._estimate(x1, y, y, x, StepContext([], 1.0))
    with torch.enable_grad():
        _, reference = _cam_with_constant_weights(model, x.clone().requires_grad_(True), y)
    reference = reference.detach()
    w = temporal_weights(L, "gaussian")
    expected = torch.zeros_like(x)
    for k, i in enumerate(range(-L, L + 1)):
        copy = torch.roll(x1, i, 2).requires_grad_(True)
        logits, cam = _cam_with_constant_weights(model, copy, y)
        objective = F.cross_entropy(logits, y) + 1e-2 * (cam - reference).flatten(1).norm(dim=1).sum()
        (g,) = torch.autograd.grad(objective, copy)
        expected += w[k] * torch.roll(g, -i, 2)  # L = 2: five chunks of one copy
    assert torch.allclose(grad, expected, rtol=1e-9, atol=1e-13)
    assert attack.options["ata_weight"] == 1e-2


def test_official_mi_normalizes_per_frame() -> None:
    model = SineVideo(SHAPE)
    x, y = clips(2, *SHAPE, seed=12), torch.tensor([0, 1])
    official = build_attack("mi+tt", model, convention="official", shift_length=2)
    assert official.options["momentum_norm"] == "frame"
    frame = build_attack("mi+tt", model, momentum_norm="frame", shift_length=2)
    clip = build_attack("mi+tt", model, shift_length=2)
    # bare model: no normalization; L = 2: one copy per chunk, so TT itself agrees
    assert torch.equal(official(x, y), frame(x, y))
    assert not torch.equal(official(x, y), clip(x, y))
    assert build_attack("mi", model, convention="official").options["momentum_norm"] == "frame"
    with pytest.raises(ValueError, match="momentum_norm"):
        build_attack("mi", model, convention="official", momentum_norm="clip")


def test_convention_is_validated_and_default_is_unchanged(wrapped, data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="convention"):
        build_attack("bim", wrapped, convention="released")
    assert build_attack("bim", wrapped).options["convention"] == "vidadv"
    default = build_attack("tt+mi", wrapped, shift_length=2)(x, y)
    explicit = build_attack("tt+mi", wrapped, shift_length=2, convention="vidadv")(x, y)
    assert torch.equal(default, explicit)


def test_official_tt_runs_one_copy_per_pass_on_tpn() -> None:
    """The released code gives TPNet one copy per forward pass: no chunk factors, every L runs."""
    tpn = TPN(layers=(1, 1, 1, 1), base_channels=8, neck_channels=32, neck_groups=8, temporal_scales=(2, 4))
    i3d = _i3d(RESNET50)
    for L in (3, 5):
        attack = build_attack("tt", VideoClassifier(tpn.eval()), convention="official", shift_length=L)
        assert attack.transforms[0].copy_factors.tolist() == [1.0] * (2 * L + 1)
        with pytest.raises(ValueError, match=f"shift_length={L}"):
            build_attack("tt", VideoClassifier(i3d), convention="official", shift_length=L)


def test_official_attack_of_a_batch_equals_its_clips_alone() -> None:
    network = TinyConv(classes=5)
    model = VideoClassifier(network, mean=MEAN, std=STD).double()
    x, y = clips(2, 3, 8, 6, 6, seed=13), torch.tensor([1, 4])
    attack = build_attack(
        "mi+di+ti+tt", model, convention="official", shift_length=2, strategy="random", kernel_size=3, steps=2
    )
    together = attack(x, y)
    alone = torch.cat([attack(x[i : i + 1], y[i : i + 1]) for i in range(2)])
    assert torch.allclose(together, alone, atol=1e-12)
