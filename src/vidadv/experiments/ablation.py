"""TT ablations of the paper: shift length L (Figure 4), weight matrix and shifting strategy (Table 2).

Wei et al., "Boosting the Transferability of Video Adversarial Examples via Temporal Translation"
(AAAI 2022) study three settings of Temporal Translation (TT) with NL-101 as the white-box model:
the *shift length* L (2L+1 temporally shifted copies; Figure 4, L = 1..9), the *weight matrix* that
averages the copies' gradients (uniform / linear / gaussian) and the *shifting strategy* (adjacent /
random / remote shifts; Table 2), each for TT(1) (one step) and TT(10) (ten steps).

Attack naming convention
------------------------
An ablation run is an ordinary `vidadv attack` run whose TT attacks (spec ``tt``) are named::

    TT(<n>) [L=<int>] [weights=uniform|linear|gaussian] [strategy=adjacent|random|remote]

e.g. ``TT(1) L=3``, ``TT(10) weights=linear``, ``TT(10) strategy=remote``. ``<n>`` is the number of
attack iterations (it must equal the attack's resolved ``steps``); a setting left out means TT's default
(L = 7, gaussian, adjacent), so plain ``TT(10)`` is the default cell shared by all three ablations. The
name must agree with the attack's options (checked; a mismatch is a ``ValueError``). Names that do not
start with ``TT(`` (``MI+TT(10)``, ``FGSM``, ...) are ignored.

Which ablations a run contains follows from the names: attacks with the same n and the same weights and
strategy but at least two shift lengths form an L sweep; the same n, L and strategy with at least two
weight kinds form a weights ablation; the same n, L and weights with at least two strategies a strategy
ablation. `run_ablation_report` writes tables (CSV + Markdown), Figure-4-style plots and the paired
differences; ASR is the share of attacked clips a black-box model misclassifies, the black-box average
is the mean over the models other than the white-box one, and every interval is a 95 % bootstrap
interval resampling clips.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vidadv.attacks.temporal import SHIFT_STRATEGIES, WEIGHT_KINDS
from vidadv.evaluation.report import csv_text, markdown_table
from vidadv.experiments.config import ExperimentConfig
from vidadv.experiments.evaluate import FLOAT, LoadedRun, collect_predictions, compare_attacks, load_run
from vidadv.experiments.runfiles import holds_eval_lock
from vidadv.experiments.runtime import ModelFactory, format_table, jsonable
from vidadv.utils.io import atomic_write_bytes, atomic_write_text
from vidadv.utils.stats import bootstrap_mean_ci

__all__ = [
    "TT_DEFAULTS",
    "PAPER_TABLE2",
    "WEIGHT_PAIRS",
    "STRATEGY_PAIRS",
    "TTVariant",
    "Ablations",
    "parse_tt_name",
    "format_tt_name",
    "tt_variants",
    "detect_ablations",
    "attack_costs",
    "plot_shift_length",
    "run_ablation_report",
]

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
_CONVENTION = (
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
        raise ValueError(f"attack name {name!r} does not follow the convention: {_CONVENTION}")
    iterations = int(match["n"])
    if iterations < 1:
        raise ValueError(f"attack name {name!r}: the number of iterations n in TT(n) must be >= 1")
    settings: dict[str, Any] = {}
    for token in match["settings"].split():
        key, sep, value = token.partition("=")
        if not sep or not value:
            raise ValueError(f"attack name {name!r}: {token!r} is not key=value; {_CONVENTION}")
        field_name = {"L": "shift_length", "weights": "weights", "strategy": "strategy"}.get(key)
        if field_name is None:
            raise ValueError(
                f"attack name {name!r}: unknown setting {key!r}; allowed: L, weights, strategy. {_CONVENTION}"
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


def tt_variants(config: ExperimentConfig) -> list[TTVariant]:
    """The run's attacks that follow the naming convention, checked against their spec and options."""
    variants = []
    for attack in config.attacks:
        variant = parse_tt_name(attack.name)
        if variant is None:
            continue
        if attack.spec != "tt":
            raise ValueError(
                f"attack {attack.name!r} is named like a TT ablation attack but its spec is {attack.spec!r}; "
                "ablation attacks must be plain 'tt' (rename it, e.g. 'MI+TT(10)')"
            )
        options = config.attack_options(attack)
        resolved = {key: options.get(key, default) for key, default in TT_DEFAULTS.items()}
        resolved["steps"] = options["steps"]
        expected = {
            "steps": variant.iterations,
            "shift_length": variant.shift_length,
            "weights": variant.weights,
            "strategy": variant.strategy,
        }
        for key, value in expected.items():
            if resolved[key] != value:
                raise ValueError(
                    f"attack {attack.name!r}: its name means {key}={value!r} but its options give "
                    f"{key}={resolved[key]!r}; make the name and the options agree ({_CONVENTION})"
                )
        variants.append(variant)
    return variants


