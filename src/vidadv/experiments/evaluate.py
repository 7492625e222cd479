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

from vidadv.evaluation.outcomes import (
    LISTED,
    SELECTED,
    DroppedClip,
    ItemKey,
    Outcomes,
    asr_matrix,
    build_outcomes,
    outcome_records,
    paired_differences,
    table1,
)
from vidadv.evaluation.paper import PAPER_NUMBERS, paper_number
from vidadv.evaluation.report import (
    HtmlTable,
    ReportWriter,
    Section,
    asr_table_rows,
    format_table,
    gallery_item,
    markdown_table,
    plot_figure3,
)
from vidadv.experiments.config import ExperimentConfig, config_from_dict, resolve_device
from vidadv.experiments.runtime import (
    DatasetFactory,
    ModelFactory,
    RunLayout,
    SelectedClip,
    batched,
    check_item,
    default_dataset_factory,
    load_selection,
    predict,
    prepare_model,
    read_run_config,
    selected_clips,
    slug,
    versions,
)
from vidadv.experiments.select import DECODE_ERROR, MISCLASSIFIED, MISSING_FILE, OVER_QUOTA
from vidadv.utils.distributed import distributed_env
from vidadv.utils.io import atomic_write_json, load_tensors, read_json

FLOAT = "float"
UINT8 = "uint8"
CACHE_FORMAT = "vidadv-eval-cache/1"
Transform = Callable[[torch.Tensor], torch.Tensor]


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
class ClipList:
    """The run's clip list as the released TT evaluation scripts count it (the LISTED denominator).

    dropped: the listed clips the selection dropped because some model misclassified them clean;
    unloadable: clips dropped because their file is missing or does not decode (excluded);
    unavailable: why the LISTED denominator is not reported ("" when it is, or when nothing was dropped).
    """

    dropped: tuple[DroppedClip, ...] = ()
    unloadable: int = 0
    unavailable: str = ""

    @property
    def reported(self) -> bool:
        return bool(self.dropped)


def clip_list(selection: Mapping[str, Any], models: Sequence[str]) -> ClipList:
    """The LISTED denominator's extra clips from a selection.json (see `ClipList`)."""
    dropped = selection.get("dropped", [])
    misclassified = [e for e in dropped if e.get("reason") == MISCLASSIFIED]
    unloadable = sum(1 for e in dropped if e.get("reason") in (MISSING_FILE, DECODE_ERROR))
    if not misclassified:
        return ClipList((), unloadable)
    if any(e.get("reason") == OVER_QUOTA for e in dropped):
        return ClipList(
            (),
            unloadable,
            "not reported over all listed clips: clips_per_class subsamples the list, so the run has no "
            "fixed clip list",
        )
    unknown = [m for m in models if m not in selection.get("models", ())]
    if unknown or any(not isinstance(e.get("preds"), Mapping) for e in misclassified):
        return ClipList(
            (),
            unloadable,
            "not reported over all listed clips: the selection has no clean predictions of "
            f"{', '.join(unknown) or 'the dropped clips'}",
        )
    clips = tuple(
        DroppedClip(str(e["clip_id"]), int(e["label"]), {m: int(e["preds"][m]) for m in models})
        for e in misclassified
    )
    return ClipList(clips, unloadable)


