"""Clip references, stable clip ids, the shared clip-dataset machinery and the generic CSV dataset.

A dataset item is ``(clip, label, clip_id)``: ``clip`` a float32 tensor ``(C, T, H, W)`` in [0, 1],
``label`` an int, ``clip_id`` a stable, filesystem-safe, unique string (used as the file name of
adversarial outputs).

CSV format of :class:`CsvClipDataset` (header required): ``path,label`` plus optional ``start_frame``
(0-based first frame; negative counts from the end) or ``clip_index`` (the TT Kinetics rule, ``-1`` = last
window). ``gt_label`` or ``target`` are accepted instead of ``label`` (the paper's list formats); other
columns are ignored. ``path`` is a video file or a frame folder, relative to ``root`` or absolute.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .transforms import (
    SHORT_VIDEO_MODES,
    SpatialTransform,
    strided_window_indices,
    tt_kinetics_indices,
)
from .video import (
    DEFAULT_FRAME_PATTERN,
    VideoDecodeError,
    count_folder_frames,
    count_frames,
    read_frame_folder,
    read_video_frames,
)

__all__ = ["ClipRef", "make_clip_id", "read_clip_csv", "ClipDataset", "CsvClipDataset"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_SLUG = 100
_LABEL_COLUMNS = ("label", "gt_label", "target")


def make_clip_id(path: str, clip_index: int | None = None, start_frame: int | None = None) -> str:
    """A stable, filesystem-safe, unique id: a readable slug of ``path`` plus an 8-hex-digit hash.

    The slug keeps ``[A-Za-z0-9._-]`` (folders joined by ``__``, extension dropped, other runs replaced by
    ``_``); the hash of ``(path, clip_index, start_frame)`` keeps ids distinct when slugs collide.
    """
    normalized = str(path).replace("\\", "/")
    stem = normalized.rsplit(".", 1)[0] if "." in normalized.rsplit("/", 1)[-1] else normalized
    parts = [_UNSAFE.sub("_", part).strip("_") for part in stem.split("/") if part not in ("", ".")]
    slug = "__".join(part for part in parts if part) or "clip"
    if len(slug) > _MAX_SLUG:
        slug = slug[-_MAX_SLUG:]
    slug = slug.lstrip("-._") or "clip"
    suffix = ""
    if clip_index is not None:
        suffix += f"_c{int(clip_index)}"
    if start_frame is not None:
        suffix += f"_s{int(start_frame)}"
    digest = hashlib.sha1(f"{normalized}|{clip_index}|{start_frame}".encode()).hexdigest()[:8]
    return f"{slug}{suffix}_{digest}"


@dataclass(frozen=True)
class ClipRef:
    """One clip of a dataset: where it is, its label and which frames (the paper's attacked-clip lists
    are lists of these).

    ``path`` as listed (relative to ``root`` unless absolute), ``clip_index`` for the TT Kinetics rule,
    ``start_frame`` for an explicit window start, ``num_frames_hint`` a listed duration (informational; the
    loaders count frames themselves).
    """

    path: str
    label: int
    clip_index: int | None = None
    start_frame: int | None = None
    num_frames_hint: int | None = None
    root: str | None = None

    @property
    def clip_id(self) -> str:
        """Stable filesystem-safe unique id, see :func:`make_clip_id`."""
        return make_clip_id(self.path, self.clip_index, self.start_frame)

    @property
    def full_path(self) -> Path:
        """``root / path`` (or ``path`` when absolute or no root is set)."""
        listed = Path(self.path)
        if listed.is_absolute() or self.root is None:
            return listed
        return Path(self.root) / listed

    def with_root(self, root: str | os.PathLike) -> ClipRef:
        """The same clip with its path taken relative to `root`."""
        return replace(self, root=str(root))


def clip_list_under(
    root: Path,
    clips: str | os.PathLike | Sequence[ClipRef] | None,
    default: Callable[[Path], list[ClipRef]],
) -> list[ClipRef]:
    """A dataset's clip list under `root`: `default(root)` when `clips` is None, the rows of a clip CSV
    when it is a path, else the given :class:`ClipRef` s re-rooted at `root`."""
    if clips is None:
        return default(root)
    if isinstance(clips, str | os.PathLike):
        return read_clip_csv(clips, root)
    return [ref.with_root(root) for ref in clips]


def _optional_int(row: dict[str, str], column: str, where: str) -> int | None:
    value = (row.get(column) or "").strip()
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"{where}: column {column!r} must be an integer, got {value!r}")
    return int(number)


def _read_refs(csv_file: Path, handle: Any, root: str | os.PathLike | None) -> list[ClipRef]:
    reader = csv.DictReader(handle)
    columns = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = columns
    if "path" not in columns:
        raise ValueError(f"{csv_file}: the header must contain a 'path' column, got {columns}")
    label_column = next((name for name in _LABEL_COLUMNS if name in columns), None)
    if label_column is None:
        raise ValueError(f"{csv_file}: the header must contain one of {list(_LABEL_COLUMNS)}, got {columns}")
    refs = []
    for line_number, row in enumerate(reader, start=2):
        where = f"{csv_file}:{line_number}"
        path = (row.get("path") or "").strip()
        if not path:
            raise ValueError(f"{where}: empty path")
        label = _optional_int(row, label_column, where)
        if label is None:
            raise ValueError(f"{where}: missing {label_column}")
        refs.append(
            ClipRef(
                path=path,
                label=label,
                clip_index=_optional_int(row, "clip_index", where),
                start_frame=_optional_int(row, "start_frame", where),
                num_frames_hint=_optional_int(row, "duration", where),
                root=None if root is None else str(root),
            )
        )
    return refs


def read_clip_csv(csv_path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[ClipRef]:
    """Read a CSV of clips (see the module docstring for the columns) into :class:`ClipRef` objects."""
    csv_file = Path(csv_path)
    if not csv_file.is_file():
        raise FileNotFoundError(f"clip list not found: {csv_file}")
    try:
        with csv_file.open(newline="", encoding="utf-8") as handle:
            refs = _read_refs(csv_file, handle, root)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"{csv_file} is not a readable CSV clip list (UTF-8 text with a 'path,label' header): "
            f"{type(error).__name__}: {error}"
        ) from None
    if not refs:
        raise ValueError(f"{csv_file}: the clip list is empty")
    return refs


def check_unique_ids(refs: Sequence[ClipRef]) -> None:
    """Raise ``ValueError`` if two clips share a clip id (the same path and window listed twice)."""
    seen: dict[str, int] = {}
    for position, ref in enumerate(refs):
        if ref.clip_id in seen:
            raise ValueError(
                f"clips {seen[ref.clip_id]} and {position} are the same clip ({ref.path}, clip_index="
                f"{ref.clip_index}, start_frame={ref.start_frame}); clip ids must be unique"
            )
        seen[ref.clip_id] = position


class ClipDataset(Dataset):
    """Map-style dataset over :class:`ClipRef` objects: decode, pick frames, resize/crop.

    ``select_frames(ref, num_frames) -> list[int]`` chooses the 0-based frame indices of a clip;
    ``spatial`` turns ``uint8`` frames into the float clip. Paths are resolved by ``resolve(ref) -> Path``
    (default ``ref.full_path``); folders are read as frame folders named by ``frame_pattern``.
    """

    def __init__(
        self,
        refs: Sequence[ClipRef],
        select_frames: Callable[[ClipRef, int], list[int]],
        spatial: SpatialTransform,
        *,
        frame_pattern: str = DEFAULT_FRAME_PATTERN,
        num_classes: int | None = None,
    ) -> None:
        self.refs = list(refs)
        if not self.refs:
            raise ValueError("a clip dataset needs at least one clip")
        if num_classes is not None:
            bad = [ref for ref in self.refs if not 0 <= ref.label < num_classes]
            if bad:
                raise ValueError(f"label {bad[0].label} of {bad[0].path} is outside 0..{num_classes - 1}")
        check_unique_ids(self.refs)
        self.select_frames = select_frames
        self.spatial = spatial
        self.frame_pattern = frame_pattern
        self.num_classes = num_classes
        self._frame_counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def resolve(self, ref: ClipRef) -> Path:
        """The file or folder that holds ``ref``'s frames."""
        return ref.full_path

    def _count(self, source: Path) -> int:
        key = str(source)
        if key not in self._frame_counts:
            if source.is_dir():
                self._frame_counts[key] = count_folder_frames(source, self.frame_pattern)
            else:
                self._frame_counts[key] = count_frames(source)
        return self._frame_counts[key]

    def load_frames(self, ref: ClipRef) -> torch.Tensor:
        """The clip's ``uint8`` frames ``(T, H, W, 3)`` before the spatial transform."""
        source = self.resolve(ref)
        if not source.exists():
            raise VideoDecodeError(source, "video file or frame folder not found")
        num_frames = self._count(source)
        try:
            indices = self.select_frames(ref, num_frames)
        except ValueError as error:
            raise VideoDecodeError(source, str(error)) from None
        if source.is_dir():
            return read_frame_folder(source, indices, self.frame_pattern)
        return read_video_frames(source, indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        ref = self.refs[index]
        clip = self.spatial(self.load_frames(ref))
        return clip, int(ref.label), ref.clip_id


class CsvClipDataset(ClipDataset):
    """Generic "CSV of path,label" dataset (video files or frame folders).

    Per row, ``start_frame`` (0-based, negative from the end) picks ``frames`` frames every ``stride``;
    otherwise ``clip_index`` applies the TT Kinetics rule; otherwise the window starts at
    ``default_start`` (an int, or ``"center"`` for a window centred in the video). Frames are resized so the
    short side is ``short_side`` (default ``size``) and center-cropped to ``size``; ``decode_size`` optionally
    first resizes to a fixed ``(height, width)``.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        *,
        refs: Sequence[ClipRef] | None = None,
        frames: int = 32,
        stride: int = 1,
        size: int = 224,
        short_side: int | None = None,
        decode_size: tuple[int, int] | None = None,
        default_start: int | str = "center",
        short_video: str = "loop",
        frame_pattern: str = DEFAULT_FRAME_PATTERN,
        num_classes: int | None = None,
        limit: int | None = None,
    ) -> None:
        if (csv_path is None) == (refs is None):
            raise ValueError("give exactly one of csv_path or refs")
        if short_video not in SHORT_VIDEO_MODES:
            raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")
        if not (
            default_start == "center"
            or (isinstance(default_start, int) and not isinstance(default_start, bool))
        ):
            raise ValueError(f"default_start must be an int or 'center', got {default_start!r}")
        if refs is None:
            refs = read_clip_csv(csv_path, root)  # type: ignore[arg-type]
        elif root is not None:
            refs = [ref.with_root(root) for ref in refs]
        if limit is not None:
            refs = list(refs)[: int(limit)]
        self.frames = int(frames)
        self.stride = int(stride)
        self.default_start = default_start
        self.short_video = short_video
        spatial = SpatialTransform(
            decode_size=decode_size, short_side=short_side if short_side is not None else size, crop_size=size
        )
        super().__init__(refs, self._select, spatial, frame_pattern=frame_pattern, num_classes=num_classes)

    def _select(self, ref: ClipRef, num_frames: int) -> list[int]:
        if ref.start_frame is not None:
            start = ref.start_frame
        elif ref.clip_index is not None:
            return tt_kinetics_indices(num_frames, ref.clip_index, self.frames, self.stride)
        elif self.default_start == "center":
            start = max((num_frames - (self.frames - 1) * self.stride - 1) // 2, 0)
        else:
            start = int(self.default_start)
        return strided_window_indices(num_frames, start, self.frames, self.stride, self.short_video)
