"""`vidadv select`: keep the clips that every listed model classifies correctly.

As in the TT paper, a clip is attacked only if all models classify it correctly, so that an attack
success is a misclassification caused by the perturbation. Every dropped clip is recorded with its
reason: "missing file", "decode error" (any other failure to load it) or "misclassified" (naming each
model that got it wrong and its prediction). Results: `selection.json` and `selection.csv` in the run
folder; `vidadv attack` reads `selection.json`. Under torchrun the clips are sharded over processes.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter
from typing import Any

import torch
from tqdm.auto import tqdm

from vidadv.experiments.config import ConfigError, ExperimentConfig, resolve_device
from vidadv.experiments.runtime import (
    DEFAULT_FACTORIES,
    SELECTION_FORMAT,
    Factories,
    RunLayout,
    check_item,
    format_table,
    load_selection,
    misclassified_by,
    predict,
    same_shape_runs,
)
from vidadv.utils.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    finalize,
    init_distributed,
    shard,
)
from vidadv.utils.io import atomic_write_json, atomic_write_text

MISSING_FILE = "missing file"
DECODE_ERROR = "decode error"
MISCLASSIFIED = "misclassified"
OVER_QUOTA = "over the clips_per_class quota"


def classify_load_error(error: BaseException) -> str:
    """'missing file' for a file that does not exist, else 'decode error'."""
    if isinstance(error, FileNotFoundError):
        return MISSING_FILE
    message = str(error).lower()
    if "not found" in message or "no such file" in message or "does not exist" in message:
        return MISSING_FILE
    return DECODE_ERROR


def _describe_unloaded(dataset: Any, index: int) -> tuple[str | None, int | None]:
    """(clip id, label) of an item that failed to load, when the dataset can tell without decoding.

    Understands vidadv's datasets (`refs[i].clip_id` / `.label`, or a `clip_id(i)` method).
    """
    try:
        refs = getattr(dataset, "refs", None)
        if refs is not None:
            ref = refs[index]
            return str(ref.clip_id), int(ref.label)
        clip_id = getattr(dataset, "clip_id", None)
        if callable(clip_id):
            return str(clip_id(index)), None
    except Exception:  # only a hint for the report
        return None, None
    return None, None


def _evaluate_shard(
    config: ExperimentConfig,
    ctx: DistContext,
    dataset: Any,
    indices: list[int],
    factories: Factories,
    progress: bool,
) -> list[dict[str, Any]]:
    """Load and classify this rank's clips; one result dict per dataset index."""
    device = resolve_device(config.device, ctx.local_rank if ctx.is_distributed else None)
    dtype = config.torch_dtype
    labels = config.selection_models
    models = {label: factories.prepare_model(config.model(label), device, dtype) for label in labels}
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, torch.Tensor, int, str]] = []

    def flush() -> None:
        if not pending:
            return
        clips = [item[1] for item in pending]
        for run in same_shape_runs(clips):
            batch = torch.stack([clips[p] for p in run])
            predictions = {label: predict(model, batch, dtype) for label, model in models.items()}
            for row, position in enumerate(run):
                index, _, label, clip_id = pending[position]
                preds = {name: int(p[row]) for name, p in predictions.items()}
                wrong = misclassified_by(preds, label)
                result: dict[str, Any] = {"index": index, "clip_id": clip_id, "label": label, "preds": preds}
                if wrong:
                    detail = ", ".join(f"{name} (predicted {pred})" for name, pred in wrong.items())
                    result.update(reason=MISCLASSIFIED, detail=f"misclassified by {detail}", models=wrong)
                results.append(result)
        pending.clear()

    bar = tqdm(total=len(indices), desc="select", unit="clip", disable=not (progress and ctx.is_main))
    for index in indices:
        try:
            clip, label, clip_id = check_item(dataset[index], index)
        except (TypeError, ValueError, OSError, RuntimeError, KeyError, IndexError) as err:
            if isinstance(err, TypeError | ValueError) and str(err).startswith("dataset item"):
                raise  # malformed items or pixels outside [0, 1] are a dataset bug, not a bad clip
            clip_id_hint, label_hint = _describe_unloaded(dataset, index)
            results.append(
                {
                    "index": index,
                    "clip_id": clip_id_hint,
                    "label": label_hint,
                    "reason": classify_load_error(err),
                    "detail": f"{type(err).__name__}: {err}",
                }
            )
        else:
            pending.append((index, clip, label, clip_id))
            if len(pending) >= config.batch_size:
                flush()
        bar.update(1)
    flush()
    bar.close()
    return results


def _selection_csv(entries: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "clip_id", "label", "kept", "reason", "detail"])
    for entry in entries:
        kept = "reason" not in entry
        writer.writerow(
            [
                entry["index"],
                entry["clip_id"] if entry["clip_id"] is not None else "",
                entry["label"] if entry["label"] is not None else "",
                int(kept),
                "" if kept else entry["reason"],
                "" if kept else entry["detail"],
            ]
        )
    return buffer.getvalue()


