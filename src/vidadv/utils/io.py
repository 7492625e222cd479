"""Crash-safe file output.

Every file an experiment run produces is written *atomically*: the bytes go to a temporary file in the
destination folder, are flushed and fsync'ed, and the temporary file is then renamed over the
destination with `os.replace` (atomic on POSIX and Windows within one file system). A reader therefore
sees either the old file or the complete new one, never a truncated file, even after `kill -9` or a
power loss. Leftover temporaries are hidden files ending in `TEMP_SUFFIX` whose names carry the writing
process's pid and host; `remove_stale_temporaries` deletes only those of dead processes on this host.

An OS error while writing (disk full, file too large, no permission) is re-raised naming the destination.
`exclusive_lock` keeps two processes from working on one folder (fcntl.flock on a lock file holding the
holder's pid).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

TEMP_SUFFIX = ".vidadv-tmp"
LOCK_NAME = ".vidadv.lock"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40] or "host"


def _owner_token() -> str:
    """'<pid>@<host>': who wrote a temporary file or holds a lock."""
    return f"{os.getpid()}@{_host()}"


class FolderLockedError(OSError):
    """Another process holds the lock of a folder; the message names its pid."""


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


def _file_mode() -> int:
    """0o666 less the process umask: the mode `open()` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + fsync + os.replace)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot write file {str(target)!r}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.{_owner_token()}.", suffix=TEMP_SUFFIX, dir=target.parent
        )
    except OSError as err:
        raise _naming(err, target) from err
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600 files; a written file gets what open() would give
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as err:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _naming(err, target) from err
        raise
    _fsync_directory(target.parent)
    return target


def _naming(err: OSError, target: Path) -> OSError:
    """`err` with `target` as its file name (a failed write() names no file), same type and errno."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(target))


def _json_text(path: str | os.PathLike[str], obj: Any, indent: int | None) -> str:
    """`obj` as strict JSON text (no NaN/Infinity) with a final newline; a ValueError names `path`."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot write {str(path)!r} as JSON: {err}") from err


def update_text(path: str | os.PathLike[str], text: str) -> bool:
    """Write `text` to `path` atomically unless the file already holds exactly it (so a finished run in a
    read-only folder can be resumed); returns whether it wrote."""
    target = Path(path)
    try:
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(target, text)
    return True


def update_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> bool:
    """`atomic_write_json` unless the file already holds exactly that JSON text; returns whether it wrote."""
    return update_text(path, _json_text(path, obj, indent))


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
    return atomic_write_text(path, _json_text(path, obj, indent))


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


_TEMP_OWNER = re.compile(r"\.(\d+)@([A-Za-z0-9-]+)\.[^.]*$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def is_stale_temporary(path: Path) -> bool:
    """A temporary of a dead process on this host (or of an older vidadv that did not record its pid);
    never one of this process or of a live process."""
    match = _TEMP_OWNER.search(path.name[: -len(TEMP_SUFFIX)])
    if match is None:
        return True
    pid, host = int(match.group(1)), match.group(2)
    if host != _host():
        return False  # cannot tell whether a process on another machine is alive: leave it
    return pid != os.getpid() and not _pid_alive(pid)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporaries left by interrupted atomic writes of dead processes under `directory`
    (see `is_stale_temporary`); returns how many."""
    root = Path(directory)
    if not root.is_dir():
        return 0
    removed = 0
    for stale in root.rglob(f".*{TEMP_SUFFIX}"):
        if not is_stale_temporary(stale):
            continue
        try:
            stale.unlink()
            removed += 1
        except (FileNotFoundError, PermissionError):
            pass  # gone already, or a read-only folder: a leftover hidden file is harmless
    return removed


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike[str], purpose: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (fcntl.flock on `folder/.vidadv.lock`, which records the holder's
    pid) while inside; a second process gets `FolderLockedError` naming the pid holding it.

    `folder` is created if needed. In a folder this process cannot write to (a finished run on read-only
    storage) an existing lock file is locked read-only; without one the block runs unlocked, since
    nothing can be written there anyway.
    """
    root = Path(folder)
    lock_path = root / LOCK_NAME
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _naming(err, root) from err
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        writable = True
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _naming(err, lock_path) from err
        if not lock_path.is_file():
            yield
            return
        fd, writable = os.open(lock_path, os.O_RDONLY), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            who = holder[0].split("@")[0] if holder else "unknown"
            raise FolderLockedError(
                f"{str(root)!r} is in use by another vidadv process (pid {who}"
                f"{', ' + ' '.join(holder[1:]) if len(holder) > 1 else ''}): wait for it to finish or stop "
                f"it, then rerun (lock file {str(lock_path)!r})"
            ) from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{_owner_token()} {purpose}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
