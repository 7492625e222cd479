"""Chunk size: how many rows (transformed copies) go through the model per forward/backward pass.

Two automatic choices, used when the caller gives no fixed size:

- ``chunk_size=None``, the *rule* (default; deterministic, so a run and its resume compute identically):
  on a CPU, balanced passes of about ``ELEMENTS_PER_PASS / (C*T*H*W)`` rows (a pass of R rows in
  ``ceil(R / ceil(R / target))``-row pieces); on any other device all rows in one pass.
- ``chunk_size="auto"``, the *timed* choice: the first gradient of a given (model, device, dtype, row shape,
  number of rows, loss) is computed once per candidate chunk size, each timed; the fastest is kept for
  every later call with that key (a per-process cache, dropped with the model), and the first call
  returns the gradient computed with the chosen size. Its cost: one extra pass over the first step's rows
  per other candidate, once per key and process. Different processes may choose differently.

The rule's constant comes from benchmarks/tt_cost.py --sweep (TT, L = 7, one clip: R = 15 rows, one
torch thread, process CPU time on a shared 2-core machine): the fastest fixed sizes were 15 (all) for the
zoo's nl-l at 32x32x32 (98k input elements per row), 9 for NL-50 at 32x56x56 (301k; 8 was +4.9 %) and 3
for NL-50 at 32x112x112 (1.2M); the rule gives 15, 8 and 3. One pass of all 15 copies was 8 % and 14 %
slower than the best at the two NL-50 sizes, one copy per pass 39 % and 23 %.

Whatever the chunk size, the rows and every random draw are the same (draws are made per clip before the
model sees any row); only the floating-point rounding inside batched kernels can differ, by about 1e-7
relative in float32, as for a different batch size.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

__all__ = [
    "AUTO_TARGETS",
    "ELEMENTS_PER_PASS",
    "balanced_chunk",
    "rule_chunk_size",
    "candidate_chunk_sizes",
    "chunk_key",
    "cached_chunk_size",
    "choose_chunk_size",
]

#: Rows-per-pass targets of the timed choice, besides all rows at once.
AUTO_TARGETS = (8, 5, 3)
#: Input elements per forward pass of the CPU rule (see the module docstring for the measurement).
ELEMENTS_PER_PASS = 3_200_000

_CHOICES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()

T = TypeVar("T")


def balanced_chunk(rows: int, target: int) -> int:
    """The chunk size that splits `rows` into ceil(rows / target) passes as evenly as possible."""
    target = max(1, min(target, rows))
    return math.ceil(rows / math.ceil(rows / target))


def rule_chunk_size(x: torch.Tensor) -> int:
    """The deterministic automatic chunk size for the rows `x` (R, C, T, H, W): see the module docstring."""
    rows = x.shape[0]
    if x.device.type != "cpu":
        return rows
    per_row = max(1, math.prod(x.shape[1:]))
    return balanced_chunk(rows, max(1, round(ELEMENTS_PER_PASS / per_row)))


def candidate_chunk_sizes(rows: int) -> list[int]:
    """Candidate chunk sizes for `rows` rows: all at once, then balanced splits near each target."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    candidates = [rows]
    for target in AUTO_TARGETS:
        if target < rows:
            size = balanced_chunk(rows, target)
            if size not in candidates:
                candidates.append(size)
    return candidates


def chunk_key(x: torch.Tensor, extra: tuple = ()) -> tuple:
    """Cache key of a batch of rows: device, dtype, row shape, number of rows, and `extra`."""
    return (str(x.device), str(x.dtype), tuple(x.shape[1:]), x.shape[0], *extra)


def cached_chunk_size(model: nn.Module, key: tuple) -> int | None:
    """The chunk size chosen earlier for `model` and `key`, or None."""
    return _CHOICES.get(model, {}).get(key)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def choose_chunk_size(
    model: nn.Module,
    key: tuple,
    device: torch.device,
    run: Callable[[int], T],
    candidates: list[int],
) -> tuple[int, T, dict[int, float]]:
    """Time `run(chunk)` for every candidate, cache the fastest for (`model`, `key`), and return it with
    its result and the timings in seconds (candidates that ran out of memory are left out)."""
    timings: dict[int, float] = {}
    best: tuple[int, T] | None = None
    for chunk in candidates:
        _synchronize(device)
        start = time.perf_counter()
        try:
            result = run(chunk)
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        _synchronize(device)
        timings[chunk] = time.perf_counter() - start
        if best is None or timings[chunk] < timings[best[0]]:
            best = (chunk, result)
    if best is None:
        raise torch.OutOfMemoryError(
            f"every candidate chunk size {candidates} ran out of memory; pass a smaller chunk_size"
        )
    _CHOICES.setdefault(model, {})[key] = best[0]
    return best[0], best[1], timings
