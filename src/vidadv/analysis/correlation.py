"""Spearman rank correlation of frame-importance lists between models (TT paper, Figure 2).

For each clip, each importance method and each pair of models, the two length-T importance lists are
ranked (ties get the average of the ranks they span, as in the usual definition) and the Pearson
correlation of the ranks is taken. Per-clip values are averaged over clips; a clip where one of the two
lists is constant (the rank correlation is undefined, 0/0) is NaN and left out of that pair's average.
Written here without scipy.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from vidadv.utils.stats import bootstrap_mean_ci


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks along the last dimension, ties sharing the average of their ranks (float64).

    Rank of element i = #{j: v_j < v_i} + (#{j: v_j == v_i} + 1) / 2, which is the mean of the ranks a
    group of equal values occupies. O(n^2) per list, meant for frame counts (n ~ 8..64).
    """
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values)
    if values.ndim == 0 or values.shape[-1] == 0:
        raise ValueError(
            f"average_ranks needs at least one value along the last dimension; got shape "
            f"{tuple(values.shape)}"
        )
    values = values.detach().to(torch.float64)
    if torch.isnan(values).any():
        raise ValueError("cannot rank NaN values")
    smaller = (values[..., None, :] < values[..., :, None]).sum(dim=-1)
    equal = (values[..., None, :] == values[..., :, None]).sum(dim=-1)
    return smaller.to(torch.float64) + (equal.to(torch.float64) + 1.0) / 2.0


def spearman_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation along the last dimension (batched over leading dimensions).

    Pearson correlation of the average ranks; NaN where either list is constant. Returns float64.
    """
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(
            f"spearman_correlation needs equal shapes; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim == 0 or a.shape[-1] < 2:
        raise ValueError(f"spearman_correlation needs at least 2 values per list; got shape {tuple(a.shape)}")
    rank_a = average_ranks(a)
    rank_b = average_ranks(b)
    centred_a = rank_a - rank_a.mean(dim=-1, keepdim=True)
    centred_b = rank_b - rank_b.mean(dim=-1, keepdim=True)
    covariance = (centred_a * centred_b).sum(dim=-1)
    scale = torch.sqrt((centred_a**2).sum(dim=-1) * (centred_b**2).sum(dim=-1))
    undefined = scale == 0
    rho = covariance / torch.where(undefined, torch.ones_like(scale), scale)
    rho = rho.clamp(-1.0, 1.0)
    return torch.where(undefined, torch.full_like(rho, math.nan), rho)


@dataclass(frozen=True)
class PairwiseSpearman:
    """Spearman correlations between every pair of models for one importance method.

    ``per_clip``: (N, M, M) per-clip values (NaN where undefined); ``mean``: (M, M) average over the
    clips where it is defined; ``valid_counts``: (M, M) number of clips entering each average.
    """

    names: tuple[str, ...]
    per_clip: torch.Tensor
    mean: torch.Tensor
    valid_counts: torch.Tensor

    @property
    def num_clips(self) -> int:
        return int(self.per_clip.shape[0])


def pairwise_spearman(importances: Mapping[str, torch.Tensor]) -> PairwiseSpearman:
    """Per-clip and clip-averaged Spearman matrix of ``{model name: importance (N, T)}``."""
    names = tuple(importances)
    if len(names) < 1:
        raise ValueError("pairwise_spearman needs at least one model")
    stacked = []
    for name in names:
        scores = torch.as_tensor(importances[name])
        if scores.ndim != 2:
            raise ValueError(
                f"importance of model {name!r} must have shape (N, T); got {tuple(scores.shape)}"
            )
        stacked.append(scores.detach().to(torch.float64).cpu())
    shapes = {tuple(s.shape) for s in stacked}
    if len(shapes) != 1:
        raise ValueError(f"all importance tensors need the same shape (N, T); got {sorted(shapes)}")
    scores = torch.stack(stacked, dim=1)  # (N, M, T)
    per_clip = spearman_correlation(
        scores[:, :, None, :].expand(-1, -1, len(names), -1),
        scores[:, None, :, :].expand(-1, len(names), -1, -1),
    )
    valid = ~torch.isnan(per_clip)
    valid_counts = valid.sum(dim=0)
    totals = torch.where(valid, per_clip, torch.zeros_like(per_clip)).sum(dim=0)
    mean = totals / valid_counts.clamp(min=1)
    mean = torch.where(valid_counts > 0, mean, torch.full_like(mean, math.nan))
    return PairwiseSpearman(names=names, per_clip=per_clip, mean=mean, valid_counts=valid_counts)


def _format_value(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def matrix_csv(names: Sequence[str], matrix: torch.Tensor, digits: int = 6) -> str:
    """CSV text of an (M, M) matrix: header ``model,<name 1>,...``, one row per model."""
    if tuple(matrix.shape) != (len(names), len(names)):
        raise ValueError(f"matrix shape {tuple(matrix.shape)} does not match {len(names)} model names")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", *names])
    for row_name, row in zip(names, matrix.tolist(), strict=True):
        writer.writerow([row_name, *(_format_value(v, digits) for v in row)])
    return buffer.getvalue()


def per_clip_csv(clip_ids: Sequence[str], result: PairwiseSpearman, digits: int = 6) -> str:
    """CSV text ``clip_id,model_a,model_b,spearman`` for every clip and unordered model pair (a before b)."""
    if len(clip_ids) != result.num_clips:
        raise ValueError(f"{len(clip_ids)} clip ids for {result.num_clips} clips")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip_id", "model_a", "model_b", "spearman"])
    names = result.names
    for clip_number, clip_id in enumerate(clip_ids):
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                value = float(result.per_clip[clip_number, i, j])
                writer.writerow([clip_id, names[i], names[j], _format_value(value, digits)])
    return buffer.getvalue()


def pair_intervals_csv(result: PairwiseSpearman, n_boot: int = 10000, seed: int = 0, digits: int = 6) -> str:
    """CSV ``model_a,model_b,clips,mean_spearman,ci_low,ci_high``: per unordered model pair, the mean
    Spearman correlation over the clips where it is defined, with a 95 % percentile-bootstrap interval
    (resampling clips). A pair with no valid clip gets empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model_a", "model_b", "clips", "mean_spearman", "ci_low", "ci_high"])
    names = result.names
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            values = result.per_clip[:, i, j]
            values = values[~torch.isnan(values)]
            if values.numel() == 0:
                writer.writerow([names[i], names[j], 0, "", "", ""])
                continue
            interval = bootstrap_mean_ci(values.to(torch.float64), n_boot=n_boot, seed=seed)
            cells = (interval.estimate, interval.lo, interval.hi)
            writer.writerow([names[i], names[j], values.numel(), *(_format_value(v, digits) for v in cells)])
    return buffer.getvalue()


def mean_off_diagonal(matrix: torch.Tensor) -> float:
    """Average of the off-diagonal entries (ignoring NaN): one number summarizing agreement between models."""
    size = matrix.shape[0]
    if size < 2:
        return math.nan
    mask = ~torch.eye(size, dtype=torch.bool)
    values = matrix[mask]
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan
