"""`vidadv evaluate` and `vidadv compare`: transfer attack success rates of a finished attack run.

Every model of the config classifies every adversarial clip of the run (`predictions`, cached). ASR =
share of the attacked clips (the selected clips, each attacked once per white-box model and attack) that a
model misclassifies; the denominator is printed with every table. Where the selection dropped listed clips
because a model misclassified them clean, the ASR matrix and Table 1 are also given over all listed clips,
as the released TT evaluation scripts count (`vidadv.evaluation.outcomes`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vidadv.evaluation.findings import COMPUTE_MATCHED, findings_sentences, frontier_best, frontier_findings
from vidadv.evaluation.frontier import AttackCost, spans_several_budgets
from vidadv.evaluation.outcomes import (
    BLACKBOX_AVERAGE,
    LISTED,
    SELECTED,
    Outcomes,
    asr_matrix,
    direction_differences,
    outcome_records,
    paired_differences,
    table1,
)
from vidadv.evaluation.paper import PAPER_NUMBERS, paper_number
from vidadv.evaluation.plots import ForestRow, model_color, plot_forest
from vidadv.evaluation.report import (
    Figure,
    HtmlTable,
    Prediction,
    ReportWriter,
    Section,
    asr_html_table,
    asr_interval_text,
    asr_table_rows,
    attack_settings_text,
    format_table,
    gallery_item,
    markdown_table,
    plot_figure3,
    transfer_bars,
    transfer_plot_alt,
)
from vidadv.experiments.config import ExperimentConfig
from vidadv.experiments.frontier import run_costs, write_frontier
from vidadv.experiments.predictions import (
    FLOAT,
    UINT8,
    LoadedRun,
    Transform,
    collect_predictions,
    default_transform,
    h264_variant,
    load_run,
    run_outcomes,
    variant_names,
)
from vidadv.experiments.runfiles import holds_eval_lock
from vidadv.experiments.runtime import (
    DEFAULT_FACTORIES,
    Factories,
    check_item,
    slug,
    versions,
)
from vidadv.models import available_models, get_model_entry
from vidadv.utils.io import load_tensors

__all__ = [
    "FLOAT",
    "UINT8",
    "LoadedRun",
    "collect_predictions",
    "compare_rows",
    "default_transform",
    "load_run",
    "run_compare",
    "run_evaluate",
    "run_outcomes",
]


def listed_text(run: LoadedRun) -> str:
    """What the LISTED denominator counts (empty when the run does not report it)."""
    listed = run.clip_list
    if not listed.reported:
        return listed.unavailable
    n_dropped = len(listed.dropped)
    text = (
        f"All listed clips (as the released TT evaluation scripts count): ASR = 100 - top-1 accuracy over "
        f"the {len(run.clips) + n_dropped} listed clips that load: the {len(run.clips)} attacked clips and "
        f"{n_dropped} dropped because some model misclassified them clean; not attacked, such a clip counts "
        "as a success for each model that misclassified it and as a failure for the others (the released "
        "scripts attack it too, so their number is usually higher)."
    )
    if listed.unloadable:
        text += (
            f" {listed.unloadable} listed clips that failed to load (missing file or decode error) are "
            "excluded."
        )
    return text


def table1_text(
    run: LoadedRun,
    rows: Sequence[Mapping[str, Any]],
    listed_rows: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Table 1 as text cells; with `listed_rows`, a "clips" column says which denominator each row uses."""
    whiteboxes = run.config.whitebox
    header = ["attack", *[f"{wb} -> black-box" for wb in whiteboxes], "average", "paper"]
    if listed_rows is not None:
        header.insert(1, "clips")

    def cells(row: Mapping[str, Any], clips: str | None) -> list[str]:
        line = [row["attack"], *([clips] if clips is not None else [])]
        line += [asr_interval_text(row["per_whitebox"][wb]) for wb in whiteboxes]
        line += [asr_interval_text(row["overall"]), "" if row["paper"] is None else f"{row['paper']:.2f}"]
        return line

    if listed_rows is None:
        return header, [cells(row, None) for row in rows]
    body = []
    for row, listed in zip(rows, listed_rows, strict=True):
        body += [cells(row, SELECTED), cells(listed, "all listed")]
    return header, body


def _paper_by_attack(config: ExperimentConfig) -> dict[str, float]:
    numbers = {}
    for attack in config.attacks:
        value = paper_number(config.paper_dataset, config.paper_key(attack))
        if value is not None:
            numbers[attack.name] = value
    return numbers


