"""`vidadv analyze CONFIG`: the temporal-pattern analysis of the TT paper (Figure 2) on any model set.

For every selected clip and every model, frame importance is computed by each configured method
(`vidadv.analysis.importance`), and the importance lists of every pair of models are compared by
Spearman's rank correlation, per clip and averaged (`vidadv.analysis.correlation`). By default only clips
that every model classifies correctly are analyzed (as in the paper).

Config (YAML) keys (the schema `AnalysisConfig`, validated like the experiment configs: unknown keys are
rejected with the list of valid ones):

    models:            list of {name, checkpoint?, num_classes?, mean?, std?, layer?, label?} or plain
                       names (as in the experiment configs);
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
    device:            auto | cpu | cuda | cuda:N | mps (default "cpu").
    zero_fill:         zero-padding fill: number in [0,1] (default 0.0 = black) or "model_mean".
    mean_padding_boundary: "clamp" (default) or "cyclic".
    gradcam_mapping:   "interpolate" (default) or "repeat" (layer slices -> input frames).

Outputs in ``output_dir``: ``spearman_<method>.csv`` (mean matrix), ``spearman_<method>_per_clip.csv``,
``spearman_<method>_pairs.csv`` (per model pair: valid clips, mean and 95 % bootstrap interval),
``spearman_<method>.png`` (heatmap), ``importance_<method>.csv`` (raw importance lists), ``clips.csv``
(every examined clip, its label, each model's prediction and whether it was analyzed) and
``summary.json`` (config, counts, mean matrices); all written atomically, ``summary.json`` last.

One module on purpose: the config schema, the run and the resume check serve this one command only and
change together.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BeforeValidator, field_validator
from torch import nn
from tqdm.auto import tqdm

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
from vidadv.experiments.runtime import DEFAULT_FACTORIES, Factories, misclassified_by
from vidadv.experiments.schema import (
    ChannelStats,
    ConfigError,
    ConfigModel,
    Device,
    Flag,
    Name,
    NonNegativeInt,
    OptionalName,
    OptionalPositiveInt,
    PositiveInt,
    fail,
    one_of,
    read_config_file,
    resolve_device,
    sequence_of,
    setting,
    shown,
    unique,
    validate_config,
)
from vidadv.models.gradcam import resolve_layer
from vidadv.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

SUMMARY_FILE = "summary.json"


def _methods(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise fail(
            f" must be a non-empty list drawn from {', '.join(IMPORTANCE_METHODS)}; got {shown(value)}"
        )
    methods: list[str] = []
    for index, method in enumerate(value):
        try:
            canonical = normalize_method_name(method)
        except (TypeError, ValueError) as err:
            raise fail(f"[{index}]: {err}") from None
        if canonical not in methods:
            methods.append(canonical)
    return tuple(methods)


def _zero_fill(value: Any) -> float | str:
    if value == MODEL_MEAN_FILL:
        return MODEL_MEAN_FILL
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise fail(f" must be a number in [0, 1] or {MODEL_MEAN_FILL!r}; got {shown(value)}")
    return float(value)


def _dataset(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(f" must be a mapping (a vidadv.data.build_dataset spec); got {shown(value)}")
    return dict(value)


class AnalysisModelSpec(ConfigModel):
    """One model of the analysis: zoo/registry name, optional checkpoint, class count, Grad-CAM layer."""

    string_key = "name"

    name: Name = setting(description="a vidadv.models.load_model name")
    checkpoint: OptionalName = setting(None, description="weights file (default: the model's own)")
    num_classes: OptionalPositiveInt = setting(None, description="classifier width (default: the model's)")
    mean: ChannelStats = setting(None, description="per-channel input mean (default: the model's)")
    std: ChannelStats = setting(None, description="per-channel input std (default: the model's)")
    layer: OptionalName = setting(
        None, description="Grad-CAM layer, dotted name (default: the classifier's attention_layer)"
    )
    label: OptionalName = setting(None, description="display name (default: the name)")

    @property
    def display_name(self) -> str:
        return self.label or self.name

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in super().to_dict().items() if value is not None}


class AnalysisConfig(ConfigModel):
    """Validated `vidadv analyze` configuration; each field below is one config key."""

    models: Annotated[tuple[AnalysisModelSpec, ...], sequence_of("model entries")] = setting(
        description="the models: {name, checkpoint?, num_classes?, mean?, std?, layer?, label?} or a name"
    )
    dataset: Annotated[dict[str, Any], BeforeValidator(_dataset)] = setting(
        description="spec for vidadv.data.build_dataset"
    )
    output_dir: Name = setting(description="output folder")
    methods: Annotated[tuple[str, ...], BeforeValidator(_methods)] = setting(
        IMPORTANCE_METHODS, description="frame-importance methods"
    )
    num_clips: OptionalPositiveInt = setting(None, description="clips to analyze (after the filter)")
    only_correct: Flag = setting(True, description="only clips that every model classifies correctly")
    shuffle: Flag = setting(True, description="visit clips in a seeded random order")
    seed: NonNegativeInt = setting(0, description="seed of that order and of the bootstrap")
    batch_size: PositiveInt = setting(4, description="clips per batch")
    chunk_size: PositiveInt = setting(16, description="perturbed copies per forward pass")
    device: Device = setting("cpu", description="auto | cpu | cuda | cuda:N | mps")
    zero_fill: Annotated[float | str, BeforeValidator(_zero_fill)] = setting(
        0.0, description=f"zero-padding fill: a number in [0, 1] or {MODEL_MEAN_FILL!r}"
    )
    mean_padding_boundary: Annotated[str, one_of(MEAN_PADDING_BOUNDARIES)] = setting(
        "clamp", description="mean-padding boundary"
    )
    gradcam_mapping: Annotated[str, one_of(GRADCAM_TEMPORAL_MAPPINGS)] = setting(
        "interpolate", description="layer slices -> input frames"
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[AnalysisModelSpec, ...]) -> tuple[AnalysisModelSpec, ...]:
        unique([m.display_name for m in models], "model names (set `label` to tell entries apart)")
        return models

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON/YAML-serializable) form of the config."""
        return {**super().to_dict(), "models": [m.to_dict() for m in self.models]}


