"""`vidadv analyze CONFIG`: the temporal-pattern analysis of the TT paper (Figure 2) on any model set.

For every selected clip and every model, frame importance is computed by each configured method
(`vidadv.analysis.importance`), and the importance lists of every pair of models are compared by
Spearman's rank correlation, per clip and averaged (`vidadv.analysis.correlation`). By default only clips
that every model classifies correctly are analyzed (as in the paper).

Config (YAML) keys — unknown keys are rejected with the list of valid ones:

    models:            list of {name, checkpoint?, num_classes?, layer?, label?} or plain names;
                       ``layer`` is the Grad-CAM layer (dotted name relative to the classifier;
                       default: the classifier's ``attention_layer``), ``label`` the display name.
    dataset:           spec for ``vidadv.data.build_dataset`` (items: (clip (C,T,H,W), label, clip_id)).
    output_dir:        output folder (relative paths are relative to the current directory).
    methods:           subset of [gradcam, zero_padding, mean_padding] (default: all three).
    num_clips:         number of clips to analyze (after the correctness filter); null = all.
    only_correct:      analyze only clips that all models classify correctly (default true).
    shuffle:           visit clips in a seeded random order (default true) instead of dataset order.
    seed:              seed of that order (default 0).
    batch_size:        clips per batch (default 4); chunk_size: perturbed copies per forward (default 16).
    device:            torch device string (default "cpu").
    zero_fill:         zero-padding fill: number in [0,1] (default 0.0 = black) or "model_mean".
    mean_padding_boundary: "clamp" (default) or "cyclic".
    gradcam_mapping:   "interpolate" (default) or "repeat" (layer slices -> input frames).

Outputs in ``output_dir``: ``spearman_<method>.csv`` (mean matrix), ``spearman_<method>_per_clip.csv``,
``spearman_<method>_pairs.csv`` (per model pair: valid clips, mean and 95 % bootstrap interval),
``spearman_<method>.png`` (heatmap), ``importance_<method>.csv`` (raw importance lists), ``clips.csv``
(every examined clip, its label, each model's prediction and whether it was analyzed) and
``summary.json`` (config, counts, mean matrices); all written atomically, ``summary.json`` last.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidadv.analysis.correlation import (
    PairwiseSpearman,
    matrix_csv,
    mean_off_diagonal,
    pair_intervals_csv,
    pairwise_spearman,
    per_clip_csv,
)
from vidadv.analysis.importance import (
    GRADCAM_TEMPORAL_MAPPINGS,
    IMPORTANCE_METHODS,
    MEAN_PADDING_BOUNDARIES,
    MODEL_MEAN_FILL,
    frame_importance,
    normalize_method_name,
)
from vidadv.analysis.plots import correlation_heatmap_png, heatmap_title
from vidadv.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

SUMMARY_FILE = "summary.json"

MODEL_KEYS: tuple[str, ...] = ("name", "checkpoint", "num_classes", "layer", "label")
CONFIG_KEYS: tuple[str, ...] = (
    "models",
    "dataset",
    "output_dir",
    "methods",
    "num_clips",
    "only_correct",
    "shuffle",
    "seed",
    "batch_size",
    "chunk_size",
    "device",
    "zero_fill",
    "mean_padding_boundary",
    "gradcam_mapping",
)
REQUIRED_CONFIG_KEYS: tuple[str, ...] = ("models", "dataset", "output_dir")


@dataclass(frozen=True)
class AnalysisModelSpec:
    """One model of the analysis: zoo/registry name, optional checkpoint, class count, Grad-CAM layer."""

    name: str
    checkpoint: str | None = None
    num_classes: int | None = None
    layer: str | None = None
    label: str | None = None

    @property
    def display_name(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class AnalysisConfig:
    """Validated `vidadv analyze` configuration (see the module docstring for the meaning of each key)."""

    models: tuple[AnalysisModelSpec, ...]
    dataset: dict[str, Any]
    output_dir: str
    methods: tuple[str, ...] = IMPORTANCE_METHODS
    num_clips: int | None = None
    only_correct: bool = True
    shuffle: bool = True
    seed: int = 0
    batch_size: int = 4
    chunk_size: int = 16
    device: str = "cpu"
    zero_fill: float | str = 0.0
    mean_padding_boundary: str = "clamp"
    gradcam_mapping: str = "interpolate"

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON/YAML-serializable) form of the config."""
        data = asdict(self)
        data["models"] = [{k: v for k, v in asdict(m).items() if v is not None} for m in self.models]
        data["methods"] = list(self.methods)
        return data


