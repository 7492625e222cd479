"""The cost frontier of a run's evaluation (`vidadv evaluate`): each attack's recorded cost, read from the
run folder, and the frontier files written into the evaluation folder.

Costs come from attack_summary.json (`run_records.summarize_attack_run`): each attack's settings with its
gradient evaluations (for runs whose settings predate the count, the per-step count of the per-clip
records, collected in the summary rows) and the attack wall time summed over its (white-box, clip) files.
The numbers are `vidadv.evaluation.frontier`'s.

Files (`stem` = "frontier" plus the evaluation variant's suffix, e.g. "frontier_uint8"):
  <stem>.csv   one row per attack: method, attack, gradient evaluations and seconds per clip, ms per
               evaluation, clips, average black-box ASR (%) with its 95 % bootstrap interval
  <stem>.md    the same as a Markdown table
  <stem>.png   ASR against gradient evaluations per clip (log x), one line per method
  <stem>_time.png   ASR against attack wall time per clip, when every attack has one
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidadv.evaluation.frontier import (
    FRONTIER_CSV_HEADER,
    AttackCost,
    FrontierPoint,
    attack_costs,
    frontier_csv_rows,
    frontier_points,
    frontier_series,
    frontier_table,
)
from vidadv.evaluation.outcomes import SELECTED, Outcomes
from vidadv.evaluation.plots import plot_frontier
from vidadv.evaluation.report import Figure, HtmlTable, ReportWriter, Section, markdown_table
from vidadv.experiments.config import ExperimentConfig
from vidadv.experiments.runtime import RunLayout
from vidadv.utils.io import read_json

FRONTIER_NOTE = (
    "Average black-box ASR (Table 1's average over the white-box models; 95 % bootstrap interval over "
    "clips) against the gradient evaluations (clip forward+backward passes) one clip costs, from each "
    "attack's recorded settings; s / clip = attack wall time per (white-box model, clip) as recorded by "
    "`vidadv attack` (depends on the machine and its load); ms / eval = s / clip over the evaluations. "
    "One line per method: attacks that differ only in steps or copies."
)


def run_costs(config: ExperimentConfig, layout: RunLayout) -> dict[str, AttackCost]:
    """Every attack's cost in the run's attack_summary.json; a ValueError names the missing record (no
    summary, an attack without settings or without a gradient evaluation count)."""
    if not layout.attack_summary.is_file():
        raise ValueError(
            f"{str(layout.attack_summary)!r} is missing: run `vidadv attack` with the run's config to "
            "finish the run (it writes the summary with each attack's settings and times)"
        )
    summary = read_json(layout.attack_summary)
    if not isinstance(summary, Mapping):
        raise ValueError(f"{str(layout.attack_summary)!r} is not a JSON object")
    recorded = summary.get("attack_settings", {})
    recorded = recorded if isinstance(recorded, Mapping) else {}
    rows = [r for r in summary.get("rows", []) if isinstance(r, Mapping)]
    names = [a.name for a in config.attacks]
    settings: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float | None] = {}
    for name in names:
        own = [r for r in rows if r.get("attack") == name]
        if isinstance(recorded.get(name), Mapping):
            settings[name] = dict(recorded[name])
            per_step = {r.get("gradient_evaluations_per_step") for r in own if r.get("done")}
            if "gradient_evaluations_per_step" not in settings[name] and len(per_step) == 1:
                settings[name]["gradient_evaluations_per_step"] = per_step.pop()
        seconds[name] = _seconds_per_clip(own)
    return attack_costs(names, settings, seconds)


def _seconds_per_clip(rows: list[Mapping[str, Any]]) -> float | None:
    """Attack seconds over every (white-box, clip) file of one attack's summary rows (older summaries:
    mean time x clips); None without clips or times."""
    total, clips = 0.0, 0
    for row in rows:
        done = row.get("done")
        if not isinstance(done, int) or done <= 0:
            continue
        seconds = row.get("attack_seconds")
        if not isinstance(seconds, int | float):
            mean = row.get("mean_time_s")
            if not isinstance(mean, int | float):
                return None
            seconds = mean * done
        total, clips = total + float(seconds), clips + done
    return total / clips if clips else None


def write_frontier(
    report: ReportWriter,
    outcomes: Outcomes,
    costs: Mapping[str, AttackCost],
    *,
    n_boot: int,
    seed: int,
    stem: str = "frontier",
    label: str = "",
    denominator: str = SELECTED,
) -> tuple[list[FrontierPoint], Section]:
    """Write `<stem>.csv/.md/.png` (and `<stem>_time.png`) into the report's folder; returns the points
    and the HTML section (not yet added). label: the evaluation variant, shown in titles."""
    points = frontier_points(outcomes, costs, n_boot=n_boot, seed=seed, denominator=denominator)
    if not points:
        raise ValueError("the frontier has no points: no attack has evaluated clips")
    suffix = f" ({label})" if label else ""
    header, rows = frontier_table(points)
    report.csv(f"{stem}.csv", FRONTIER_CSV_HEADER, frontier_csv_rows(points))
    report.text(
        f"{stem}.md", f"## Cost frontier{suffix}\n\n{FRONTIER_NOTE}\n\n{markdown_table(header, rows)}\n"
    )
    report.show(f"Cost frontier{suffix}: average black-box ASR (%) per gradient evaluations", header, rows)
    series = frontier_series(points)
    plot = plot_frontier(
        series,
        report.folder / f"{stem}.png",
        xlabel="gradient evaluations per clip (forward+backward passes, log scale)",
    )
    figures = [Figure(report.plots([plot])[0], _alt(points, "gradient evaluations per clip"))]
    if all(p.seconds_per_clip is not None and p.seconds_per_clip > 0 for p in points):
        timed = plot_frontier(
            frontier_series(points, x="seconds"),
            report.folder / f"{stem}_time.png",
            xlabel="attack wall time per clip and white-box model (s, log scale)",
        )
        figures.append(Figure(report.plots([timed])[0], _alt(points, "attack wall time per clip")))
    section = Section(
        f"Cost frontier{suffix}",
        text=FRONTIER_NOTE,
        tables=[HtmlTable(header, rows, "Average black-box ASR (%) against cost, per attack")],
        images=figures,
        figures_first=True,
    )
    return points, section


def _alt(points: list[FrontierPoint], cost: str) -> str:
    methods = list(dict.fromkeys(p.method for p in points))
    best = max(points, key=lambda p: p.asr)
    return (
        f"Line plot: average black-box attack success rate (%) against {cost} (log scale), one line per "
        f"method ({', '.join(methods)}), with 95 % intervals; highest: {best.attack} "
        f"{100 * best.asr:.0f} % at {best.gradient_evaluations} gradient evaluations."
    )
