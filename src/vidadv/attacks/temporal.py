"""Temporal Translation (TT), Wei et al., "Boosting the Transferability of Video Adversarial Examples
via Temporal Translation", AAAI 2022.

TT estimates the gradient of a clip x as a weighted sum over temporally shifted copies::

    g(x) = sum_{i=-L..L} w_i * roll(grad J(roll(x, s_i)), -s_i)

where ``roll`` is a cyclic shift along the time axis (``torch.roll(x, s, dims=2)``), L is the *shift
length*, w the *weight matrix* of the paper (uniform, linear or gaussian) and s_i the shift of copy i
given by the *shifting strategy*:

- ``adjacent``: s_i = i (the paper's default);
- ``remote``:   s_i = sign(i) * ((|i| + T//2 - 1) mod T), so shifted copies are far from the original;
- ``random``:   s_i = sign(i) * r_i with r_i uniform in [0, T), redrawn for every copy at every attack
  step from the clip's generator.

The gradient of a copy is rolled back by its *actual* shift -s_i, so g is exactly the gradient of
``sum_i w_i J(roll(x, s_i))``. (The released code draws r_i as ``randint(0, 100) % T``, not uniform,
and rolls remote/random copies back by -i; `vidadv.attacks.official` reproduces both.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["WEIGHT_KINDS", "SHIFT_STRATEGIES", "temporal_weights", "shift_offsets", "roll_frames"]

WEIGHT_KINDS = ("uniform", "linear", "gaussian")
SHIFT_STRATEGIES = ("adjacent", "remote", "random")


def _check_shift_length(shift_length: int) -> int:
    if isinstance(shift_length, bool) or not isinstance(shift_length, int):
        raise TypeError(f"shift_length must be an int >= 0, got {shift_length!r}")
    if shift_length < 0:
        raise ValueError(f"shift_length must be >= 0, got {shift_length}")
    return shift_length


def temporal_weights(shift_length: int, kind: str | Sequence[float] = "gaussian") -> torch.Tensor:
    """The 2L+1 weights w_{-L..L} of TT's weight matrix, as a float64 tensor summing to 1.

    kind: ``uniform`` (1/(2L+1)), ``linear`` (1 - |i|/(L+1)), ``gaussian`` (exp(-i^2 / (2 sigma^2))
    with sigma = L/3, as in the official code), or an explicit sequence of 2L+1 non-negative numbers
    (normalized here). L = 0 gives [1.0].
    """
    L = _check_shift_length(shift_length)
    offsets = torch.arange(-L, L + 1, dtype=torch.float64)
    if isinstance(kind, str):
        if kind not in WEIGHT_KINDS:
            raise ValueError(f"unknown TT weights {kind!r}; valid: {', '.join(WEIGHT_KINDS)} or a sequence")
        if L == 0:
            return torch.ones(1, dtype=torch.float64)
        if kind == "uniform":
            raw = torch.ones_like(offsets)
        elif kind == "linear":
            raw = 1.0 - offsets.abs() / (L + 1)
        else:
            sigma = L / 3.0
            raw = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    else:
        raw = torch.as_tensor(list(kind), dtype=torch.float64)
        if raw.shape != (2 * L + 1,):
            raise ValueError(f"explicit TT weights need 2L+1 = {2 * L + 1} values, got {raw.numel()}")
        if not torch.isfinite(raw).all() or (raw < 0).any() or raw.sum() <= 0:
            raise ValueError("explicit TT weights must be finite, non-negative and not all zero")
    return raw / raw.sum()


def check_clip_length(num_frames: int, shift_length: int) -> None:
    """TT needs T > 2L so that the 2L+1 shifted copies are distinct."""
    if num_frames <= 2 * shift_length:
        raise ValueError(
            f"TT shift_length L={shift_length} needs clips with T > 2L = {2 * shift_length} frames, "
            f"got T={num_frames}; use shift_length <= {max((num_frames - 1) // 2, 0)}"
        )


def shift_offsets(
    shift_length: int,
    num_frames: int,
    strategy: str = "adjacent",
    generator: torch.Generator | None = None,
) -> list[int]:
    """The shifts s_{-L..L} (frames, for ``torch.roll``) of one clip under a shifting strategy.

    ``random`` draws one offset per nonzero i from `generator` (on the generator's device).
    """
    L = _check_shift_length(shift_length)
    check_clip_length(num_frames, L)
    if strategy not in SHIFT_STRATEGIES:
        raise ValueError(f"unknown TT strategy {strategy!r}; valid: {', '.join(SHIFT_STRATEGIES)}")
    indices = list(range(-L, L + 1))
    if strategy == "adjacent":
        return indices
    if strategy == "remote":
        half = num_frames // 2
        return [int(math.copysign((abs(i) + half - 1) % num_frames, i)) if i else 0 for i in indices]
    device = generator.device if generator is not None else "cpu"
    draws = torch.randint(0, num_frames, (2 * L,), generator=generator, device=device).tolist()
    nonzero = iter(draws)
    return [(1 if i > 0 else -1) * next(nonzero) if i else 0 for i in indices]


def roll_frames(x: torch.Tensor, shifts: torch.Tensor | int) -> torch.Tensor:
    """Cyclic shift of clips (B, C, T, H, W) along T; `shifts` is an int or one shift per clip (B,).

    Equals ``torch.roll(x[b], shifts[b], dims=1)`` for every clip b.
    """
    if isinstance(shifts, int):
        return torch.roll(x, shifts, dims=2)
    if shifts.numel() and bool((shifts == shifts[0]).all()):
        return torch.roll(x, int(shifts[0]), dims=2)
    T = x.shape[2]
    frame = torch.arange(T, device=x.device)
    source = (frame.view(1, T) - shifts.to(x.device).view(-1, 1)) % T  # out[t] = x[t - s]
    index = source.view(x.shape[0], 1, T, 1, 1).expand(x.shape)
    return x.gather(2, index)