def _check_keys(mapping: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} in {where}; valid keys: {', '.join(allowed)}")


def _positive_int(value: Any, key: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or null" if allow_none else ""
        raise ValueError(f"{key} must be a positive integer{extra}; got {value!r}")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false; got {value!r}")
    return value


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _parse_model(entry: Any, position: int) -> AnalysisModelSpec:
    where = f"models[{position}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where} must be a model name or a mapping with keys {', '.join(MODEL_KEYS)}; got {entry!r}"
        )
    _check_keys(entry, MODEL_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.name must be a non-empty string; got {name!r}")
    for key in ("checkpoint", "layer", "label"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{where}.{key} must be a non-empty string; got {value!r}")
    num_classes = _positive_int(entry.get("num_classes"), f"{where}.num_classes", allow_none=True)
    return AnalysisModelSpec(
        name=name,
        checkpoint=entry.get("checkpoint"),
        num_classes=num_classes,
        layer=entry.get("layer"),
        label=entry.get("label"),
    )


def _parse_zero_fill(value: Any) -> float | str:
    if value == MODEL_MEAN_FILL:
        return MODEL_MEAN_FILL
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"zero_fill must be a number in [0, 1] or {MODEL_MEAN_FILL!r}; got {value!r}")
    return float(value)


def _parse_device(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:0'; got {value!r}")
    try:
        torch.device(value)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"device must be a torch device string such as 'cpu', 'cuda' or 'cuda:0'; got {value!r}"
        ) from error
    return value


def parse_analysis_config(raw: Mapping[str, Any]) -> AnalysisConfig:
    """Validate a config mapping (as read from YAML) and return an `AnalysisConfig`."""
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"an analysis config must be a mapping of keys {', '.join(CONFIG_KEYS)}; got {type(raw).__name__}"
        )
    _check_keys(raw, CONFIG_KEYS, "the analysis config")
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in raw]
    if missing:
        raise ValueError(f"the analysis config is missing required key(s) {', '.join(missing)}")
    models_raw = raw["models"]
    if not isinstance(models_raw, list) or not models_raw:
        raise ValueError(f"models must be a non-empty list of model entries; got {models_raw!r}")
    models = tuple(_parse_model(entry, i) for i, entry in enumerate(models_raw))
    names = [m.display_name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            "model names must be unique (set `label` to tell entries apart); "
            f"duplicated: {', '.join(duplicates)}"
        )
    dataset = raw["dataset"]
    if not isinstance(dataset, Mapping):
        raise ValueError(f"dataset must be a mapping (a vidadv.data.build_dataset spec); got {dataset!r}")
    output_dir = raw["output_dir"]
    if not isinstance(output_dir, str) or not output_dir:
        raise ValueError(f"output_dir must be a non-empty path string; got {output_dir!r}")
    methods_raw = raw.get("methods", list(IMPORTANCE_METHODS))
    if isinstance(methods_raw, str):
        methods_raw = [methods_raw]
    if not isinstance(methods_raw, list) or not methods_raw:
        raise ValueError(
            f"methods must be a non-empty list drawn from {', '.join(IMPORTANCE_METHODS)}; "
            f"got {methods_raw!r}"
        )
    methods: list[str] = []
    for method in methods_raw:
        canonical = normalize_method_name(method)
        if canonical not in methods:
            methods.append(canonical)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return AnalysisConfig(
        models=models,
        dataset=dict(dataset),
        output_dir=output_dir,
        methods=tuple(methods),
        num_clips=_positive_int(raw.get("num_clips"), "num_clips", allow_none=True),
        only_correct=_boolean(raw.get("only_correct", True), "only_correct"),
        shuffle=_boolean(raw.get("shuffle", True), "shuffle"),
        seed=seed,
        batch_size=_positive_int(raw.get("batch_size", 4), "batch_size"),
        chunk_size=_positive_int(raw.get("chunk_size", 16), "chunk_size"),
        device=_parse_device(raw.get("device", "cpu")),
        zero_fill=_parse_zero_fill(raw.get("zero_fill", 0.0)),
        mean_padding_boundary=_choice(
            raw.get("mean_padding_boundary", "clamp"), "mean_padding_boundary", MEAN_PADDING_BOUNDARIES
        ),
        gradcam_mapping=_choice(
            raw.get("gradcam_mapping", "interpolate"), "gradcam_mapping", GRADCAM_TEMPORAL_MAPPINGS
        ),
    )


