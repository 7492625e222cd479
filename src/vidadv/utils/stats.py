"""Statistics for attack success rates: bootstrap intervals and the exact McNemar test.

The unit of resampling is the *clip*: all outcomes of one clip (several models, several white-box
models) stay together, so the intervals account for the correlation between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import torch

_MAX_DRAWS_PER_CHUNK = 4_000_000


class Interval(NamedTuple):
    """A point estimate with a two-sided bootstrap confidence interval [lo, hi]."""

    estimate: float
    lo: float
    hi: float


def _as_vector(values: Sequence[float] | np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of numbers: {err}") from err
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per clip), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one clip")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_bootstrap_args(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `values`; numpy PCG64 seeded by `seed`."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = values.size
    rows_per_chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows_per_chunk):
        rows = min(rows_per_chunk, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))
        means[start : start + rows] = values[idx].mean(axis=1)
    return means


def _percentile_interval(estimate: float, means: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(estimate), float(lo), float(hi))


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Mean of per-clip `values` with a percentile-bootstrap confidence interval (resampling clips)."""
    _check_bootstrap_args(n_boot, confidence)
    array = _as_vector(values, "values")
    return _percentile_interval(array.mean(), _bootstrap_means(array, n_boot, seed), confidence)


def paired_bootstrap_diff(
    a: Sequence[float] | np.ndarray | torch.Tensor,
    b: Sequence[float] | np.ndarray | torch.Tensor,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """mean(a) - mean(b) for paired per-clip outcomes, with a paired bootstrap interval.

    a[i] and b[i] are outcomes on the same clip i (0/1 "fooled" or fractions); each resample draws
    clips, keeping both outcomes of a clip together.
    """
    _check_bootstrap_args(n_boot, confidence)
    first = _as_vector(a, "a")
    second = _as_vector(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"paired outcomes need equal lengths, got {first.size} and {second.size}")
    diff = first - second
    return _percentile_interval(diff.mean(), _bootstrap_means(diff, n_boot, seed), confidence)


def _as_binary(values: Sequence[int] | np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = _as_vector(values, name)
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must contain only 0/1 (or False/True) outcomes")
    return array.astype(bool)


def mcnemar_counts(
    a: Sequence[int] | np.ndarray | torch.Tensor, b: Sequence[int] | np.ndarray | torch.Tensor
) -> tuple[int, int]:
    """Discordant pair counts (n10, n01): clips where only a succeeds, and where only b succeeds."""
    first = _as_binary(a, "a")
    second = _as_binary(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"paired outcomes need equal lengths, got {first.size} and {second.size}")
    return int(np.sum(first & ~second)), int(np.sum(~first & second))


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided p-value of `successes` in `trials` fair coin flips (doubled smaller tail, max 1).

    Uses exact integer arithmetic (Pascal recurrence for the binomial coefficients).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 1.0
    k = min(successes, trials - successes)
    coefficient = 1  # C(trials, 0)
    tail = 0
    for i in range(k + 1):
        tail += coefficient
        coefficient = coefficient * (trials - i) // (i + 1)
    # p = 2 * tail / 2**trials, computed exactly before the final rounding to float
    numerator = 2 * tail
    denominator = 1 << trials
    if numerator >= denominator:
        return 1.0
    return numerator / denominator


def mcnemar(
    a: Sequence[int] | np.ndarray | torch.Tensor, b: Sequence[int] | np.ndarray | torch.Tensor
) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes (binomial test on discordant pairs)."""
    only_a, only_b = mcnemar_counts(a, b)
    return binomial_two_sided_p(only_a, only_a + only_b)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a binomial proportion (Wilson 1927): ASR = successes / trials.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 % or 100 %.
    """
    if isinstance(successes, bool) or isinstance(trials, bool) or trials < 1 or not 0 <= successes <= trials:
        raise ValueError(
            f"wilson_interval needs 0 <= successes <= trials, trials >= 1; got {successes}/{trials}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0 % / 100 %
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, lo, hi)
