"""The embedded model zoo: six small video networks trained on vidadv's procedural action clips.

What a zoo model is: its architecture (`ZOO_SPECS`: family, constructor arguments, attention layer,
seed), the input it takes, and its shipped weights (`zoo_weights/`, checked against the sha256 in
`manifest.json`). The models are registered in `vidadv.models.catalogue` and loaded with
`vidadv.models.load_model(name)`; `vidadv.training` trains them (`vidadv zoo train`). The recipe, the
architecture choices and what was tried are in docs/zoo.md.

========== ============================================ ==========================================
name       architecture                                 analogue of
========== ============================================ ==========================================
nl-s       I3D-NL, blocks (1,1,1,1), width 8, 1 NL       i3d_nl5_resnet50_v1_kinetics400
nl-l       I3D-NL, blocks (2,2,2,2), width 8, 2 NL       i3d_nl5_resnet101_v1_kinetics400
slowfast-s SlowFast, blocks (1,1,1,1), width 8, a4 b4    slowfast_8x8_resnet50_kinetics400
slowfast-l SlowFast, blocks (2,2,2,2), width 8, a4 b4    slowfast_8x8_resnet101_kinetics400
tpn-s      TPN, blocks (1,1,1,1), width 8, neck 32, T/4  tpn_resnet50_f32s2_kinetics400
tpn-l      TPN, blocks (2,2,2,2), width 8, neck 64, T/4  tpn_resnet101_f32s2_kinetics400
========== ============================================ ==========================================

Input: clips (N, 3, 32, 32, 32) in [0, 1]; every classifier normalizes with mean 0.5 and std 0.25 per
channel. At 32x32 the last stage of each network is 1x1 in space, so each model's attention layer
(Grad-CAM / ATA) is the stage before it (2x2 in space). Logits are over
`vidadv.data.synthetic.CLASS_NAMES`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vidadv.models.i3d import I3DNonLocal
from vidadv.models.slowfast import SlowFast
from vidadv.models.tpn import TPN

__all__ = [
    "FAMILY_CLASSES",
    "INPUT_FRAMES",
    "INPUT_SIZE",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "NORMALIZATION_MEAN",
    "NORMALIZATION_STD",
    "SHIFTS",
    "TEST_SPLIT",
    "TRAIN_HINT",
    "ZOO_NAMES",
    "ZOO_SPECS",
    "ZooSpec",
    "build_zoo_architecture",
    "build_zoo_network",
    "check_zoo_name",
    "default_weights_dir",
    "json_form",
    "read_zoo_weights",
    "weights_sha256",
    "zoo_manifest",
]

#: Names of the zoo models (small/large depth of each family).
ZOO_NAMES: tuple[str, ...] = ("nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l")

#: Frame height/width and clip length the zoo models are trained and evaluated at.
INPUT_SIZE = 32
INPUT_FRAMES = 32
#: Per-channel normalization inside every zoo classifier: (clip - 0.5) / 0.25.
NORMALIZATION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
NORMALIZATION_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)
#: Fixed test split every manifest accuracy refers to (arguments of `ProceduralActions`).
TEST_SPLIT: dict[str, Any] = {"split": "test", "num_clips": 600, "seed": 0}
#: Cyclic temporal shifts (frames) whose clean accuracy the manifest records.
SHIFTS: tuple[int, ...] = tuple(range(1, 9))

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
TRAIN_HINT = "run `vidadv zoo train` (or vidadv.training.run_train()) to train the zoo models"


@dataclass(frozen=True)
class ZooSpec:
    """Architecture of one zoo model.

    `family` is "i3d_nonlocal", "slowfast" or "tpn"; `constructor` holds the keyword arguments of the
    family class (JSON-compatible: tuples as lists, dict keys as strings, as stored in the manifest);
    `attention_layer` is relative to the `VideoClassifier`; `seed` seeds initialization and training;
    `min_frames` is the fewest frames the network accepts.
    """

    name: str
    family: str
    constructor: Mapping[str, Any]
    attention_layer: str
    seed: int
    analogue: str
    min_frames: int


def json_form(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples -> lists, keys -> strings)."""
    return json.loads(json.dumps(value))


_NUM_CLASSES = 12  # len(vidadv.data.synthetic.CLASS_NAMES); checked when training
_SMALL, _LARGE = (1, 1, 1, 1), (2, 2, 2, 2)
_SLOWFAST = {"base_channels": 8, "alpha": 4, "beta": 4, "fusion_kernel_size": 5, "num_classes": _NUM_CLASSES}
_TPN = {
    "base_channels": 8,
    "neck_groups": 8,
    "inflate": (True, True, True, True),
    "stem_temporal_kernel": 5,
    "stem_temporal_stride": 4,
    "num_classes": _NUM_CLASSES,
}
#: Per family: the attention layer at 32x32 (the stage before the last, 2x2 in space) and min_frames.
_FAMILY_FACTS = {
    "i3d_nonlocal": ("network.res_layers.2", 5),
    "slowfast": ("network.slow_res4", 4),
    "tpn": ("network.layer3", 32),
}


def _spec(name: str, family: str, seed: int, analogue: str, **constructor: Any) -> ZooSpec:
    attention_layer, min_frames = _FAMILY_FACTS[family]
    # The constructor is stored in JSON form (tuples as lists, keys as strings), as the manifest has it.
    return ZooSpec(name, family, json_form(constructor), attention_layer, seed, analogue, min_frames)