def _variant_stem(variant: str) -> str:
    return "" if variant == FLOAT else f"_{variant}"


# ------------------------------------------------------------------------------------------------
# vidadv evaluate
# ------------------------------------------------------------------------------------------------


def _gallery(
    run: LoadedRun,
    factories: Factories,
    out_dir: Path,
    count: int,
    outcomes: Outcomes | None = None,
) -> tuple[list[Any], str]:
    """Clean / adversarial / amplified-perturbation clips (lossless APNG) of the first clip under `count`
    attacks spread over the list, with each model's prediction (needs the dataset for the clean clip)."""
    if count <= 0:
        return [], ""
    try:
        dataset = factories.build_dataset(dict(run.config.dataset))
    except Exception as err:  # the dataset may not be reachable where the evaluation runs
        return [], f"gallery skipped: cannot open the dataset ({type(err).__name__}: {err})"
    items = []
    whitebox = run.config.whitebox[0]
    attacks = run.config.attacks
    amplification = 0.5 / run.config.eps
    k = min(count, len(attacks))  # show k attacks spread over the list (first and last included)
    shown = sorted({round(i * (len(attacks) - 1) / max(1, k - 1)) for i in range(k)})
    size = ""
    for clip_info in run.clips[:1]:
        try:
            clean, _label, _clip_id = check_item(dataset[clip_info.index], clip_info.index)
        except (OSError, ValueError, RuntimeError) as err:
            return (
                [],
                f"gallery skipped: cannot load clip {clip_info.clip_id!r} ({type(err).__name__}: {err})",
            )
        size = f"{clean.shape[-1]}\u00d7{clean.shape[-2]}"
        for attack in (attacks[i] for i in shown):
            path = run.layout.adv_path(whitebox, attack.name, clip_info.clip_id)
            if not path.exists():
                continue
            adversarial = load_tensors(path)["adv"].float()
            per_model = (outcomes.items() if outcomes else {}).get(
                (whitebox, attack.name, clip_info.clip_id), {}
            )
            predictions = [
                Prediction(model + (" (white-box)" if model == whitebox else ""), str(o.adv_pred), o.fooled)
                for model, o in per_model.items()
            ]
            items.append(
                gallery_item(
                    clean.float(),
                    adversarial,
                    out_dir / "gallery",
                    f"{slug(clip_info.clip_id)}_{slug(attack.name)}",
                    f"{attack.name} from {whitebox} on {clip_info.clip_id} (label {clip_info.label}). "
                    "Adversarial predictions:",
                    amplification=amplification,
                    predictions=predictions,
                    clean_name=slug(clip_info.clip_id),
                )
            )
    note = (
        f"Frames: lossless animated PNG at native {size} px, shown enlarged without smoothing. "
        f"Perturbation: 0.5 + {amplification:.1f} \u00d7 delta (amplified {amplification:.1f}\u00d7: "
        "\u00b1eps maps to black/white). Orange: the model is fooled."
    )
    return items, note


def _compute_matched_findings(
    outcomes: Outcomes, whiteboxes: Sequence[str], boot: Mapping[str, int]
) -> list[str]:
    """Findings sentences when the run has the compute-matched pair TT(10) / VR(10) (else none)."""
    a, b = COMPUTE_MATCHED
    if a not in outcomes.attacks or b not in outcomes.attacks:
        return []
    rows = paired_differences(outcomes, a, b, list(whiteboxes), **boot)
    return findings_sentences([{"a": a, "b": b, **r} for r in rows if r["model"] == BLACKBOX_AVERAGE])


def _frontier_findings(
    outcomes: Outcomes, rows: Sequence[Mapping[str, Any]], whiteboxes: Sequence[str], boot: Mapping[str, int]
) -> list[str]:
    """Findings sentences of a cost frontier (rows: its points as dicts): its best attack and the cheapest
    one not measurably worse (paired differences over the same clips, averaged over the white-box models
    as Table 1 does)."""
    if not rows:
        return []
    best = frontier_best(rows)
    overall = "all" if len(whiteboxes) > 1 else whiteboxes[0]
    differences = {}
    for row in rows:
        if row["gradient_evaluations"] < best["gradient_evaluations"]:
            paired = paired_differences(outcomes, row["attack"], best["attack"], list(whiteboxes), **boot)
            differences[row["attack"]] = next(
                r for r in paired if r["whitebox"] == overall and r["model"] == BLACKBOX_AVERAGE
            )
    return frontier_findings(rows, differences)


