"""Automatic chunk size: how many rows (transformed copies) go through the model per forward/backward.

With ``chunk_size=None`` the first gradient of a given (model, device, dtype, row shape, number of rows,
ATA or not) is computed once per candidate chunk size, each timed; the fastest candidate is kept for every
later call with the same key (a per-process cache, dropped with the model), and the gradient returned for
that first call is the one computed with the chosen size. So a call with the automatic choice gives
exactly what a call with ``chunk_size=<chosen>`` gives; the cost is one extra pass over the first step's
rows per other candidate, once per key and process.

The candidates are balanced splits of R rows (every pass the same size but the last): for rows-per-pass
targets ``R, 8, 5, 3`` the chunk ``ceil(R / ceil(R / t))``. Measured on 2 CPU cores (benchmarks/tt_cost.py,
NL-50 and the zoo's nl-l, TT L = 7: R = 15), one pass of all 15 copies was up to 40 % slower than passes of
3 to 8 copies, and passes of 1 or 2 copies were never the fastest. Out-of-memory on a candidate skips it.

Whatever the chunk size, the rows and every random draw are the same (draws are made per clip before the
model sees any row); only the floating-point rounding inside batched kernels can differ, by about 1e-7
relative in float32 (as for a different batch size).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

__all__ = ["AUTO_TARGETS", "candidate_chunk_sizes", "chunk_key", "cached_chunk_size", "choose_chunk_size"]

#: Rows-per-pass targets of the automatic choice (see the module docstring for the measurement).
AUTO_TARGETS = (8, 5, 3)

_CHOICES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()

T = TypeVar("T")


def candidate_chunk_sizes(rows: int) -> list[int]:
    """Candidate chunk sizes for `rows` rows: all at once, then balanced splits near each target."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    candidates = [rows]
    for target in AUTO_TARGETS:
        if target < rows:
            size = math.ceil(rows / math.ceil(rows / target))
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
