"""`vidadv evaluate` and `vidadv compare`: transfer attack success rates of a finished attack run.

Every model of the config classifies every adversarial clip of the run. ASR = share of the attacked
clips (the selected clips, each attacked once per white-box model and attack) that a model
misclassifies; the denominator is printed with every table. Variants: "float" (the saved clips),
"uint8" (rounded to 8-bit pixels) and "h264-crfN" (encoded to H.264 and decoded back), i.e. what the
adversarial clip would be after saving it as images or as a video.

Predictions are cached per (variant, white-box, attack) in eval/cache/, keyed by the model (its spec
and dtype) and the clip file's size and mtime, so reruns are cheap and an interrupted evaluation resumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from vidadv.evaluation.paper import PAPER_NUMBERS, paper_number
from vidadv.evaluation.report import (
    AsrMatrix,
    HtmlTable,
    Section,
    asr_table_rows,
    csv_text,
    gallery_item,
    markdown_table,
    plot_figure3,
    write_asr_tables,
    write_html_report,
)
from vidadv.experiments.config import ExperimentConfig, config_from_dict, resolve_device
from vidadv.experiments.runfiles import ClipVerifier, holds_eval_lock
from vidadv.experiments.runtime import (
    DatasetFactory,
    ModelFactory,
    RunLayout,
    SelectedClip,
    batched,
    check_item,
    default_dataset_factory,
    format_table,
    jsonable,
    load_selection,
    predict,
    prepare_model,
    read_run_config,
    selected_clips,
    slug,
    versions,
)
from vidadv.utils.distributed import distributed_env
from vidadv.utils.io import atomic_write_json, atomic_write_text, load_tensors, read_json
from vidadv.utils.stats import (
    Interval,
    bootstrap_mean_ci,
    mcnemar,
    mcnemar_counts,
    paired_bootstrap_diff,
)

FLOAT = "float"
UINT8 = "uint8"
CACHE_FORMAT = "vidadv-eval-cache/1"
Transform = Callable[[torch.Tensor], torch.Tensor]
ItemKey = tuple[str, str, str]  # (white-box, attack, clip id)


def h264_variant(crf: int) -> str:
    return f"h264-crf{crf}"


def variant_names(quantize: bool, h264: bool, crf: int) -> list[str]:
    """The evaluated variants: always "float", then "uint8" and/or "h264-crfN" when asked for."""
    return [FLOAT] + ([UINT8] if quantize else []) + ([h264_variant(crf)] if h264 else [])


def default_transform(variant: str) -> Transform | None:
    """The clip transform of a variant (None for "float"): vidadv.data.video's quantize / H.264 round trip."""
    if variant == FLOAT:
        return None
    from vidadv.data.video import h264_roundtrip, quantize_uint8

    if variant == UINT8:
        return quantize_uint8
    if variant.startswith("h264-crf"):
        crf = int(variant.removeprefix("h264-crf"))
        return lambda clip: h264_roundtrip(clip, crf=crf)
    raise ValueError(f"unknown evaluation variant {variant!r}; variants: float, uint8, h264-crfN")


# ------------------------------------------------------------------------------------------------
# Loading a run
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedRun:
    config: ExperimentConfig
    layout: RunLayout
    clips: list[SelectedClip]
    config_hash: str


def load_run(run_dir: str | os.PathLike[str], check_model_names: bool = True) -> LoadedRun:
    """The config and clip selection of a run folder written by `vidadv attack`."""
    if distributed_env()[1] > 1:
        raise ValueError("evaluate/compare run in a single process; start them without torchrun")
    layout = RunLayout.of(run_dir)
    if not layout.root.is_dir():
        raise FileNotFoundError(f"run folder not found: {str(layout.root)!r}")
    record = read_run_config(layout)
    if record is None:
        raise ValueError(
            f"{str(layout.root)!r} has no run_config.json: is it a folder written by `vidadv attack`?"
        )
    kwargs: dict[str, Any] = {"check_dataset_files": False, "attack_names": None, "dataset_check": None}
    if not check_model_names:
        kwargs["model_names"] = None
    config = config_from_dict(record["config"], source=str(layout.run_config), **kwargs)
    # the run folder is authoritative, wherever it has been moved to
    config = replace(config, output_dir=str(layout.root))
    clips = selected_clips(load_selection(layout))
    return LoadedRun(config, layout, clips, record["config_hash"])