def load_analysis_config(path: str | Path) -> AnalysisConfig:
    """Read and validate a YAML analysis config."""
    import yaml

    config_path = Path(path)
    if not config_path.is_file():
        raise FileNotFoundError(f"analysis config {str(config_path)!r} does not exist")
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"analysis config {str(config_path)!r} is not valid YAML: {error}") from error
    return parse_analysis_config(raw if raw is not None else {})


ModelFactory = Callable[[AnalysisModelSpec, torch.device], nn.Module]
DatasetFactory = Callable[[dict[str, Any]], Sequence[Any]]


def default_model_factory(spec: AnalysisModelSpec, device: torch.device) -> nn.Module:
    """Load a model with `vidadv.models.load_model` (zoo names load their shipped weights)."""
    from vidadv.models import load_model

    return load_model(spec.name, checkpoint=spec.checkpoint, num_classes=spec.num_classes, device=str(device))


def default_dataset_factory(spec: dict[str, Any]) -> Sequence[Any]:
    """Build the dataset with `vidadv.data.build_dataset`."""
    from vidadv.data import build_dataset

    return build_dataset(spec)


@dataclass
class AnalysisResult:
    """Everything `run_analysis` computed: analyzed clip ids/labels, importances and correlations."""

    model_names: tuple[str, ...]
    clip_ids: list[str]
    labels: list[int]
    importances: dict[str, dict[str, torch.Tensor]]  # method -> model -> (N, T)
    correlations: dict[str, PairwiseSpearman]  # method -> pairwise Spearman
    num_examined: int
    output_dir: Path
    predictions: dict[str, list[int]] = field(default_factory=dict)  # model -> prediction per examined clip


def _resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device: cpu")
    return device


def _unpack_item(item: Any, index: int) -> tuple[torch.Tensor, int, str]:
    if not isinstance(item, tuple | list) or len(item) != 3:
        raise TypeError(
            f"dataset item {index} must be (clip (C,T,H,W), label, clip_id); got {type(item).__name__}"
        )
    clip, label, clip_id = item
    clip = torch.as_tensor(clip)
    if clip.ndim != 4 or not clip.is_floating_point():
        raise ValueError(
            f"dataset item {index}: clip must be a float tensor (C, T, H, W); "
            f"got {tuple(clip.shape)} {clip.dtype}"
        )
    return clip, int(label), str(clip_id)


def _check_gradcam_layers(models: Mapping[str, nn.Module], specs: Sequence[AnalysisModelSpec]) -> None:
    from vidadv.models.gradcam import resolve_layer  # lazy: written by the attacks helper

    for spec in specs:
        model = models[spec.display_name]
        layer = spec.layer if spec.layer is not None else getattr(model, "attention_layer", None)
        if layer is None:
            raise ValueError(
                f"model {spec.display_name!r} has no `attention_layer`; set `layer:` for it in the config "
                "to use the gradcam method"
            )
        resolve_layer(model, layer)


def _predictions(model: nn.Module, clips: torch.Tensor, chunk_size: int) -> torch.Tensor:
    outputs = []
    with torch.no_grad():
        for start in range(0, clips.shape[0], chunk_size):
            outputs.append(model(clips[start : start + chunk_size]).argmax(dim=-1).cpu())
    return torch.cat(outputs)


