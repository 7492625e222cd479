"""Crash-safe file output.

Every file an experiment run produces is written *atomically*: the bytes go to a temporary file in the
destination folder, are flushed and fsync'ed, and the temporary file is then renamed over the
destination with `os.replace` (atomic on POSIX and Windows within one file system). A reader therefore
sees either the old file or the complete new one, never a truncated file, even after `kill -9` or a
power loss. Leftover temporaries are hidden files ending in `TEMP_SUFFIX`; `remove_stale_temporaries`
deletes them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

TEMP_SUFFIX = ".vidadv-tmp"


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (best effort; not supported on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + fsync + os.replace)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot write file {str(target)!r}: it is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_directory(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def jsonable(obj: Any) -> Any:
    """Recursively convert tuples/tensors/paths to JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write `obj` as strict JSON (no NaN/Infinity) to `path` atomically."""
    try:
        text = json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot write {str(path)!r} as JSON: {err}") from err
    return atomic_write_text(path, text + "\n")


def atomic_save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save named tensors in safetensors format to `path` atomically.

    `metadata` is an optional str -> str mapping stored in the file header.
    """
    from safetensors.torch import save

    if not isinstance(tensors, Mapping) or not tensors:
        raise ValueError("atomic_save_tensors needs a non-empty mapping name -> tensor")
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {type(name).__name__}")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor {name!r} is a {type(tensor).__name__}, not a torch.Tensor")
        prepared[name] = tensor.detach().to("cpu").contiguous()
    meta: dict[str, str] | None = None
    if metadata is not None:
        meta = {}
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"safetensors metadata must map str -> str; got {key!r}: {type(value).__name__}"
                )
            meta[key] = value
    return atomic_write_bytes(path, save(prepared, metadata=meta))


def load_tensors(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load every tensor of a safetensors file (raises ValueError naming the file if it is unreadable)."""
    from safetensors.torch import load_file

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"tensor file not found: {str(source)!r}")
    try:
        return load_file(str(source), device=str(device))
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise ValueError(f"cannot read safetensors file {str(source)!r}: {err}") from err


def load_tensor_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read only the str -> str metadata from a safetensors header (cheap: no tensor data is read)."""
    from safetensors import safe_open

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"tensor file not found: {str(source)!r}")
    try:
        with safe_open(str(source), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:
        raise ValueError(f"cannot read safetensors header of {str(source)!r}: {err}") from err


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, with an error that names the file when it is missing or malformed."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"file not found: {str(source)!r}")
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(source)!r} is not valid JSON: {err}") from err


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporaries left by interrupted atomic writes under `directory`; returns how many."""
    root = Path(directory)
    if not root.is_dir():
        return 0
    removed = 0
    for stale in root.rglob(f".*{TEMP_SUFFIX}"):
        try:
            stale.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
