"""The ASR-versus-compute frontier of a run: each attack's average black-box ASR against its gradient
evaluations per clip (and attack wall time per clip), attacks grouped into methods.

Cost. An attack's gradient evaluations per clip (clip forward+backward passes) come from its recorded
settings (`vidadv.experiments.runner.attack_settings`): the attack's own `gradient_evaluations_per_clip`
where recorded, else steps x `gradient_evaluations_per_step` + `setup_gradient_evaluations` (0 when not
recorded). Wall time per clip is the attack's recorded seconds over all its (white-box model, clip) pairs.

Method. Attacks that differ only in how much they spend (`BUDGET_OPTIONS`: steps, step size, the number
of VR/VT/SIM copies) and in run mechanics (`RUN_OPTIONS`) form one method, one line of the frontier. Its
name comes from the settings, never from the attack's display name: the spec's parts in upper case
("bim" -> "BIM", "mi+tt" -> "MI+TT"), and for a TT estimator its kind and shift count ("TT-anti3" =
shift_sampling antithetic, shift_samples 3; kinds iid, anti, sag). Two methods that would share a name
(e.g. TT at L = 3 and at L = 7) get the options that tell them apart appended: "TT (shift_length=3)".

ASR. Table 1's "overall" number (`outcomes.overall_blackbox_values`): per clip, the share of black-box
models fooled, averaged over the white-box models, then over clips, with a 95 % bootstrap interval
resampling clips (same seed, so the same interval as Table 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vidadv.evaluation.outcomes import (
    SELECTED,
    Outcomes,
    blackbox_fractions,
    overall_blackbox_values,
)
from vidadv.evaluation.plots import Bar
from vidadv.utils.stats import bootstrap_mean_ci

#: Options that set how much an attack spends, not what it computes: they vary along a method's line.
BUDGET_OPTIONS = frozenset({"steps", "step_size", "vr_samples", "vt_samples", "sim_copies"})
#: Options of the run mechanics (the chunk size changes rounding only): ignored when grouping.
RUN_OPTIONS = frozenset({"seed", "progress", "chunk_size"})
#: Short names of TT's estimators (`shift_sampling`) in method names.
ESTIMATOR_NAMES = {"iid": "iid", "antithetic": "anti", "sag": "sag"}


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _spec_methods(attack: str, settings: Mapping[str, Any]) -> list[str]:
    spec = settings.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"attack {attack!r}: its recorded settings have no spec (got {spec!r})")
    return [part.strip().lower() for part in spec.split("+")]


def _options(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    options = settings.get("options", {})
    return options if isinstance(options, Mapping) else {}


def method_name(attack: str, settings: Mapping[str, Any]) -> str:
    """The method (frontier line) of one attack from its recorded settings (see the module docstring)."""
    methods = _spec_methods(attack, settings)
    name = "+".join(m.upper() for m in methods)
    options = _options(settings)
    sampling = options.get("shift_sampling", "all")
    if "tt" in methods and sampling not in (None, "all"):
        name += f"-{ESTIMATOR_NAMES.get(str(sampling), str(sampling))}{options.get('shift_samples')}"
    return name


def _method_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The options that define a method: all but budget and run options."""
    return {k: v for k, v in _options(settings).items() if k not in BUDGET_OPTIONS and k not in RUN_OPTIONS}


def _method_key(attack: str, settings: Mapping[str, Any]) -> str:
    """What makes two attacks one method: the spec and `_method_options`."""
    return json.dumps(
        [_spec_methods(attack, settings), _method_options(settings)], sort_keys=True, default=repr
    )


