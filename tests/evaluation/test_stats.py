"""Statistics checked against independent math: hand-computed binomial tails and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidadv.utils.stats import (
    binomial_two_sided_p,
    bootstrap_mean_ci,
    mcnemar,
    mcnemar_counts,
    paired_bootstrap_diff,
)


def _pairs(only_a: int, only_b: int, both: int = 3, neither: int = 4) -> tuple[list[int], list[int]]:
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return a, b


def _hand_p(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)


@pytest.mark.parametrize(
    "only_a, only_b", [(10, 2), (0, 0), (5, 5), (1, 0), (7, 3), (25, 12), (0, 9), (3, 40)]
)
def test_mcnemar_matches_exact_binomial_by_hand(only_a: int, only_b: int) -> None:
    a, b = _pairs(only_a, only_b)
    assert mcnemar_counts(a, b) == (only_a, only_b)
    assert mcnemar(a, b) == pytest.approx(_hand_p(only_a, only_b), rel=1e-12)


def test_mcnemar_known_value() -> None:
    # 10 vs 2 discordant pairs: p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158 / 4096
    a, b = _pairs(10, 2)
    assert mcnemar(a, b) == pytest.approx(158 / 4096, rel=1e-12)
    assert mcnemar(b, a) == pytest.approx(158 / 4096, rel=1e-12)


def test_mcnemar_large_counts_do_not_overflow() -> None:
    p = binomial_two_sided_p(1400, 3000)
    assert 0.0 < p < 1e-3
    assert binomial_two_sided_p(1500, 3000) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 20), st.integers(0, 20))
def test_mcnemar_ignores_concordant_pairs(only_a: int, only_b: int, both: int, neither: int) -> None:
    if only_a + only_b + both + neither == 0:
        neither = 1
    a, b = _pairs(only_a, only_b, both, neither)
    assert mcnemar(a, b) == pytest.approx(_hand_p(only_a, only_b), rel=1e-12)


def test_bootstrap_interval_covers_true_mean_in_simulation() -> None:
    rng = np.random.default_rng(123)
    true_rate, n_clips, trials = 0.3, 80, 200
    covered = 0
    for trial in range(trials):
        values = (rng.random(n_clips) < true_rate).astype(float)
        interval = bootstrap_mean_ci(values, n_boot=1000, seed=trial)
        assert interval.estimate == pytest.approx(values.mean())
        covered += interval.lo <= true_rate <= interval.hi
    assert 0.88 <= covered / trials <= 0.99


def test_paired_interval_is_narrower_than_unpaired_when_outcomes_correlate() -> None:
    rng = np.random.default_rng(7)
    n_clips = 300
    a = (rng.random(n_clips) < 0.5).astype(float)
    flip = rng.random(n_clips) < 0.1
    b = np.where(flip, 1 - a, a)
    paired = paired_bootstrap_diff(a, b, n_boot=4000, seed=1)
    assert paired.estimate == pytest.approx(a.mean() - b.mean())
    # unpaired: resample the two attacks' clips independently
    boot = np.random.default_rng(2)
    diffs = [
        a[boot.integers(0, n_clips, n_clips)].mean() - b[boot.integers(0, n_clips, n_clips)].mean()
        for _ in range(4000)
    ]
    unpaired_lo, unpaired_hi = np.quantile(diffs, [0.025, 0.975])
    assert (paired.hi - paired.lo) < 0.6 * (unpaired_hi - unpaired_lo)


def test_paired_diff_of_identical_outcomes_is_exactly_zero() -> None:
    values = [0, 1, 1, 0, 1]
    assert tuple(paired_bootstrap_diff(values, values, n_boot=200)) == (0.0, 0.0, 0.0)


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    values = np.linspace(0, 1, 37)
    assert bootstrap_mean_ci(values, n_boot=500, seed=3) == bootstrap_mean_ci(values, n_boot=500, seed=3)
    assert bootstrap_mean_ci(values, n_boot=500, seed=3) != bootstrap_mean_ci(values, n_boot=500, seed=4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40), st.integers(0, 2**31))
def test_bootstrap_interval_is_ordered_and_within_the_data(values: list[float], seed: int) -> None:
    interval = bootstrap_mean_ci(values, n_boot=200, seed=seed)
    assert min(values) - 1e-12 <= interval.lo <= interval.hi <= max(values) + 1e-12


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bootstrap_mean_ci([]), "empty"),
        (lambda: bootstrap_mean_ci([0.1, float("nan")]), "NaN"),
        (lambda: bootstrap_mean_ci([[0.1, 0.2]]), "one-dimensional"),
        (lambda: bootstrap_mean_ci([0.1], n_boot=0), "n_boot"),
        (lambda: bootstrap_mean_ci([0.1], confidence=1.5), "confidence"),
        (lambda: paired_bootstrap_diff([0, 1], [1]), "equal lengths"),
        (lambda: mcnemar([0, 2], [1, 1]), "0/1"),
        (lambda: mcnemar([0, 1, 1], [1, 1]), "equal lengths"),
        (lambda: binomial_two_sided_p(5, 3), "successes"),
    ],
)
def test_bad_input_is_a_clear_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