def _evaluate_provenance(
    run: LoadedRun, elapsed: float, bootstrap: int, settings: Mapping[str, str]
) -> dict[str, str]:
    config = run.config
    info = {
        "vidadv": versions().get("vidadv", "?"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions().items() if k != "vidadv"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in ["vidadv", *sys.argv[1:]]),
        "run time": f"{elapsed:.0f} s (this evaluation)",
        "run folder": str(run.layout.root),
        "seed": str(config.seed),
        "config hash": run.config_hash,
        "data": f"{config.dataset.get('type', '?')}, {len(run.clips)} selected clips",
        "models": ", ".join(config.model_labels),
        "selection rule": f"{config.selection}"
        + (f", {config.clips_per_class} clip(s) per class" if config.clips_per_class else ""),
        "bootstrap": f"{bootstrap} resamples of clips, percentile 95 % intervals",
        "budget": f"L\u221e eps {config.eps * 255:.2f}/255, {config.steps} steps",
    }
    for name, text in settings.items():
        info[f"attack {name}"] = text
    return info


def frontier_costs(run: LoadedRun) -> tuple[dict[str, AttackCost] | None, str]:
    """The attacks' costs when they span more than one gradient-evaluation count (a frontier to write),
    else None; with a note saying why a run has no frontier when its counts are not recorded."""
    try:
        costs = run_costs(run.config, run.layout)
    except ValueError as err:
        return None, f"no cost frontier: {err}"
    return (costs, "") if spans_several_budgets(costs) else (None, "")


