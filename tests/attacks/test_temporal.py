"""Temporal Translation: weights, shift strategies and the gradient estimator."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.attacks.tiny_models import CyclicShiftInvariant, Recorder, SineVideo, TinyConv, autograd_ce, clips
from vidadv.attacks import build_attack, roll_frames, shift_offsets, temporal_weights

# ---------------------------------------------------------------------------------------------
# temporal_weights
# ---------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(L=st.integers(0, 12), kind=st.sampled_from(["uniform", "linear", "gaussian"]))
def test_weights_are_symmetric_normalized_and_peak_at_zero(L: int, kind: str) -> None:
    w = temporal_weights(L, kind)
    assert w.shape == (2 * L + 1,)
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(w, w.flip(0))
    assert (w > 0).all()
    assert w[L] == w.max()
    # non-increasing away from the centre
    assert (w[L:][1:] <= w[L:][:-1] + 1e-15).all()


@pytest.mark.parametrize("L", [1, 3, 7])
def test_weight_formulas(L: int) -> None:
    n = 2 * L + 1
    assert torch.allclose(temporal_weights(L, "uniform"), torch.full((n,), 1.0 / n, dtype=torch.float64))
    linear = torch.tensor([1 - abs(i) / (L + 1) for i in range(-L, L + 1)], dtype=torch.float64)
    assert torch.allclose(temporal_weights(L, "linear"), linear / linear.sum())
    sigma = L / 3
    # official form keeps the 1/(sigma sqrt(2 pi)) factor; it cancels in the normalization
    pdf = [math.exp(-(i**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi)) for i in range(-L, L + 1)]
    gaussian = torch.tensor(pdf, dtype=torch.float64)
    assert torch.allclose(temporal_weights(L, "gaussian"), gaussian / gaussian.sum())


def test_zero_shift_length_gives_single_unit_weight() -> None:
    for kind in ("uniform", "linear", "gaussian"):
        assert temporal_weights(0, kind).tolist() == [1.0]


def test_explicit_weights_are_normalized_and_checked() -> None:
    assert temporal_weights(1, [1, 2, 1]).tolist() == [0.25, 0.5, 0.25]
    with pytest.raises(ValueError, match="2L\\+1 = 3"):
        temporal_weights(1, [1, 1])
    with pytest.raises(ValueError, match="valid: uniform, linear, gaussian"):
        temporal_weights(2, "triangle")


# ---------------------------------------------------------------------------------------------
# shift strategies
# ---------------------------------------------------------------------------------------------


def test_adjacent_and_remote_shift_formulas() -> None:
    assert shift_offsets(3, 8, "adjacent") == [-3, -2, -1, 0, 1, 2, 3]
    # remote: sign(i) * ((|i| + T/2 - 1) mod T), T = 8 -> |i| + 3
    assert shift_offsets(3, 8, "remote") == [-6, -5, -4, 0, 4, 5, 6]
    # T = 32, L = 7 (the paper's setting): |i| + 15
    assert shift_offsets(7, 32, "remote") == [
        -22,
        -21,
        -20,
        -19,
        -18,
        -17,
        -16,
        0,
        16,
        17,
        18,
        19,
        20,
        21,
        22,
    ]
    # odd T uses T // 2 like the official int(frames / 2)
    assert shift_offsets(2, 7, "remote") == [-4, -3, 0, 3, 4]


@settings(max_examples=25, deadline=None)
@given(T=st.integers(3, 40), data=st.data())
def test_random_shifts_have_sign_of_index_and_range(T: int, data: st.DataObject) -> None:
    L = data.draw(st.integers(0, (T - 1) // 2))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    shifts = shift_offsets(L, T, "random", g)
    assert len(shifts) == 2 * L + 1 and shifts[L] == 0
    for i, s in zip(range(-L, L + 1), shifts, strict=True):
        assert 0 <= abs(s) < T
        if i and s:
            assert (s > 0) == (i > 0)


def test_clip_length_must_exceed_twice_shift_length() -> None:
    with pytest.raises(ValueError, match="T=6") as info:
        shift_offsets(3, 6)
    assert "L=3" in str(info.value)
    shift_offsets(3, 7)


def test_roll_frames_per_clip_matches_torch_roll() -> None:
    x = torch.randn(3, 2, 5, 2, 2)
    shifts = torch.tensor([0, 2, -3])
    out = roll_frames(x, shifts)
    for b in range(3):
        assert torch.equal(out[b], torch.roll(x[b], int(shifts[b]), dims=1))


# ---------------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------------


def _explicit_tt(
    model: TinyConv, x: torch.Tensor, y: torch.Tensor, shifts: list[int], weights
) -> torch.Tensor:
    total = torch.zeros_like(x)
    for w, s in zip(weights, shifts, strict=True):
        g = autograd_ce(model, torch.roll(x, s, dims=2), y)
        total += float(w) * torch.roll(g, -s, dims=2)
    return total


@pytest.mark.parametrize("kind", ["gaussian", "linear", "uniform"])
@pytest.mark.parametrize("strategy", ["adjacent", "remote"])
def test_tt_estimator_is_weighted_sum_of_rolled_gradients(kind: str, strategy: str) -> None:
    model = TinyConv()
    x, y = clips(2, t=9), torch.tensor([1, 4])
    L, T = 3, 9
    attack = build_attack("tt", model, shift_length=L, weights=kind, strategy=strategy)
    if strategy == "adjacent":
        shifts = list(range(-L, L + 1))
    else:
        shifts = [0 if i == 0 else int(math.copysign((abs(i) + T // 2 - 1) % T, i)) for i in range(-L, L + 1)]
    n = 2 * L + 1
    raw = {
        "uniform": [1.0] * n,
        "linear": [1 - abs(i) / (L + 1) for i in range(-L, L + 1)],
        "gaussian": [math.exp(-(i**2) / (2 * (L / 3) ** 2)) for i in range(-L, L + 1)],
    }[kind]
    weights = [r / sum(raw) for r in raw]
    expected = _explicit_tt(model, x, y, shifts, weights)
    assert torch.allclose(attack.estimate_gradient(x, y), expected, atol=1e-12, rtol=1e-9)


def test_tt_random_strategy_rolls_back_by_the_shift_it_used() -> None:
    model = Recorder(TinyConv())
    x, y = clips(1, t=8), torch.tensor([2])
    L = 2
    attack = build_attack("tt", model, shift_length=L, strategy="random", seed=3)
    estimate = attack.estimate_gradient(x, y)
    (batch,) = model.calls
    assert batch.shape[0] == 2 * L + 1
    shifts = []
    for copy in batch:
        matches = [s for s in range(-7, 8) if torch.equal(copy, torch.roll(x[0], s, dims=1))]
        assert matches, "every copy must be a cyclic temporal shift of the clip"
        shifts.append(matches[0])
    weights = temporal_weights(L, "gaussian").tolist()
    expected = _explicit_tt(model.model, x, y, shifts, weights)
    assert torch.allclose(estimate, expected, atol=1e-12)


def test_tt_random_shifts_are_redrawn_every_step() -> None:
    model = Recorder(TinyConv())
    x, y = clips(1, t=16), torch.tensor([0])
    build_attack("tt", model, shift_length=3, strategy="random", steps=4, seed=0)(x, y)
    assert len(model.calls) == 4
    # the unshifted copy (index L = 3) is the current iterate; compare which rolls the others are
    patterns = []
    for batch in model.calls:
        centre = batch[3]
        patterns.append(
            tuple(next(s for s in range(16) if torch.equal(c, torch.roll(centre, s, dims=1))) for c in batch)
        )
    assert len(set(patterns)) > 1


def test_tt_with_zero_shift_length_is_bim() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([0, 3])
    bim = build_attack("bim", model, eps=8 / 255, steps=3)(x, y)
    tt0 = build_attack("tt", model, eps=8 / 255, steps=3, shift_length=0)(x, y)
    assert torch.equal(bim, tt0)


def test_tt_on_a_cyclic_shift_invariant_model_is_the_plain_gradient() -> None:
    # Each rolled gradient, rolled back, is the unrolled one, and the weights sum to 1 (docs/results.md
    # section 7: why TT(10) on timesformer-s stays close to BIM(10)).
    model = CyclicShiftInvariant()
    x, y = clips(2), torch.tensor([0, 3])
    assert torch.allclose(model(x), model(roll_frames(x, torch.tensor([3, -2]))))
    plain = build_attack("bim", model).estimate_gradient(x, y)
    shifted = build_attack("tt", model, shift_length=3).estimate_gradient(x, y)
    assert torch.allclose(shifted, plain, rtol=1e-9, atol=1e-12)
    # and on a model that is not invariant the two differ
    other = TinyConv()
    assert not torch.allclose(
        build_attack("tt", other, shift_length=3).estimate_gradient(x, y),
        build_attack("bim", other).estimate_gradient(x, y),
        rtol=1e-3,
    )


def test_tt1_is_one_step_of_size_eps() -> None:
    model = TinyConv()
    x, y = clips(1), torch.tensor([1])
    attack = build_attack("tt", model, eps=4 / 255, steps=1, shift_length=2)
    assert attack.step_size == pytest.approx(4 / 255)
    expected = (x + 4 / 255 * attack.estimate_gradient(x, y).sign()).clamp(0, 1)
    assert torch.allclose(attack(x, y), expected, atol=1e-15)


def test_tt_sends_all_copies_of_all_clips_in_one_batch_and_chunks() -> None:
    model = Recorder(TinyConv())
    x, y = clips(3, t=8), torch.tensor([0, 1, 2])
    attack = build_attack("tt", model, shift_length=2, steps=1)
    assert attack.gradient_evaluations_per_step == 5
    full = attack(x, y)
    assert [c.shape[0] for c in model.calls] == [15]
    model.calls.clear()
    chunked = build_attack("tt", model, shift_length=2, steps=1, chunk_size=4)(x, y)
    assert [c.shape[0] for c in model.calls] == [4, 4, 4, 3]
    assert torch.allclose(full, chunked, atol=1e-12)


def test_tt_mi_frame_normalization_matches_official_update() -> None:
    model = SineVideo((3, 8, 4, 4))
    x, y = clips(1, 3, 8, 4, 4), torch.tensor([1])
    eps, steps = 8 / 255, 4
    alpha = eps / steps
    attack = build_attack("tt+mi", model, eps=eps, steps=steps, shift_length=2, momentum_norm="frame")
    tt = build_attack("tt", model, eps=eps, shift_length=2)
    x_adv, m = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        g = tt.estimate_gradient(x_adv, y)
        m = m + g / g.abs().mean(dim=(1, 3, 4), keepdim=True)
        x_adv = torch.min(torch.max(x_adv + alpha * m.sign(), x - eps), x + eps).clamp(0, 1)
    result = attack(x, y)
    assert torch.allclose(result, x_adv, atol=1e-12)
    clip_level = build_attack("tt+mi", model, eps=eps, steps=steps, shift_length=2)(x, y)
    assert not torch.equal(result, clip_level)
