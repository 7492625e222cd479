"""``build_dataset(spec)``: build a clip dataset from a plain dict (e.g. a YAML config section).

Spec keys by ``type`` (all but ``type`` and, for real data, ``root`` are optional):

* ``kinetics400``: ``root``, ``list`` (CSV; default the paper's 400 clips), ``frames`` (32), ``stride`` (2),
  ``size`` (224), ``short_side``, ``decode_size`` ([h, w]), ``sampling`` ("tt" | "strided"),
  ``short_video``, ``limit``.
* ``ucf101``: ``root``, ``list`` (CSV; default the paper's 101 clips), ``indices`` (list or JSON file of
  rows to keep), ``frames`` (32), ``start`` (1), ``stride`` (1), ``size`` (224), ``short_side``, ``source``
  ("auto" | "frames" | "video"), ``video_ext`` (".avi"), ``frame_pattern``, ``limit``.
* ``csv``: ``list`` (required CSV of ``path,label[,start_frame|clip_index]``), ``root``, ``frames`` (32),
  ``stride`` (1), ``size`` (224), ``short_side``, ``decode_size``, ``default_start`` (int | "center"),
  ``short_video``, ``frame_pattern``, ``num_classes``, ``limit``.
* ``synthetic``: every key but ``type`` is passed to ``vidadv.data.synthetic.build_synthetic_dataset``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset

from .csv_dataset import CsvClipDataset
from .kinetics import Kinetics400Clips
from .ucf101 import UCF101Clips

__all__ = ["DATASET_TYPES", "build_dataset", "dataset_spec_keys"]

_SPEC_KEYS: dict[str, dict[str, str]] = {
    # spec key -> constructor keyword
    "kinetics400": {
        "root": "root",
        "list": "clips",
        "frames": "frames",
        "stride": "stride",
        "size": "size",
        "short_side": "short_side",
        "decode_size": "decode_size",
        "sampling": "sampling",
        "short_video": "short_video",
        "limit": "limit",
    },
    "ucf101": {
        "root": "root",
        "list": "clips",
        "indices": "indices",
        "frames": "frames",
        "start": "start",
        "stride": "stride",
        "size": "size",
        "short_side": "short_side",
        "source": "source",
        "video_ext": "video_ext",
        "frame_pattern": "frame_pattern",
        "limit": "limit",
    },
    "csv": {
        "root": "root",
        "list": "csv_path",
        "frames": "frames",
        "stride": "stride",
        "size": "size",
        "short_side": "short_side",
        "decode_size": "decode_size",
        "default_start": "default_start",
        "short_video": "short_video",
        "frame_pattern": "frame_pattern",
        "num_classes": "num_classes",
        "limit": "limit",
    },
}
_REQUIRED = {"kinetics400": ("root",), "ucf101": ("root",), "csv": ("list",)}
DATASET_TYPES = ("kinetics400", "ucf101", "csv", "synthetic")


def dataset_spec_keys(dataset_type: str) -> list[str]:
    """The spec keys (besides ``type``) accepted for ``dataset_type`` (not checked for "synthetic")."""
    if dataset_type not in DATASET_TYPES:
        raise ValueError(f"unknown dataset type {dataset_type!r}; valid types: {list(DATASET_TYPES)}")
    return sorted(_SPEC_KEYS.get(dataset_type, {}))


def build_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Build a dataset from ``spec`` (see the module docstring); unknown keys raise ``ValueError``."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"dataset spec must be a mapping, got {type(spec).__name__}")
    dataset_type = spec.get("type")
    if dataset_type not in DATASET_TYPES:
        raise ValueError(f"dataset spec 'type' must be one of {list(DATASET_TYPES)}, got {dataset_type!r}")
    options = {key: value for key, value in spec.items() if key != "type"}
    if dataset_type == "synthetic":
        synthetic = importlib.import_module("vidadv.data.synthetic")
        return synthetic.build_synthetic_dataset(**options)
    allowed = _SPEC_KEYS[dataset_type]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {dataset_type!r} dataset spec; "
            f"valid keys: {['type', *sorted(allowed)]}"
        )
    missing = [key for key in _REQUIRED[dataset_type] if options.get(key) is None]
    if missing:
        raise ValueError(f"{dataset_type!r} dataset spec needs {missing}")
    kwargs = {allowed[key]: value for key, value in options.items()}
    if kwargs.get("decode_size") is not None:
        kwargs["decode_size"] = tuple(kwargs["decode_size"])
    if dataset_type == "kinetics400":
        return Kinetics400Clips(**kwargs)
    if dataset_type == "ucf101":
        return UCF101Clips(**kwargs)
    return CsvClipDataset(**kwargs)
