"""The paper's attacked-clip lists (Wei et al., AAAI 2022), shipped as package data.

* ``kinetics400_attack_samples.csv`` - the 400 Kinetics-400 validation clips attacked (one per class):
  ``path,gt_label,clip_index`` (``clip_index`` -1 = the last window of the video; 6 and 9 appear once each).
* ``ucf101_test01_clips.csv`` - UCF-101 split-1 test clips as frame folders: ``path,duration,target``.
* ``ucf101_attack_indices.json`` - the 101 row indices (0-based, into that CSV) attacked, one per class.

These are facts about the published protocol; the functions here only read them. Dataset-level helpers
returning :class:`vidadv.data.ClipRef` lists are ``vidadv.data.kinetics400_attack_list`` and
``vidadv.data.ucf101_attack_list``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from importlib import resources

__all__ = [
    "KINETICS400_ATTACK_CSV",
    "UCF101_TEST01_CSV",
    "UCF101_ATTACK_INDICES_JSON",
    "read_protocol_text",
    "kinetics400_attack_rows",
    "ucf101_test01_rows",
    "ucf101_attack_indices",
    "kinetics400_class_names",
    "ucf101_class_names",
]

KINETICS400_ATTACK_CSV = "kinetics400_attack_samples.csv"
UCF101_TEST01_CSV = "ucf101_test01_clips.csv"
UCF101_ATTACK_INDICES_JSON = "ucf101_attack_indices.json"
_FILES = (KINETICS400_ATTACK_CSV, UCF101_TEST01_CSV, UCF101_ATTACK_INDICES_JSON)


def read_protocol_text(name: str) -> str:
    """Text of one shipped protocol file (one of the three names above)."""
    if name not in _FILES:
        raise ValueError(f"unknown protocol file {name!r}; available: {list(_FILES)}")
    return _read_text(name)


@functools.cache
def _read_text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_protocol_text(name))))


def kinetics400_attack_rows() -> list[dict[str, str | int]]:
    """The 400 attacked Kinetics-400 clips: dicts with ``path`` (``class/video.mp4``), ``gt_label``,
    ``clip_index`` (ints), in file order."""
    return [
        {"path": row["path"], "gt_label": int(row["gt_label"]), "clip_index": int(row["clip_index"])}
        for row in _rows(KINETICS400_ATTACK_CSV)
    ]


def ucf101_test01_rows() -> list[dict[str, str | int]]:
    """All UCF-101 split-1 test clips: dicts with ``path`` (``Class/v_Class_gXX_cYY``), ``duration``
    (frame count) and ``target`` (label), in file order."""
    return [
        {"path": row["path"], "duration": int(row["duration"]), "target": int(row["target"])}
        for row in _rows(UCF101_TEST01_CSV)
    ]


def ucf101_attack_indices() -> list[int]:
    """The 101 row indices (0-based into :func:`ucf101_test01_rows`) of the attacked UCF-101 clips."""
    return [int(index) for index in json.loads(read_protocol_text(UCF101_ATTACK_INDICES_JSON))]


def kinetics400_class_names() -> list[str]:
    """Kinetics-400 class names by label, read off the attack list's folder names (one clip per class)."""
    names: dict[int, str] = {}
    for row in kinetics400_attack_rows():
        names[int(row["gt_label"])] = str(row["path"]).split("/")[0]
    return [names[label] for label in range(len(names))]


def ucf101_class_names() -> list[str]:
    """UCF-101 class names by label, read off the split-1 test list's folder names."""
    names: dict[int, str] = {}
    for row in ucf101_test01_rows():
        names.setdefault(int(row["target"]), str(row["path"]).split("/")[0])
    return [names[label] for label in range(len(names))]
