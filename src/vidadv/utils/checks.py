"""Input checks shared by every layer (one definition, one wording of the error)."""

from __future__ import annotations

from typing import Any

import torch


def check_labels(
    labels: Any,
    n: int | None = None,
    *,
    name: str = "labels",
    device: torch.device | str | None = None,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Class labels as a long tensor of shape (n,) (any length when `n` is None) on `device`.

    TypeError for a non-integer dtype; ValueError for None, a wrong shape, a negative label or one at or
    above `num_classes`. `name` says in the message which argument was wrong.
    """
    if labels is None:
        raise ValueError(f"{name} is required")
    if isinstance(labels, str | bytes):
        raise TypeError(f"{name} must be integer class indices, got the string {labels!r}")
    try:
        tensor = torch.as_tensor(labels, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be integer class indices (a tensor or ints), got {labels!r}") from None
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {tensor.dtype}")
    if n is not None and tensor.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per clip, got {tuple(tensor.shape)}")
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, one per clip, got shape {tuple(tensor.shape)}")
    if tensor.numel() and int(tensor.min()) < 0:
        raise ValueError(f"{name} must be class indices >= 0, got {int(tensor.min())}")
    if num_classes is not None and tensor.numel() and int(tensor.max()) >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got {int(tensor.max())}")
    return tensor.long()