CONFIG_KEYS: tuple[str, ...] = tuple(AnalysisConfig.config_keys())


def parse_analysis_config(raw: Mapping[str, Any]) -> AnalysisConfig:
    """Validate a config mapping (as read from YAML) and return an `AnalysisConfig`."""
    return validate_config(AnalysisConfig, raw, what="an analysis config")


def load_analysis_config(path: str | Path) -> AnalysisConfig:
    """Read and validate a YAML analysis config (errors name the file)."""
    raw = read_config_file(path, what="analysis config")
    try:
        return parse_analysis_config(raw if raw is not None else {})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


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
    factories: Factories = DEFAULT_FACTORIES,
    progress: bool = True,
) -> AnalysisResult:
    """Run the temporal-pattern analysis described by ``config`` and write its outputs.

    factories: its `load_model(spec, device, dtype)` and `build_dataset(spec)` default to
    `vidadv.models.load_model` and `vidadv.data.build_dataset`; tests inject tiny stand-ins.
    """
    device = resolve_device(config.device)
    output_dir = Path(config.output_dir)

    dataset = factories.build_dataset(dict(config.dataset))
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"the dataset must support len() and indexing; got {type(dataset).__name__}")
    dataset_size = len(dataset)
    if dataset_size == 0:
        raise ValueError(f"the dataset {config.dataset!r} is empty")

    models: dict[str, nn.Module] = {}
    for spec in config.models:
        model = factories.load_model(spec, device, torch.float32)
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
        batch_predictions = {
            name: _predictions(model, clips, config.chunk_size).tolist() for name, model in models.items()
        }
        for name, predicted in batch_predictions.items():
            examined_predictions[name].extend(predicted)
        keep = torch.tensor(
            [
                not config.only_correct
                or not misclassified_by({name: p[i] for name, p in batch_predictions.items()}, label)
                for i, (_, label, _) in enumerate(items)
            ],
            dtype=torch.bool,
        )
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
    factories: Factories = DEFAULT_FACTORIES,
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
        result = run_analysis(config, factories=factories, progress=progress)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"vidadv analyze: {error}", file=sys.stderr)
        return 2
    print(f"vidadv analyze: {len(result.clip_ids)} clips analyzed ({result.num_examined} examined)")
    for method, correlation in result.correlations.items():
        value = mean_off_diagonal(correlation.mean)
        print(f"  {method}: mean Spearman between different models = {value:.3f}")
    print(f"  results in {output_dir}")
    return 0