# ------------------------------------------------------------------------------------------------
# Which ablations a run contains
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Compute estimate
# ------------------------------------------------------------------------------------------------


def attack_costs(
    config: ExperimentConfig, model: nn.Module, num_clips: int | None = None
) -> list[dict[str, Any]]:
    """Clip forward+backward passes each attack of `config` needs, built with `build_attack` on `model`.

    Per clip and white-box model: setup_gradient_evaluations + gradient_evaluations_per_step * steps;
    `total` multiplies by the number of white-box models and `num_clips` (when given).
    """
    from vidadv.attacks import build_attack

    rows = []
    for attack in config.attacks:
        built = build_attack(attack.spec, model, **config.attack_options(attack))
        per_clip = built.setup_gradient_evaluations + built.gradient_evaluations_per_step * built.steps
        row = {
            "attack": attack.name,
            "spec": attack.spec,
            "steps": built.steps,
            "per_step": built.gradient_evaluations_per_step,
            "setup": built.setup_gradient_evaluations,
            "per_clip": per_clip,
            "per_clip_all_whitebox": per_clip * len(config.whitebox),
        }
        if num_clips is not None:
            row["total"] = row["per_clip_all_whitebox"] * num_clips
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    """Outcomes of one (white-box, attack): per-model ASR and the black-box average with its interval."""

    attack: str
    n_clips: int
    asr: Mapping[str, float]
    average: float | None
    lo: float | None
    hi: float | None


def _cell(
    run: LoadedRun, predictions: Mapping[tuple[str, str, str], Mapping[str, int]], whitebox: str, attack: str
) -> _Cell:
    config = run.config
    others = [m for m in config.model_labels if m != whitebox]
    fooled: dict[str, list[int]] = {m: [] for m in others}
    fractions: list[float] = []
    for clip in run.clips:
        preds = predictions.get((whitebox, attack, clip.clip_id))
        if preds is None:
            continue
        flags = [int(preds[m] != clip.label) for m in others]
        for model, flag in zip(others, flags, strict=True):
            fooled[model].append(flag)
        if others:
            fractions.append(sum(flags) / len(others))
    n = len(fractions)
    if n == 0:
        return _Cell(attack, 0, {}, None, None, None)
    interval = bootstrap_mean_ci(fractions, n_boot=config.bootstrap_samples, seed=config.seed)
    asr = {m: sum(v) / len(v) for m, v in fooled.items()}
    return _Cell(attack, n, asr, interval.estimate, interval.lo, interval.hi)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _ci(cell: _Cell) -> str:
    if cell.average is None or cell.lo is None or cell.hi is None:
        return "-"
    return f"{100 * cell.average:.2f} [{100 * cell.lo:.1f}, {100 * cell.hi:.1f}]"