def _option_text(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{key}={value * 255:.3g}/255" if key == "eps" else f"{key}={value:.4g}"
    return f"{key}={value}"


def method_names(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """{attack: method} for every attack of `settings` ({attack: recorded settings}); names of distinct
    methods that collide get the options that differ between them appended."""
    names = {attack: method_name(attack, s) for attack, s in settings.items()}
    keys = {attack: _method_key(attack, s) for attack, s in settings.items()}
    result = dict(names)
    for name in dict.fromkeys(names.values()):
        attacks = [a for a in names if names[a] == name]
        options: dict[str, dict[str, Any]] = {}  # method key -> its defining options
        for attack in attacks:
            options.setdefault(keys[attack], _method_options(settings[attack]))
        if len(options) < 2:
            continue
        differing = [
            k
            for k in dict.fromkeys(k for o in options.values() for k in o)
            if len({json.dumps(o.get(k), default=repr) for o in options.values()}) > 1
        ]
        for attack in attacks:
            own = options[keys[attack]]
            result[attack] = f"{name} ({', '.join(_option_text(k, own.get(k)) for k in differing)})"
    return result


def gradient_evaluations_per_clip(attack: str, settings: Mapping[str, Any]) -> int:
    """The gradient evaluations (clip forward+backward passes) one clip costs under `attack`, from its
    recorded settings; a ValueError names the attack when the run did not record them."""
    recorded = _integer(settings.get("gradient_evaluations_per_clip"))
    if recorded is not None:
        return recorded
    steps = _integer(settings.get("steps"))
    per_step = _integer(settings.get("gradient_evaluations_per_step"))
    setup = _integer(settings.get("setup_gradient_evaluations", 0))
    if steps is None or per_step is None or setup is None:
        raise ValueError(
            f"attack {attack!r}: the run records no gradient evaluation count (steps={steps!r}, "
            f"gradient_evaluations_per_step={settings.get('gradient_evaluations_per_step')!r}): it was "
            "attacked by an older vidadv, or by an attack that does not report "
            "gradient_evaluations_per_step; rerun `vidadv attack CONFIG` (a finished run only rewrites "
            "its summary; use --no-resume if that does not add the count)"
        )
    return steps * per_step + setup


@dataclass(frozen=True)
class AttackCost:
    """What one attack of a run costs per clip: its method, gradient evaluations, attack wall time
    (seconds per (white-box model, clip) pair; None when not recorded)."""

    attack: str
    method: str
    gradient_evaluations: int
    seconds_per_clip: float | None = None


def attack_costs(
    attacks: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]],
    seconds_per_clip: Mapping[str, float | None] | None = None,
) -> dict[str, AttackCost]:
    """{attack: cost} for `attacks` in order, from their recorded settings and wall times; a ValueError
    names the first attack without recorded settings or evaluation count."""
    for attack in attacks:
        if not isinstance(settings.get(attack), Mapping):
            raise ValueError(
                f"attack {attack!r} has no recorded settings (attack_summary.json of a run made by an older "
                "vidadv, or an unfinished run): rerun `vidadv attack CONFIG`"
            )
    methods = method_names({a: settings[a] for a in attacks})
    costs = {}
    for attack in attacks:
        seconds = (seconds_per_clip or {}).get(attack)
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"attack {attack!r}: wall time per clip must be >= 0 seconds, got {seconds!r}")
        evaluations = gradient_evaluations_per_clip(attack, settings[attack])
        costs[attack] = AttackCost(attack, methods[attack], evaluations, seconds)
    return costs


def spans_several_budgets(costs: Mapping[str, AttackCost]) -> bool:
    """Whether the attacks spend more than one gradient-evaluation count per clip (a frontier to draw)."""
    return len({c.gradient_evaluations for c in costs.values()}) > 1


@dataclass(frozen=True)
class FrontierPoint:
    """One attack on the frontier: its cost and average black-box ASR (fractions) with the 95 % interval."""

    attack: str
    method: str
    gradient_evaluations: int
    seconds_per_clip: float | None
    n_clips: int
    asr: float
    lo: float
    hi: float

    @property
    def bar(self) -> Bar:
        return Bar(self.asr, self.lo, self.hi)