@holds_eval_lock
def run_evaluate(
    run_dir: str | os.PathLike[str],
    quantize: bool = False,
    h264: bool = False,
    batch_size: int | None = None,
    device: str | None = None,
    *,
    gallery: int = 3,
    factories: Factories = DEFAULT_FACTORIES,
    transforms: Mapping[str, Transform] | None = None,
    progress: bool = True,
) -> int:
    """`vidadv evaluate RUN`: ASR tables, Table 1, Figure 3, results.json, outcomes.csv, report.html, and
    the cost frontier (frontier.csv/.md/.png, `vidadv.experiments.frontier`) whenever the run's attacks
    span more than one gradient-evaluation count per clip.

    ASR counts the selected (attacked) clips; where the selection dropped listed clips because a model
    misclassified them clean, the ASR matrix and Table 1 are also given over all listed clips (see
    `vidadv.evaluation.outcomes`). Returns 0, or 1 when adversarial clips of the run are missing (the
    tables then cover those present).
    """
    started = time.perf_counter()
    run = load_run(run_dir, check_model_names=factories.real_models)
    config, layout = run.config, run.layout
    variants = variant_names(quantize, h264, config.h264_crf)
    predictions, missing = collect_predictions(
        run,
        variants,
        factories=factories,
        transforms=transforms,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    report = ReportWriter(layout.eval_dir)
    paper = _paper_by_attack(config)
    paper_keys = {a.name: config.paper_key(a) for a in config.attacks}
    boot = {"n_boot": config.bootstrap_samples, "seed": config.seed}
    listed = run.clip_list.reported
    expected = len(run.clips) * len(config.whitebox) * len(config.attacks)
    denominator = (
        f"ASR = share of the attacked clips each model misclassifies; {len(run.clips)} clips per "
        f"(white-box, attack) row ({expected - len(missing)} of {expected} adversarial clips present)."
    )
    listed_note = listed_text(run)
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "config_hash": run.config_hash,
        "versions": versions(),
        "seed": config.seed,
        "bootstrap_samples": config.bootstrap_samples,
        "paper_dataset": config.paper_dataset,
        "denominator": denominator,
        **({"listed_denominator": listed_note} if listed_note else {}),
        "num_clips": len(run.clips),
        "missing": [list(item) for item in missing],
        "variants": {},
    }
    costs, frontier_note = frontier_costs(run)
    if frontier_note:
        results["frontier_note"] = frontier_note
    run_text = f"{layout.root}\nconfig hash {run.config_hash}\n{denominator}"
    report.section(Section("Run", text=run_text + (f"\n{listed_note}" if listed_note else "")))
    outcome_lines: list[list[Any]] = []
    gallery_outcomes: Outcomes | None = None
    findings: list[str] = []
    overall_by_variant: dict[str, dict[str, str]] = {}
    for variant in variants:
        outcomes = run_outcomes(run, predictions[variant])
        outcome_lines += [
            [o.whitebox, o.attack, o.clip_id, o.model, o.label, o.adv_pred, int(o.fooled), variant]
            for o in outcome_records(outcomes)
        ]
        stem = _variant_stem(variant)
        matrix = asr_matrix(outcomes)
        report.asr_matrix(matrix, f"asr_matrix{stem}", paper, title=f"ASR matrix ({variant})")
        t1 = table1(outcomes, paper_keys=paper_keys, paper_dataset=config.paper_dataset, **boot)
        record: dict[str, Any] = {"asr_matrix": [r.to_dict() for r in matrix.rows], "table1": t1}
        t1_listed = None
        if listed:
            matrix_listed = asr_matrix(outcomes, LISTED)
            report.asr_matrix(
                matrix_listed,
                f"asr_matrix_listed{stem}",
                paper,
                title=f"ASR matrix, all listed clips ({variant})",
            )
            t1_listed = table1(
                outcomes,
                paper_keys=paper_keys,
                paper_dataset=config.paper_dataset,
                denominator=LISTED,
                **boot,
            )
            record["asr_matrix_listed"] = [r.to_dict() for r in matrix_listed.rows]
            record["table1_listed"] = t1_listed
        header, body = table1_text(run, t1, t1_listed)
        report.table(
            f"table1{stem}",
            header,
            body,
            title=f"Average black-box ASR (%), 95 % bootstrap intervals over clips ({variant})",
        )
        averages = {
            (wb, row["attack"]): (cell["asr"], cell["lo"], cell["hi"])
            for row in t1
            for wb, cell in row["per_whitebox"].items()
            if "asr" in cell
        }
        plot_paths = report.plots(
            plot_figure3(matrix, report.folder, prefix=f"figure3{stem}", averages=averages)
        )
        plots = [
            Figure(path, transfer_plot_alt(wb, transfer_bars(matrix, wb, averages)))
            for wb, path in zip(matrix.whiteboxes, plot_paths, strict=True)
        ]
        if variant == FLOAT:
            gallery_outcomes = outcomes
            findings = _compute_matched_findings(outcomes, config.whitebox, boot)
        overall_by_variant[variant] = {row["attack"]: asr_interval_text(row["overall"]) for row in t1}
        record["predictions"] = [
            {
                "whitebox": wb,
                "attack": attack,
                "clip_id": clip_id,
                "label": per_model[config.model_labels[0]].label,
                "preds": {m: o.adv_pred for m, o in per_model.items()},
            }
            for (wb, attack, clip_id), per_model in outcomes.items().items()
        ]
        results["variants"][variant] = record
        m_header, m_rows = asr_table_rows(matrix, paper)
        report.show(f"ASR matrix, {variant} (%; * = white-box model)", m_header, m_rows)
        tables = [
            asr_html_table(matrix, f"ASR (%) of each model; shaded * = white-box. {denominator}", paper)
        ]
        if listed:
            l_header, l_rows = asr_table_rows(matrix_listed, paper)
            report.show(
                f"ASR matrix over all listed clips, {variant} (%; * = white-box model)", l_header, l_rows
            )
            tables.append(
                asr_html_table(matrix_listed, f"ASR (%) over all listed clips. {listed_note}", paper)
            )
        report.show(f"Average black-box ASR (%) with 95 % bootstrap interval, {variant}", header, body)
        tables.append(HtmlTable(header, body, "Average black-box ASR (%) with 95 % bootstrap intervals"))
        report.section(Section(f"Results: {variant}", tables=tables, images=plots))
        if costs is not None and outcomes.rows:
            points, section = write_frontier(
                report, outcomes, costs, **boot, stem=f"frontier{stem}", label=variant
            )
            record["frontier"] = [asdict(point) for point in points]
            if variant == FLOAT:
                findings = findings + _frontier_findings(outcomes, record["frontier"], config.whitebox, boot)
            # the float frontier is the run's headline view: it follows "Run", before the per-model tables
            report.section(section, position=1 if variant == FLOAT else None)
    if len(variants) > 1:
        header = ["attack", *variants, "paper"]
        body = [
            [
                a.name,
                *[overall_by_variant[v][a.name] for v in variants],
                f"{paper[a.name]:.2f}" if a.name in paper else "",
            ]
            for a in config.attacks
        ]
        report.text("variants.md", markdown_table(header, body) + "\n")
        report.show("Average black-box ASR (%) per evaluation variant", header, body)
        report.section(Section("Variants side by side", tables=[HtmlTable(header, body)]), position=1)

    header = ["whitebox", "attack", "clip_id", "model", "label", "pred", "fooled", "variant"]
    report.csv("outcomes.csv", header, outcome_lines)
    report.json("results.json", results)
    items, note = _gallery(run, factories, report.folder, gallery, gallery_outcomes)
    if items or note:
        report.section(Section("Gallery", gallery=items, gallery_note=note))
    summary = layout.root / "attack_summary.json"
    settings = attack_settings_text(
        json.loads(summary.read_text()).get("attack_settings", {}) if summary.is_file() else {}
    )
    provenance = _evaluate_provenance(run, time.perf_counter() - started, config.bootstrap_samples, settings)
    html = report.html(
        f"vidadv evaluation: {config.name or layout.root.name}", findings=findings, provenance=provenance
    )
    print(f"\n{denominator}")
    if listed_note:
        print(listed_note)
    if config.paper_dataset is None and any(config.paper_key(a) for a in config.attacks):
        print(f"(set paper_dataset to one of {', '.join(PAPER_NUMBERS)} to print the paper's numbers)")
    if frontier_note:
        print(frontier_note)
    frontier_files = "frontier*.csv/.md/.png, " if costs is not None else ""
    print(
        f"wrote {report.folder}/ (asr_matrix*.csv/.md, table1*.csv/.md, figure3*.png, {frontier_files}"
        f"outcomes.csv, results.json, {html.name})"
    )
    if missing:
        print(
            f"WARNING: {len(missing)} adversarial clips are missing; "
            "finish `vidadv attack` and evaluate again"
        )
        return 1
    return 0