@dataclass(frozen=True)
class LoadedRun:
    config: ExperimentConfig
    layout: RunLayout
    clips: list[SelectedClip]
    config_hash: str
    clip_list: ClipList = ClipList()


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
    selection = load_selection(layout)
    clips = selected_clips(selection)
    listed = clip_list(selection, config.model_labels)
    return LoadedRun(config, layout, clips, record["config_hash"], listed)


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
) -> tuple[dict[str, dict[ItemKey, dict[str, int]]], list[ItemKey]]:
    """Predictions of every model on every adversarial clip, per variant; plus the missing clips.

    Returns ({variant: {(white-box, attack, clip id): {model label: predicted class}}}, missing items).
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
            clips = []
            for _clip, path in batch:
                tensors = load_tensors(path)
                if "adv" not in tensors:
                    raise ValueError(f"{str(path)!r} has no 'adv' tensor")
                clips.append(tensors["adv"].float())
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
# Outcomes of a run
# ------------------------------------------------------------------------------------------------


def run_outcomes(run: LoadedRun, predictions: Mapping[ItemKey, Mapping[str, int]]) -> Outcomes:
    """The outcomes table of a run's predictions (with the LISTED clips where the run reports them).

    The clean prediction of a selected clip is its label for every selection model (that is what being
    selected means) and unknown for the others.
    """
    config = run.config
    selection_models = set(config.selection_models)
    return build_outcomes(
        predictions,
        {clip.clip_id: clip.label for clip in run.clips},
        config.model_labels,
        config.whitebox,
        [a.name for a in config.attacks],
        clean_preds={
            clip.clip_id: {m: clip.label for m in config.model_labels if m in selection_models}
            for clip in run.clips
        },
        dropped=run.clip_list.dropped,
    )


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


def _ci_text(cell: Mapping[str, Any]) -> str:
    if "asr" not in cell:
        return "-"
    return f"{100 * cell['asr']:.2f} [{100 * cell['lo']:.1f}, {100 * cell['hi']:.1f}]"


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
        line += [_ci_text(row["per_whitebox"][wb]) for wb in whiteboxes]
        line += [_ci_text(row["overall"]), "" if row["paper"] is None else f"{row['paper']:.2f}"]
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

    ASR counts the selected (attacked) clips; where the selection dropped listed clips because a model
    misclassified them clean, the ASR matrix and Table 1 are also given over all listed clips (see
    `vidadv.evaluation.outcomes`). Returns 0, or 1 when adversarial clips of the run are missing (the
    tables then cover those present).
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
    run_text = f"{layout.root}\nconfig hash {run.config_hash}\n{denominator}"
    report.section(Section("Run", text=run_text + (f"\n{listed_note}" if listed_note else "")))
    outcome_lines: list[list[Any]] = []
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
        plots = report.plots(plot_figure3(matrix, report.folder, prefix=f"figure3{stem}"))
        overall_by_variant[variant] = {row["attack"]: _ci_text(row["overall"]) for row in t1}
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
        tables = [HtmlTable(m_header, m_rows, f"ASR (%) of each model; * = white-box. {denominator}")]
        if listed:
            l_header, l_rows = asr_table_rows(matrix_listed, paper)
            report.show(
                f"ASR matrix over all listed clips, {variant} (%; * = white-box model)", l_header, l_rows
            )
            tables.append(HtmlTable(l_header, l_rows, f"ASR (%) over all listed clips. {listed_note}"))
        report.show(f"Average black-box ASR (%) with 95 % bootstrap interval, {variant}", header, body)
        tables.append(HtmlTable(header, body, "Average black-box ASR (%) with 95 % bootstrap intervals"))
        report.section(Section(f"Results: {variant}", tables=tables, images=[str(p) for p in plots]))
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
    items, note = _gallery(run, dataset_factory, report.folder, gallery)
    if items or note:
        report.section(Section("Gallery", text=note, gallery=items))
    html = report.html(f"vidadv evaluation: {config.name or layout.root.name}")
    print(f"\n{denominator}")
    if listed_note:
        print(listed_note)
    if config.paper_dataset is None and any(config.paper_key(a) for a in config.attacks):
        print(f"(set paper_dataset to one of {', '.join(PAPER_NUMBERS)} to print the paper's numbers)")
    print(
        f"wrote {report.folder}/ (asr_matrix*.csv/.md, table1*.csv/.md, figure3*.png, outcomes.csv, "
        f"results.json, {html.name})"
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
    predictions: Mapping[ItemKey, Mapping[str, int]],
    attack_a: str,
    attack_b: str,
    whiteboxes: Sequence[str],
) -> list[dict[str, Any]]:
    """`paired_differences` of a run's predictions (clips in selection order)."""
    return paired_differences(
        run_outcomes(run, predictions),
        attack_a,
        attack_b,
        whiteboxes,
        n_boot=run.config.bootstrap_samples,
        seed=run.config.seed,
        clip_order=[c.clip_id for c in run.clips],
    )


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
    rows = compare_rows(run, predictions[resolved], attack_a, attack_b, whiteboxes)
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
    report = ReportWriter(run.layout.eval_dir, echo=False)
    report.table(stem, header, body)
    report.json(
        f"{stem}.json",
        {"attack_a": attack_a, "attack_b": attack_b, "variant": resolved, "rows": rows, "seed": config.seed},
    )
    print(f"== {attack_a} vs {attack_b} ({resolved}): ASR (%) on the same clips ==")
    print(format_table(header, body))
    print(
        "diff = ASR(A) - ASR(B) in percentage points; 95% CI: paired bootstrap over clips "
        f"({config.bootstrap_samples} resamples); McNemar: exact two-sided binomial test on the clips only "
        "one attack fools (single models only)."
    )
    print(f"wrote {report.folder / stem}.csv/.md/.json")
    if missing:
        print(f"WARNING: {len(missing)} adversarial clips are missing; those clips are left out")
        return 1
    return 0