def _file_part(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _figure_name(iterations: int, weights: str, strategy: str, whitebox: str, many_whiteboxes: bool) -> str:
    name = f"figure4_tt{iterations}"
    if (weights, strategy) != (TT_DEFAULTS["weights"], TT_DEFAULTS["strategy"]):
        name += f"_{weights}_{strategy}"
    if many_whiteboxes:
        name += f"_{_file_part(whitebox)}"
    return name + ".png"


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
        axes.plot(lengths, [100 * v for v in values], marker=markers[index % len(markers)], label=model)
    axes.plot(
        lengths,
        [100 * v for v in average],
        color="black",
        linestyle="--",
        linewidth=2.0,
        label="average" + (" (95 % CI)" if band is not None else ""),
    )
    if band is not None:
        axes.fill_between(
            lengths, [100 * v for v in band[0]], [100 * v for v in band[1]], color="black", alpha=0.12
        )
    axes.set_xticks(list(lengths))
    axes.set_xlabel("shift length L")
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


def _fixed_text(factor: str, length: int, other: str) -> str:
    """The settings held fixed in a weights (L, strategy) or strategy (L, weights) ablation."""
    return f"L={length}, {other} {'shifts' if factor == 'weights' else 'weights'}"


def _paper_text(value: float | None, signed: bool = False) -> str:
    return "" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


class _Report:
    """Tables, plots and the JSON summary of one ablation report (see `run_ablation_report`)."""

    def __init__(
        self,
        run: LoadedRun,
        predictions: Mapping[tuple[str, str, str], Mapping[str, int]],
        folder: Path,
    ) -> None:
        self.run, self.config, self.predictions, self.folder = run, run.config, predictions, folder
        self.many_whiteboxes = len(self.config.whitebox) > 1
        self.written: list[str] = []
        self.records: dict[str, list[dict[str, Any]]] = {"shift_length": [], "table2": [], "pairs": []}
        self._cells: dict[tuple[str, str], _Cell] = {}

    def cell(self, whitebox: str, attack: str) -> _Cell:
        if (whitebox, attack) not in self._cells:
            self._cells[(whitebox, attack)] = _cell(self.run, self.predictions, whitebox, attack)
        return self._cells[(whitebox, attack)]

    def write(self, name: str, text: str) -> None:
        atomic_write_text(self.folder / name, text)
        self.written.append(name)

    # ----- Figure 4 -----------------------------------------------------------------------------
    def shift_length(self, sweeps: Mapping[tuple[int, str, str], Sequence[TTVariant]]) -> None:
        """shift_length.csv/.md and one Figure-4 plot per (white-box, TT(n) sweep)."""
        markdown = [
            "## Shift length L: black-box ASR (%) per model (Figure 4)\n",
            "ASR = share of the attacked clips each black-box model misclassifies; average = mean over the "
            "black-box models, with a 95 % bootstrap interval over clips.\n",
        ]
        for whitebox in self.config.whitebox:
            others = [m for m in self.config.model_labels if m != whitebox]
            for (n, weights, strategy), group in sweeps.items():
                title = f"TT({n}), white-box {whitebox} ({weights} weights, {strategy} shifts)"
                header = ["L", "attack", "n clips", *others, "average [95% CI]"]
                body = []
                for v in group:
                    c = self.cell(whitebox, v.name)
                    body.append([str(v.shift_length), v.name, str(c.n_clips)])
                    body[-1] += [_pct(c.asr.get(m)) for m in others] + [_ci(c)]
                    self.records["shift_length"].append(
                        {
                            "whitebox": whitebox,
                            "iterations": n,
                            "weights": weights,
                            "strategy": strategy,
                            "shift_length": v.shift_length,
                            "attack": v.name,
                            "n_clips": c.n_clips,
                            "asr": dict(c.asr),
                            "average": c.average,
                            "lo": c.lo,
                            "hi": c.hi,
                        }
                    )
                markdown += [f"### {title}\n", markdown_table(header, body) + "\n"]
                print(f"\n== {title}: black-box ASR (%) vs shift length ==")
                print(format_table(header, body))
                present = [v for v in group if self.cell(whitebox, v.name).n_clips]
                if present:
                    cells = [self.cell(whitebox, v.name) for v in present]
                    figure = plot_shift_length(
                        [v.shift_length for v in present],
                        {m: [c.asr[m] for c in cells] for m in others},
                        [c.average or 0.0 for c in cells],
                        self.folder / _figure_name(n, weights, strategy, whitebox, self.many_whiteboxes),
                        title=f"TT({n}) ({weights}, {strategy}), white-box {whitebox}: transfer ASR",
                        band=([c.lo or 0.0 for c in cells], [c.hi or 0.0 for c in cells]),
                    )
                    self.written.append(figure.name)
        # columns: the black-box models (with several white-box models: every model, blank = white-box)
        models = [m for m in self.config.model_labels if self.many_whiteboxes or m != self.config.whitebox[0]]
        keys = ("whitebox", "iterations", "weights", "strategy", "shift_length", "attack", "n_clips")
        header = [*keys[:4], "L", *keys[5:], *models, "average", "average_lo", "average_hi"]
        rows = [
            [row[k] for k in keys]
            + [_pct(row["asr"].get(m)) for m in models]
            + [_pct(row["average"]), _pct(row["lo"]), _pct(row["hi"])]
            for row in self.records["shift_length"]
        ]
        self.write("shift_length.csv", csv_text(header, rows))
        self.write("shift_length.md", "\n".join(markdown))

    # ----- Table 2 ------------------------------------------------------------------------------
    def table2(self, groups: Sequence[tuple[str, tuple[int, int, str], Mapping[str, TTVariant]]]) -> None:
        """table2.csv/.md (ours beside the paper) and table2_pairs.csv (paired differences)."""
        markdown = [
            "## Weight matrix and shifting strategy: average black-box ASR (%) (Table 2)\n",
            "ours = mean over clips of the share of black-box models fooled, with a 95 % bootstrap interval "
            "over clips; paper = Table 2 of Wei et al. (AAAI 2022), NL-101 white-box. "
            "Paired differences: ASR(A) - ASR(B) on the same clips, 95 % paired bootstrap interval.\n",
        ]
        # one table per (factor, fixed settings), with the TT(n) columns side by side
        tables: dict[tuple[str, int, str], dict[int, Mapping[str, TTVariant]]] = {}
        for factor, (n, length, other), group in groups:
            tables.setdefault((factor, length, other), {})[n] = group
        for whitebox in self.config.whitebox:
            for (factor, length, other), by_n in tables.items():
                title = f"{factor} ({_fixed_text(factor, length, other)}), white-box {whitebox}"
                header, body = self._table2_block(whitebox, factor, length, other, by_n)
                markdown += [f"### {title}\n", markdown_table(header, body) + "\n"]
                print(f"\n== Table 2, {title}: average black-box ASR (%) ==")
                print(format_table(header, body))
            header, body = self._pairs_block(whitebox, groups)
            if body:
                markdown += [
                    f"### Paired differences, white-box {whitebox}\n",
                    markdown_table(header, body) + "\n",
                ]
                print(
                    f"\n== Paired differences in black-box ASR (percentage points), white-box {whitebox} =="
                )
                print(format_table(header, body))
        keys = ("whitebox", "factor", "setting", "iterations", "fixed", "attack", "n_clips")
        rows = [
            [r[k] for k in keys] + [_pct(r["average"]), _pct(r["lo"]), _pct(r["hi"]), _paper_text(r["paper"])]
            for r in self.records["table2"]
        ]
        self.write("table2.csv", csv_text([*keys, "blackbox_avg", "lo", "hi", "paper"], rows))
        keys = ("whitebox", "factor", "iterations", "fixed", "a", "b", "n")
        rows = [
            [r[k] for k in keys]
            + [_pct(r[k]) for k in ("asr_a", "asr_b", "diff", "lo", "hi")]
            + [_paper_text(r["paper_diff"])]
            for r in self.records["pairs"]
        ]
        header = ["whitebox", "factor", "iterations", "fixed", "attack_a", "attack_b", "n_clips"]
        header += ["asr_a", "asr_b", "diff", "lo", "hi", "paper_diff"]
        self.write("table2_pairs.csv", csv_text(header, rows))
        self.write("table2.md", "\n".join(markdown))

    def _table2_block(
        self, whitebox: str, factor: str, length: int, other: str, by_n: Mapping[int, Mapping[str, TTVariant]]
    ) -> tuple[list[str], list[list[str]]]:
        ns = sorted(by_n)
        header = [factor] + [f"TT({n}) {what}" for n in ns for what in ("ours", "paper")]
        body = []
        for setting in WEIGHT_KINDS if factor == "weights" else SHIFT_STRATEGIES:
            if not any(setting in by_n[n] for n in ns):
                continue
            line = [setting]
            for n in ns:
                variant = by_n[n].get(setting)
                paper = PAPER_TABLE2[(factor, setting)].get(n)
                if variant is None:
                    line += ["", _paper_text(paper)]
                    continue
                c = self.cell(whitebox, variant.name)
                line += [_ci(c), _paper_text(paper)]
                self.records["table2"].append(
                    {
                        "whitebox": whitebox,
                        "factor": factor,
                        "setting": setting,
                        "iterations": n,
                        "fixed": _fixed_text(factor, length, other),
                        "attack": variant.name,
                        "n_clips": c.n_clips,
                        "average": c.average,
                        "lo": c.lo,
                        "hi": c.hi,
                        "paper": paper,
                    }
                )
            body.append(line)
        return header, body

    def _pairs_block(
        self, whitebox: str, groups: Sequence[tuple[str, tuple[int, int, str], Mapping[str, TTVariant]]]
    ) -> tuple[list[str], list[list[str]]]:
        header = ["TT", "A - B", "fixed", "n clips", "diff (pp)", "95 % CI", "paper diff"]
        body = []
        for factor, (n, length, other), group in groups:
            for setting_a, setting_b in WEIGHT_PAIRS if factor == "weights" else STRATEGY_PAIRS:
                if setting_a not in group or setting_b not in group:
                    continue
                a, b = group[setting_a].name, group[setting_b].name
                rows = compare_attacks(self.run, self.predictions, a, b, [whitebox])
                average = [r for r in rows if r["model"] == "black-box average"]
                if not average:
                    continue
                r = average[0]
                paper_a = PAPER_TABLE2[(factor, setting_a)].get(n)
                paper_b = PAPER_TABLE2[(factor, setting_b)].get(n)
                paper_diff = None if paper_a is None or paper_b is None else paper_a - paper_b
                fixed = _fixed_text(factor, length, other)
                body.append(
                    [
                        f"TT({n})",
                        f"{setting_a} - {setting_b}",
                        fixed,
                        str(r["n"]),
                        f"{100 * r['diff']:+.2f}",
                        f"[{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}]",
                        _paper_text(paper_diff, signed=True),
                    ]
                )
                self.records["pairs"].append(
                    {
                        "whitebox": whitebox,
                        "factor": factor,
                        "iterations": n,
                        "fixed": fixed,
                        "a": a,
                        "b": b,
                        **{k: r[k] for k in ("n", "asr_a", "asr_b", "diff", "lo", "hi")},
                        "paper_diff": paper_diff,
                    }
                )
        return header, body


@holds_eval_lock  # shares RUN/eval/cache with evaluate and compare
def run_ablation_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    variant: str = FLOAT,
    batch_size: int | None = None,
    device: str | None = None,
    model_factory: ModelFactory | None = None,
) -> int:
    """`vidadv ablation RUN`: Figure 4 and Table 2 of the paper from an attacked ablation run.

    Writes to `out` (default RUN/eval/ablation): shift_length.csv/.md and figure4_tt<n>.png for L sweeps,
    table2.csv/.md and table2_pairs.csv (paired differences) for weights/strategy ablations, and
    ablation.json; prints the tables. Predictions come from (and fill) the evaluation cache, so after
    `vidadv evaluate` no model runs. variant: "float" (default), "uint8" or "h264-crfN", as in evaluate.
    Returns 0, or 1 when adversarial clips are missing (the tables then cover the clips present).
    Raises ValueError when the run has no ablation (see the module docstring for the naming convention).
    """
    run = load_run(run_dir, check_model_names=model_factory is None)
    config = run.config
    ablations = detect_ablations(tt_variants(config))
    if ablations.empty:
        names = ", ".join(a.name for a in config.attacks)
        raise ValueError(
            f"run {str(run.layout.root)!r} contains no TT ablation (attacks: {names}). An ablation needs "
            f"two or more TT attacks that differ in one setting. {_CONVENTION}"
        )
    folder = Path(out) if out is not None else run.layout.eval_dir / "ablation"
    predictions, missing = collect_predictions(
        run,
        [variant],
        attacks=ablations.attack_names,
        model_factory=model_factory,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    report = _Report(run, predictions[variant], folder)
    if ablations.shift_sweeps:
        report.shift_length(ablations.shift_sweeps)
    groups = [("weights", key, group) for key, group in ablations.weights.items()]
    groups += [("strategy", key, group) for key, group in ablations.strategies.items()]
    if groups:
        report.table2(groups)
    summary = {
        "run": str(run.layout.root),
        "config_hash": run.config_hash,
        "variant": variant,
        "seed": config.seed,
        "bootstrap_samples": config.bootstrap_samples,
        "num_clips": len(run.clips),
        "missing": [list(item) for item in missing],
        **report.records,
    }
    report.write("ablation.json", json.dumps(jsonable(summary), indent=1, allow_nan=False) + "\n")
    print(
        f"\n{len(run.clips)} attacked clips per (white-box, attack); all values in % "
        f"(variant {variant}, {config.bootstrap_samples} bootstrap resamples, seed {config.seed})."
    )
    print(f"wrote {folder}/ ({', '.join(report.written)})")
    if missing:
        print(f"WARNING: {len(missing)} adversarial clips are missing; the tables cover the clips present")
        return 1
    return 0