# ------------------------------------------------------------------------------------------------
# Predictions with a cache
# ------------------------------------------------------------------------------------------------


class _ModelPool:
    """Loads each model on first use (a fully cached rerun loads none)."""

    def __init__(
        self, config: ExperimentConfig, factory: ModelFactory | None, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.config, self.factory, self.device, self.dtype = config, factory, device, dtype
        self.models: dict[str, nn.Module] = {}

    def get(self, label: str) -> nn.Module:
        if label not in self.models:
            self.models[label] = prepare_model(
                self.factory, self.config.model(label), self.device, self.dtype
            )
        return self.models[label]


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _cache_path(layout: RunLayout, variant: str, whitebox: str, attack: str) -> Path:
    return layout.eval_dir / "cache" / variant / slug(whitebox) / f"{slug(attack)}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except ValueError:
        return {}  # unreadable cache: recompute
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    return dict(data.get("entries", {}))


def collect_predictions(
    run: LoadedRun,
    variants: Sequence[str],
    *,
    attacks: Sequence[str] | None = None,
    whiteboxes: Sequence[str] | None = None,
    model_factory: ModelFactory | None = None,
    transforms: Mapping[str, Transform] | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
    dataset_factory: DatasetFactory | None = None,
) -> tuple[dict[str, dict[ItemKey, dict[str, int]]], list[ItemKey]]:
    """Predictions of every model on every adversarial clip, per variant; plus the missing clips.

    Returns ({variant: {(white-box, attack, clip id): {model label: predicted class}}}, missing items).
    Every clip file is verified before it is scored (`vidadv.experiments.runfiles.ClipVerifier`; the
    clean clips for its budget check come from `dataset_factory`).
    """
    config, layout = run.config, run.layout
    dtype = config.torch_dtype
    size = batch_size or config.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    pool = _ModelPool(config, model_factory, resolve_device(device or config.device), dtype)
    model_keys = {m.label: f"{m.label}@{m.spec_hash()}-{config.dtype}" for m in config.models}
    attack_names = list(attacks) if attacks is not None else [a.name for a in config.attacks]
    whitebox_names = list(whiteboxes) if whiteboxes is not None else list(config.whitebox)

    present: dict[tuple[str, str], list[tuple[SelectedClip, Path]]] = {}
    missing: list[ItemKey] = []
    for whitebox in whitebox_names:
        for attack in attack_names:
            files = present.setdefault((whitebox, attack), [])
            for clip in run.clips:
                path = layout.adv_path(whitebox, attack, clip.clip_id)
                if path.exists():
                    files.append((clip, path))
                else:
                    missing.append((whitebox, attack, clip.clip_id))
    verifier = ClipVerifier(config, dataset_factory)
    verifier.check_budgets(present)  # headers only: cached predictions of another budget's files are refused

    # What is left to compute, per variant and (white-box, attack) cache file.
    plan: list[tuple[str, str, str, dict[str, Any], list[tuple[SelectedClip, Path]]]] = []
    total = 0
    for variant in variants:
        for whitebox in whitebox_names:
            for attack in attack_names:
                entries = _read_cache(_cache_path(layout, variant, whitebox, attack))
                todo = []
                for clip, path in present[(whitebox, attack)]:
                    entry = entries.get(path.name)
                    if (
                        entry is None
                        or entry.get("fingerprint") != _fingerprint(path)
                        or any(key not in entry.get("preds", {}) for key in model_keys.values())
                    ):
                        todo.append((clip, path))
                plan.append((variant, whitebox, attack, entries, todo))
                total += len(todo)

    bar = tqdm(total=total, desc="evaluate", unit="clip", disable=not progress or total == 0)
    results: dict[str, dict[ItemKey, dict[str, int]]] = {variant: {} for variant in variants}
    for variant, whitebox, attack, entries, todo in plan:
        transform = (
            transforms[variant] if transforms and variant in transforms else default_transform(variant)
        )
        cache_file = _cache_path(layout, variant, whitebox, attack)
        bar.set_postfix_str(f"{variant} {whitebox} / {attack}", refresh=False)
        for batch in batched(todo, size):
            clips = [verifier.load(path, attack, clip) for clip, path in batch]  # checksum, budget, range
            stacked = torch.stack(clips)
            if transform is not None:
                stacked = torch.stack([transform(clip) for clip in stacked])
            for _clip, path in batch:
                entry = entries.get(path.name)
                if entry is None or entry.get("fingerprint") != _fingerprint(path):
                    entries[path.name] = {"fingerprint": _fingerprint(path), "preds": {}}
            for label, key in model_keys.items():
                needs = [i for i, (_c, path) in enumerate(batch) if key not in entries[path.name]["preds"]]
                if not needs:
                    continue
                preds = predict(pool.get(label), stacked[needs], dtype).tolist()
                for i, pred in zip(needs, preds, strict=True):
                    entries[batch[i][1].name]["preds"][key] = int(pred)
            atomic_write_json(cache_file, {"format": CACHE_FORMAT, "entries": entries}, indent=None)
            bar.update(len(batch))
        for clip, path in present[(whitebox, attack)]:
            preds = entries[path.name]["preds"]
            results[variant][(whitebox, attack, clip.clip_id)] = {
                label: int(preds[key]) for label, key in model_keys.items()
            }
    bar.close()
    return results, missing


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------


def outcome_rows(run: LoadedRun, predictions: Mapping[ItemKey, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Per-clip outcomes: whitebox, attack, clip_id, model, label, pred, fooled (1 = misclassified)."""
    labels = {clip.clip_id: clip.label for clip in run.clips}
    rows = []
    for (whitebox, attack, clip_id), preds in predictions.items():
        for model in run.config.model_labels:
            pred = preds[model]
            label = labels[clip_id]
            rows.append(
                {
                    "whitebox": whitebox,
                    "attack": attack,
                    "clip_id": clip_id,
                    "model": model,
                    "label": label,
                    "pred": pred,
                    "fooled": int(pred != label),
                }
            )
    return rows


def blackbox_fractions(
    run: LoadedRun, predictions: Mapping[ItemKey, Mapping[str, int]]
) -> dict[ItemKey, float]:
    """Per (white-box, attack, clip): the fraction of black-box models the clip fools."""
    labels = {clip.clip_id: clip.label for clip in run.clips}
    fractions = {}
    for (whitebox, attack, clip_id), preds in predictions.items():
        others = [m for m in run.config.model_labels if m != whitebox]
        if others:
            fractions[(whitebox, attack, clip_id)] = sum(preds[m] != labels[clip_id] for m in others) / len(
                others
            )
    return fractions


def _interval_dict(interval: Interval | None) -> dict[str, float] | None:
    return None if interval is None else {"asr": interval.estimate, "lo": interval.lo, "hi": interval.hi}


def table1(run: LoadedRun, predictions: Mapping[ItemKey, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Table-1-style rows: per attack, the black-box average ASR per white-box model and over all of them.

    Each comes with a 95 % bootstrap interval resampling clips. "overall" averages, per clip, over the
    white-box models, then over clips. `paper` is the published number where the attack has one.
    """
    config = run.config
    fractions = blackbox_fractions(run, predictions)
    rows = []
    for attack in config.attacks:
        row: dict[str, Any] = {
            "attack": attack.name,
            "paper_key": config.paper_key(attack),
            "per_whitebox": {},
        }
        per_clip: dict[str, list[float]] = {}
        for whitebox in config.whitebox:
            values = [fractions[k] for k in fractions if k[0] == whitebox and k[1] == attack.name]
            for key in fractions:
                if key[0] == whitebox and key[1] == attack.name:
                    per_clip.setdefault(key[2], []).append(fractions[key])
            interval = (
                bootstrap_mean_ci(values, n_boot=config.bootstrap_samples, seed=config.seed)
                if values
                else None
            )
            row["per_whitebox"][whitebox] = {"n": len(values), **(_interval_dict(interval) or {})}
        overall_values = [sum(v) / len(v) for v in per_clip.values()]
        overall = (
            bootstrap_mean_ci(overall_values, n_boot=config.bootstrap_samples, seed=config.seed)
            if overall_values
            else None
        )
        row["overall"] = {"n": len(overall_values), **(_interval_dict(overall) or {})}
        row["paper"] = paper_number(config.paper_dataset, row["paper_key"])
        rows.append(row)
    return rows


def _ci_text(cell: Mapping[str, Any]) -> str:
    if "asr" not in cell:
        return "-"
    return f"{100 * cell['asr']:.2f} [{100 * cell['lo']:.1f}, {100 * cell['hi']:.1f}]"


def table1_text(run: LoadedRun, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["attack", *[f"{wb} -> black-box" for wb in run.config.whitebox], "average", "paper"]
    body = []
    for row in rows:
        cells = [row["attack"]]
        cells += [_ci_text(row["per_whitebox"][wb]) for wb in run.config.whitebox]
        cells.append(_ci_text(row["overall"]))
        cells.append("" if row["paper"] is None else f"{row['paper']:.2f}")
        body.append(cells)
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
    run: LoadedRun, dataset_factory: DatasetFactory | None, out_dir: Path, count: int
) -> tuple[list[Any], str]:
    """A few clean / adversarial / perturbation GIFs (needs the dataset for the clean clips)."""
    if count <= 0:
        return [], ""
    try:
        dataset = (dataset_factory or default_dataset_factory)(dict(run.config.dataset))
    except Exception as err:  # the dataset may not be reachable where the evaluation runs
        return [], f"gallery skipped: cannot open the dataset ({type(err).__name__}: {err})"
    items = []
    whitebox = run.config.whitebox[0]
    attacks = run.config.attacks
    k = min(count, len(attacks))  # show k attacks spread over the list (first and last included)
    shown = sorted({round(i * (len(attacks) - 1) / max(1, k - 1)) for i in range(k)})
    for clip_info in run.clips[:1]:
        try:
            clean, _label, _clip_id = check_item(dataset[clip_info.index], clip_info.index)
        except (OSError, ValueError, RuntimeError) as err:
            return (
                [],
                f"gallery skipped: cannot load clip {clip_info.clip_id!r} ({type(err).__name__}: {err})",
            )
        for attack in (attacks[i] for i in shown):
            path = run.layout.adv_path(whitebox, attack.name, clip_info.clip_id)
            if not path.exists():
                continue
            adversarial = load_tensors(path)["adv"].float()
            scale = 112 / max(clean.shape[-2:])
            items.append(
                gallery_item(
                    clean.float(),
                    adversarial,
                    out_dir / "gallery",
                    f"{slug(clip_info.clip_id)}_{slug(attack.name)}",
                    f"{clip_info.clip_id} (label {clip_info.label}), {attack.name} on {whitebox}",
                    scale=scale,
                )
            )
    return items, ""


@holds_eval_lock
def run_evaluate(
    run_dir: str | os.PathLike[str],
    quantize: bool = False,
    h264: bool = False,
    batch_size: int | None = None,
    device: str | None = None,
    *,
    gallery: int = 3,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
    transforms: Mapping[str, Transform] | None = None,
    progress: bool = True,
) -> int:
    """`vidadv evaluate RUN`: ASR tables, Table 1, Figure 3, results.json, outcomes.csv, report.html.

    Returns 0, or 1 when adversarial clips of the run are missing (the tables then cover those present).
    """
    run = load_run(run_dir, check_model_names=model_factory is None)
    config, layout = run.config, run.layout
    variants = variant_names(quantize, h264, config.h264_crf)
    predictions, missing = collect_predictions(
        run,
        variants,
        model_factory=model_factory,
        transforms=transforms,
        batch_size=batch_size,
        device=device,
        progress=progress,
        dataset_factory=dataset_factory,
    )
    out = layout.eval_dir
    paper = _paper_by_attack(config)
    expected = len(run.clips) * len(config.whitebox) * len(config.attacks)
    denominator = (
        f"ASR = share of the attacked clips each model misclassifies; {len(run.clips)} clips per "
        f"(white-box, attack) row ({expected - len(missing)} of {expected} adversarial clips present)."
    )
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "config_hash": run.config_hash,
        "versions": versions(),
        "seed": config.seed,
        "bootstrap_samples": config.bootstrap_samples,
        "paper_dataset": config.paper_dataset,
        "denominator": denominator,
        "num_clips": len(run.clips),
        "missing": [list(item) for item in missing],
        "variants": {},
    }
    sections: list[Section] = [
        Section("Run", text=f"{layout.root}\nconfig hash {run.config_hash}\n{denominator}")
    ]
    outcome_lines: list[list[Any]] = []
    labels = {clip.clip_id: clip.label for clip in run.clips}
    overall_by_variant: dict[str, dict[str, str]] = {}
    for variant in variants:
        rows = outcome_rows(run, predictions[variant])
        outcome_lines += [
            [r[k] for k in ("whitebox", "attack", "clip_id", "model", "label", "pred", "fooled")] + [variant]
            for r in rows
        ]
        matrix = AsrMatrix.from_outcomes(rows, models=config.model_labels)
        order = {
            (wb, a.name): i
            for i, (wb, a) in enumerate((wb, a) for wb in config.whitebox for a in config.attacks)
        }
        matrix = AsrMatrix(
            matrix.models, tuple(sorted(matrix.rows, key=lambda r: order[(r.whitebox, r.attack)]))
        )
        stem = _variant_stem(variant)
        write_asr_tables(matrix, out, f"asr_matrix{stem}", paper, title=f"ASR matrix ({variant})")
        t1 = table1(run, predictions[variant])
        header, body = table1_text(run, t1)
        atomic_write_text(out / f"table1{stem}.csv", csv_text(header, body))
        atomic_write_text(
            out / f"table1{stem}.md",
            f"## Average black-box ASR (%), 95 % bootstrap intervals over clips ({variant})\n\n"
            + markdown_table(header, body)
            + "\n",
        )
        plots = plot_figure3(matrix, out, prefix=f"figure3{stem}")
        overall_by_variant[variant] = {row["attack"]: _ci_text(row["overall"]) for row in t1}
        results["variants"][variant] = {
            "asr_matrix": [r.to_dict() for r in matrix.rows],
            "table1": t1,
            "predictions": [
                {
                    "whitebox": wb,
                    "attack": attack,
                    "clip_id": clip_id,
                    "label": labels[clip_id],
                    "preds": preds,
                }
                for (wb, attack, clip_id), preds in predictions[variant].items()
            ],
        }
        m_header, m_rows = asr_table_rows(matrix, paper)
        print(f"\n== ASR matrix, {variant} (%; * = white-box model) ==")
        print(format_table(m_header, m_rows))
        print(f"\n== Average black-box ASR (%) with 95 % bootstrap interval, {variant} ==")
        print(format_table(header, body))
        sections.append(
            Section(
                f"Results: {variant}",
                tables=[
                    HtmlTable(m_header, m_rows, f"ASR (%) of each model; * = white-box. {denominator}"),
                    HtmlTable(header, body, "Average black-box ASR (%) with 95 % bootstrap intervals"),
                ],
                images=[str(p) for p in plots],
            )
        )
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
        atomic_write_text(out / "variants.md", markdown_table(header, body) + "\n")
        print("\n== Average black-box ASR (%) per evaluation variant ==")
        print(format_table(header, body))
        sections.insert(1, Section("Variants side by side", tables=[HtmlTable(header, body)]))

    header = ["whitebox", "attack", "clip_id", "model", "label", "pred", "fooled", "variant"]
    atomic_write_text(out / "outcomes.csv", csv_text(header, outcome_lines))
    atomic_write_json(out / "results.json", jsonable(results))
    items, note = _gallery(run, dataset_factory, out, gallery)
    if items or note:
        sections.append(Section("Gallery", text=note, gallery=items))
    report = write_html_report(out, f"vidadv evaluation: {config.name or layout.root.name}", sections)
    print(f"\n{denominator}")
    if config.paper_dataset is None and any(config.paper_key(a) for a in config.attacks):
        print(f"(set paper_dataset to one of {', '.join(PAPER_NUMBERS)} to print the paper's numbers)")
    print(
        f"wrote {out}/ (asr_matrix*.csv/.md, table1*.csv/.md, figure3*.png, outcomes.csv, "
        f"results.json, {report.name})"
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


def compare_attacks(
    run: LoadedRun,
    predictions: Mapping[ItemKey, Mapping[str, int]],
    attack_a: str,
    attack_b: str,
    whiteboxes: Sequence[str],
) -> list[dict[str, Any]]:
    """Paired comparison rows: per (white-box, black-box model), per white-box average, overall average.

    diff = ASR(A) - ASR(B) on the same clips, 95 % paired bootstrap interval (resampling clips), and for
    single models the exact McNemar test on the discordant clips.
    """
    config = run.config
    labels = {clip.clip_id: clip.label for clip in run.clips}
    boot = {"n_boot": config.bootstrap_samples, "seed": config.seed}
    rows: list[dict[str, Any]] = []
    overall_a: dict[str, list[float]] = {}
    overall_b: dict[str, list[float]] = {}
    for whitebox in whiteboxes:
        clip_ids = [
            c.clip_id
            for c in run.clips
            if (whitebox, attack_a, c.clip_id) in predictions
            and (whitebox, attack_b, c.clip_id) in predictions
        ]
        if not clip_ids:
            continue
        others = [m for m in config.model_labels if m != whitebox]

        def fooled(attack: str, model: str, clip_id: str, wb: str = whitebox) -> int:
            return int(predictions[(wb, attack, clip_id)][model] != labels[clip_id])

        for model in others:
            a = [fooled(attack_a, model, c) for c in clip_ids]
            b = [fooled(attack_b, model, c) for c in clip_ids]
            interval = paired_bootstrap_diff(a, b, **boot)
            only_a, only_b = mcnemar_counts(a, b)
            rows.append(
                {
                    "whitebox": whitebox,
                    "model": model,
                    "n": len(clip_ids),
                    "asr_a": sum(a) / len(a),
                    "asr_b": sum(b) / len(b),
                    "diff": interval.estimate,
                    "lo": interval.lo,
                    "hi": interval.hi,
                    "only_a": only_a,
                    "only_b": only_b,
                    "p_mcnemar": mcnemar(a, b),
                }
            )
        if not others:
            continue
        avg_a = [sum(fooled(attack_a, m, c) for m in others) / len(others) for c in clip_ids]
        avg_b = [sum(fooled(attack_b, m, c) for m in others) / len(others) for c in clip_ids]
        interval = paired_bootstrap_diff(avg_a, avg_b, **boot)
        rows.append(
            {
                "whitebox": whitebox,
                "model": "black-box average",
                "n": len(clip_ids),
                "asr_a": sum(avg_a) / len(avg_a),
                "asr_b": sum(avg_b) / len(avg_b),
                "diff": interval.estimate,
                "lo": interval.lo,
                "hi": interval.hi,
                "only_a": None,
                "only_b": None,
                "p_mcnemar": None,
            }
        )
        for clip_id, value_a, value_b in zip(clip_ids, avg_a, avg_b, strict=True):
            overall_a.setdefault(clip_id, []).append(value_a)
            overall_b.setdefault(clip_id, []).append(value_b)
    if len(whiteboxes) > 1 and overall_a:
        common = [c for c in overall_a if len(overall_a[c]) == len(overall_b[c])]
        a = [sum(overall_a[c]) / len(overall_a[c]) for c in common]
        b = [sum(overall_b[c]) / len(overall_b[c]) for c in common]
        interval = paired_bootstrap_diff(a, b, **boot)
        rows.append(
            {
                "whitebox": "all",
                "model": "black-box average",
                "n": len(common),
                "asr_a": sum(a) / len(a),
                "asr_b": sum(b) / len(b),
                "diff": interval.estimate,
                "lo": interval.lo,
                "hi": interval.hi,
                "only_a": None,
                "only_b": None,
                "p_mcnemar": None,
            }
        )
    return rows


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
    model_factory: ModelFactory | None = None,
    transforms: Mapping[str, Transform] | None = None,
    progress: bool = True,
) -> int:
    """`vidadv compare RUN A B`: paired ASR difference between attacks A and B on the same clips.

    Uses (and fills) the evaluation cache, so after `vidadv evaluate` it runs no model.
    """
    run = load_run(run_dir, check_model_names=model_factory is None)
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
        model_factory=model_factory,
        transforms=transforms,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    rows = compare_attacks(run, predictions[resolved], attack_a, attack_b, whiteboxes)
    if not rows:
        raise ValueError(f"no clip has adversarial files for both {attack_a!r} and {attack_b!r}")

    def pct(value: float | None) -> str:
        return "" if value is None else f"{100 * value:.2f}"

    header = ["white-box", "model", "n clips", f"ASR {attack_a}", f"ASR {attack_b}", "diff (A-B)", "95% CI"]
    header += ["only A", "only B", "McNemar p"]
    body = [
        [
            r["whitebox"],
            r["model"],
            r["n"],
            pct(r["asr_a"]),
            pct(r["asr_b"]),
            pct(r["diff"]),
            f"[{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]",
            "" if r["only_a"] is None else r["only_a"],
            "" if r["only_b"] is None else r["only_b"],
            "" if r["p_mcnemar"] is None else f"{r['p_mcnemar']:.4g}",
        ]
        for r in rows
    ]
    stem = f"compare_{slug(attack_a)}_vs_{slug(attack_b)}{_variant_stem(resolved)}"
    out = run.layout.eval_dir
    atomic_write_text(out / f"{stem}.csv", csv_text(header, body))
    atomic_write_text(out / f"{stem}.md", markdown_table(header, body) + "\n")
    atomic_write_json(
        out / f"{stem}.json",
        {"attack_a": attack_a, "attack_b": attack_b, "variant": resolved, "rows": rows, "seed": config.seed},
    )
    print(f"== {attack_a} vs {attack_b} ({resolved}): ASR (%) on the same clips ==")
    print(format_table(header, body))
    print(
        "diff = ASR(A) - ASR(B) in percentage points; 95% CI: paired bootstrap over clips "
        f"({config.bootstrap_samples} resamples); McNemar: exact two-sided binomial test on the clips only "
        "one attack fools (single models only)."
    )
    print(f"wrote {out / stem}.csv/.md/.json")
    if missing:
        print(f"WARNING: {len(missing)} adversarial clips are missing; those clips are left out")
        return 1
    return 0
