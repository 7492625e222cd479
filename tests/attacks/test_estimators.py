"""The cheaper TT estimators (`vidadv.attacks.estimators`) against their definitions, gradient counts
for every attack, and independence of the chunk size (automatic or fixed)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.attacks.tiny_models import Recorder, TinyConv, clips
from vidadv.attacks import build_attack
from vidadv.attacks.chunking import (
    ELEMENTS_PER_PASS,
    balanced_chunk,
    cached_chunk_size,
    candidate_chunk_sizes,
    rule_chunk_size,
)
from vidadv.attacks.estimators import (
    SagTemporalTranslation,
    SampledTemporalTranslation,
    _index_draw,
    centre_out_order,
)
from vidadv.attacks.temporal import temporal_weights
from vidadv.attacks.transforms import StepContext


def _rolled_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, L: int) -> torch.Tensor:
    """g_i = roll(grad J(roll(x, i)), -i) for i = -L..L, stacked (2L+1, N, C, T, H, W), by autograd."""
    out = []
    for i in range(-L, L + 1):
        source = torch.roll(x, i, dims=2).requires_grad_(True)
        loss = nn.functional.cross_entropy(model(source), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, source)
        out.append(torch.roll(grad, -i, dims=2))
    return torch.stack(out)


@pytest.mark.parametrize("weights", ["gaussian", "linear", [0.1, 0.4, 0.2, 0.05, 0.25]])
@pytest.mark.parametrize(
    ("scheme", "k"),
    [
        ("iid", 1),
        ("iid", 2),
        ("iid", 3),
        ("antithetic", 2),
        ("antithetic", 3),
        ("antithetic", 4),
        ("antithetic", 5),
    ],
)
def test_sampled_expectation_over_every_draw_is_tt(scheme: str, k: int, weights) -> None:
    """E over all draws (enumerated with their probabilities) of the estimate = TT's weighted sum."""
    L = 2
    model = TinyConv()
    x, y = clips(1, t=8), torch.tensor([3])
    attack = build_attack(
        "tt", model, shift_length=L, weights=weights, shift_sampling=scheme, shift_samples=k
    )
    transform = attack.transforms[0]
    assert isinstance(transform, SampledTemporalTranslation)
    g = _rolled_gradients(model, x, y, L)
    w = temporal_weights(L, weights)
    tt = torch.einsum("i,i...->...", w, g)
    expectation = torch.zeros_like(tt)
    total = 0.0
    for probability, draw in transform.outcomes():
        transform.draw = lambda _generator, draw=draw: draw  # force this outcome through the attack
        estimate = attack.estimate_gradient(x, y)
        expectation += probability * estimate
        total += probability
        indices, coefficients = draw
        assert len(indices) == k
        direct = sum(c * g[i] for i, c in zip(indices, coefficients, strict=True))
        assert torch.allclose(estimate, direct, atol=1e-12)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(expectation, tt, atol=1e-12)


def test_sampled_draw_frequencies_follow_the_outcome_probabilities() -> None:
    transform = SampledTemporalTranslation(3, "gaussian", "adjacent", 2, "antithetic")
    generator = torch.Generator().manual_seed(0)
    counts: dict[tuple, int] = {}
    n = 4000
    for _ in range(n):
        key = tuple(transform.draw(generator)[0])
        counts[key] = counts.get(key, 0) + 1
    for probability, (indices, _) in transform.outcomes():
        observed = counts.get(tuple(indices), 0) / n
        assert observed == pytest.approx(
            probability, abs=4 * (probability * (1 - probability) / n) ** 0.5 + 1e-3
        )


def test_antithetic_pairs_are_plus_and_minus_the_same_shift() -> None:
    transform = SampledTemporalTranslation(7, "gaussian", "adjacent", 5, "antithetic")
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        indices, coefficients = transform.draw(generator)
        shifts = [i - 7 for i in indices]
        assert shifts[0] == 0 and shifts[1] == -shifts[2] and shifts[3] == -shifts[4]
        assert sum(coefficients) == pytest.approx(1.0)