def frontier_points(
    outcomes: Outcomes,
    costs: Mapping[str, AttackCost],
    *,
    n_boot: int,
    seed: int,
    denominator: str = SELECTED,
) -> list[FrontierPoint]:
    """The frontier of an outcomes table: one point per attack with clips, methods in order of their first
    attack (table order), each method's points by gradient evaluations. A ValueError names an attack of
    the table without a cost."""
    missing = [a for a in outcomes.attacks if a not in costs]
    if missing:
        raise ValueError(f"no recorded cost for attack {missing[0]!r} (costs known for {sorted(costs)})")
    fractions = blackbox_fractions(outcomes, denominator)
    points = []
    for attack in outcomes.attacks:
        values = overall_blackbox_values(fractions, attack, outcomes.whiteboxes)
        if not values:
            continue
        interval = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
        cost = costs[attack]
        points.append(
            FrontierPoint(
                attack,
                cost.method,
                cost.gradient_evaluations,
                cost.seconds_per_clip,
                len(values),
                interval.estimate,
                interval.lo,
                interval.hi,
            )
        )
    order = {method: i for i, method in enumerate(dict.fromkeys(p.method for p in points))}
    return sorted(points, key=lambda p: (order[p.method], p.gradient_evaluations))


def frontier_series(
    points: Sequence[FrontierPoint], x: str = "gradient_evaluations"
) -> dict[str, list[tuple[float, Bar]]]:
    """`plot_frontier`'s input: {method: [(cost, ASR)]}, cost = gradient evaluations or (x="seconds")
    wall time per clip (points without one left out)."""
    if x not in ("gradient_evaluations", "seconds"):
        raise ValueError(f"x must be 'gradient_evaluations' or 'seconds', got {x!r}")
    series: dict[str, list[tuple[float, Bar]]] = {}
    for point in points:
        cost = point.gradient_evaluations if x == "gradient_evaluations" else point.seconds_per_clip
        if cost is not None:
            series.setdefault(point.method, []).append((float(cost), point.bar))
    return series


FRONTIER_CSV_HEADER = (
    "method",
    "attack",
    "gradient_evaluations_per_clip",
    "seconds_per_clip",
    "ms_per_gradient_evaluation",
    "n_clips",
    "blackbox_asr_pct",
    "ci_lo_pct",
    "ci_hi_pct",
)


def _ms_per_evaluation(point: FrontierPoint) -> float | None:
    if point.seconds_per_clip is None or point.gradient_evaluations <= 0:
        return None
    return 1000 * point.seconds_per_clip / point.gradient_evaluations


def frontier_csv_rows(points: Sequence[FrontierPoint]) -> list[list[Any]]:
    """Rows under `FRONTIER_CSV_HEADER`: full-precision numbers (percent for ASR), empty for unknown."""
    return [
        [
            p.method,
            p.attack,
            p.gradient_evaluations,
            "" if p.seconds_per_clip is None else p.seconds_per_clip,
            "" if _ms_per_evaluation(p) is None else _ms_per_evaluation(p),
            p.n_clips,
            100 * p.asr,
            100 * p.lo,
            100 * p.hi,
        ]
        for p in points
    ]


def frontier_table(points: Sequence[FrontierPoint]) -> tuple[list[str], list[list[str]]]:
    """The frontier as text cells (header, rows) for Markdown, the terminal and the HTML report."""
    header = [
        "method",
        "attack",
        "gradient evals / clip",
        "s / clip",
        "ms / eval",
        "n clips",
        "black-box ASR % [95 % CI]",
    ]
    rows = []
    for p in points:
        ms = _ms_per_evaluation(p)
        rows.append(
            [
                p.method,
                p.attack,
                str(p.gradient_evaluations),
                "" if p.seconds_per_clip is None else f"{p.seconds_per_clip:.3g}",
                "" if ms is None else f"{ms:.3g}",
                str(p.n_clips),
                f"{100 * p.asr:.2f} [{100 * p.lo:.1f}, {100 * p.hi:.1f}]",
            ]
        )
    return header, rows
