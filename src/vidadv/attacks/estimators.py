"""Cheaper estimators of TT's weighted sum: fewer model gradients per step than TT's 2L+1.

TT's estimate is ``G(x) = sum_{i=-L..L} w_i roll(grad J(roll(x, s_i)), -s_i)``. Write g_i for the i-th
rolled-back gradient. Three ways to spend fewer gradients per step, chosen with the ``tt`` option
``shift_sampling`` (``shift_samples`` = gradients per step):

- ``iid``: k indices drawn independently from the weight distribution w; estimate ``(1/k) sum_j g_{i_j}``.
  Unbiased: E = sum_i w_i g_i.
- ``antithetic``: antithetic +m/-m pairs (Owen, "Monte Carlo theory, methods and examples", ch. 8).
  k odd: the centre g_0 with its weight w_0, plus (k-1)/2 pairs whose magnitude m in 1..L is drawn
  with probability q(m) = (w_m + w_-m) / (1 - w_0); a pair contributes ``(w_m g_m + w_-m g_-m) / q(m)``
  (rescaled by 1 - w_0 in total), averaged over the pairs. k even: k/2 pairs with m in 0..L drawn with
  probability p(0) = w_0, p(m) = w_m + w_-m; the pair m = 0 is the centre twice with coefficient 1/2.
  Unbiased for any weights; for symmetric weights a pair is simply the mean of g_m and g_-m.
- ``sag``: stochastic-average-gradient style reuse (Schmidt, Le Roux & Bach 2017): a table holds the most
  recent g_i of every shift; each step refreshes k shifts, in the fixed order 0, 1, -1, 2, -2, ...
  (heaviest weights first), cycling; the estimate is the w-weighted mean over the shifts filled so far
  (the weights renormalized over them). Once every shift has been refreshed at the current point, it is
  exactly TT's estimate; along an attack the entries are up to ceil((2L+1)/k) - 1 steps old. The table is
  kept per input row of the transform (after VT/VR/SIM copies); it is refused with DI, whose geometry
  changes every step.

Every draw comes from the clip's generator, per row, so a clip gets the same shifts alone or in a batch
and whatever the chunk size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch

from vidadv.attacks.temporal import check_clip_length, roll_frames, shift_offsets, temporal_weights
from vidadv.attacks.transforms import InputTransform, Rows, StepContext, TemporalTranslation

__all__ = [
    "SHIFT_SAMPLING",
    "SampledTemporalTranslation",
    "SagTemporalTranslation",
    "make_temporal_estimator",
]

#: Values of the ``tt`` option ``shift_sampling``: ``all`` is TT itself (every shift every step).
SHIFT_SAMPLING = ("all", "iid", "antithetic", "sag")

Draw = tuple[list[int], list[float]]  # indices into -L..L (as 0..2L) and their coefficients


def _index_draw(probabilities: torch.Tensor, generator: torch.Generator) -> int:
    """One index drawn with the given (non-negative, float64) probabilities from `generator`: the bin
    of u * total, u uniform in [0, 1); a zero-probability index is never returned."""
    u = float(torch.rand((), generator=generator, device=generator.device, dtype=torch.float64))
    cumulative = torch.cumsum(probabilities, 0)
    value = torch.tensor(u * float(cumulative[-1]), dtype=torch.float64)
    index = min(int(torch.searchsorted(cumulative, value, right=True)), probabilities.numel() - 1)
    while float(probabilities[index]) == 0.0:  # only when rounding put value at the very top
        index -= 1
    return index


class SampledTemporalTranslation(InputTransform):
    """TT with k randomly drawn shifts per step (``iid`` or ``antithetic``): an unbiased estimate of
    TT's weighted sum from k gradients."""

    name = "tt"

    def __init__(self, shift_length: int, weights: Any, strategy: str, samples: int, scheme: str) -> None:
        if scheme not in ("iid", "antithetic"):
            raise ValueError(f"shift_sampling must be 'iid' or 'antithetic' here, got {scheme!r}")
        if scheme == "antithetic" and samples < 2 and shift_length > 0:
            raise ValueError(
                "shift_sampling='antithetic' needs shift_samples >= 2 (one +m/-m pair); "
                f"got {samples}; use shift_sampling='iid' for one gradient per step"
            )
        self.shift_length = shift_length
        self.weights = temporal_weights(shift_length, weights)
        self.strategy = strategy
        self.scheme = scheme
        self.copies = samples
        self.random_geometry = shift_length > 0
        L = shift_length
        w = self.weights
        # pair magnitudes: odd k -> m in 1..L (centre taken separately); even k -> m in 0..L
        self._with_centre = samples % 2 == 1
        magnitudes = [w[L]] if not self._with_centre else []
        magnitudes += [w[L + m] + w[L - m] for m in range(1, L + 1)]
        self._magnitudes = None
        if magnitudes and sum(magnitudes) > 0:
            raw = torch.tensor(magnitudes, dtype=torch.float64)
            self._magnitudes = raw / raw.sum()  # q(m) (odd k) or p(m) (even k)
        self._first_magnitude = 1 if self._with_centre else 0

    def check(self, x: torch.Tensor) -> None:
        check_clip_length(x.shape[2], self.shift_length)

    # -- the draw ------------------------------------------------------------------------------

    def _pair(self, m: int) -> Draw:
        """The two (index, coefficient) terms of pair magnitude m, unscaled by the number of pairs."""
        L, w = self.shift_length, self.weights
        if m == 0:
            return [L, L], [0.5, 0.5]
        q = float(w[L + m] + w[L - m])
        return [L + m, L - m], [float(w[L + m]) / q, float(w[L - m]) / q]

    def _assemble(self, magnitudes: list[int]) -> Draw:
        L, w = self.shift_length, self.weights
        indices: list[int] = []
        coefficients: list[float] = []
        pairs = len(magnitudes)
        scale = 1.0
        if self._with_centre:
            indices.append(L)
            coefficients.append(float(w[L]))
            scale = 1.0 - float(w[L])
        for m in magnitudes:
            pair_indices, pair_coefficients = self._pair(m)
            indices += pair_indices
            coefficients += [c * scale / pairs for c in pair_coefficients]
        return indices, coefficients

    def draw(self, generator: torch.Generator) -> Draw:
        """k indices into 0..2L (shift i = index - L) and their coefficients, from `generator`."""
        k, L = self.copies, self.shift_length
        if L == 0:
            return [0] * k, [1.0 / k] * k
        if self.scheme == "iid":
            return [_index_draw(self.weights, generator) for _ in range(k)], [1.0 / k] * k
        if self._magnitudes is None:  # all weight on the centre
            return [L] * k, [1.0 / k] * k
        magnitudes = [_index_draw(self._magnitudes, generator) + self._first_magnitude for _ in range(k // 2)]
        return self._assemble(magnitudes)

    def outcomes(self) -> Iterator[tuple[float, Draw]]:
        """Every possible draw with its probability (for tests: the estimator's exact expectation)."""
        k, L = self.copies, self.shift_length
        if L == 0:
            yield 1.0, ([0] * k, [1.0 / k] * k)
            return
        if self.scheme == "iid":
            for combo in itertools.product(range(2 * L + 1), repeat=k):
                probability = 1.0
                for i in combo:
                    probability *= float(self.weights[i])
                if probability > 0:
                    yield probability, (list(combo), [1.0 / k] * k)
            return
        if self._magnitudes is None:
            yield 1.0, ([L] * k, [1.0 / k] * k)
            return
        for combo in itertools.product(range(self._magnitudes.numel()), repeat=k // 2):
            probability = 1.0
            for m in combo:
                probability *= float(self._magnitudes[m])
            if probability > 0:
                yield probability, self._assemble([m + self._first_magnitude for m in combo])

    # -- expand / reduce -----------------------------------------------------------------------

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        B, T = rows.x.shape[0], rows.x.shape[2]
        shifts = torch.empty((self.copies, B), dtype=torch.long)
        coefficients = torch.empty((self.copies, B), dtype=torch.float64)
        for b, c in enumerate(rows.clip.tolist()):
            generator = ctx.generators[c]
            offsets = shift_offsets(self.shift_length, T, self.strategy, generator)
            indices, coefs = self.draw(generator)
            shifts[:, b] = torch.tensor([offsets[i] for i in indices])
            coefficients[:, b] = torch.tensor(coefs, dtype=torch.float64)
        x = torch.cat([roll_frames(rows.x, s) for s in shifts])
        ref = None if rows.ref is None else torch.cat([roll_frames(rows.ref, s) for s in shifts])
        return Rows(x, rows.clip.repeat(self.copies), ref), (shifts, coefficients)

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        shifts, coefficients = saved
        B = grad.shape[0] // self.copies
        out = torch.zeros_like(grad[:B])
        view = (B,) + (1,) * (grad.dim() - 1)
        for k in range(self.copies):
            scale = coefficients[k].to(device=grad.device, dtype=grad.dtype).view(view)
            out.add_(roll_frames(grad[k * B : (k + 1) * B], -shifts[k]) * scale)
        return out


def centre_out_order(shift_length: int) -> list[int]:
    """Indices into -L..L (as 0..2L) in the order 0, 1, -1, 2, -2, ..., L, -L."""
    L = shift_length
    order = [L]
    for m in range(1, L + 1):
        order += [L + m, L - m]
    return order


class SagTemporalTranslation(InputTransform):
    """TT with SAG-style reuse: k shifts refreshed per step, the others taken from a table of each
    shift's most recent rolled-back gradient; estimate = w-weighted mean over the filled table."""

    name = "tt"

    def __init__(self, shift_length: int, weights: Any, strategy: str, samples: int) -> None:
        if samples > 2 * shift_length + 1:
            raise ValueError(
                f"shift_sampling='sag' refreshes shift_samples <= 2L+1 = {2 * shift_length + 1} shifts per "
                f"step, got {samples}"
            )
        self.shift_length = shift_length
        self.weights = temporal_weights(shift_length, weights)
        self.strategy = strategy
        self.copies = samples
        self.random_geometry = shift_length > 0
        self.order = centre_out_order(shift_length)

    def check(self, x: torch.Tensor) -> None:
        check_clip_length(x.shape[2], self.shift_length)

    def refreshed(self, step: int) -> list[int]:
        """Indices (0..2L) refreshed at step `step` (0-based)."""
        n = len(self.order)
        return [self.order[(step * self.copies + j) % n] for j in range(self.copies)]

    def expand(self, rows: Rows, ctx: StepContext) -> tuple[Rows, Any]:
        state = ctx.state.setdefault(id(self), {"step": 0, "table": None, "filled": set()})
        indices = self.refreshed(state["step"])
        B, T = rows.x.shape[0], rows.x.shape[2]
        shifts = torch.empty((self.copies, B), dtype=torch.long)
        for b, c in enumerate(rows.clip.tolist()):
            offsets = shift_offsets(self.shift_length, T, self.strategy, ctx.generators[c])
            shifts[:, b] = torch.tensor([offsets[i] for i in indices])
        x = torch.cat([roll_frames(rows.x, s) for s in shifts])
        ref = None if rows.ref is None else torch.cat([roll_frames(rows.ref, s) for s in shifts])
        return Rows(x, rows.clip.repeat(self.copies), ref), (shifts, indices)

    def reduce(self, grad: torch.Tensor, saved: Any, ctx: StepContext) -> torch.Tensor:
        shifts, indices = saved
        state = ctx.state[id(self)]
        B = grad.shape[0] // self.copies
        if state["table"] is None:
            state["table"] = grad.new_zeros((2 * self.shift_length + 1, B) + tuple(grad.shape[1:]))
        table: torch.Tensor = state["table"]
        for k, index in enumerate(indices):
            table[index] = roll_frames(grad[k * B : (k + 1) * B], -shifts[k])
            state["filled"].add(index)
        state["step"] += 1
        filled = sorted(state["filled"])
        total = float(sum(float(self.weights[i]) for i in filled))
        out = torch.zeros_like(grad[:B])
        for i in filled:
            out.add_(table[i], alpha=float(self.weights[i]) / total)
        return out


def make_temporal_estimator(
    shift_length: int, weights: Any, strategy: str, sampling: str, samples: int | None
) -> InputTransform:
    """The ``tt`` transform for `sampling` (one of `SHIFT_SAMPLING`; ``all`` is TT itself)."""
    if sampling not in SHIFT_SAMPLING:
        raise ValueError(
            f"option shift_sampling must be one of {', '.join(SHIFT_SAMPLING)}; got {sampling!r}"
        )
    if sampling == "all":
        if samples is not None:
            raise ValueError(
                "option shift_samples needs shift_sampling 'iid', 'antithetic' or 'sag' (TT's 'all' uses "
                f"every one of the 2L+1 shifts); got shift_samples={samples}"
            )
        return TemporalTranslation(shift_length, weights, strategy)
    if samples is None:
        raise ValueError(f"shift_sampling={sampling!r} needs shift_samples (gradients per step, >= 1)")
    if sampling == "sag":
        return SagTemporalTranslation(shift_length, weights, strategy, samples)
    return SampledTemporalTranslation(shift_length, weights, strategy, samples, sampling)