def test_sag_table_after_2l_plus_1_refreshes_at_a_fixed_clip_is_tt() -> None:
    L = 3
    model = TinyConv()
    x, y = clips(2, t=8), torch.tensor([1, 4])
    tt = build_attack("tt", model, shift_length=L).estimate_gradient(x, y)
    for refresh in (1, 2, 3, 7):
        attack = build_attack("tt", model, shift_length=L, shift_sampling="sag", shift_samples=refresh)
        ctx = StepContext([torch.Generator() for _ in range(2)], attack.eps)
        steps = -(-(2 * L + 1) // refresh)
        estimates = [attack._estimate(x, y, y, x, ctx) for _ in range(steps)]
        assert torch.allclose(estimates[-1], tt, atol=1e-12), refresh
        if steps > 1:
            assert not torch.allclose(estimates[0], tt, atol=1e-6)
    # the first step of sag(1) is the centre gradient alone (the weights renormalized over it)
    bim = build_attack("bim", model).estimate_gradient(x, y)
    sag1 = build_attack("tt", model, shift_length=L, shift_sampling="sag", shift_samples=1)
    assert torch.allclose(sag1.estimate_gradient(x, y), bim, atol=1e-12)


def test_sag_table_keeps_the_most_recent_gradient_of_each_shift() -> None:
    """At moving points p0, p1, p2 (refresh 2, L = 2, order 0, 1, -1, 2, -2): the estimate is the
    w-weighted mean of each shift's gradient at the point of its last refresh, over the shifts seen."""
    L = 2
    model = TinyConv()
    y = torch.tensor([2])
    points = [clips(1, t=8, seed=s) for s in range(3)]
    g = [_rolled_gradients(model, p, y, L) for p in points]  # g[t][index]
    w = temporal_weights(L, "gaussian")
    attack = build_attack("tt", model, shift_length=L, shift_sampling="sag", shift_samples=2)
    transform = attack.transforms[0]
    assert isinstance(transform, SagTemporalTranslation)
    assert centre_out_order(2) == [2, 3, 1, 4, 0]
    assert [transform.refreshed(t) for t in range(3)] == [[2, 3], [1, 4], [0, 2]]
    ctx = StepContext([torch.Generator()], attack.eps)
    estimates = [attack._estimate(p, y, y, p, ctx) for p in points]
    first = (w[2] * g[0][2] + w[3] * g[0][3]) / (w[2] + w[3])
    second = (w[2] * g[0][2] + w[3] * g[0][3] + w[1] * g[1][1] + w[4] * g[1][4]) / (w[1:].sum())
    third = w[0] * g[2][0] + w[1] * g[1][1] + w[2] * g[2][2] + w[3] * g[0][3] + w[4] * g[1][4]
    for estimate, expected in zip(estimates, (first, second, third), strict=True):
        assert torch.allclose(estimate, expected, atol=1e-12)


def test_estimators_are_batch_independent_and_deterministic() -> None:
    model = TinyConv()
    x, y = clips(3, t=8, seed=4), torch.tensor([0, 3, 1])
    for options in (
        {"shift_sampling": "iid", "shift_samples": 2},
        {"shift_sampling": "antithetic", "shift_samples": 3},
        {"shift_sampling": "sag", "shift_samples": 2},
        {"shift_sampling": "antithetic", "shift_samples": 2, "strategy": "random"},
    ):
        for spec in ("tt", "tt+mi"):
            attack = build_attack(spec, model, shift_length=2, steps=3, seed=5, **options)
            batch = attack(x, y)
            assert torch.equal(batch, attack(x, y))
            for i in range(3):
                alone = attack(x[i : i + 1], y[i : i + 1])
                assert torch.allclose(batch[i : i + 1], alone, atol=1e-12), (spec, options, i)


def test_option_errors_are_clear() -> None:
    model = TinyConv()
    with pytest.raises(ValueError, match="needs shift_samples"):
        build_attack("tt", model, shift_sampling="iid")
    with pytest.raises(ValueError, match="shift_samples needs shift_sampling"):
        build_attack("tt", model, shift_samples=3)
    with pytest.raises(ValueError, match="antithetic' needs shift_samples >= 2"):
        build_attack("tt", model, shift_sampling="antithetic", shift_samples=1)
    with pytest.raises(ValueError, match="<= 2L\\+1 = 5"):
        build_attack("tt", model, shift_length=2, shift_sampling="sag", shift_samples=6)
    with pytest.raises(ValueError, match="shift_sampling must be one of"):
        build_attack("tt", model, shift_sampling="some")
    with pytest.raises(ValueError, match="cannot be combined with di"):
        build_attack("di+tt", model, shift_sampling="sag", shift_samples=2)
    with pytest.raises(ValueError, match="belongs to tt"):
        build_attack("bim", model, shift_sampling="iid")


@pytest.mark.parametrize(
    ("spec", "options", "per_step", "per_clip"),
    [
        ("bim", {}, 1, 10),
        ("fgsm", {}, 1, 1),
        ("tt", {}, 15, 150),
        ("tt+mi", {"shift_sampling": "antithetic", "shift_samples": 3}, 3, 30),
        ("tt", {"shift_sampling": "sag", "shift_samples": 5, "steps": 30}, 5, 150),
        ("tt", {"shift_sampling": "iid", "shift_samples": 1, "steps": 50}, 1, 50),
        ("vr", {"vr_samples": 15}, 15, 150),
        ("vt+mi", {}, 21, 210),
        ("ata+tt", {}, 15, 165),
        ("ata+di", {"diversity_prob": 1.0}, 2, 20),
    ],
)
def test_gradient_evaluations_per_clip(spec: str, options: dict, per_step: int, per_clip: int) -> None:
    model = TinyConv()
    attack = build_attack(spec, model, **options)
    assert attack.gradient_evaluations_per_step == per_step
    assert attack.gradient_evaluations_per_clip == per_clip


def test_gradient_evaluations_match_the_model_passes() -> None:
    """The reported count is what the model sees: rows of all forward passes / clips."""
    for spec, options in (
        ("tt", {"shift_length": 2}),
        ("tt+mi", {"shift_length": 2, "shift_sampling": "antithetic", "shift_samples": 3}),
        ("tt", {"shift_length": 2, "shift_sampling": "sag", "shift_samples": 2}),
        ("ata+tt", {"shift_length": 1, "ata_layer": "model.features"}),
        ("vr+mi", {"vr_samples": 3}),
    ):
        model = Recorder(TinyConv())
        x, y = clips(2, t=8), torch.tensor([0, 1])
        attack = build_attack(spec, model, steps=3, chunk_size=64, **options)
        attack(x, y)
        rows = sum(c.shape[0] for c in model.calls)
        assert rows == 2 * attack.gradient_evaluations_per_clip, spec


# ------------------------------------------------------------------------------------------------
# Chunk size: random draws and results do not depend on it


class PerRow(nn.Module):
    """Runs its model on one row at a time: batch-invariant, so any chunking gives bit-identical logits."""

    attention_layer = "model.features"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += [r.detach().clone() for r in x]
        return torch.cat([self.model(r.unsqueeze(0)) for r in x])


RANDOM_DRAW_SPECS = [
    ("pgd", {}),
    ("di", {"diversity_prob": 0.7, "resize_rate": 1.5}),
    ("vt", {"vt_samples": 2}),
    ("vr", {"vr_samples": 3}),
    ("tt", {"strategy": "random"}),
    ("tt", {"shift_sampling": "iid", "shift_samples": 2}),
    ("tt", {"shift_sampling": "antithetic", "shift_samples": 3, "strategy": "random"}),
    ("tt", {"shift_sampling": "sag", "shift_samples": 2, "strategy": "random"}),
    ("di+tt", {"strategy": "random", "diversity_prob": 0.7, "resize_rate": 1.5}),
    ("vr+di+tt+mi", {"vr_samples": 2, "diversity_prob": 0.7, "resize_rate": 1.5, "strategy": "random"}),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(RANDOM_DRAW_SPECS),
    n=st.integers(1, 3),
    chunk=st.integers(1, 12),
    seed=st.integers(0, 2**31),
)
def test_random_draws_and_results_are_bit_identical_across_chunk_sizes(case, n, chunk, seed) -> None:
    """With a batch-invariant model, every spec with random draws gives bit-identical rows (so identical
    random draws) and bit-identical adversarial clips whatever the chunk size, fixed or automatic."""
    spec, options = case
    options = dict(options)
    if "tt" in spec.split("+"):
        options["shift_length"] = 2
    x = clips(n, t=8, h=6, w=6, seed=seed % 7)
    y = torch.arange(n) % 5
    runs = {}
    for chunk_size in (None, "auto", chunk, 10_000):
        model = PerRow(TinyConv())
        out = build_attack(spec, model, steps=2, seed=seed, chunk_size=chunk_size, **options)(x, y)
        runs[chunk_size] = (out, torch.stack(model.rows))
    reference_out, reference_rows = runs[10_000]
    for chunk_size, (out, rows) in runs.items():
        if chunk_size != "auto":  # the timed choice also runs other candidates on its first step
            assert torch.equal(rows, reference_rows), chunk_size
        assert torch.equal(out, reference_out), chunk_size


def test_real_convolutions_differ_across_chunk_sizes_only_at_float_rounding() -> None:
    """float32 batched kernels may round differently per batch size: the gradient estimate agrees to
    float tolerance (relative 1e-5), never more."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(8, 8, 3, padding=1),
        nn.Flatten(),
        nn.LazyLinear(5),
    )
    x = torch.rand(2, 3, 8, 12, 12)
    model(x)
    y = torch.tensor([0, 3])
    estimates = [
        build_attack(
            "di+tt", model, shift_length=2, strategy="random", diversity_prob=0.7, chunk_size=c
        ).estimate_gradient(x, y)
        for c in (1, 3, 7, 10)
    ]
    scale = float(estimates[0].abs().max())
    for other in estimates[1:]:
        assert float((other - estimates[0]).abs().max()) <= 1e-5 * scale


def test_rule_chunk_size_is_deterministic_balanced_passes_by_row_size() -> None:
    assert balanced_chunk(15, 8) == 8 and balanced_chunk(15, 6) == 5 and balanced_chunk(15, 40) == 15
    assert balanced_chunk(240, 24) == 24 and balanced_chunk(15, 2) == 2 and balanced_chunk(15, 0) == 1
    per_row = {32: 3 * 32 * 32 * 32, 56: 3 * 32 * 56 * 56, 112: 3 * 32 * 112 * 112}
    for size, expected in ((32, 15), (56, 8), (112, 3)):
        x = torch.empty(15, 3, 32, size, size)
        assert rule_chunk_size(x) == balanced_chunk(15, round(ELEMENTS_PER_PASS / per_row[size])) == expected
    assert rule_chunk_size(torch.empty(240, 3, 32, 32, 32)) == 30
    assert rule_chunk_size(torch.empty(240, 3, 32, 32, 32, device="meta")) == 240  # not a CPU: one pass
    model = Recorder(TinyConv())
    x, y = clips(2, t=16, h=40, w=40), torch.tensor([1, 2])  # 76,800 elements per row: 42 rows per pass
    attack = build_attack("tt", model, shift_length=7, steps=2)
    attack(x, y)
    assert attack.chunk_size_used == 30 and [c.shape[0] for c in model.calls] == [30, 30]
    with pytest.raises(ValueError, match="'auto'"):
        build_attack("tt", model, chunk_size="fast")
    with pytest.raises(ValueError, match="chunk_size"):
        build_attack("tt", model, chunk_size=0)


def test_automatic_chunk_size_is_timed_once_and_cached() -> None:
    assert candidate_chunk_sizes(15) == [15, 8, 5, 3]
    assert candidate_chunk_sizes(1) == [1]
    assert candidate_chunk_sizes(4) == [4, 2]
    assert candidate_chunk_sizes(30) == [30, 8, 5, 3]
    model = Recorder(TinyConv())
    x, y = clips(1, t=16), torch.tensor([1])
    attack = build_attack("tt", model, shift_length=7, steps=3, chunk_size="auto")
    attack(x, y)
    chosen = attack.chunk_size_used
    assert chosen in (15, 8, 5, 3)
    # first step: one full pass per candidate; later steps: the chosen size only
    sizes = [c.shape[0] for c in model.calls]
    first = sum(len(range(0, 15, c)) for c in (15, 8, 5, 3))
    assert len(sizes) == first + 2 * len(range(0, 15, chosen))
    assert all(s <= chosen for s in sizes[first:])
    model.calls.clear()
    again = build_attack("tt", model, shift_length=7, steps=3, chunk_size="auto")(x, y)
    assert all(c.shape[0] <= chosen for c in model.calls)
    assert len(model.calls) == 3 * len(range(0, 15, chosen))
    assert torch.equal(again, build_attack("tt", model, shift_length=7, steps=3, chunk_size=chosen)(x, y))
    assert cached_chunk_size(model, ("cpu", "torch.float64", (3, 16, 6, 6), 15, False, False, "ce")) == chosen


def test_index_draw_never_returns_a_zero_probability_index(monkeypatch) -> None:
    probabilities = torch.tensor([0.0, 0.25, 0.0, 0.75, 0.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    assert set(_index_draw(probabilities, generator) for _ in range(400)) == {1, 3}
    for u in (0.0, 0.25, 1.0 - 2**-53):  # the edges of the bins
        monkeypatch.setattr(torch, "rand", lambda *a, u=u, **k: torch.tensor(u, dtype=torch.float64))
        assert _index_draw(probabilities, generator) in (1, 3)
