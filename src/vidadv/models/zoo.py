"""The embedded model zoo: six small video networks trained on vidadv's procedural action clips.

Pretrained Kinetics-400 weights are out of reach offline, so vidadv ships six small networks, built by the
same family code as the full-size models of the TT paper (Wei et al., AAAI 2022), at two depths each (the
analogues of ResNet-50 and ResNet-101) and reduced width, trained on `vidadv.data.synthetic`:

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

The two TPN models differ from gluoncv's TPN configuration in their temporal front end (constructor
arguments of the same `TPN` class): a 5x7x7 stem with temporal stride 4 (the backbone works on 8 time
steps, as I3D's stem and pools reduce 32 frames to 8 before its first stage), all four stages inflated,
and temporal scales (8, 8) / (4, 8) in place of (32, 32) / (16, 32) (the same pyramid, on 8 steps).
gluoncv's configuration (1x7x7 stem, no temporal downsampling, stages 3-4 inflated) keeps every time step,
so at 32x32 pixels its only temporal convolutions see 3 consecutive frames of 2x2 feature maps; trained
with this recipe it never told rotate_cw from rotate_ccw (test accuracy 87-88 %, that pair at chance), nor
did it with all stages inflated, a 5x7x7 stem, or a 4x wider neck (1750-3000-step runs). Temporal
downsampling lets the temporal convolutions compare frames far enough apart to see the rotation.

Input: clips (N, 3, 32, 32, 32) in [0, 1] (32 frames of 32x32 pixels); every classifier normalizes with
mean 0.5 and std 0.25 per channel (a fixed, data-independent choice that maps [0, 1] to [-2, 2]). At 32x32
the last stage of each network is 1x1 in space, so each classifier's `attention_layer` (Grad-CAM / ATA) is
the stage before it (2x2 in space).

Training recipe (`Recipe`, `run_train`; the CLI is `vidadv zoo train`), the way real video models are
trained: a fixed training split (`ProceduralActions("train", num_clips=2400, seed=0)`, 48-frame sequences)
seen for 30 epochs (3000 steps of 24 clips), with a random 32-frame temporal window per clip and epoch,
random scale/translation crops (resampled back to 32x32), brightness/contrast jitter, and a horizontal
flip that swaps the labels it mirrors (move_right <-> move_left, rotate_cw <-> rotate_ccw); AdamW (no
weight decay on biases and BatchNorm) with a one-cycle schedule (linear warm-up, cosine decay), label
smoothing, gradient clipping, and TPN's auxiliary loss (weight 0.5). Each model has its own seed
(initialization, batch order, augmentation). The long schedule matters: the I3D-NL and SlowFast models
learn the other classes first and tell rotate_cw from rotate_ccw (the hardest pair at 32x32) only late,
after 1000-2500 steps; with 1000-1500 steps the models stay near 85-90 % with that pair at chance.

`manifest.json` next to the weights records, per model, the architecture, the normalization, the recipe,
the test accuracy on `ProceduralActions("test", num_clips=600, seed=0)` and the accuracy under cyclic
temporal shifts of 1..8 frames (`torch.roll` along T, the operation TT averages over), the attention
layer, the sha256 of the weights file and the torch version.

Public API: `ZOO_NAMES`, `ZOO_SPECS`, `Recipe`, `build_zoo_network`, `wrap_zoo_network`,
`load_zoo_model`, `zoo_manifest`, `train_zoo_model`, `evaluate_accuracy`, `shifted_accuracy`,
`augment_clips`, `run_train`, `print_zoo`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.models.wrapper import VideoClassifier

__all__ = [
    "FLIP_LABEL_SWAPS",
    "INPUT_FRAMES",
    "INPUT_SIZE",
    "MANIFEST_NAME",
    "NORMALIZATION_MEAN",
    "NORMALIZATION_STD",
    "Recipe",
    "SHIFTS",
    "TEST_SPLIT",
    "TrainingResult",
    "ZOO_NAMES",
    "ZOO_SPECS",
    "ZooSpec",
    "augment_clips",
    "build_zoo_network",
    "default_weights_dir",
    "evaluate_accuracy",
    "flip_label_map",
    "load_zoo_model",
    "print_zoo",
    "run_train",
    "shifted_accuracy",
    "train_zoo_model",
    "weights_sha256",
    "wrap_zoo_network",
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
#: Class-name pairs a horizontal flip exchanges (all other classes are mirror-symmetric).
FLIP_LABEL_SWAPS: tuple[tuple[str, str], ...] = (("move_right", "move_left"), ("rotate_cw", "rotate_ccw"))

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_TRAIN_HINT = "run `vidadv zoo train` (or vidadv.models.zoo.run_train()) to train the zoo models"


@dataclass(frozen=True)
class ZooSpec:
    """Architecture of one zoo model.

    `family` is "i3d_nonlocal", "slowfast" or "tpn"; `constructor` holds the keyword arguments of the
    family class (JSON-compatible: tuples as lists, dict keys as strings, as stored in the manifest);
    `attention_layer` is relative to the `VideoClassifier`; `seed` seeds initialization and training.
    """

    name: str
    family: str
    constructor: Mapping[str, Any]
    attention_layer: str
    seed: int
    analogue: str


_NUM_CLASSES = 12  # len(vidadv.data.synthetic.CLASS_NAMES); checked when training

ZOO_SPECS: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in (
        ZooSpec(
            "nl-s",
            "i3d_nonlocal",
            {
                "layers": [1, 1, 1, 1],
                "base_channels": 8,
                "num_classes": _NUM_CLASSES,
                "nonlocal_blocks": {"1": [0]},
            },
            "network.res_layers.2",
            seed=101,
            analogue="i3d_nl5_resnet50_v1_kinetics400",
        ),
        ZooSpec(
            "nl-l",
            "i3d_nonlocal",
            {
                "layers": [2, 2, 2, 2],
                "base_channels": 8,
                "num_classes": _NUM_CLASSES,
                "nonlocal_blocks": {"1": [1], "2": [1]},
            },
            "network.res_layers.2",
            seed=102,
            analogue="i3d_nl5_resnet101_v1_kinetics400",
        ),
        ZooSpec(
            "slowfast-s",
            "slowfast",
            {
                "layers": [1, 1, 1, 1],
                "base_channels": 8,
                "alpha": 4,
                "beta": 4,
                "fusion_kernel_size": 5,
                "num_classes": _NUM_CLASSES,
            },
            "network.slow_res4",
            seed=201,
            analogue="slowfast_8x8_resnet50_kinetics400",
        ),
        ZooSpec(
            "slowfast-l",
            "slowfast",
            {
                "layers": [2, 2, 2, 2],
                "base_channels": 8,
                "alpha": 4,
                "beta": 4,
                "fusion_kernel_size": 5,
                "num_classes": _NUM_CLASSES,
            },
            "network.slow_res4",
            seed=202,
            analogue="slowfast_8x8_resnet101_kinetics400",
        ),
        ZooSpec(
            "tpn-s",
            "tpn",
            {
                "layers": [1, 1, 1, 1],
                "base_channels": 8,
                "neck_channels": 32,
                "neck_groups": 8,
                "temporal_scales": [8, 8],
                "inflate": [True, True, True, True],
                "stem_temporal_kernel": 5,
                "stem_temporal_stride": 4,
                "num_classes": _NUM_CLASSES,
            },
            "network.layer3",
            seed=301,
            analogue="tpn_resnet50_f32s2_kinetics400",
        ),
        ZooSpec(
            "tpn-l",
            "tpn",
            {
                "layers": [2, 2, 2, 2],
                "base_channels": 8,
                "neck_channels": 64,
                "neck_groups": 8,
                "temporal_scales": [4, 8],
                "inflate": [True, True, True, True],
                "stem_temporal_kernel": 5,
                "stem_temporal_stride": 4,
                "num_classes": _NUM_CLASSES,
            },
            "network.layer3",
            seed=302,
            analogue="tpn_resnet101_f32s2_kinetics400",
        ),
    )
}

_FAMILY_CLASSES = {
    "i3d_nonlocal": "vidadv.models.i3d.I3DNonLocal",
    "slowfast": "vidadv.models.slowfast.SlowFast",
    "tpn": "vidadv.models.tpn.TPN",
}


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of the zoo training recipe (recorded in the manifest).

    Optimization: AdamW(lr, betas, weight_decay on conv/linear weights only), one-cycle schedule (linear
    warm-up over `warmup_fraction` of the steps from lr/25, then cosine decay to ~0), cross-entropy with
    `label_smoothing`, gradient-norm clipping at `grad_clip`, TPN auxiliary loss weighted `aux_loss_weight`.
    Data: `train_clips` clips of `ProceduralActions("train", seed=train_seed)` (48-frame sequences, a new
    random 32-frame window per clip and epoch), batches of `batch_size`. Augmentation (see
    `augment_clips`): crop side `crop_scale` of the frame (uniform per axis) at a random position, resampled
    to 32x32; contrast factor 1 +- `contrast`, brightness offset +- `brightness`; horizontal flip with
    probability `flip_probability` and label swap. Validation on `val_clips` clips of the val split every
    `eval_every` steps (monitoring only; nothing is selected on it).
    """

    steps: int = 3000
    batch_size: int = 24
    lr: float = 3e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    aux_loss_weight: float = 0.5
    train_clips: int = 2400
    train_seed: int = 0
    val_clips: int = 240
    val_seed: int = 0
    eval_every: int = 250
    crop_scale: tuple[float, float] = (0.75, 1.0)
    brightness: float = 0.1
    contrast: float = 0.2
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "train_clips", "val_clips", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe.{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError("Recipe.batch_size must be >= 2 (BatchNorm needs more than one clip)")
        if not self.lr > 0:
            raise ValueError(f"Recipe.lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"Recipe.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"Recipe.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale!r}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"Recipe.flip_probability must be in [0, 1], got {self.flip_probability!r}")

    def to_json(self) -> dict[str, Any]:
        """The recipe as a JSON-compatible dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ------------------------------------------------------------------------------------------ building


def _check_name(name: object) -> str:
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


def build_zoo_network(name: str, seed: int | None = None) -> nn.Module:
    """The bare network of zoo model `name`, freshly initialized from `seed` (default: the spec's seed)."""
    spec = ZOO_SPECS[_check_name(name)]
    seed = spec.seed if seed is None else seed
    kwargs = _constructor_arguments(spec)
    if spec.family == "slowfast":
        from vidadv.models.slowfast import SlowFast

        return SlowFast(**kwargs, seed=seed)
    if spec.family == "tpn":
        from vidadv.models.tpn import TPN

        return TPN(**kwargs, generator=torch.Generator().manual_seed(seed))
    from vidadv.models.i3d import I3DNonLocal

    # I3DNonLocal draws its initialization from torch's global generator: seed it without side effects.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return I3DNonLocal(**kwargs)


def wrap_zoo_network(name: str, network: nn.Module) -> VideoClassifier:
    """`network` in the zoo's `VideoClassifier` (normalization 0.5/0.25, attention layer, input length)."""
    spec = ZOO_SPECS[_check_name(name)]
    return VideoClassifier(
        network,
        mean=NORMALIZATION_MEAN,
        std=NORMALIZATION_STD,
        attention_layer=spec.attention_layer,
    )


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
        raise FileNotFoundError(f"no zoo manifest at {str(path)!r}; {_TRAIN_HINT}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read zoo manifest {str(path)!r}: {error}; {_TRAIN_HINT}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise ValueError(f"{str(path)!r} is not a zoo manifest (no 'models' table); {_TRAIN_HINT}")
    return manifest


def _read_verified_state(name: str, folder: Path, entry: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of `name` from `folder`, after checking the file's sha256 against the manifest."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / str(entry.get("weights", f"{name}.safetensors"))
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} of zoo model {name!r} is missing; {_TRAIN_HINT}")
    expected = entry.get("sha256")
    actual = weights_sha256(path)
    if actual != expected:
        raise ValueError(
            f"weights file {str(path)!r} of zoo model {name!r} does not match the manifest (sha256 "
            f"{actual[:16]}..., manifest says {str(expected)[:16]}...): the file is damaged or from another "
            f"training run; {_TRAIN_HINT}"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"cannot read weights file {str(path)!r}: {error}; {_TRAIN_HINT}") from error


def load_zoo_model(
    name: str, device: str | torch.device = "cpu", weights_dir: str | Path | None = None
) -> VideoClassifier:
    """Zoo model `name` with its trained weights: a frozen `VideoClassifier` in eval mode on `device`.

    The weights come from `weights_dir` (default: the shipped `zoo_weights/`); the file's sha256 must match
    the manifest, and the manifest's architecture must match `ZOO_SPECS[name]`. It takes clips
    (N, 3, 32, 32, 32) in [0, 1] and returns logits over `vidadv.data.synthetic.CLASS_NAMES`.
    """
    from vidadv.models.checkpoint import load_network_state

    name = _check_name(name)
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r} (examples: 'cpu', 'cuda', 'cuda:0')") from error
    folder = default_weights_dir() if weights_dir is None else Path(weights_dir)
    manifest = zoo_manifest(folder)
    entry = manifest["models"].get(name)
    if not isinstance(entry, dict):
        raise FileNotFoundError(
            f"zoo model {name!r} is not in the manifest {str(folder / MANIFEST_NAME)!r} (trained there: "
            f"{', '.join(sorted(manifest['models'])) or 'none'}); {_TRAIN_HINT}"
        )
    spec = ZOO_SPECS[name]
    if entry.get("constructor") != _json_form(spec.constructor) or entry.get("family") != spec.family:
        raise ValueError(
            f"the manifest's architecture for {name!r} ({entry.get('family')}, {entry.get('constructor')}) "
            f"differs from this vidadv version's ({spec.family}, {_json_form(spec.constructor)}); "
            f"{_TRAIN_HINT}"
        )
    state = _read_verified_state(name, folder, entry)
    network = build_zoo_network(name)
    load_network_state(network, state, source=f"zoo weights of {name!r}")
    classifier = wrap_zoo_network(name, network)
    classifier.requires_grad_(False)
    return classifier.to(target).eval()


def _json_form(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples -> lists, keys -> strings)."""
    return json.loads(json.dumps(value))


def _serialize_weights(network: nn.Module) -> bytes:
    """safetensors bytes of `network.state_dict()` (aliased modules stored under every name)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}
    return save(state, metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------ data


def flip_label_map(class_names: Sequence[str]) -> torch.Tensor:
    """Label of each class after a horizontal flip (identity except the pairs in `FLIP_LABEL_SWAPS`)."""
    mapping = torch.arange(len(class_names))
    index = {n: i for i, n in enumerate(class_names)}
    for left, right in FLIP_LABEL_SWAPS:
        if left in index and right in index:
            mapping[index[left]], mapping[index[right]] = index[right], index[left]
    return mapping


def augment_clips(
    clips: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    recipe: Recipe,
    flip_labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial augmentation of a training batch (N, C, T, H, W) in [0, 1]; returns (clips, labels).

    Per clip, the same transform for every frame: a crop whose sides are `recipe.crop_scale` of the frame
    (independently per axis, so also a mild aspect jitter) at a uniform random position, resampled to the
    input size (trilinear `grid_sample`, exact along time); a horizontal flip with probability
    `recipe.flip_probability`, with the label mapped through `flip_labels` (left/right motion classes swap);
    contrast scaling around the clip mean by 1 +- `recipe.contrast` and a brightness offset of
    +- `recipe.brightness`, clamped to [0, 1].
    """
    n = clips.shape[0]

    def uniform(low: float, high: float, size: tuple[int, ...] = (n,)) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    low, high = recipe.crop_scale
    scale = uniform(low, high, (n, 2))  # (x, y) half-extent of the crop in normalized coordinates
    offset = (2.0 * torch.rand((n, 2), generator=generator) - 1.0) * (1.0 - scale)
    flip = torch.rand(n, generator=generator) < recipe.flip_probability
    sign_x = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(n, 3, 4)
    theta[:, 0, 0] = scale[:, 0] * sign_x
    theta[:, 0, 3] = offset[:, 0]
    theta[:, 1, 1] = scale[:, 1]
    theta[:, 1, 3] = offset[:, 1]
    theta[:, 2, 2] = 1.0
    grid = F.affine_grid(theta.to(clips.dtype), list(clips.shape), align_corners=False)
    out = F.grid_sample(clips, grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = torch.where(flip, flip_labels[labels], labels)

    contrast = uniform(1.0 - recipe.contrast, 1.0 + recipe.contrast).view(n, 1, 1, 1, 1)
    brightness = uniform(-recipe.brightness, recipe.brightness).view(n, 1, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3, 4), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp_(0.0, 1.0)
    return out, labels


def _dataset(split: str, num_clips: int, seed: int, cache: bool | str | Path, progress: bool):
    from vidadv.data.synthetic import ProceduralActions

    return ProceduralActions(
        split,
        size=INPUT_SIZE,
        frames=INPUT_FRAMES,
        num_clips=num_clips,
        seed=seed,
        cache=cache,
        progress=progress,
    )


# ------------------------------------------------------------------------------------------ evaluation


def _batches(dataset, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(dataset), batch_size):
        yield dataset.clips(range(start, min(start + batch_size, len(dataset))))


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    dataset,
    batch_size: int = 50,
    shifts: Sequence[int] = (0,),
    progress: bool = False,
) -> dict[int, float]:
    """Top-1 accuracy of `model` (eval mode, clips in [0, 1]) on `dataset` for each cyclic temporal shift.

    `dataset` is a `ProceduralActions` (or anything with `__len__` and `clips(indices)`); shift k evaluates
    `torch.roll(clip, k, dims=2)`, i.e. the clip's frames rotated forward by k (shift 0 is the clean clip).
    Returns {shift: accuracy}.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    correct = dict.fromkeys(shifts, 0)
    total = 0
    try:
        for clips, labels in tqdm(
            _batches(dataset, batch_size),
            total=math.ceil(len(dataset) / batch_size),
            desc="evaluating",
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            for shift in shifts:
                shifted = torch.roll(clips, shifts=shift, dims=2) if shift else clips
                correct[shift] += int((model(shifted).argmax(dim=1) == labels).sum())
            total += len(labels)
    finally:
        model.train(was_training)
    return {shift: correct[shift] / total for shift in shifts}


def shifted_accuracy(model: nn.Module, dataset, shifts: Sequence[int] = SHIFTS) -> dict[int, float]:
    """Clean accuracy under each cyclic temporal shift in `shifts` (TT's translation), as a dict."""
    return evaluate_accuracy(model, dataset, shifts=tuple(shifts))


# ------------------------------------------------------------------------------------------ training


@dataclass
class TrainingResult:
    """What one training run produced: the network, its val-accuracy curve and the wall time."""

    network: nn.Module
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    final_loss: float = float("nan")


def _one_cycle(step: int, steps: int, warmup_fraction: float) -> float:
    """LR multiplier: linear warm-up from 1/25 over the first `warmup_fraction`, then cosine to 1e-4."""
    warmup = int(round(warmup_fraction * steps))
    if step < warmup:
        return 1.0 / 25.0 + (1.0 - 1.0 / 25.0) * step / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _parameter_groups(network: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on conv/linear weights, none on biases and BatchNorm parameters."""
    decay, no_decay, seen = [], [], set()
    for parameter in network.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if parameter.dim() > 1 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _loss(
    network: nn.Module, clips: torch.Tensor, labels: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of a normalized batch; TPN adds its auxiliary head's loss (deep supervision)."""
    if hasattr(network, "forward_with_aux") and recipe.aux_loss_weight > 0:
        logits, aux_logits = network.forward_with_aux(clips)
        aux = F.cross_entropy(aux_logits, labels, label_smoothing=recipe.label_smoothing)
        main = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
        return main + recipe.aux_loss_weight * aux, logits
    logits = network(clips)
    return F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing), logits


def train_zoo_model(
    name: str,
    recipe: Recipe,
    train_set,
    val_set=None,
    seed: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train zoo model `name` from scratch with `recipe` on `train_set` (a `ProceduralActions` train split).

    `seed` (default: the spec's) seeds the initialization, the batch order and the augmentation. The
    training set's random temporal windows change every epoch (`set_epoch`). Validation accuracy on
    `val_set` is measured every `recipe.eval_every` steps and at the end (monitoring only).
    """
    from tqdm.auto import tqdm

    from vidadv.data.synthetic import CLASS_NAMES

    spec = ZOO_SPECS[_check_name(name)]
    if len(CLASS_NAMES) != spec.constructor["num_classes"]:
        raise ValueError(
            f"the synthetic dataset has {len(CLASS_NAMES)} classes but {name} is built for "
            f"{spec.constructor['num_classes']}"
        )
    if len(train_set) < recipe.batch_size:
        raise ValueError(
            f"the training set ({len(train_set)} clips) is smaller than one batch ({recipe.batch_size})"
        )
    seed = spec.seed if seed is None else seed
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    network = build_zoo_network(name, seed=seed)
    classifier = wrap_zoo_network(name, network)
    flip_labels = flip_label_map(CLASS_NAMES)
    optimizer = torch.optim.AdamW(
        _parameter_groups(network, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _one_cycle(step, recipe.steps, recipe.warmup_fraction)
    )
    result = TrainingResult(network=network)
    batches_per_epoch = len(train_set) // recipe.batch_size
    order: list[torch.Tensor] = []
    epoch = -1
    running_loss = running_accuracy = float("nan")
    start_time = time.perf_counter()
    network.train()
    bar = tqdm(range(recipe.steps), desc=f"training {name}", unit="step", disable=not progress)
    for step in bar:
        if not order:
            epoch += 1
            train_set.set_epoch(epoch)
            permutation = torch.randperm(len(train_set), generator=generator)
            order = list(permutation[: batches_per_epoch * recipe.batch_size].split(recipe.batch_size))
        clips, labels = train_set.clips(order.pop(0))
        clips, labels = augment_clips(clips, labels, generator, recipe, flip_labels)
        loss, logits = _loss(network, classifier.normalize(clips), labels, recipe)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        batch_accuracy = float((logits.detach().argmax(dim=1) == labels).float().mean())
        running_loss = value if math.isnan(running_loss) else 0.95 * running_loss + 0.05 * value
        running_accuracy = (
            batch_accuracy
            if math.isnan(running_accuracy)
            else 0.95 * running_accuracy + 0.05 * batch_accuracy
        )
        postfix = {"loss": f"{running_loss:.3f}", "train acc": f"{running_accuracy:.3f}", "epoch": epoch}
        is_last = step + 1 == recipe.steps
        if val_set is not None and ((step + 1) % recipe.eval_every == 0 or is_last):
            accuracy = evaluate_accuracy(classifier, val_set)[0]
            result.val_curve.append((step + 1, accuracy))
            if log is not None:
                log(
                    f"{name} step {step + 1}/{recipe.steps} loss {running_loss:.3f} train acc "
                    f"{running_accuracy:.3f} val acc {accuracy:.3f} "
                    f"({time.perf_counter() - start_time:.0f} s)"
                )
        if result.val_curve:
            postfix["val"] = f"{result.val_curve[-1][1]:.3f}"
        bar.set_postfix(postfix)
    network.eval()
    result.seconds = time.perf_counter() - start_time
    result.final_loss = running_loss
    return result


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
    from vidadv.data.synthetic import GENERATOR_VERSION

    spec = ZOO_SPECS[name]
    return {
        "family": spec.family,
        "class": _FAMILY_CLASSES[spec.family],
        "analogue": spec.analogue,
        "constructor": _json_form(spec.constructor),
        "parameters": sum(p.numel() for p in network.parameters()),
        "input": {
            "frames": INPUT_FRAMES,
            "size": INPUT_SIZE,
            "channels": 3,
            "layout": "NCTHW",
            "range": [0, 1],
        },
        "normalization": {"mean": list(NORMALIZATION_MEAN), "std": list(NORMALIZATION_STD)},
        "attention_layer": spec.attention_layer,
        "recipe": {
            **recipe.to_json(),
            "seed": seed,
            "optimizer": "AdamW, one-cycle (linear warm-up, cosine decay)",
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


def _check_models(models: Sequence[str] | None) -> list[str]:
    if models is None or len(models) == 0:
        return list(ZOO_NAMES)
    if isinstance(models, str):
        models = [models]
    unknown = [m for m in models if m not in ZOO_SPECS]
    if unknown:
        raise ValueError(f"unknown zoo model(s) {unknown}; zoo models: {', '.join(ZOO_NAMES)}")
    return list(dict.fromkeys(models))


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
        models: zoo names (default: all six), trained one after the other.
        out_dir: folder for `<name>.safetensors` and `manifest.json` (default: the package's `zoo_weights/`).
            Entries of models not trained now are kept in the manifest.
        steps: training steps (default: the recipe's).
        seed: one seed for every model (default: each model's own seed from `ZOO_SPECS`).
        recipe: hyper-parameters (default `Recipe()`).
        cache: False renders the data splits in memory (about 3 minutes, 0.5 GB); True caches them under
            `vidadv.data.synthetic.default_cache_dir()`, or give a folder.
        progress: show progress bars.

    Returns 0 (the CLI's exit status). Prints a summary table.
    """
    from vidadv.utils.io import atomic_write_bytes, atomic_write_json

    names = _check_models(models)
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
    for name in names:
        model_seed = ZOO_SPECS[name].seed if seed is None else seed
        result = train_zoo_model(
            name, recipe, train_set, val_set, seed=model_seed, progress=progress, log=print
        )
        classifier = wrap_zoo_network(name, result.network)
        accuracies = evaluate_accuracy(classifier, test_set, shifts=(0, *SHIFTS), progress=progress)
        weights_file = f"{name}.safetensors"
        data = _serialize_weights(result.network)
        atomic_write_bytes(folder / weights_file, data)
        (folder / weights_file).chmod(0o644)  # package data: readable by every user
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            manifest = zoo_manifest(folder)
        except (FileNotFoundError, ValueError):
            manifest = {}
        manifest = _new_manifest(manifest)
        manifest["models"][name] = _manifest_entry(
            name, result.network, recipe, model_seed, result, accuracies, weights_file, sha256
        )
        manifest["models"] = {n: manifest["models"][n] for n in ZOO_NAMES if n in manifest["models"]}
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
    from vidadv.data.synthetic import CLASS_NAMES, GENERATOR_VERSION

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
    for name in ZOO_NAMES:
        spec = ZOO_SPECS[name]
        entry = entries.get(name)
        if not isinstance(entry, dict):
            rows.append([name, spec.family, "-", "-", "not trained", "-", spec.attention_layer])
            continue
        shifted = [float(v) for v in entry.get("shift_accuracy", {}).values()]
        shift_text = f"{min(shifted):.3f} / {sum(shifted) / len(shifted):.3f}" if shifted else "-"
        rows.append(
            [
                name,
                spec.family,
                f"{int(entry.get('parameters', 0)):,}",
                f"{float(entry.get('test_accuracy', 0.0)):.3f}",
                shift_text,
                f"{float(entry.get('train_seconds', 0.0)):.0f}",
                str(entry.get("attention_layer", spec.attention_layer)),
            ]
        )
    print(_format_table(rows))
    return 0
