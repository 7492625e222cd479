"""Every transfer plot vidadv draws, with one fixed, colour-blind-safe colour per model.

Palette: Okabe & Ito's eight colours ("Color Universal Design", 2008). `model_color` maps a model name to
the same colour in every figure: the eight zoo models have fixed, distinct entries (the six CNNs and
`timesformer-s` take the seven Okabe-Ito colours, `videomae-s` their companion grey), any other name a
colour chosen by a stable hash of the name (never by its position in a legend). The black-box average is
black.

Methods are not models: `method_style` gives each attack method (a line of the cost frontier, e.g. "TT",
"MI+TT", "TT-anti3") a colour from a second palette, Paul Tol's "muted" scheme (colour-blind safe; Tol,
"Colour Schemes", SRON/EPS/TN/09-002), fixed by the method's name: the same estimator has the same colour
with and without momentum (momentum: dashed line, hollow markers), its shift count k picks the marker.

Plots: `plot_transfer_bars` (per white-box model: each black-box model's ASR with a 95 % Wilson interval
and the black-box average with its 95 % bootstrap interval, attacks grouped baseline | +TT | control, 0 %
bars labelled), `plot_forest` (paired differences A - B with 95 % intervals, a line at 0) and
`plot_frontier` (black-box ASR against a cost, log x, one line per method with its 95 % intervals).
"""

from __future__ import annotations

import io
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidadv.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe-Ito colours, black first.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

AVERAGE_LABEL = "black-box average"
AVERAGE_COLOR = OKABE_ITO["black"]

#: Fixed colours of the embedded zoo's models (small and large of a family: light and dark shade).
MODEL_COLORS: dict[str, str] = {
    "nl-s": OKABE_ITO["sky blue"],
    "nl-l": OKABE_ITO["blue"],
    "slowfast-s": OKABE_ITO["yellow"],
    "slowfast-l": OKABE_ITO["orange"],
    "tpn-s": OKABE_ITO["reddish purple"],
    "tpn-l": OKABE_ITO["vermillion"],
    "timesformer-s": OKABE_ITO["bluish green"],
    "videomae-s": "#999999",  # grey: Okabe-Ito has seven colours besides black
}
_HASHED = [c for name, c in OKABE_ITO.items() if name != "black"]

#: Paul Tol's "muted" colours: the method palette (never used for models).
TOL_MUTED: dict[str, str] = {
    "indigo": "#332288",
    "cyan": "#88CCEE",
    "teal": "#44AA99",
    "green": "#117733",
    "olive": "#999933",
    "sand": "#DDCC77",
    "rose": "#CC6677",
    "wine": "#882255",
    "purple": "#AA4499",
}

#: Fixed colours of the methods (momentum variants share their base's colour; estimators: per kind).
METHOD_COLORS: dict[str, str] = {
    "BIM": TOL_MUTED["indigo"],
    "VR": TOL_MUTED["olive"],
    "TT": TOL_MUTED["rose"],
    "TT-iid": TOL_MUTED["green"],
    "TT-anti": TOL_MUTED["wine"],
    "TT-sag": TOL_MUTED["teal"],
}
_METHOD_HASHED = [c for c in TOL_MUTED.values() if c not in METHOD_COLORS.values()]
_METHOD_MARKERS: dict[str, str] = {"BIM": "s", "VR": "D", "TT": "o"}
_K_MARKERS = ("v", "^", "<", ">", "P", "X", "h", "*")
_MOMENTUM = {"MI+": "--", "NI+": ":"}

#: Attack groups, in plot order.
BASELINE, WITH_TT, CONTROL = "baseline", "+TT", "control"
GROUPS = (BASELINE, WITH_TT, CONTROL)


def model_color(model: str) -> str:
    """The colour (hex) of `model` in every plot: a fixed entry, else a stable hash of the name."""
    if model == AVERAGE_LABEL:
        return AVERAGE_COLOR
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return _HASHED[zlib.crc32(model.encode("utf-8")) % len(_HASHED)]


