"""TT ablation settings of the paper (Figure 4, Table 2): variants, their grouping and the Figure-4 plot.

A TT ablation attack is one plain "tt" attack: its iterations n (TT(n)), shift length L, weight kind and
shifting strategy (`TTVariant`), read from an attack run's recorded settings (`settings_variant`) or, for
runs made before settings were recorded, from its display name (`parse_tt_name`; the convention is in
`vidadv.experiments.ablation`). `detect_ablations` groups variants into L sweeps and weights / strategy
ablations; `PAPER_TABLE2` holds the paper's Table 2.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidadv.attacks.temporal import SHIFT_STRATEGIES, WEIGHT_KINDS
from vidadv.evaluation.plots import AVERAGE_COLOR, model_color
from vidadv.utils.io import atomic_write_bytes

#: build_attack's TT defaults: the fixed settings of every ablation, and what an omitted setting means.
TT_DEFAULTS: dict[str, Any] = {"shift_length": 7, "weights": "gaussian", "strategy": "adjacent"}

#: Table 2 of the paper: average black-box ASR (%) with NL-101 as the white-box model,
#: {(factor, setting): {iterations: ASR}}.
PAPER_TABLE2: dict[tuple[str, str], dict[int, float]] = {
    ("weights", "uniform"): {1: 65.06, 10: 49.80},
    ("weights", "linear"): {1: 66.37, 10: 52.60},
    ("weights", "gaussian"): {1: 66.80, 10: 51.35},
    ("strategy", "adjacent"): {1: 65.56, 10: 43.37},
    ("strategy", "random"): {1: 58.06, 10: 23.25},
    ("strategy", "remote"): {1: 57.31, 10: 26.81},
}

#: Paired comparisons (A, B) reported as ASR(A) - ASR(B) on the same clips.
WEIGHT_PAIRS: tuple[tuple[str, str], ...] = (
    ("gaussian", "uniform"),
    ("linear", "uniform"),
    ("gaussian", "linear"),
)
STRATEGY_PAIRS: tuple[tuple[str, str], ...] = (
    ("adjacent", "random"),
    ("adjacent", "remote"),
    ("remote", "random"),
)

_NAME_PATTERN = re.compile(r"^TT\((?P<n>\d+)\)(?P<settings>(?:\s+\S+)*)\s*$")
NAME_CONVENTION = (
    "TT ablation attacks are named 'TT(<n>) [L=<int>] [weights=uniform|linear|gaussian] "
    "[strategy=adjacent|random|remote]', e.g. 'TT(1) L=3', 'TT(10) weights=linear', 'TT(10) strategy=remote'"
)


# ------------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TTVariant:
    """One TT attack of a run: its display name, iterations n of TT(n), shift length L, weights, strategy."""

    name: str
    iterations: int
    shift_length: int
    weights: str
    strategy: str

    def setting(self, factor: str) -> Any:
        """The value of `factor` ("shift_length", "weights" or "strategy")."""
        return {"shift_length": self.shift_length, "weights": self.weights, "strategy": self.strategy}[factor]


def parse_tt_name(name: str) -> TTVariant | None:
    """Parse an ablation attack name (see the module docstring); None when it does not start with "TT(".

    Omitted settings take `TT_DEFAULTS`. A name that starts with "TT(" but breaks the convention is a
    `ValueError`.
    """
    if not isinstance(name, str):
        raise TypeError(f"an attack name must be a str, got {type(name).__name__}")
    if not name.startswith("TT("):
        return None
    match = _NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(f"attack name {name!r} does not follow the convention: {NAME_CONVENTION}")
    iterations = int(match["n"])
    if iterations < 1:
        raise ValueError(f"attack name {name!r}: the number of iterations n in TT(n) must be >= 1")
    settings: dict[str, Any] = {}
    for token in match["settings"].split():
        key, sep, value = token.partition("=")
        if not sep or not value:
            raise ValueError(f"attack name {name!r}: {token!r} is not key=value; {NAME_CONVENTION}")
        field_name = {"L": "shift_length", "weights": "weights", "strategy": "strategy"}.get(key)
        if field_name is None:
            raise ValueError(
                f"attack name {name!r}: unknown setting {key!r}; allowed: L, weights, strategy. "
                + NAME_CONVENTION
            )
        if field_name in settings:
            raise ValueError(f"attack name {name!r} sets {key!r} twice")
        if field_name == "shift_length":
            if not value.isdigit():
                raise ValueError(f"attack name {name!r}: L must be an integer >= 0, got {value!r}")
            settings[field_name] = int(value)
        elif field_name == "weights":
            if value not in WEIGHT_KINDS:
                raise ValueError(
                    f"attack name {name!r}: weights must be one of {', '.join(WEIGHT_KINDS)}, got {value!r}"
                )
            settings[field_name] = value
        else:
            if value not in SHIFT_STRATEGIES:
                raise ValueError(
                    f"attack name {name!r}: strategy must be one of {', '.join(SHIFT_STRATEGIES)}, "
                    f"got {value!r}"
                )
            settings[field_name] = value
    return TTVariant(name=name, iterations=iterations, **{**TT_DEFAULTS, **settings})


def format_tt_name(
    iterations: int, shift_length: int | None = None, weights: str | None = None, strategy: str | None = None
) -> str:
    """The conventional name, e.g. format_tt_name(1, shift_length=3) == "TT(1) L=3"."""
    parts = [f"TT({iterations})"]
    if shift_length is not None:
        parts.append(f"L={shift_length}")
    if weights is not None:
        parts.append(f"weights={weights}")
    if strategy is not None:
        parts.append(f"strategy={strategy}")
    name = " ".join(parts)
    parse_tt_name(name)  # ValueError for a bad value
    return name


def settings_variant(settings: Mapping[str, Any]) -> TTVariant | None:
    """The TT variant of an attack's recorded settings (`runner.attack_settings`); None when its spec is
    not plain "tt" or its weights are an explicit vector rather than a kind."""
    if settings.get("spec") != "tt":
        return None
    options = settings.get("options", {})
    resolved = {key: options.get(key, default) for key, default in TT_DEFAULTS.items()}
    steps = settings.get("steps", options.get("steps"))
    if resolved["weights"] not in WEIGHT_KINDS:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or not isinstance(resolved["shift_length"], int):
        raise ValueError(f"attack {settings.get('name')!r}: recorded settings without integer steps / L")
    return TTVariant(name=str(settings["name"]), iterations=steps, **resolved)


@dataclass(frozen=True)
class Ablations:
    """The ablation groups of a run.

    shift_sweeps: {(n, weights, strategy): variants sorted by L} (>= 2 shift lengths);
    weights: {(n, L, strategy): {weights kind: variant}} (>= 2 kinds);
    strategies: {(n, L, weights): {strategy: variant}} (>= 2 strategies).
    A setting that appears under two names is represented by the first one in config order.
    """

    shift_sweeps: Mapping[tuple[int, str, str], tuple[TTVariant, ...]]
    weights: Mapping[tuple[int, int, str], Mapping[str, TTVariant]]
    strategies: Mapping[tuple[int, int, str], Mapping[str, TTVariant]]

    @property
    def attack_names(self) -> list[str]:
        """Every attack used by some group, without repeats."""
        names = [v.name for group in self.shift_sweeps.values() for v in group]
        names += [v.name for group in self.weights.values() for v in group.values()]
        names += [v.name for group in self.strategies.values() for v in group.values()]
        return list(dict.fromkeys(names))

    @property
    def empty(self) -> bool:
        return not (self.shift_sweeps or self.weights or self.strategies)


def detect_ablations(variants: Sequence[TTVariant]) -> Ablations:
    """Group TT variants into L sweeps, weights ablations and strategy ablations (see `Ablations`)."""
    unique: dict[tuple[int, int, str, str], TTVariant] = {}
    for v in variants:
        unique.setdefault((v.iterations, v.shift_length, v.weights, v.strategy), v)
    sweeps: dict[tuple[int, str, str], list[TTVariant]] = {}
    weights: dict[tuple[int, int, str], dict[str, TTVariant]] = {}
    strategies: dict[tuple[int, int, str], dict[str, TTVariant]] = {}
    for v in unique.values():
        sweeps.setdefault((v.iterations, v.weights, v.strategy), []).append(v)
        weights.setdefault((v.iterations, v.shift_length, v.strategy), {})[v.weights] = v
        strategies.setdefault((v.iterations, v.shift_length, v.weights), {})[v.strategy] = v
    return Ablations(
        shift_sweeps={
            key: tuple(sorted(group, key=lambda v: v.shift_length))
            for key, group in sorted(sweeps.items())
            if len(group) >= 2
        },
        weights={
            key: {kind: group[kind] for kind in WEIGHT_KINDS if kind in group}
            for key, group in sorted(weights.items())
            if len(group) >= 2
        },
        strategies={
            key: {kind: group[kind] for kind in SHIFT_STRATEGIES if kind in group}
            for key, group in sorted(strategies.items())
            if len(group) >= 2
        },
    )


def plot_shift_length(
    lengths: Sequence[int],
    asr: Mapping[str, Sequence[float]],
    average: Sequence[float],
    path: str | os.PathLike[str],
    title: str = "",
    band: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Path:
    """Figure 4 of the paper: ASR (%) of each black-box model against the shift length L (PNG, Agg).

    asr[model][i] and average[i] are fractions for lengths[i]; band = (lo, hi) shades the average's interval.
    """
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    figure = Figure(figsize=(6.0, 4.0), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    markers = "osD^v<>ph*"
    for index, (model, values) in enumerate(asr.items()):
        axes.plot(
            lengths,
            [100 * v for v in values],
            marker=markers[index % len(markers)],
            label=model,
            color=model_color(model),
        )
    axes.plot(
        lengths,
        [100 * v for v in average],
        color=AVERAGE_COLOR,
        linestyle="--",
        linewidth=2.0,
        label="average" + (" (95 % CI)" if band is not None else ""),
    )
    if band is not None:
        axes.fill_between(
            lengths, [100 * v for v in band[0]], [100 * v for v in band[1]], color="black", alpha=0.12
        )
    axes.set_xticks(list(lengths))
    axes.set_xlabel("shift length L (frames)")
    axes.set_ylabel("attack success rate (%)")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    if title:
        axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
