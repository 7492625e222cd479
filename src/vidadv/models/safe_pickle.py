"""A restricted unpickler for pickles of numpy arrays (untrusted weight files).

`load_numpy_pickle` reads a pickle whose only globals are what numpy arrays need
(``numpy.core.multiarray._reconstruct`` or its numpy-2 name ``numpy._core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``) inside plain containers (dict, list, tuple, str, numbers). Any other
global (``os.system``, ``builtins.eval``, a class of some module...) is refused before it is looked up, so
a tampered file cannot run code: `UnsafePickleError` names the global. Object arrays (dtype ``O``, whose
items would be arbitrary pickled objects) and persistent ids are refused too.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_numpy_pickle"]

#: (module, name) pairs the unpickler resolves; everything else is refused.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asks for something other than numpy arrays in plain containers."""


def _reconstruct() -> Any:
    """numpy's array reconstructor under its current name (numpy 2 moved `numpy.core` to `numpy._core`)."""
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct as reconstruct
    return reconstruct


def _safe_dtype(*args: Any, **kwargs: Any) -> np.dtype:
    """`numpy.dtype` that refuses object dtypes (their items would be arbitrary pickled objects)."""
    dtype = np.dtype(*args, **kwargs)
    if dtype.hasobject:
        raise UnsafePickleError(f"refusing a numpy object dtype ({dtype!r}) in the pickle")
    return dtype


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._source} refers to the Python global {module}.{name}, which vidadv does not load: "
                f"only numpy arrays ({', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS))}) are "
                f"allowed, so this file is not a plain weight pickle (it could run code when unpickled)"
            )
        if name == "_reconstruct":
            return _reconstruct()
        if name == "dtype":
            return _safe_dtype
        return np.ndarray

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source} uses pickle persistent ids, which vidadv does not load")


def load_numpy_pickle(data: bytes | IO[bytes], source: str = "pickle") -> Any:
    """Unpickle `data` (bytes or a binary file) allowing only numpy arrays in plain containers.

    Raises `UnsafePickleError` (a ValueError) naming any other global, and ValueError for a damaged or
    non-pickle input; `source` names the file in the messages.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        content = _NumpyOnlyUnpickler(stream, source).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # a damaged or non-pickle file fails in many ways inside pickle
        raise ValueError(f"{source} is not a readable pickle ({type(error).__name__}: {error})") from None
    for array in _arrays(content):
        if array.dtype.hasobject:
            raise UnsafePickleError(f"{source} holds a numpy object array, which vidadv does not load")
    return content


def _arrays(content: Any) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found
