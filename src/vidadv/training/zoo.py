"""`vidadv zoo train` and `vidadv zoo list`: train the zoo models, write their weights and manifest, and
print the zoo.

`run_train` trains each model with the recipe (`vidadv.training.loop`), measures its accuracy on the
fixed test split, clean and under the cyclic temporal shifts 1..8 (`vidadv.models.zoo.TEST_SPLIT`,
`SHIFTS`), and writes `<name>.safetensors` and its `manifest.json` entry (architecture, normalization,
recipe, accuracies, sha256, torch version). A zoo transformer (`vidadv.models.zoo_transformers`) is written
as a Hugging Face folder `<name>/` (config.json, model.safetensors, preprocessor config) instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from vidadv.data.synthetic import CLASS_NAMES, GENERATOR_VERSION, ProceduralActions
from vidadv.models.zoo import (
    FAMILY_CLASSES,
    INPUT_FRAMES,
    INPUT_SIZE,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    NORMALIZATION_MEAN,
    NORMALIZATION_STD,
    SHIFTS,
    TEST_SPLIT,
    ZOO_NAMES,
    ZOO_SPECS,
    default_weights_dir,
    json_form,
    weights_sha256,
    zoo_manifest,
)
from vidadv.models.zoo_transformers import (
    TRANSFORMER_ZOO_NAMES,
    TRANSFORMER_ZOO_SPECS,
    WEIGHTS_FILE,
    export_pretrained,
    import_transformers,
)
from vidadv.training.accuracy import evaluate_accuracy
from vidadv.training.loop import TrainingResult, default_seed, train_zoo_model
from vidadv.training.recipe import Recipe
from vidadv.utils.io import atomic_write_bytes, atomic_write_json

__all__ = ["print_zoo", "run_train"]


def _serialize_weights(network: nn.Module) -> bytes:
    """safetensors bytes of `network.state_dict()` (aliased modules stored under every name)."""
    state = {k: v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}
    return save(state, metadata={"format": "pt"})


def _dataset(split: str, num_clips: int, seed: int, cache: bool | str | Path, progress: bool):
    return ProceduralActions(
        split,
        size=INPUT_SIZE,
        frames=INPUT_FRAMES,
        num_clips=num_clips,
        seed=seed,
        cache=cache,
        progress=progress,
    )


def _architecture_fields(name: str, network: nn.Module) -> dict[str, Any]:
    """The manifest fields that say what model `name` is: a zoo CNN's constructor, a transformer's config."""
    if name in TRANSFORMER_ZOO_SPECS:
        transformer = TRANSFORMER_ZOO_SPECS[name]
        return {
            "family": transformer.model_type,
            "class": f"transformers.{type(network.model).__name__}",
            "analogue": transformer.analogue,
            "config": dict(transformer.config),
            "layout": "NCTHW (the wrapper passes NTCHW pixel_values)",
            "attention_layer": "network.token_grid",
            "optimizer": "AdamW, one-cycle (linear warm-up, cosine decay); no weight decay on biases, "
            "LayerNorm, class token, position and time embeddings",
        }
    spec = ZOO_SPECS[name]
    return {
        "family": spec.family,
        "class": f"{FAMILY_CLASSES[spec.family].__module__}.{FAMILY_CLASSES[spec.family].__name__}",
        "analogue": spec.analogue,
        "constructor": json_form(spec.constructor),
        "layout": "NCTHW",
        "attention_layer": spec.attention_layer,
        "optimizer": "AdamW, one-cycle (linear warm-up, cosine decay)",
    }


def _manifest_entry(
    name: str,
    network: nn.Module,
    recipe: Recipe,
    seed: int,
    result: TrainingResult,
    accuracies: Mapping[int, float],
    weights_file: str,
    sha256: str,
) -> dict[str, Any]:
    """The manifest entry of a trained zoo model (CNN or transformer)."""
    fields = _architecture_fields(name, network)
    layout, attention_layer, optimizer = (
        fields.pop("layout"),
        fields.pop("attention_layer"),
        fields.pop("optimizer"),
    )
    entry = {
        **fields,
        "parameters": sum(p.numel() for p in network.parameters()),
        "input": {
            "frames": INPUT_FRAMES,
            "size": INPUT_SIZE,
            "channels": 3,
            "layout": layout,
            "range": [0, 1],
        },
        "normalization": {"mean": list(NORMALIZATION_MEAN), "std": list(NORMALIZATION_STD)},
        "attention_layer": attention_layer,
        "recipe": {
            **recipe.to_json(),
            "seed": seed,
            "optimizer": optimizer,
            "augmentation": "random temporal window (per epoch), random crop + resize, contrast/brightness "
            "jitter, horizontal flip with left/right label swap",
            "train_split": {"split": "train", "num_clips": recipe.train_clips, "seed": recipe.train_seed},
            "generator_version": GENERATOR_VERSION,
        },
        "val_curve": [[step, round(acc, 4)] for step, acc in result.val_curve],
        "train_seconds": round(result.seconds, 1),
        "test_split": dict(TEST_SPLIT),
        "test_accuracy": accuracies[0],
        "shift_accuracy": {str(k): accuracies[k] for k in SHIFTS},
        "weights": weights_file,
        "sha256": sha256,
        "torch_version": torch.__version__,
    }
    if name in TRANSFORMER_ZOO_SPECS:
        entry["transformers_version"] = import_transformers().__version__
    return entry


ALL_ZOO_NAMES: tuple[str, ...] = (*ZOO_NAMES, *TRANSFORMER_ZOO_NAMES)


def _check_models(models: Sequence[str] | None) -> list[str]:
    if models is None or len(models) == 0:
        return list(ZOO_NAMES)
    if isinstance(models, str):
        models = [models]
    unknown = [m for m in models if m not in ALL_ZOO_NAMES]
    if unknown:
        raise ValueError(f"unknown zoo model(s) {unknown}; zoo models: {', '.join(ALL_ZOO_NAMES)}")
    return list(dict.fromkeys(models))


def _write_transformer_folder(network: nn.Module, folder: Path, progress: bool) -> str:
    """Export `network` to the Hugging Face folder `folder`, replacing an older one only once the new one is
    complete; returns the sha256 of its weights."""
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    export_pretrained(network, staging, progress=progress)
    for path in [staging, *staging.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # package data: readable by every user
    retired = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    if retired.exists():
        shutil.rmtree(retired)
    return weights_sha256(folder / WEIGHTS_FILE)


def run_train(
    models: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    steps: int | None = None,
    seed: int | None = None,
    recipe: Recipe | None = None,
    cache: bool | str | Path = False,
    progress: bool = True,
) -> int:
    """Train zoo models with the documented recipe and write weights + manifest (`vidadv zoo train`).

    Args:
        models: zoo names (default: the six CNNs; the transformers `timesformer-s` and `videomae-s` need
            the transformers extra), trained one after the other.
        out_dir: folder for `<name>.safetensors` and `manifest.json` (default: the package's `zoo_weights/`).
            Entries of models not trained now are kept in the manifest.
        steps: training steps (default: the recipe's).
        seed: one seed for every model (default: each model's own seed from `ZOO_SPECS`).
        recipe: hyper-parameters (default `Recipe()`, with the transformer spec's `lr` for a transformer).
        cache: False renders the data splits in memory (about 3 minutes, 0.5 GB); True caches them under
            `vidadv.data.synthetic.default_cache_dir()`, or give a folder.
        progress: show progress bars.

    Returns 0 (the CLI's exit status). Prints a summary table.
    """
    names = _check_models(models)
    custom_recipe = recipe is not None
    recipe = recipe or Recipe()
    if steps is not None:
        recipe = dataclasses.replace(recipe, steps=steps)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    folder = default_weights_dir() if out_dir is None else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)

    train_set = _dataset("train", recipe.train_clips, recipe.train_seed, cache, progress)
    val_set = _dataset("val", recipe.val_clips, recipe.val_seed, cache, progress)
    test_set = _dataset(TEST_SPLIT["split"], TEST_SPLIT["num_clips"], TEST_SPLIT["seed"], cache, progress)
    if any(name in TRANSFORMER_ZOO_SPECS for name in names):
        import_transformers()  # the transformers extra is checked before any data is rendered
    for name in names:
        model_seed = default_seed(name) if seed is None else seed
        model_recipe = recipe
        if name in TRANSFORMER_ZOO_SPECS and not custom_recipe:
            model_recipe = dataclasses.replace(recipe, lr=TRANSFORMER_ZOO_SPECS[name].lr)
        result = train_zoo_model(
            name, model_recipe, train_set, val_set, seed=model_seed, progress=progress, log=print
        )
        accuracies = evaluate_accuracy(result.classifier, test_set, shifts=(0, *SHIFTS), progress=progress)
        if name in TRANSFORMER_ZOO_SPECS:
            weights_file = f"{name}/{WEIGHTS_FILE}"
            sha256 = _write_transformer_folder(result.network, folder / name, progress)
        else:
            weights_file = f"{name}.safetensors"
            data = _serialize_weights(result.network)
            atomic_write_bytes(folder / weights_file, data)
            (folder / weights_file).chmod(0o644)  # package data: readable by every user
            sha256 = hashlib.sha256(data).hexdigest()
        entry = _manifest_entry(
            name, result.network, model_recipe, model_seed, result, accuracies, weights_file, sha256
        )
        try:
            manifest = zoo_manifest(folder)
        except (FileNotFoundError, ValueError):
            manifest = {}
        manifest = _new_manifest(manifest)
        manifest["models"][name] = entry
        manifest["models"] = {n: manifest["models"][n] for n in ALL_ZOO_NAMES if n in manifest["models"]}
        atomic_write_json(folder / MANIFEST_NAME, manifest)
        (folder / MANIFEST_NAME).chmod(0o644)
        print(
            f"{name}: test accuracy {accuracies[0]:.3f}, shifted 1..8: "
            + " ".join(f"{accuracies[k]:.3f}" for k in SHIFTS)
            + f", {result.seconds:.0f} s -> {folder / weights_file}"
        )
    print_zoo(folder)
    return 0


def _new_manifest(previous: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "description": "vidadv embedded model zoo: small video networks trained on vidadv.data.synthetic",
        "dataset": {
            "module": "vidadv.data.synthetic",
            "generator_version": GENERATOR_VERSION,
            "class_names": list(CLASS_NAMES),
            "test_split": dict(TEST_SPLIT),
        },
        "input": {"frames": INPUT_FRAMES, "size": INPUT_SIZE, "layout": "NCTHW", "range": [0, 1]},
        "normalization": {"mean": list(NORMALIZATION_MEAN), "std": list(NORMALIZATION_STD)},
        "models": dict(previous.get("models", {})),
    }


def _format_table(rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first row is the header; columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def print_zoo(weights_dir: str | Path | None = None) -> int:
    """Print the zoo models with their architecture and accuracy (`vidadv zoo list`); returns 0."""
    try:
        entries = zoo_manifest(weights_dir)["models"]
    except (FileNotFoundError, ValueError) as error:
        print(f"zoo manifest unavailable: {error}")
        entries = {}
    rows = [
        ["model", "family", "params", "test acc", "shift 1..8 acc (min / mean)", "train s", "attention layer"]
    ]
    for name in ALL_ZOO_NAMES:
        if name in TRANSFORMER_ZOO_SPECS:
            family, layer = TRANSFORMER_ZOO_SPECS[name].model_type, "network.token_grid"
        else:
            family, layer = ZOO_SPECS[name].family, ZOO_SPECS[name].attention_layer
        entry = entries.get(name)
        if not isinstance(entry, dict):
            rows.append([name, family, "-", "-", "not trained", "-", layer])
            continue
        shifted = [float(v) for v in entry.get("shift_accuracy", {}).values()]
        shift_text = f"{min(shifted):.3f} / {sum(shifted) / len(shifted):.3f}" if shifted else "-"
        rows.append(
            [
                name,
                family,
                f"{int(entry.get('parameters', 0)):,}",
                f"{float(entry.get('test_accuracy', 0.0)):.3f}",
                shift_text,
                f"{float(entry.get('train_seconds', 0.0)):.0f}",
                str(entry.get("attention_layer", layer)),
            ]
        )
    print(_format_table(rows))
    return 0