def _importance_csv(
    clip_ids: Sequence[str], labels: Sequence[int], per_model: Mapping[str, torch.Tensor]
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    num_frames = next(iter(per_model.values())).shape[1] if per_model else 0
    writer.writerow(["clip_id", "label", "model", *(f"frame_{t}" for t in range(num_frames))])
    for clip_number, (clip_id, label) in enumerate(zip(clip_ids, labels, strict=True)):
        for name, scores in per_model.items():
            writer.writerow([clip_id, label, name, *(f"{v:.8g}" for v in scores[clip_number].tolist())])
    return buffer.getvalue()


def _clips_csv(
    clip_ids: Sequence[str],
    labels: Sequence[int],
    predictions: Mapping[str, Sequence[int]],
    analyzed: Sequence[bool],
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip_id", "label", *(f"pred_{name}" for name in predictions), "analyzed"])
    for i, (clip_id, label) in enumerate(zip(clip_ids, labels, strict=True)):
        writer.writerow([clip_id, label, *(preds[i] for preds in predictions.values()), int(analyzed[i])])
    return buffer.getvalue()


def _json_matrix(matrix: torch.Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else round(v, 6) for v in row] for row in matrix.tolist()]


def run_analysis(
    config: AnalysisConfig,
    *,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
    progress: bool = True,
) -> AnalysisResult:
    """Run the temporal-pattern analysis described by ``config`` and write its outputs.

    ``model_factory(spec, device)`` and ``dataset_factory(spec)`` default to `vidadv.models.load_model`
    and `vidadv.data.build_dataset`; tests inject tiny stand-ins.
    """
    from tqdm.auto import tqdm

    model_factory = model_factory or default_model_factory
    dataset_factory = dataset_factory or default_dataset_factory
    device = _resolve_device(config.device)
    output_dir = Path(config.output_dir)

    dataset = dataset_factory(dict(config.dataset))
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"the dataset must support len() and indexing; got {type(dataset).__name__}")
    dataset_size = len(dataset)
    if dataset_size == 0:
        raise ValueError(f"the dataset {config.dataset!r} is empty")

    models: dict[str, nn.Module] = {}
    for spec in config.models:
        model = model_factory(spec, device)
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"model factory returned {type(model).__name__} for {spec.name!r}; expected nn.Module"
            )
        models[spec.display_name] = model.to(device).eval()
    layers = {spec.display_name: spec.layer for spec in config.models}
    if "gradcam" in config.methods:
        _check_gradcam_layers(models, config.models)

    if config.shuffle:
        generator = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(dataset_size, generator=generator).tolist()
    else:
        order = list(range(dataset_size))
    target = dataset_size if config.num_clips is None else min(config.num_clips, dataset_size)

    examined_ids: list[str] = []
    examined_labels: list[int] = []
    examined_analyzed: list[bool] = []
    examined_predictions: dict[str, list[int]] = {name: [] for name in models}
    analyzed_ids: list[str] = []
    analyzed_labels: list[int] = []
    pieces: dict[str, dict[str, list[torch.Tensor]]] = {m: {n: [] for n in models} for m in config.methods}
    clip_shape: tuple[int, ...] | None = None

    bar = tqdm(total=target, unit="clip", desc="analyze", disable=not progress, file=sys.stderr)
    position = 0
    while position < len(order) and len(analyzed_ids) < target:
        # Never load more clips than are still needed (the last batch may be smaller).
        batch_indices = order[position : position + min(config.batch_size, target - len(analyzed_ids))]
        position += len(batch_indices)
        items = [_unpack_item(dataset[i], i) for i in batch_indices]
        for clip, _, clip_id in items:
            if clip_shape is None:
                clip_shape = tuple(clip.shape)
            elif tuple(clip.shape) != clip_shape:
                raise ValueError(
                    f"clip {clip_id!r} has shape {tuple(clip.shape)}; earlier clips have {clip_shape}"
                )
        clips = torch.stack([clip for clip, _, _ in items]).to(device=device, dtype=torch.float32)
        labels = torch.tensor([label for _, label, _ in items], dtype=torch.long, device=device)
        keep = torch.ones(len(items), dtype=torch.bool)
        for name, model in models.items():
            predicted = _predictions(model, clips, config.chunk_size)
            examined_predictions[name].extend(predicted.tolist())
            if config.only_correct:
                keep &= predicted == labels.cpu()
        kept = keep.nonzero().flatten()[: target - len(analyzed_ids)]
        kept_set = set(kept.tolist())
        examined_ids.extend(clip_id for _, _, clip_id in items)
        examined_labels.extend(label for _, label, _ in items)
        examined_analyzed.extend(i in kept_set for i in range(len(items)))
        if kept.numel():
            kept_clips, kept_labels = clips[kept.to(device)], labels[kept.to(device)]
            for method in config.methods:
                for name, model in models.items():
                    scores = frame_importance(
                        model,
                        kept_clips,
                        kept_labels,
                        method,
                        fill=config.zero_fill,
                        boundary=config.mean_padding_boundary,
                        chunk_size=config.chunk_size,
                        layer=layers[name],
                        temporal_mapping=config.gradcam_mapping,
                    )
                    pieces[method][name].append(scores.detach().to(torch.float64).cpu())
            analyzed_ids.extend(items[i][2] for i in kept.tolist())
            analyzed_labels.extend(items[i][1] for i in kept.tolist())
            bar.update(kept.numel())
        bar.set_postfix(examined=len(examined_ids), skipped=len(examined_ids) - len(analyzed_ids))
    bar.close()

    if not analyzed_ids:
        raise ValueError(
            f"no clip to analyze: none of the {len(examined_ids)} examined clips was classified correctly by "
            "all models; set `only_correct: false` to analyze misclassified clips too"
        )
    if config.num_clips is not None and len(analyzed_ids) < target:
        print(
            f"vidadv analyze: only {len(analyzed_ids)} of the requested {target} clips are classified "
            "correctly "
            "by all models; analyzing those",
            file=sys.stderr,
        )

    importances = {
        m: {n: torch.cat(chunks) for n, chunks in per_model.items()} for m, per_model in pieces.items()
    }
    correlations = {m: pairwise_spearman(per_model) for m, per_model in importances.items()}
    names = tuple(models)

    files: dict[str, dict[str, str]] = {}
    for method in config.methods:
        result = correlations[method]
        stem = f"spearman_{method}"
        atomic_write_text(output_dir / f"{stem}.csv", matrix_csv(names, result.mean))
        atomic_write_text(output_dir / f"{stem}_per_clip.csv", per_clip_csv(analyzed_ids, result))
        atomic_write_text(output_dir / f"{stem}_pairs.csv", pair_intervals_csv(result, seed=config.seed))
        atomic_write_bytes(
            output_dir / f"{stem}.png",
            correlation_heatmap_png(result.mean, names, title=heatmap_title(method, result.num_clips)),
        )
        atomic_write_text(
            output_dir / f"importance_{method}.csv",
            _importance_csv(analyzed_ids, analyzed_labels, importances[method]),
        )
        files[method] = {
            "matrix": f"{stem}.csv",
            "per_clip": f"{stem}_per_clip.csv",
            "pairs": f"{stem}_pairs.csv",
            "heatmap": f"{stem}.png",
            "importance": f"importance_{method}.csv",
        }
    atomic_write_text(
        output_dir / "clips.csv",
        _clips_csv(examined_ids, examined_labels, examined_predictions, examined_analyzed),
    )
    summary = {
        "config": config.to_dict(),
        "models": list(names),
        "methods": list(config.methods),
        "num_clips_requested": config.num_clips,
        "num_clips_examined": len(examined_ids),
        "num_clips_analyzed": len(analyzed_ids),
        "num_frames": clip_shape[1] if clip_shape else None,
        "mean_spearman": {m: _json_matrix(correlations[m].mean) for m in config.methods},
        "valid_clip_counts": {m: correlations[m].valid_counts.tolist() for m in config.methods},
        "mean_off_diagonal_spearman": {
            m: (None if math.isnan(v := mean_off_diagonal(correlations[m].mean)) else round(v, 6))
            for m in config.methods
        },
        "files": {**files, "clips": "clips.csv"},
    }
    atomic_write_json(output_dir / SUMMARY_FILE, summary)
    return AnalysisResult(
        model_names=names,
        clip_ids=analyzed_ids,
        labels=analyzed_labels,
        importances=importances,
        correlations=correlations,
        num_examined=len(examined_ids),
        output_dir=output_dir,
        predictions=examined_predictions,
    )