@dataclass(frozen=True)
class MethodStyle:
    """How a method's line is drawn: colour (hex), matplotlib line style and marker, hollow markers."""

    color: str
    linestyle: str
    marker: str
    hollow: bool


def method_style(method: str) -> MethodStyle:
    """The style of `method` (a cost-frontier line name) in every plot, from its name alone.

    A leading "MI+" (dashed, hollow) or "NI+" (dotted, hollow) is momentum; the rest picks the colour:
    a fixed entry of `METHOD_COLORS` (an estimator "<base>-<kind><k>" by "<base>-<kind>", with k choosing
    the marker), else a stable hash of the name into the muted colours no fixed entry uses.
    """
    base, linestyle = method, "-"
    for prefix, style in _MOMENTUM.items():
        if method.startswith(prefix) and len(method) > len(prefix):
            base, linestyle = method[len(prefix) :], style
            break
    estimator = re.fullmatch(r"(.+-[A-Za-z]+)(\d+)", base)
    kind, marker = base, _METHOD_MARKERS.get(base, "o")
    if estimator is not None:
        kind, marker = estimator.group(1), _K_MARKERS[int(estimator.group(2)) % len(_K_MARKERS)]
    color = METHOD_COLORS.get(kind)
    if color is None:
        color = _METHOD_HASHED[zlib.crc32(kind.encode("utf-8")) % len(_METHOD_HASHED)]
    return MethodStyle(color, linestyle, marker, linestyle != "-")


def attack_group(attack: str) -> str:
    """baseline, +TT (the name has a TT component) or control (VR: the compute-matched control)."""
    parts = [p.split("(")[0].strip().upper() for p in attack.replace("-", "+").split("+")]
    if "TT" in parts:
        return WITH_TT
    if "VR" in parts:
        return CONTROL
    return BASELINE


def group_attacks(
    attacks: Sequence[str], pairs: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, list[str]]]:
    """Attacks in groups baseline | +TT | control (empty groups left out).

    pairs: (with TT, without) pairs; a +TT attack is placed at the position of its baseline partner so that
    the two groups read in the same order.
    """
    grouped: dict[str, list[str]] = {g: [] for g in GROUPS}
    for attack in attacks:
        grouped[attack_group(attack)].append(attack)
    partner = {a: b for a, b in pairs if b in grouped[BASELINE]}
    baseline_order = {b: i for i, b in enumerate(grouped[BASELINE])}
    grouped[WITH_TT].sort(key=lambda a: baseline_order.get(partner.get(a, ""), len(baseline_order)))
    return [(g, grouped[g]) for g in GROUPS if grouped[g]]