# fmt: off
ZOO_SPECS: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "nl-s", "i3d_nonlocal", 101, "i3d_nl5_resnet50_v1_kinetics400",
            layers=_SMALL, base_channels=8, num_classes=_NUM_CLASSES, nonlocal_blocks={1: (0,)},
        ),
        _spec(
            "nl-l", "i3d_nonlocal", 102, "i3d_nl5_resnet101_v1_kinetics400",
            layers=_LARGE, base_channels=8, num_classes=_NUM_CLASSES, nonlocal_blocks={1: (1,), 2: (1,)},
        ),
        _spec("slowfast-s", "slowfast", 201, "slowfast_8x8_resnet50_kinetics400", layers=_SMALL, **_SLOWFAST),
        _spec(
            "slowfast-l", "slowfast", 202, "slowfast_8x8_resnet101_kinetics400",
            layers=_LARGE, **_SLOWFAST,
        ),
        _spec(
            "tpn-s", "tpn", 301, "tpn_resnet50_f32s2_kinetics400",
            layers=_SMALL, neck_channels=32, temporal_scales=(8, 8), **_TPN,
        ),
        _spec(
            "tpn-l", "tpn", 302, "tpn_resnet101_f32s2_kinetics400",
            layers=_LARGE, neck_channels=64, temporal_scales=(4, 8), **_TPN,
        ),
    )
}
# fmt: on


#: The family classes, by `ZooSpec.family`.
FAMILY_CLASSES: dict[str, type[nn.Module]] = {"i3d_nonlocal": I3DNonLocal, "slowfast": SlowFast, "tpn": TPN}


def check_zoo_name(name: object) -> str:
    """`name` if it is a zoo model's name; a TypeError/ValueError listing the zoo otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"zoo model name must be a string, got {type(name).__name__}")
    if name not in ZOO_SPECS:
        raise ValueError(f"unknown zoo model {name!r}; zoo models: {', '.join(ZOO_NAMES)}")
    return name


def _constructor_arguments(spec: ZooSpec) -> dict[str, Any]:
    """The JSON-form constructor arguments converted to what the family class takes."""
    kwargs = dict(spec.constructor)
    if "layers" in kwargs:
        kwargs["layers"] = tuple(kwargs["layers"])
    if "temporal_scales" in kwargs:
        kwargs["temporal_scales"] = tuple(kwargs["temporal_scales"])
    if "nonlocal_blocks" in kwargs:
        kwargs["nonlocal_blocks"] = {int(k): tuple(v) for k, v in kwargs["nonlocal_blocks"].items()}
    return kwargs


def build_zoo_architecture(
    name: str, num_classes: int | None = None, generator: torch.Generator | None = None, **overrides: Any
) -> nn.Module:
    """The bare network of zoo model `name` (its catalogue builder): the spec's constructor arguments,
    `num_classes` and `overrides` replacing them; initialization drawn from `generator`."""
    spec = ZOO_SPECS[check_zoo_name(name)]
    kwargs = _constructor_arguments(spec)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(overrides)
    return FAMILY_CLASSES[spec.family](**kwargs, generator=generator)


def build_zoo_network(name: str, seed: int | None = None) -> nn.Module:
    """The bare network of zoo model `name`, freshly initialized from `seed` (default: the spec's seed)."""
    spec = ZOO_SPECS[check_zoo_name(name)]
    seed = spec.seed if seed is None else seed
    return build_zoo_architecture(name, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ weights


def default_weights_dir() -> Path:
    """The folder of the shipped weights: `vidadv/models/zoo_weights/` inside the package."""
    return Path(__file__).resolve().parent / "zoo_weights"


def weights_sha256(path: str | Path) -> str:
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def zoo_manifest(weights_dir: str | Path | None = None) -> dict[str, Any]:
    """The parsed `manifest.json` of the zoo (shipped one by default).

    Raises FileNotFoundError (with the command that creates it) when there is none, ValueError when it is
    not a zoo manifest.
    """
    folder = default_weights_dir() if weights_dir is None else Path(weights_dir)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no zoo manifest at {str(path)!r}; {TRAIN_HINT}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read zoo manifest {str(path)!r}: {error}; {TRAIN_HINT}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise ValueError(f"{str(path)!r} is not a zoo manifest (no 'models' table); {TRAIN_HINT}")
    return manifest


def read_zoo_weights(name: str, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of zoo model `name` stored at `path` (the catalogue's weight reader).

    The `manifest.json` next to the file must list `name` with this version's architecture and the
    file's sha256; each failure is a FileNotFoundError/ValueError that says how to retrain.
    """
    name = check_zoo_name(name)
    path = Path(path)
    folder = path.parent
    manifest = zoo_manifest(folder)
    entry = manifest["models"].get(name)
    if not isinstance(entry, dict):
        raise FileNotFoundError(
            f"zoo model {name!r} is not in the manifest {str(folder / MANIFEST_NAME)!r} (trained there: "
            f"{', '.join(sorted(manifest['models'])) or 'none'}); {TRAIN_HINT}"
        )
    spec = ZOO_SPECS[name]
    if entry.get("constructor") != json_form(spec.constructor) or entry.get("family") != spec.family:
        raise ValueError(
            f"the manifest's architecture for {name!r} ({entry.get('family')}, {entry.get('constructor')}) "
            f"differs from this vidadv version's ({spec.family}, {json_form(spec.constructor)}); "
            f"{TRAIN_HINT}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} of zoo model {name!r} is missing; {TRAIN_HINT}")
    expected = entry.get("sha256")
    actual = weights_sha256(path)
    if actual != expected:
        raise ValueError(
            f"weights file {str(path)!r} of zoo model {name!r} does not match the manifest (sha256 "
            f"{actual[:16]}..., manifest says {str(expected)[:16]}...): the file is damaged or from another "
            f"training run; {TRAIN_HINT}"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"cannot read weights file {str(path)!r}: {error}; {TRAIN_HINT}") from error