def _existing_config(output_dir: Path) -> dict[str, Any] | None:
    summary_path = output_dir / SUMMARY_FILE
    if not summary_path.is_file():
        return None
    try:
        return json.loads(summary_path.read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError):
        return {}


def run_analyze(
    config_path: str,
    force: bool = False,
    *,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
    progress: bool = True,
) -> int:
    """CLI logic of ``vidadv analyze CONFIG [--force]``; returns the process exit code.

    0: analysis written, or already complete for the same config (skipped without ``force``);
    2: invalid config/input, or the output folder holds results of a different config (use ``force``).
    """
    try:
        config = load_analysis_config(config_path)
    except (FileNotFoundError, ValueError) as error:
        print(f"vidadv analyze: {error}", file=sys.stderr)
        return 2
    output_dir = Path(config.output_dir)
    previous = _existing_config(output_dir)
    if previous is not None and not force:
        if previous == json.loads(json.dumps(config.to_dict())):
            print(f"vidadv analyze: results already in {output_dir} (summary.json); use --force to recompute")
            return 0
        print(
            f"vidadv analyze: {output_dir} holds results of a different config; use --force to overwrite",
            file=sys.stderr,
        )
        return 2
    try:
        result = run_analysis(
            config, model_factory=model_factory, dataset_factory=dataset_factory, progress=progress
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"vidadv analyze: {error}", file=sys.stderr)
        return 2
    print(f"vidadv analyze: {len(result.clip_ids)} clips analyzed ({result.num_examined} examined)")
    for method, correlation in result.correlations.items():
        value = mean_off_diagonal(correlation.mean)
        print(f"  {method}: mean Spearman between different models = {value:.3f}")
    print(f"  results in {output_dir}")
    return 0
