"""Properties every attack and composition must keep: budget, range, determinism, batch
independence, chunking, spec order, and leaving the model as it was."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.attacks.tiny_models import LinearResidual, TinyConv, clips
from vidadv.attacks import available_attacks, build_attack

# Small sample counts keep every composition cheap; defaults are tested elsewhere.
CHEAP = {"vt_samples": 2, "vr_samples": 2, "sim_copies": 2}
OWNER = {"vt_samples": "vt", "vr_samples": "vr", "sim_copies": "sim"}
COMPOSITIONS = [
    "tt+mi",
    "ti+tt",
    "ata+tt",
    "tt+di+mi",
    "vt+mi",
    "sim+tt",
    "pgd+ni+ti",
    "vr+di+mi",
    "sgm+tt+mi",
    "vt+vr+sim+di+tt+ti+ni+ata",
]
SINGLES = [name for name in available_attacks() if name != "sgm"]
RANDOM_SPECS = ["pgd", "di", "vt", "vr", "tt"]


def _options(spec: str, **extra) -> dict:
    names = set(spec.split("+"))
    opts = {k: v for k, v in CHEAP.items() if OWNER[k] in names}
    if "tt" in names:
        opts.setdefault("shift_length", 1)
    if "di" in names:
        opts.setdefault("resize_rate", 1.5)  # the default 250/224 is the identity on 6-pixel frames
    if "fgsm" not in names:
        opts.setdefault("steps", 2)
    opts.update(extra)
    return opts


class ResidualConv(nn.Module):
    """TinyConv followed by a vidadv residual block, so SGM compositions apply."""

    attention_layer = "conv.features"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = TinyConv(channels=channels, classes=5)
        self.res = LinearResidual((5, 1, 1, 1), classes=5).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.conv(x).view(-1, 5, 1, 1, 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.sampled_from(SINGLES + COMPOSITIONS + ["sgm", "sgm+bim"]),
    n=st.integers(1, 2),
    c=st.sampled_from([1, 3]),
    t=st.integers(3, 7),
    hw=st.tuples(st.integers(3, 7), st.integers(3, 7)),
    eps=st.floats(1 / 255, 32 / 255),
    norm=st.sampled_from(["linf", "l2"]),
    data=st.data(),
)
def test_budget_and_range_hold_for_every_spec(spec, n, c, t, hw, eps, norm, data) -> None:
    model = ResidualConv(c)
    x = torch.rand(n, c, t, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    x[0, 0, 0, 0, 0] = 1.0  # exercise the [0, 1] clamp
    y = torch.arange(n) % 5
    opts = _options(spec, eps=eps, norm=norm)
    if "tt" in spec:
        opts["shift_length"] = data.draw(st.integers(0, (t - 1) // 2))
    x_adv = build_attack(spec, model, **opts)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if norm == "linf":
        assert float((x_adv - x).abs().max()) <= eps + 1e-6
    else:
        assert float((x_adv - x).flatten(1).norm(dim=1).max()) <= eps + 1e-6
    assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("spec", RANDOM_SPECS + ["tt+di+mi", "vt+mi"])
def test_same_seed_same_output_different_seed_different(spec: str) -> None:
    model = TinyConv()
    x, y = clips(2, t=8), torch.tensor([0, 1])
    extra = {"strategy": "random", "shift_length": 2} if spec == "tt" else {}
    if spec == "di":
        extra = {"diversity_prob": 1.0, "resize_rate": 1.5}
    a = build_attack(spec, model, seed=1, **_options(spec, **extra))(x, y)
    b = build_attack(spec, model, seed=1, **_options(spec, **extra))(x, y)
    c = build_attack(spec, model, seed=2, **_options(spec, **extra))(x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seed_is_irrelevant_for_deterministic_attacks() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([0, 1])
    spec = "tt+mi+ti+sim"
    assert torch.equal(
        build_attack(spec, model, seed=1, **_options(spec))(x, y),
        build_attack(spec, model, seed=9, **_options(spec))(x, y),
    )


BATCH_SPECS = [
    "bim",
    "pgd",
    "mi",
    "ni",
    "di",
    "ti",
    "sim",
    "vt",
    "vr",
    "ata",
    "tt",
    "tt+mi",
    "tt+di+mi",
    "ata+tt",
    "vt+mi",
    "sim+tt",
]


@pytest.mark.parametrize("spec", BATCH_SPECS + ["tt-random", "tt-remote"])
def test_batch_equals_each_clip_alone(spec: str) -> None:
    model = TinyConv()
    x, y = clips(3, t=8, seed=4), torch.tensor([0, 3, 1])
    extra = {}
    if spec.startswith("tt-"):
        spec, extra = "tt", {"strategy": spec[3:], "shift_length": 2}
    if "di" in spec.split("+"):
        extra["diversity_prob"] = 0.7
    attack = build_attack(spec, model, seed=5, **_options(spec, **extra))
    batch = attack(x, y)
    for i in range(3):
        alone = attack(x[i : i + 1], y[i : i + 1])
        assert torch.allclose(batch[i : i + 1], alone, atol=1e-12), f"clip {i}"


@pytest.mark.parametrize("spec", ["tt", "tt+di+mi", "vt+sim", "ata+tt"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunking_gives_the_same_result(spec: str, chunk: int) -> None:
    model = TinyConv()
    x, y = clips(2, t=8), torch.tensor([2, 4])
    full = build_attack(spec, model, seed=0, **_options(spec))(x, y)
    chunked = build_attack(spec, model, seed=0, chunk_size=chunk, **_options(spec))(x, y)
    assert torch.allclose(full, chunked, atol=1e-12)


@pytest.mark.parametrize(
    ("a", "b"), [("tt+mi", "mi+tt"), ("ti+tt+di", "di+tt+ti"), ("ata+vt+sim", "sim+ata+vt")]
)
def test_spec_order_does_not_matter(a: str, b: str) -> None:
    model = TinyConv()
    x, y = clips(2, t=8), torch.tensor([2, 4])
    attack_a = build_attack(a, model, seed=3, **_options(a))
    attack_b = build_attack(b, model, seed=3, **_options(b))
    assert attack_a.spec == attack_b.spec
    assert torch.equal(attack_a(x, y), attack_b(x, y))


def test_ni_with_mi_is_ni() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([2, 4])
    assert torch.equal(build_attack("ni", model, steps=3)(x, y), build_attack("mi+ni", model, steps=3)(x, y))


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = TinyConv()
        self.norm = nn.BatchNorm1d(5).double()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(self.body(x)))


@pytest.mark.parametrize("spec", ["tt+mi", "ata+di", "sgm+tt"])
def test_model_runs_in_eval_mode_and_is_left_untouched(spec: str) -> None:
    model = ResidualConv(3) if spec.startswith("sgm") else WithBatchNorm()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = clips(2, t=6), torch.tensor([1, 2])
    opts = _options(spec)
    if spec == "ata+di":
        opts["ata_layer"] = "body.features"
    out = build_attack(spec, model, **opts)(x, y)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks
    model.eval()
    assert torch.equal(out, build_attack(spec, model, **opts)(x, y))


def test_gradient_evaluations_per_step() -> None:
    model = TinyConv()
    assert build_attack("bim", model).gradient_evaluations_per_step == 1
    assert build_attack("tt", model).gradient_evaluations_per_step == 15
    assert build_attack("tt+mi", model, shift_length=3).gradient_evaluations_per_step == 7
    assert build_attack("vt+mi", model).gradient_evaluations_per_step == 21
    assert build_attack("sim+tt+di", model).gradient_evaluations_per_step == 75
    assert build_attack("vr", model, vr_samples=8).gradient_evaluations_per_step == 8
