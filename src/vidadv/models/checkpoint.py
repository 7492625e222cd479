"""Building networks by name and loading checkpoints into them.

`build_network` builds a bare network of the registry (gluoncv state-dict layout, input already
normalized); `load_model` adds the weights from a checkpoint file and the normalization, giving a ready
`VideoClassifier` in eval mode. Zoo names (the small locally trained models, e.g. "nl-s") are handed to
`vidadv.models.zoo.load_zoo_model`.

Checkpoint files are untrusted input: `.pth`/`.pt`/`.ckpt`/`.bin` files are read with
`torch.load(weights_only=True)` (tensors and plain containers only, no code execution) and
`.safetensors` files with safetensors.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from vidadv.models import hf, registry
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

__all__ = [
    "TORCH_SUFFIXES",
    "SAFETENSORS_SUFFIX",
    "available_models",
    "build_network",
    "classifier_keys",
    "extract_state_dict",
    "load_model",
    "load_network_state",
    "read_checkpoint",
    "save_checkpoint",
    "zoo_names",
]

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
_NESTED_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "network")
_SHOW = 5  # how many offending keys an error message lists


def zoo_names() -> tuple[str, ...]:
    """Names of the embedded zoo models, or () while `vidadv.models.zoo` is not installed."""
    try:
        zoo = importlib.import_module("vidadv.models.zoo")
    except ModuleNotFoundError as error:
        if error.name != "vidadv.models.zoo":
            raise
        return ()
    return tuple(getattr(zoo, "ZOO_NAMES", ()))


def available_models() -> list[str]:
    """Every name `load_model` accepts: gluoncv names, their short aliases, and zoo names."""
    return registry.available_networks() + list(zoo_names()) + [hf.HF_MODEL_NAME]


def _resolve(name: object) -> str:
    """Full gluoncv name for `name`; a clear error listing every valid name otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    try:
        return registry.resolve_name(name)
    except ValueError:
        raise ValueError(
            f"unknown model name {name!r}; valid names: {', '.join(available_models())}"
        ) from None


def build_network(name: str, num_classes: int = 400, **overrides) -> nn.Module:
    """The bare network `name` (gluoncv name or alias) with randomly initialized weights.

    Its `state_dict()` has gluoncv's keys and shapes, so a gluoncv checkpoint loads with `strict=True`.
    It expects normalized clips (N, C, T, H, W). `overrides` go to the family constructor (e.g.
    `layers=(1, 1, 1, 1), base_channels=8` for a tiny variant in tests).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if name in zoo_names():
        raise ValueError(
            f"{name!r} is an embedded zoo model; load it with vidadv.models.load_model({name!r})"
        )
    return registry.get_builder(_resolve(name))(num_classes=num_classes, **overrides)


# --------------------------------------------------------------------------------------------- files


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a checkpoint file (see `extract_state_dict` for the accepted nesting)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise ValueError(f"cannot read safetensors checkpoint {str(path)!r}: {error}") from error
    if suffix not in TORCH_SUFFIXES:
        raise ValueError(
            f"unknown checkpoint type {suffix or '(no suffix)'!r} for {str(path)!r}; use one of "
            f"{', '.join(TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,))}"
        )
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"checkpoint {str(path)!r} holds Python objects that torch.load(weights_only=True) refuses to "
            f"unpickle: loading them could run arbitrary code. vidadv only reads tensors and plain "
            f"containers; re-save the weights from a trusted environment with "
            f"torch.save(model.state_dict(), path) or as .safetensors. (torch said: {_first_line(error)})"
        ) from error
    except Exception as error:  # a damaged file makes the unpickler fail in many ways
        raise ValueError(
            f"cannot read checkpoint {str(path)!r}: not a valid torch.save file ({_first_line(error)})"
        ) from error
    return extract_state_dict(content, source=str(path))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def extract_state_dict(content: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint.

    Accepts a plain state dict or one nested under "state_dict", "model", "model_state",
    "model_state_dict", "net" or "network" (training checkpoints), and strips a "module." prefix that
    `nn.DataParallel`/DDP put on every key.
    """
    for _ in range(4):
        if not isinstance(content, Mapping):
            break
        nested = next((content[k] for k in _NESTED_KEYS if isinstance(content.get(k), Mapping)), None)
        if nested is None:
            break
        content = nested
    if not isinstance(content, Mapping):
        raise ValueError(f"{source} does not contain a state dict (got {type(content).__name__})")
    state = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(
            f"{source} holds no tensors; top-level keys: {sorted(map(str, content))[:10]} (expected a state "
            f"dict, possibly under one of {_NESTED_KEYS})"
        )
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def save_checkpoint(module: nn.Module, path: str | Path) -> Path:
    """Write `module.state_dict()` to `.safetensors` (tensors copied, so shared modules are fine) or to a
    torch file (`.pth`/`.pt`/...)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import save_file

        save_file({k: v.clone().contiguous() for k, v in state.items()}, str(path))
    elif suffix in TORCH_SUFFIXES:
        torch.save(state, str(path))
    else:
        raise ValueError(
            f"unknown checkpoint type {suffix!r}; use one of {TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)}"
        )
    return path


# --------------------------------------------------------------------------------------- matching


def _build_on_meta(name: str, num_classes: int, overrides: dict) -> nn.Module:
    try:
        with torch.device("meta"):
            return build_network(name, num_classes=num_classes, **overrides)
    except (RuntimeError, NotImplementedError):  # a builder that cannot run on the meta device
        return build_network(name, num_classes=num_classes, **overrides)


def classifier_keys(name: str, **overrides) -> dict[str, int]:
    """State-dict keys whose shape depends on the class count, mapped to the dimension that holds it.

    Found by building the network (on the meta device, no memory) with two class counts and comparing.
    """
    small = _build_on_meta(name, 2, overrides).state_dict()
    large = _build_on_meta(name, 3, overrides).state_dict()
    keys = {}
    for key, tensor in small.items():
        other = large[key]
        if tensor.shape != other.shape:
            keys[key] = next(
                d for d, (a, b) in enumerate(zip(tensor.shape, other.shape, strict=True)) if a != b
            )
    return keys


def checkpoint_num_classes(state: Mapping[str, torch.Tensor], keys: Mapping[str, int]) -> int | None:
    """Class count stored in `state`, read from the classifier keys (None when none is present)."""
    counts = {
        key: state[key].shape[dim] for key, dim in keys.items() if key in state and state[key].dim() > dim
    }
    if not counts:
        return None
    values = set(counts.values())
    if len(values) > 1:
        raise ValueError(f"checkpoint classifier layers disagree on the class count: {counts}")
    return values.pop()


def _preview(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _fill_aliases(network: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add keys of modules registered under two names (gluoncv's `fc`/`head.1`, `W`/`W_bn.0`) that a
    deduplicating writer (e.g. safetensors' `save_model`) left out, copying the stored alias."""
    state = dict(state)
    groups: dict[int, list[str]] = {}
    for key, tensor in network.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(key)
    for keys in groups.values():
        present = [k for k in keys if k in state]
        if present and len(present) < len(keys):
            for key in keys:
                state.setdefault(key, state[present[0]])
    return state