def _png(figure: object, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # type: ignore[attr-defined]
    return atomic_write_bytes(path, buffer.getvalue())


@dataclass(frozen=True)
class Bar:
    """One bar: a fraction in [0, 1] with its 95 % interval (lo, hi), also fractions."""

    value: float
    lo: float
    hi: float


def plot_transfer_bars(
    bars: Mapping[str, Mapping[str, Bar]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    pairs: Sequence[tuple[str, str]] = (),
    xlabel: str = "transfer attack success rate (%)",
) -> Path:
    """Grouped horizontal bars for one white-box model: bars[attack][model], model = a black-box model or
    `AVERAGE_LABEL`. Attacks are grouped baseline | +TT | control (top to bottom); a 0 % bar is labelled
    "0". The figure is 460 px wide so that it stays readable on a phone."""
    if not bars:
        raise ValueError("plot_transfer_bars needs at least one attack")
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    groups = group_attacks(list(bars), pairs)
    order = [a for _, members in groups for a in members]
    models = list(dict.fromkeys(m for per_model in bars.values() for m in per_model if m != AVERAGE_LABEL))
    if any(AVERAGE_LABEL in per_model for per_model in bars.values()):
        models.append(AVERAGE_LABEL)
    # horizontal bars (narrow figure: readable at phone width): one slot per attack from the top, half a
    # slot between groups
    positions, y, boundaries = {}, 0.0, []
    for index, (_, members) in enumerate(groups):
        if index:
            boundaries.append(y - 0.25)
            y += 0.5
        for attack in members:
            positions[attack] = y
            y += 1.0
    height = 0.84 / max(1, len(models))
    legend_rows = math.ceil(len(models) / 2)
    figure = Figure(figsize=(4.6, 1.5 + 0.16 * legend_rows + (0.22 + 0.07 * len(models)) * y), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    for slot, model in enumerate(models):
        ys, widths, low, high = [], [], [], []
        for attack in order:
            bar = bars[attack].get(model)
            if bar is None:
                continue
            ys.append(positions[attack] - 0.42 + height * (slot + 0.5))
            widths.append(100 * bar.value)
            low.append(max(0.0, 100 * (bar.value - bar.lo)))
            high.append(max(0.0, 100 * (bar.hi - bar.value)))
        is_average = model == AVERAGE_LABEL
        axes.barh(
            ys,
            widths,
            height=height,
            color=model_color(model),
            edgecolor="#999999" if is_average else "black",  # the hatch is drawn in the edge colour
            linewidth=0.4,
            hatch="///" if is_average else None,
            label=model + (" (95 % bootstrap CI)" if is_average else " (95 % Wilson CI)"),
            xerr=[low, high],
            error_kw={"elinewidth": 0.7, "capsize": 1.2, "ecolor": "#444444"},
        )
        for bar_y, width in zip(ys, widths, strict=True):
            if width == 0.0:
                axes.text(0.8, bar_y, "0", ha="left", va="center", fontsize=6.5, color="black")
    for boundary in boundaries:
        axes.axhline(boundary, color="#888888", linewidth=0.8, linestyle=":")
    for group, members in groups:
        centre = (positions[members[0]] + positions[members[-1]]) / 2
        axes.text(101.5, centre, group, ha="left", va="center", rotation=-90, fontsize=9, fontweight="bold")
    axes.set_yticks([positions[a] for a in order])
    axes.set_yticklabels(order, fontsize=9)
    axes.set_ylim(y - 0.5, -0.5)  # first attack at the top
    axes.set_ylabel("attack (baseline | +TT | control)", fontsize=9)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_xlim(0, 100)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=10)
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=7.5, ncol=2, loc="lower center", frameon=False)
    legend_space = (0.16 * legend_rows + 0.1) / figure.get_figheight()
    figure.tight_layout(rect=(0, legend_space, 1, 1))
    return _png(figure, path)


@dataclass(frozen=True)
class ForestRow:
    """One row of a forest plot: a label, the difference and its 95 % interval (fractions)."""

    label: str
    diff: float
    lo: float
    hi: float
    color: str = AVERAGE_COLOR

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def plot_forest(
    rows: Sequence[ForestRow],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    xlabel: str = "difference in black-box ASR, A - B (percentage points)",
) -> Path:
    """Forest plot: one row per comparison, a point at A - B, its 95 % interval, a line at 0.
    Rows whose interval excludes 0 are drawn filled and marked with '*'."""
    if not rows:
        raise ValueError("plot_forest needs at least one row")
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    labels = [(r.label + (" *" if r.excludes_zero else "")) for r in reversed(rows)]
    figure = Figure(figsize=(5.0, 1.2 + 0.34 * len(rows)), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    for index, row in enumerate(rows):
        y = len(rows) - 1 - index
        values = [100 * row.lo, 100 * row.diff, 100 * row.hi]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"forest row {row.label!r} has a non-finite value {values}")
        axes.plot([values[0], values[2]], [y, y], color=row.color, linewidth=1.6)
        axes.plot(
            [values[1]],
            [y],
            marker="o",
            markersize=6,
            color=row.color,
            markerfacecolor=row.color if row.excludes_zero else "white",
            markeredgewidth=1.4,
        )
    axes.axvline(0.0, color="black", linewidth=0.9)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=10)
    _fit_width(figure, axes)
    return _png(figure, path)


