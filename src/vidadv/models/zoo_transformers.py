"""Two small video transformers for the embedded zoo, built from `transformers`' own classes.

The zoo's CNNs (`vidadv.models.zoo`) are trained on vidadv's procedural action clips (32 frames of 32x32
pixels, 12 classes). These two specs are their transformer counterparts, for CNN <-> transformer transfer:

============== ===================================================== ============================
name           architecture                                          analogue of
============== ===================================================== ============================
timesformer-s  TimeSformer, divided space-time attention, 8x8        facebook/timesformer-base-
               patches per frame (16 x 32 = 512 tokens + CLS)        finetuned-k400
videomae-s     VideoMAE, joint space-time attention over 2x8x8       MCG-NJU/videomae-base-
               tubelets (16 x 16 = 256 tokens), mean pooling         finetuned-kinetics
============== ===================================================== ============================

Both: width 64, 4 blocks, 4 heads, MLP 128, no dropout or stochastic depth, 12 classes, the zoo's
normalization (mean 0.5, std 0.25). A trained model is shipped as a `save_pretrained` folder plus a
`preprocessor_config.json` holding that normalization (`export_pretrained`), so it loads with
`load_model("hf", checkpoint=folder)` like any Hugging Face video classifier, token Grad-CAM included.

Training them with the zoo recipe needs two things from the trainer: the batch must reach the network
through `classifier.network_input(clips)` (layout (N, T, C, H, W)), not `classifier.normalize(clips)`;
and the class token and position/time embeddings (`no_weight_decay`) should get no weight decay.
`transformers` is imported only when a network is built (optional, slow import; see vidadv.models.hf).
Trained models live in the zoo folder as `<name>/` (config.json, model.safetensors, preprocessor config),
listed with their sha256 in the zoo's manifest.json; `load_model("timesformer-s")` checks both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidadv.data.synthetic import CLASS_NAMES
from vidadv.models.hf import (
    HF_ARCHITECTURES,
    PREPROCESSOR_FILES,
    HFVideoClassifier,
    HFVideoNetwork,
    import_transformers,
    load_hf_video_classifier,
)
from vidadv.models.zoo import MANIFEST_NAME, default_weights_dir, weights_sha256, zoo_manifest
from vidadv.utils.io import atomic_write_json

__all__ = [
    "NORMALIZATION_MEAN",
    "NORMALIZATION_STD",
    "TRANSFORMER_ZOO_NAMES",
    "TRANSFORMER_ZOO_SPECS",
    "TransformerZooSpec",
    "build_transformer_network",
    "export_pretrained",
    "load_zoo_transformer",
    "no_weight_decay",
    "zoo_transformer_folder",
    "wrap_transformer_network",
]

#: The zoo's normalization (as `vidadv.models.zoo`): (clip - 0.5) / 0.25.
NORMALIZATION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
NORMALIZATION_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)
_NUM_CLASSES = 12  # len(vidadv.data.synthetic.CLASS_NAMES)
_SMALL: dict[str, Any] = {
    "image_size": 32,
    "num_frames": 32,
    "num_channels": 3,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "num_labels": _NUM_CLASSES,
}


WEIGHTS_FILE = "model.safetensors"
TRAIN_HINT = (
    "run `vidadv zoo train --models timesformer-s videomae-s` (needs `pip install -e .[transformers]`)"
)


@dataclass(frozen=True)
class TransformerZooSpec:
    """One zoo transformer: `model_type` (a key of `vidadv.models.hf.HF_ARCHITECTURES`), the keyword
    arguments of its transformers config class (JSON-compatible), the seed, the public analogue and the
    zoo recipe's learning rate for it (`lr`; ViT-style training uses about 1e-3 at batch 24)."""

    name: str
    model_type: str
    config: Mapping[str, Any]
    seed: int
    analogue: str
    lr: float = 1e-3


TRANSFORMER_ZOO_SPECS: dict[str, TransformerZooSpec] = {
    spec.name: spec
    for spec in (
        TransformerZooSpec(
            "timesformer-s",
            "timesformer",
            {**_SMALL, "patch_size": 8, "attention_type": "divided_space_time"},
            seed=401,
            analogue="facebook/timesformer-base-finetuned-k400",
        ),
        TransformerZooSpec(
            "videomae-s",
            "videomae",
            {**_SMALL, "patch_size": 8, "tubelet_size": 2, "use_mean_pooling": True},
            seed=402,
            analogue="MCG-NJU/videomae-base-finetuned-kinetics",
        ),
    )
}
TRANSFORMER_ZOO_NAMES: tuple[str, ...] = tuple(TRANSFORMER_ZOO_SPECS)

_CONFIG_CLASSES = {"timesformer": "TimesformerConfig", "videomae": "VideoMAEConfig"}
_MODEL_CLASSES = {
    "timesformer": "TimesformerForVideoClassification",
    "videomae": "VideoMAEForVideoClassification",
}


def _spec(name: object) -> TransformerZooSpec:
    if not isinstance(name, str) or name not in TRANSFORMER_ZOO_SPECS:
        raise ValueError(f"unknown zoo transformer {name!r}; known: {', '.join(TRANSFORMER_ZOO_NAMES)}")
    return TRANSFORMER_ZOO_SPECS[name]