def summarize_selection(selection: dict[str, Any]) -> str:
    """Human-readable summary of a selection.json."""
    lines = [
        f"clips considered: {selection['num_candidates']}, kept: {selection['num_selected']}, "
        f"dropped: {selection['num_candidates'] - selection['num_selected']}"
    ]
    counts = selection.get("dropped_counts", {})
    if counts:
        lines.append("dropped by reason: " + ", ".join(f"{reason}: {n}" for reason, n in counts.items()))
    errors = selection.get("misclassified_by_model", {})
    if errors:
        rows = [(label, errors[label]) for label in errors]
        lines.append(format_table(["model", "misclassified clips"], rows))
    return "\n".join(lines)


def compute_selection(
    config: ExperimentConfig,
    ctx: DistContext,
    *,
    factories: Factories = DEFAULT_FACTORIES,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Run the selection (sharded when distributed); rank 0 writes and returns the selection dict."""
    layout = RunLayout.of(config.output_dir)
    dataset = factories.build_dataset(dict(config.dataset))
    try:
        total = len(dataset)
    except TypeError as err:
        raise TypeError("the dataset must have a length (a map-style dataset)") from err
    if total == 0:
        raise ValueError(f"the dataset {dict(config.dataset)} has no clips")
    count = total if config.max_clips is None else min(total, config.max_clips)
    mine = shard(list(range(count)), ctx)
    results = _evaluate_shard(config, ctx, dataset, mine, factories, progress)
    gathered = all_gather_objects(ctx, results)
    if not ctx.is_main:
        return None
    entries = sorted((entry for part in gathered for entry in part), key=lambda e: e["index"])
    loaded = [e for e in entries if e.get("reason") in (None, MISCLASSIFIED)]
    if not loaded:
        first = entries[0]["detail"] if entries else "no clips"
        raise ValueError(f"no clip of the dataset could be loaded; first problem: {first}")
    ids = Counter(e["clip_id"] for e in loaded)
    repeated = sorted(clip_id for clip_id, n in ids.items() if n > 1)
    if repeated:
        raise ValueError(f"clip ids must be unique, but the dataset repeats: {', '.join(repeated[:5])}")
    if config.clips_per_class is not None:
        kept_per_label: Counter[int] = Counter()
        for e in entries:
            if "reason" in e:
                continue
            kept_per_label[e["label"]] += 1
            if kept_per_label[e["label"]] > config.clips_per_class:
                e["reason"] = OVER_QUOTA
                e["detail"] = f"label {e['label']} already has {config.clips_per_class} clips"
    selected = [
        {"index": e["index"], "clip_id": e["clip_id"], "label": e["label"]}
        for e in entries
        if "reason" not in e
    ]
    dropped = [e for e in entries if "reason" in e]
    misclassified_by_model = {
        label: sum(1 for e in loaded if e["preds"][label] != e["label"]) for label in config.selection_models
    }
    selection = {
        "format": SELECTION_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "selection_hash": config.selection_hash(),
        "selection_fields": config.selection_fields(),
        "models": list(config.selection_models),
        "num_candidates": count,
        "num_selected": len(selected),
        "dropped_counts": dict(Counter(e["reason"] for e in dropped)),
        "misclassified_by_model": misclassified_by_model,
        "selected": selected,
        "dropped": dropped,
    }
    atomic_write_json(layout.selection_json, selection)
    atomic_write_text(layout.selection_csv, _selection_csv(entries))
    return selection


def run_select(
    config: Any,
    force: bool = False,
    *,
    factories: Factories = DEFAULT_FACTORIES,
    progress: bool = True,
) -> int:
    """`vidadv select CONFIG`: write selection.json/.csv in the output folder; returns an exit code.

    An existing selection made with the same dataset and models is kept (and summarized); one made
    with different ones is an error unless `force`, which recomputes it.
    """
    config = factories.load_config(config)
    layout = RunLayout.of(config.output_dir)
    if layout.selection_json.exists():
        existing = load_selection(layout)
        if existing.get("selection_hash") == config.selection_hash() and not force:
            print(f"selection already done: {layout.selection_json} (use --force to recompute)")
            print(summarize_selection(existing))
            return 0
        if existing.get("selection_hash") != config.selection_hash() and not force:
            raise ConfigError(
                f"{layout.selection_json} was made with a different dataset/model list or dtype; "
                "use --force to recompute it (this invalidates attack results made from it)"
            )
    ctx = init_distributed(config.device)
    try:
        selection = compute_selection(config, ctx, factories=factories, progress=progress)
        barrier(ctx)
    finally:
        finalize(ctx)
    if selection is not None:
        print(f"wrote {layout.selection_json} and {layout.selection_csv}")
        print(summarize_selection(selection))
    return 0
