"""TT ablations of the paper: shift length L (Figure 4), weight matrix and shifting strategy (Table 2).

Wei et al., "Boosting the Transferability of Video Adversarial Examples via Temporal Translation"
(AAAI 2022) study three settings of Temporal Translation (TT) with NL-101 as the white-box model:
the *shift length* L (2L+1 temporally shifted copies; Figure 4, L = 1..9), the *weight matrix* that
averages the copies' gradients (uniform / linear / gaussian) and the *shifting strategy* (adjacent /
random / remote shifts; Table 2), each for TT(1) (one step) and TT(10) (ten steps).

Which attacks are TT ablation attacks
-------------------------------------
An ablation run is an ordinary `vidadv attack` run. `vidadv attack` records each attack's structured
settings (canonical spec, steps, every resolved option; `runner.attack_settings`), and every attack whose
spec is plain ``tt`` is an ablation attack, read from those settings: n = its steps, L, weights and
strategy = its options (build_attack's defaults filled in). Display names are free. Attacks with other
specs (``mi+tt``, ``fgsm``, ...) and TT attacks with an explicit weight vector are ignored.

Runs made before the settings were recorded are read from their display names instead::

    TT(<n>) [L=<int>] [weights=uniform|linear|gaussian] [strategy=adjacent|random|remote]

e.g. ``TT(1) L=3``, ``TT(10) weights=linear``, ``TT(10) strategy=remote``. ``<n>`` is the number of
attack iterations (it must equal the attack's resolved ``steps``); a setting left out means TT's default
(L = 7, gaussian, adjacent), so plain ``TT(10)`` is the default cell shared by all three ablations. The
name must agree with the attack's options (checked; a mismatch is a ``ValueError``). Names that do not
start with ``TT(`` (``MI+TT(10)``, ``FGSM``, ...) are ignored. New configs keep this convention so their
tables read well.

Which ablations a run contains follows from the settings: attacks with the same n and the same weights and
strategy but at least two shift lengths form an L sweep; the same n, L and strategy with at least two
weight kinds form a weights ablation; the same n, L and weights with at least two strategies a strategy
ablation. `run_ablation_report` writes tables (CSV + Markdown), Figure-4-style plots and the paired
differences; ASR is the share of attacked clips a black-box model misclassifies, the black-box average
is the mean over the models other than the white-box one, and every interval is a 95 % bootstrap
interval resampling clips.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from vidadv.attacks import build_attack
from vidadv.attacks.temporal import SHIFT_STRATEGIES, WEIGHT_KINDS
from vidadv.evaluation.ablation import (
    NAME_CONVENTION,
    PAPER_TABLE2,
    STRATEGY_PAIRS,
    TT_DEFAULTS,
    WEIGHT_PAIRS,
    Ablations,
    TTVariant,
    detect_ablations,
    format_tt_name,
    parse_tt_name,
    plot_shift_length,
    settings_variant,
)
from vidadv.evaluation.outcomes import (
    BLACKBOX_AVERAGE,
    BlackboxCell,
    Outcomes,
    blackbox_cell,
    paired_differences,
)
from vidadv.evaluation.report import ReportWriter, csv_text, format_table, markdown_table
from vidadv.experiments.config import ExperimentConfig
from vidadv.experiments.predictions import FLOAT, LoadedRun, collect_predictions, load_run, run_outcomes
from vidadv.experiments.run_records import recorded_attack_settings
from vidadv.experiments.runfiles import holds_eval_lock
from vidadv.experiments.runtime import DEFAULT_FACTORIES, Factories

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
    "settings_variant",
    "detect_ablations",
    "attack_costs",
    "plot_shift_length",
    "run_ablation_report",
]


def tt_variants(
    config: ExperimentConfig, settings: Mapping[str, Mapping[str, Any]] | None = None
) -> list[TTVariant]:
    """The run's TT ablation attacks: from their recorded `settings` ({attack name: settings}) where the
    run has them, else from their names (the convention above, checked against their spec and options)."""
    variants = []
    for attack in config.attacks:
        if settings and attack.name in settings:
            recorded = settings_variant(settings[attack.name])
            if recorded is not None:
                variants.append(recorded)
            continue
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
                    f"{key}={resolved[key]!r}; make the name and the options agree ({NAME_CONVENTION})"
                )
        variants.append(variant)
    return variants


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


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _average_fields(cell: BlackboxCell) -> dict[str, float | None]:
    """The black-box average and its interval bounds (None without clips)."""
    if cell.interval is None:
        return {"average": None, "lo": None, "hi": None}
    return {"average": cell.interval.estimate, "lo": cell.interval.lo, "hi": cell.interval.hi}


def _ci(cell: BlackboxCell) -> str:
    if cell.interval is None:
        return "-"
    return f"{100 * cell.interval.estimate:.2f} [{100 * cell.interval.lo:.1f}, {100 * cell.interval.hi:.1f}]"


def _file_part(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _figure_name(iterations: int, weights: str, strategy: str, whitebox: str, many_whiteboxes: bool) -> str:
    name = f"figure4_tt{iterations}"
    if (weights, strategy) != (TT_DEFAULTS["weights"], TT_DEFAULTS["strategy"]):
        name += f"_{weights}_{strategy}"
    if many_whiteboxes:
        name += f"_{_file_part(whitebox)}"
    return name + ".png"


def _fixed_text(factor: str, length: int, other: str) -> str:
    """The settings held fixed in a weights (L, strategy) or strategy (L, weights) ablation."""
    return f"L={length}, {other} {'shifts' if factor == 'weights' else 'weights'}"


def _paper_text(value: float | None, signed: bool = False) -> str:
    return "" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


class _Report:
    """Tables, plots and the JSON summary of one ablation report (see `run_ablation_report`)."""

    def __init__(self, run: LoadedRun, outcomes: Outcomes, folder: Path) -> None:
        self.run, self.config, self.outcomes = run, run.config, outcomes
        self.boot = {"n_boot": run.config.bootstrap_samples, "seed": run.config.seed}
        self.many_whiteboxes = len(self.config.whitebox) > 1
        self.writer = ReportWriter(folder)
        self.folder = folder
        self.records: dict[str, list[dict[str, Any]]] = {"shift_length": [], "table2": [], "pairs": []}
        self._cells: dict[tuple[str, str], BlackboxCell] = {}

    @property
    def written(self) -> list[str]:
        return self.writer.written

    def cell(self, whitebox: str, attack: str) -> BlackboxCell:
        if (whitebox, attack) not in self._cells:
            self._cells[(whitebox, attack)] = blackbox_cell(self.outcomes, whitebox, attack, **self.boot)
        return self._cells[(whitebox, attack)]

    def write(self, name: str, text: str) -> None:
        self.writer.text(name, text)

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
                            **_average_fields(c),
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
                        [_average_fields(c)["average"] or 0.0 for c in cells],
                        self.folder / _figure_name(n, weights, strategy, whitebox, self.many_whiteboxes),
                        title=f"TT({n}) ({weights}, {strategy}), white-box {whitebox}: transfer ASR",
                        band=(
                            [_average_fields(c)["lo"] or 0.0 for c in cells],
                            [_average_fields(c)["hi"] or 0.0 for c in cells],
                        ),
                    )
                    self.writer.plots([figure])
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
                        **_average_fields(c),
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
                rows = paired_differences(self.outcomes, a, b, [whitebox], **self.boot)
                average = [r for r in rows if r["model"] == BLACKBOX_AVERAGE]
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
    factories: Factories = DEFAULT_FACTORIES,
) -> int:
    """`vidadv ablation RUN`: Figure 4 and Table 2 of the paper from an attacked ablation run.

    Writes to `out` (default RUN/eval/ablation): shift_length.csv/.md and figure4_tt<n>.png for L sweeps,
    table2.csv/.md and table2_pairs.csv (paired differences) for weights/strategy ablations, and
    ablation.json; prints the tables. Predictions come from (and fill) the evaluation cache, so after
    `vidadv evaluate` no model runs. variant: "float" (default), "uint8" or "h264-crfN", as in evaluate.
    Returns 0, or 1 when adversarial clips are missing (the tables then cover the clips present).
    Raises ValueError when the run has no ablation (see the module docstring for the naming convention).
    """
    run = load_run(run_dir, check_model_names=factories.real_models)
    config = run.config
    ablations = detect_ablations(tt_variants(config, recorded_attack_settings(run.layout)))
    if ablations.empty:
        names = ", ".join(a.name for a in config.attacks)
        raise ValueError(
            f"run {str(run.layout.root)!r} contains no TT ablation (attacks: {names}). An ablation needs "
            f"two or more plain 'tt' attacks that differ in one setting (runs made before attack settings "
            f"were recorded: {NAME_CONVENTION})"
        )
    folder = Path(out) if out is not None else run.layout.eval_dir / "ablation"
    predictions, missing = collect_predictions(
        run,
        [variant],
        attacks=ablations.attack_names,
        factories=factories,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    report = _Report(run, run_outcomes(run, predictions[variant]), folder)
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
    report.writer.json("ablation.json", summary, indent=1)
    print(
        f"\n{len(run.clips)} attacked clips per (white-box, attack); all values in % "
        f"(variant {variant}, {config.bootstrap_samples} bootstrap resamples, seed {config.seed})."
    )
    print(f"wrote {folder}/ ({', '.join(report.written)})")
    if missing:
        print(f"WARNING: {len(missing)} adversarial clips are missing; the tables cover the clips present")
        return 1
    return 0
