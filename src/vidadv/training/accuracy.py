"""Top-1 accuracy of a classifier on a clip set, clean and under cyclic temporal shifts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from vidadv.models.zoo import SHIFTS

__all__ = ["evaluate_accuracy", "shifted_accuracy"]


def _batches(dataset, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(dataset), batch_size):
        yield dataset.clips(range(start, min(start + batch_size, len(dataset))))


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    dataset,
    batch_size: int = 50,
    shifts: Sequence[int] = (0,),
    progress: bool = False,
) -> dict[int, float]:
    """Top-1 accuracy of `model` (eval mode, clips in [0, 1]) on `dataset` for each cyclic temporal shift.

    `dataset` is a `ProceduralActions` (or anything with `__len__` and `clips(indices)`); shift k evaluates
    `torch.roll(clip, k, dims=2)`, i.e. the clip's frames rotated forward by k (shift 0 is the clean clip).
    Returns {shift: accuracy}.
    """
    was_training = model.training
    model.eval()
    correct = dict.fromkeys(shifts, 0)
    total = 0
    try:
        for clips, labels in tqdm(
            _batches(dataset, batch_size),
            total=math.ceil(len(dataset) / batch_size),
            desc="evaluating",
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            for shift in shifts:
                shifted = torch.roll(clips, shifts=shift, dims=2) if shift else clips
                correct[shift] += int((model(shifted).argmax(dim=1) == labels).sum())
            total += len(labels)
    finally:
        model.train(was_training)
    return {shift: correct[shift] / total for shift in shifts}


def shifted_accuracy(model: nn.Module, dataset, shifts: Sequence[int] = SHIFTS) -> dict[int, float]:
    """Clean accuracy under each cyclic temporal shift in `shifts` (TT's translation), as a dict."""
    return evaluate_accuracy(model, dataset, shifts=tuple(shifts))
