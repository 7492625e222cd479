"""A finished attack run and the predictions of every model on its adversarial clips.

`load_run` reads a run folder (config, selected clips, and the clip list's dropped clips for the LISTED
denominator); `collect_predictions` classifies every adversarial clip with every model of the config.
Variants: "float" (the saved clips), "uint8" (rounded to 8-bit pixels) and "h264-crfN" (encoded to H.264
and decoded back), i.e. what the adversarial clip would be after saving it as images or as a video.

Predictions are cached per (variant, white-box, attack) in eval/cache/, keyed by the model (its spec
and dtype) and the clip file's size and mtime, so reruns are cheap and an interrupted evaluation resumes.
`run_outcomes` turns them into the outcomes table of `vidadv.evaluation.outcomes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from vidadv.data.video import h264_roundtrip, quantize_uint8
from vidadv.evaluation.outcomes import (
    DroppedClip,
    ItemKey,
    Outcomes,
    build_outcomes,
)
from vidadv.experiments.config import ExperimentConfig, config_from_dict, resolve_device
from vidadv.experiments.runfiles import ClipVerifier
from vidadv.experiments.runtime import (
    DEFAULT_FACTORIES,
    Factories,
    RunLayout,
    SelectedClip,
    batched,
    load_selection,
    predict,
    read_run_config,
    selected_clips,
    slug,
)
from vidadv.experiments.select import DECODE_ERROR, MISCLASSIFIED, MISSING_FILE, OVER_QUOTA
from vidadv.utils.distributed import distributed_env
from vidadv.utils.io import atomic_write_json, read_json

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
    kwargs: dict[str, Any] = {
        "check_dataset_files": False,
        "attack_names": None,
        "attack_builder": None,
        "dataset_check": None,
    }
    if not check_model_names:
        kwargs["model_names"] = None
    config = config_from_dict(record["config"], source=str(layout.run_config), **kwargs)
    # the run folder is authoritative, wherever it has been moved to
    config = config.model_copy(update={"output_dir": str(layout.root)})
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
        self, config: ExperimentConfig, factories: Factories, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.config, self.factories, self.device, self.dtype = config, factories, device, dtype
        self.models: dict[str, nn.Module] = {}

    def get(self, label: str) -> nn.Module:
        if label not in self.models:
            self.models[label] = self.factories.prepare_model(
                self.config.model(label), self.device, self.dtype
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
    factories: Factories = DEFAULT_FACTORIES,
    transforms: Mapping[str, Transform] | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> tuple[dict[str, dict[ItemKey, dict[str, int]]], list[ItemKey]]:
    """Predictions of every model on every adversarial clip, per variant; plus the missing clips.

    Returns ({variant: {(white-box, attack, clip id): {model label: predicted class}}}, missing items).
    Every clip file is verified before it is scored (`vidadv.experiments.runfiles.ClipVerifier`; the
    clean clips for its budget check come from `factories.build_dataset`).
    """
    config, layout = run.config, run.layout
    dtype = config.torch_dtype
    size = batch_size or config.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    pool = _ModelPool(config, factories, resolve_device(device or config.device), dtype)
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
    verifier = ClipVerifier(config, factories.build_dataset)
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
