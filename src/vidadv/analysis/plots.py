"""Figure-2-style heatmaps of the model-by-model Spearman correlation of frame importance.

Rendered with matplotlib's Agg canvas directly (no pyplot, no global backend switch), returned as PNG
bytes so that the caller can write them atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import torch

METHOD_TITLES: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "zero_padding": "Zero-padding",
    "mean_padding": "Mean-padding",
}


def heatmap_title(method: str, num_clips: int) -> str:
    """Title of a heatmap, e.g. ``"Zero-padding: Spearman rank correlation (240 clips)"``."""
    label = METHOD_TITLES.get(method, method)
    noun = "clip" if num_clips == 1 else "clips"
    return f"{label}: Spearman rank correlation ({num_clips} {noun})"


def correlation_heatmap_png(
    matrix: torch.Tensor,
    names: Sequence[str],
    *,
    title: str,
    digits: int = 2,
    dpi: int = 120,
) -> bytes:
    """PNG of an annotated (M, M) correlation heatmap (colour scale fixed to [-1, 1], NaN shown as "n/a")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] != len(names):
        raise ValueError(
            f"heatmap needs an (M, M) matrix for {len(names)} names; got shape {tuple(values.shape)}"
        )
    size = len(names)
    side = max(3.5, 0.9 * size + 2.0)
    figure = Figure(figsize=(side + 1.0, side), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(values.numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="Spearman's rho")
    axes.set_xticks(range(size))
    axes.set_yticks(range(size))
    axes.set_xticklabels(list(names), rotation=45, ha="right")
    axes.set_yticklabels(list(names))
    for row in range(size):
        for column in range(size):
            value = float(values[row, column])
            text = "n/a" if math.isnan(value) else f"{value:.{digits}f}"
            colour = "white" if not math.isnan(value) and abs(value) > 0.6 else "black"
            axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=9)
    axes.set_title(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)  # keeps long tick labels
    return buffer.getvalue()