def load_network_state(
    network: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load `state` into `network` strictly, with a clear error on missing/unexpected keys or shapes."""
    expected = network.state_dict()
    state = _fill_aliases(network, state)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing from the checkpoint ({_preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys in the checkpoint ({_preview(unexpected)})")
        raise ValueError(
            f"{source} does not match the network ({type(network).__name__}, {len(expected)} keys): "
            + "; ".join(parts)
            + ". Is it a checkpoint of this model?"
        )
    wrong_shape = [
        f"{k}: checkpoint {tuple(state[k].shape)}, network {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong_shape:
        raise ValueError(
            f"{source} has {len(wrong_shape)} tensors of the wrong shape: {'; '.join(wrong_shape[:_SHOW])}"
        )
    network.load_state_dict(dict(state), strict=True)


# ------------------------------------------------------------------------------------------ models


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
    """A ready classifier: network `name` with the weights of `checkpoint`, its normalization, eval mode.

    Args:
        name: gluoncv name (e.g. "i3d_nl5_resnet50_v1_kinetics400"), alias ("nl50", ...) or zoo name
            ("nl-s", ...; those ship their weights and take no checkpoint/num_classes/mean/std), or "hf"
            with checkpoint=<Hugging Face model folder> (see `vidadv.models.hf.load_hf_video_classifier`).
        checkpoint: `.pth`/`.pt` (torch.load with weights_only=True; nested "state_dict"/"model" and
            "module." prefixes handled) or `.safetensors`. None leaves random weights (with a warning).
        num_classes: class count (400 Kinetics, 101 UCF-101); default: read from the checkpoint, else 400.
        mean, std: per-channel normalization in [0, 1] pixel units; default ImageNet.
        device: where the model lives.
        overrides: extra family-constructor arguments (see `build_network`).

    The returned `VideoClassifier` takes clips (N, C, T, H, W) in [0, 1]; its parameters are frozen
    (requires_grad False) since attacks only need gradients with respect to the input.
    """
    target = _check_device(device)
    if name == hf.HF_MODEL_NAME:  # a Hugging Face model folder (vidadv.models.hf)
        if overrides:
            raise ValueError(
                f"load_model('hf') takes no network overrides, got {', '.join(sorted(overrides))}"
            )
        return hf.load_hf_video_classifier(
            checkpoint, device=target, num_classes=num_classes, mean=mean, std=std
        )
    if isinstance(name, str) and name in zoo_names():
        given = [
            k
            for k, v in {
                "checkpoint": checkpoint,
                "num_classes": num_classes,
                "mean": mean,
                "std": std,
            }.items()
            if v is not None
        ]
        if given or overrides:
            raise ValueError(
                f"{name!r} is an embedded zoo model with shipped weights and normalization; it takes no "
                f"{', '.join(given + sorted(overrides))}"
            )
        zoo = importlib.import_module("vidadv.models.zoo")
        return zoo.load_zoo_model(name, device=target)

    full_name = _resolve(name)
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")

    if checkpoint is None:
        warnings.warn(
            f"load_model({name!r}) without a checkpoint: the network has random weights",
            UserWarning,
            stacklevel=2,
        )
        network = build_network(full_name, num_classes=num_classes or 400, **overrides)
    else:
        state = read_checkpoint(checkpoint)
        stored_classes = checkpoint_num_classes(state, classifier_keys(full_name, **overrides))
        if num_classes is not None and stored_classes is not None and stored_classes != num_classes:
            raise ValueError(
                f"class-count mismatch: checkpoint {str(checkpoint)!r} has {stored_classes} classes, asked "
                f"for num_classes={num_classes}"
            )
        network = build_network(full_name, num_classes=num_classes or stored_classes or 400, **overrides)
        load_network_state(network, state, source=f"checkpoint {str(checkpoint)!r}")

    classifier = VideoClassifier(
        network,
        mean=IMAGENET_MEAN if mean is None else mean,
        std=IMAGENET_STD if std is None else std,
    )
    classifier.requires_grad_(False)
    return classifier.to(target).eval()