# ------------------------------------------------------------------------------------------------
# vidadv compare
# ------------------------------------------------------------------------------------------------


def _resolve_variant(variant: str, crf: int) -> str:
    if variant in (FLOAT, UINT8):
        return variant
    if variant == "h264":
        return h264_variant(crf)
    if variant.startswith("h264-crf"):
        return variant
    raise ValueError(f"variant must be one of float, uint8, h264 (or h264-crfN); got {variant!r}")


def compare_rows(
    run: LoadedRun,
    outcomes: Outcomes,
    attack_a: str,
    attack_b: str,
    whiteboxes: Sequence[str],
) -> list[dict[str, Any]]:
    """`paired_differences` of a run's outcomes table (clips in selection order)."""
    return paired_differences(
        outcomes,
        attack_a,
        attack_b,
        whiteboxes,
        n_boot=run.config.bootstrap_samples,
        seed=run.config.seed,
        clip_order=[c.clip_id for c in run.clips],
    )


#: The model groups of `model_groups`: the catalogue's "transformer" family, and every other family.
TRANSFORMER, CNN = "transformer", "cnn"


def model_groups(config: ExperimentConfig) -> dict[str, str] | None:
    """Model label -> "cnn" or "transformer" (catalogue family), or None when a model is not catalogued."""
    known = set(available_models())
    if any(spec.name not in known for spec in config.models):
        return None
    return {
        spec.label: TRANSFORMER if get_model_entry(spec.name).family == TRANSFORMER else CNN
        for spec in config.models
    }


def compare_direction_rows(
    run: LoadedRun,
    outcomes: Outcomes,
    attack_a: str,
    attack_b: str,
    whiteboxes: Sequence[str],
) -> list[dict[str, Any]]:
    """`direction_differences` by CNN / transformer group; [] unless the run's models span both groups."""
    groups = model_groups(run.config)
    if groups is None or len(set(groups.values())) < 2:
        return []
    return direction_differences(
        outcomes,
        attack_a,
        attack_b,
        groups,
        n_boot=run.config.bootstrap_samples,
        seed=run.config.seed,
        whiteboxes=whiteboxes,
        clip_order=[c.clip_id for c in run.clips],
    )


