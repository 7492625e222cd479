"""Checkpoint files: reading, writing, and matching a state dict to a network.

Checkpoint files are untrusted input: `.pth`/`.pt`/`.ckpt`/`.bin` files are read with
`torch.load(weights_only=True)` (tensors and plain containers only, no code execution) and
`.safetensors` files with safetensors.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "TORCH_SUFFIXES",
    "SAFETENSORS_SUFFIX",
    "checkpoint_num_classes",
    "classifier_keys",
    "extract_state_dict",
    "load_network_state",
    "read_checkpoint",
    "save_checkpoint",
]

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
_NESTED_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "network")
_SHOW = 5  # how many offending keys an error message lists


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


def _build_on_meta(build: Callable[[int], nn.Module], num_classes: int) -> nn.Module:
    try:
        with torch.device("meta"):
            return build(num_classes)
    except (RuntimeError, NotImplementedError):  # a builder that cannot run on the meta device
        return build(num_classes)


def classifier_keys(build: Callable[[int], nn.Module]) -> dict[str, int]:
    """State-dict keys whose shape depends on the class count, mapped to the dimension that holds it.

    `build(num_classes)` makes the network; it is built (on the meta device, no memory) with two class
    counts and the state dicts compared.
    """
    small = _build_on_meta(build, 2).state_dict()
    large = _build_on_meta(build, 3).state_dict()
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


def check_finite_weights(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise ValueError naming the first floating-point tensor of `state` holding NaN or Inf (such weights
    make every logit, loss and gradient non-finite, and an attack step zero)."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise ValueError(
                    f"{source}: tensor {key!r} holds {bad} NaN/Inf value(s) of {tensor.numel()}; "
                    "the weights are damaged"
                )


def load_network_state(
    network: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load `state` into `network` strictly, with a clear error on missing/unexpected keys or shapes
    and on NaN/Inf weights."""
    check_finite_weights(state, source)
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