def build_transformer_network(name: str, seed: int | None = None) -> HFVideoNetwork:
    """The bare network of zoo transformer `name`, freshly initialized from `seed` (default: the spec's).

    Initialization is drawn from a forked global RNG (transformers initializes through torch.nn.init), so
    the caller's random state is untouched.
    """
    spec = _spec(name)
    transformers = import_transformers()
    config = getattr(transformers, _CONFIG_CLASSES[spec.model_type])(**spec.config)
    config._attn_implementation = "eager"  # exact second-order gradients for ATA
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed if seed is None else seed)
        model = getattr(transformers, _MODEL_CLASSES[spec.model_type])(config)
    return HFVideoNetwork(model, HF_ARCHITECTURES[spec.model_type])


def wrap_transformer_network(network: HFVideoNetwork) -> HFVideoClassifier:
    """`network` in an `HFVideoClassifier` with the zoo normalization (clips (N, 3, 32, 32, 32) in [0, 1])."""
    return HFVideoClassifier(
        network,
        mean=NORMALIZATION_MEAN,
        std=NORMALIZATION_STD,
        normalization_source="the vidadv zoo normalization",
    )


def no_weight_decay(network: HFVideoNetwork) -> list[str]:
    """Names of parameters that should get no weight decay: class token, position and time embeddings,
    biases and LayerNorm parameters (every parameter with fewer than 2 dimensions)."""
    embeddings = ("cls_token", "position_embeddings", "time_embeddings")
    return [
        name
        for name, parameter in network.named_parameters()
        if parameter.dim() < 2 or name.rsplit(".", 1)[-1] in embeddings
    ]


def export_pretrained(network: HFVideoNetwork, folder: str | Path, progress: bool = True) -> Path:
    """Write `network` as a Hugging Face folder: config.json, model.safetensors and a
    `preprocessor_config.json` with the zoo normalization, so `load_model("hf", checkpoint=folder)`
    loads it back with the right mean/std. `progress=False` silences `transformers`' own bar."""
    folder = Path(folder)
    config = network.model.config
    if config.num_labels == len(CLASS_NAMES):
        config.id2label = dict(enumerate(CLASS_NAMES))
        config.label2id = {label: index for index, label in enumerate(CLASS_NAMES)}
    hf_logging = import_transformers().utils.logging
    bar_was_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        network.model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    preprocessor = {
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(NORMALIZATION_MEAN),
        "image_std": list(NORMALIZATION_STD),
    }
    atomic_write_json(folder / PREPROCESSOR_FILES[1], preprocessor)
    return folder


def parameter_count(network: nn.Module) -> int:
    """Number of parameters of `network`."""
    return sum(p.numel() for p in network.parameters())


def zoo_transformer_folder(name: str, weights_dir: str | Path | None = None) -> Path:
    """The Hugging Face folder of zoo transformer `name` inside the zoo folder (default: the shipped one)."""
    return (default_weights_dir() if weights_dir is None else Path(weights_dir)) / _spec(name).name


def _verify_against_manifest(name: str, folder: Path) -> None:
    """The manifest next to `folder` must list `name` with this version's config and the weights' sha256."""
    spec = _spec(name)
    manifest = zoo_manifest(folder.parent)
    entry = manifest["models"].get(name)
    if not isinstance(entry, dict):
        raise FileNotFoundError(
            f"zoo transformer {name!r} is not in the manifest {str(folder.parent / MANIFEST_NAME)!r} "
            f"(trained there: {', '.join(sorted(manifest['models'])) or 'none'}); {TRAIN_HINT}"
        )
    if entry.get("config") != dict(spec.config) or entry.get("family") != spec.model_type:
        raise ValueError(
            f"the manifest's architecture for {name!r} ({entry.get('family')}, {entry.get('config')}) "
            f"differs from this vidadv version's ({spec.model_type}, {dict(spec.config)}); {TRAIN_HINT}"
        )
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"weights file {str(weights)!r} of zoo transformer {name!r} is missing; {TRAIN_HINT}"
        )
    actual = weights_sha256(weights)
    if actual != entry.get("sha256"):
        raise ValueError(
            f"weights file {str(weights)!r} of zoo transformer {name!r} does not match the manifest (sha256 "
            f"{actual[:16]}..., manifest says {str(entry.get('sha256'))[:16]}...); {TRAIN_HINT}"
        )


def load_zoo_transformer(
    name: str,
    checkpoint: str | Path | None = None,
    *,
    num_classes: int | None = None,
    mean: Any = None,
    std: Any = None,
    **overrides: Any,
) -> HFVideoClassifier:
    """`load_model("timesformer-s")` / `load_model("videomae-s")`: the trained zoo transformer.

    `checkpoint` is its Hugging Face folder (default: the shipped `zoo_weights/<name>/`). A folder whose
    parent holds a zoo manifest is checked against it (architecture and sha256); any other folder loads as
    a plain Hugging Face model. `overrides`: only `attn_implementation` (see `load_hf_video_classifier`).
    """
    spec = _spec(name)
    unknown = sorted(set(overrides) - {"attn_implementation"})
    if unknown:
        raise ValueError(f"load_model({name!r}) takes no network overrides, got {unknown}")
    folder = zoo_transformer_folder(name) if checkpoint is None else Path(checkpoint)
    if checkpoint is None and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"zoo transformer {name!r} is not trained: no {str(folder)!r}; {TRAIN_HINT}")
    if (folder.parent / MANIFEST_NAME).is_file() and folder.name == spec.name:
        _verify_against_manifest(name, folder)
    return load_hf_video_classifier(folder, num_classes=num_classes, mean=mean, std=std, **overrides)