@holds_eval_lock
def run_compare(
    run_dir: str | os.PathLike[str],
    attack_a: str,
    attack_b: str,
    *,
    variant: str = FLOAT,
    whitebox: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    factories: Factories = DEFAULT_FACTORIES,
    transforms: Mapping[str, Transform] | None = None,
    progress: bool = True,
) -> int:
    """`vidadv compare RUN A B`: paired ASR difference between attacks A and B on the same clips.

    Uses (and fills) the evaluation cache, so after `vidadv evaluate` it runs no model.
    """
    run = load_run(run_dir, check_model_names=factories.real_models)
    config = run.config
    for name in (attack_a, attack_b):
        config.attack(name)  # clear error listing the attacks of the run
    if attack_a == attack_b:
        raise ValueError(f"compare needs two different attacks, got {attack_a!r} twice")
    whiteboxes = list(config.whitebox)
    if whitebox is not None:
        if whitebox not in config.whitebox:
            raise ValueError(
                f"unknown white-box model {whitebox!r}; white-box models: {', '.join(config.whitebox)}"
            )
        whiteboxes = [whitebox]
    resolved = _resolve_variant(variant, config.h264_crf)
    predictions, missing = collect_predictions(
        run,
        [resolved],
        attacks=[attack_a, attack_b],
        whiteboxes=whiteboxes,
        factories=factories,
        transforms=transforms,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    outcomes = run_outcomes(run, predictions[resolved])
    rows = compare_rows(run, outcomes, attack_a, attack_b, whiteboxes)
    if not rows:
        raise ValueError(f"no clip has adversarial files for both {attack_a!r} and {attack_b!r}")

    def difference_cells(r: Mapping[str, Any]) -> list[str]:
        """ASR A, ASR B, A - B (percent) and the 95 % interval of one paired row."""
        return [
            *(f"{100 * r[key]:.2f}" for key in ("asr_a", "asr_b", "diff")),
            f"[{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]",
        ]

    header = ["white-box", "model", "n clips", f"ASR {attack_a}", f"ASR {attack_b}", "diff (A-B)", "95% CI"]
    header += ["only A", "only B", "McNemar p"]
    body = [
        [
            r["whitebox"],
            r["model"],
            r["n"],
            *difference_cells(r),
            "" if r["only_a"] is None else r["only_a"],
            "" if r["only_b"] is None else r["only_b"],
            "" if r["p_mcnemar"] is None else f"{r['p_mcnemar']:.4g}",
        ]
        for r in rows
    ]
    stem = f"compare_{slug(attack_a)}_vs_{slug(attack_b)}{_variant_stem(resolved)}"
    report = ReportWriter(run.layout.eval_dir, echo=False)
    report.table(stem, header, body)
    forest = plot_forest(
        [
            ForestRow(
                f"{r['model']} (white-box {r['whitebox']})",
                r["diff"],
                r["lo"],
                r["hi"],
                model_color(r["model"]),
            )
            for r in rows
        ],
        report.folder / f"{stem}.png",
        title=f"{attack_a} - {attack_b}: paired difference in ASR (95 % CI)",
        xlabel=f"ASR({attack_a}) - ASR({attack_b}) (percentage points)",
    )
    report.plots([forest])
    directions = compare_direction_rows(run, outcomes, attack_a, attack_b, whiteboxes)
    direction_header = [
        "direction", "n clips", "pairs", f"ASR {attack_a}", f"ASR {attack_b}", "diff (A-B)", "95% CI"
    ]  # fmt: skip
    direction_body = [
        [
            r["direction"],
            r["n"],
            r["pairs"],
            *difference_cells(r),
        ]
        for r in directions
    ]
    if directions:
        report.table(
            f"{stem}_directions",
            direction_header,
            direction_body,
            title=f"{attack_a} - {attack_b} by transfer direction (white-box group -> black-box group)",
        )
    report.json(
        f"{stem}.json",
        {
            "attack_a": attack_a,
            "attack_b": attack_b,
            "variant": resolved,
            "rows": rows,
            "directions": directions,
            "seed": config.seed,
        },
    )
    print(f"== {attack_a} vs {attack_b} ({resolved}): ASR (%) on the same clips ==")
    print(format_table(header, body))
    if directions:
        print("== by transfer direction: share of (white-box, black-box) pairs fooled, per clip ==")
        print(format_table(direction_header, direction_body))
    print(
        "diff = ASR(A) - ASR(B) in percentage points; 95% CI: paired bootstrap over clips "
        f"({config.bootstrap_samples} resamples); McNemar: exact two-sided binomial test on the clips only "
        "one attack fools (single models only)."
    )
    print(f"wrote {report.folder / stem}.csv/.md/.json/.png")
    if missing:
        print(f"WARNING: {len(missing)} adversarial clips are missing; those clips are left out")
        return 1
    return 0