def _fit_width(figure: Figure, axes: Axes, min_plot_inches: float = 3.0) -> None:
    """Widen `figure` so that the tick labels fit beside a plot at least as wide as its title, its x label
    and `min_plot_inches`, so no text is cut off; then lay it out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    dpi = figure.dpi
    labels = [text.get_window_extent(renderer).width for text in axes.get_yticklabels()]
    centred = [
        text.get_window_extent(renderer).width for text in (axes.title, axes.xaxis.label) if text.get_text()
    ]
    needed = (max(labels, default=0.0) + max([min_plot_inches * dpi, *centred]) + 0.6 * dpi) / dpi
    width, height = figure.get_size_inches()
    figure.set_size_inches(max(width, needed), height)
    figure.tight_layout()


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks 1, 2, 3, 5 x 10^k inside [low, high] (finer in a narrow range, only powers of ten in a wide
    one)."""

    def ticks(mantissas: tuple[float, ...]) -> list[float]:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        values = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
        return [float(f"{v:.6g}") for v in values if low <= v <= high]

    chosen = ticks((1, 2, 3, 5))
    if len(chosen) < 4:
        chosen = ticks((1, 1.5, 2, 3, 4, 5, 7))
    return chosen if len(chosen) <= 13 else ticks((1,))


def plot_frontier(
    series: Mapping[str, Sequence[tuple[float, Bar]]],
    path: str | os.PathLike[str],
    *,
    xlabel: str,
    ylabel: str = "average black-box ASR (%)",
    title: str = "",
) -> Path:
    """ASR against a cost: series[method] = [(cost, ASR with its 95 % interval)], one line per method
    (styled by `method_style`), log x. A method with several points gets a band for its intervals, one
    with a single point error bars; costs must be positive."""
    if not series or not any(series.values()):
        raise ValueError("plot_frontier needs at least one point")
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    figure = Figure(figsize=(7.6, 4.6), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    costs: list[float] = []
    for method, points in series.items():
        ordered = sorted(points, key=lambda point: point[0])
        if not ordered:
            continue
        xs = [float(x) for x, _ in ordered]
        bad = [x for x in xs if not (math.isfinite(x) and x > 0)]
        if bad:
            raise ValueError(f"method {method!r}: costs must be positive and finite on a log axis, got {bad}")
        costs += xs
        ys = [100 * bar.value for _, bar in ordered]
        lows = [100 * bar.lo for _, bar in ordered]
        highs = [100 * bar.hi for _, bar in ordered]
        style = method_style(method)
        if len(ordered) > 1:
            axes.fill_between(xs, lows, highs, color=style.color, alpha=0.15, linewidth=0)
        axes.errorbar(
            xs,
            ys,
            yerr=None if len(ordered) > 1 else [[ys[0] - lows[0]], [highs[0] - ys[0]]],
            color=style.color,
            linestyle=style.linestyle,
            linewidth=1.6,
            marker=style.marker,
            markersize=5.5,
            markerfacecolor="white" if style.hollow else style.color,
            markeredgecolor=style.color,
            markeredgewidth=1.3,
            capsize=3,
            label=method,
        )
    axes.set_xscale("log")
    low, high = min(costs) / 1.35, max(costs) * 1.35
    axes.set_xlim(low, high)
    ticks = _log_ticks(low, high)
    if len(ticks) >= 2:  # plain numbers (10, 30, 150) instead of powers of ten
        axes.set_xticks(ticks)
        axes.set_xticklabels([f"{t:g}" for t in ticks], fontsize=8)
        axes.set_xticks([], minor=True)
    axes.set_ylim(-3, 103)  # points at 0 % or 100 % stay whole
    axes.set_yticks(range(0, 101, 20))
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    axes.grid(alpha=0.3, which="both")
    axes.set_title(title or "95 % bootstrap intervals: bands (several points), bars (one point)", fontsize=9)
    axes.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the data
    figure.tight_layout()
    return _png(figure, path)
