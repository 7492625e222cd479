"""UCF-101 clips as the TT paper attacked them: frame folders (``image_%05d.jpg``) or the original .avi.

Paper protocol (defaults): the 101 clips of ``ucf101_test01_clips.csv`` selected by
``ucf101_attack_indices.json`` (one per class, shipped in :mod:`vidadv.protocol`). The clip is frames
2..33 (``image_00002.jpg`` ... ``image_00033.jpg``; 32 frames), loop-padded when the video is shorter, the
short side resized to 224 and a 224x224 center crop taken. Values are float32 in [0, 1]; mean/std belong
to the model wrapper.

With ``.avi`` files the same rule applies to decoded frames (0-based frame ``k`` = ``image_{k+1:05d}.jpg``,
which is how ffmpeg numbers extracted frames). Resizing is torch bilinear with anti-aliasing; the paper
used PIL's bilinear resize, so pixels may differ by a few 1/255 levels.

Paths: the lists say ``Class/v_Class_gXX_cYY``. Under ``root`` the loader tries, in order,
``root/Class/v_...`` (folder), ``root/Class/v_....avi``, ``root/v_...`` (folder; the paper's flat
layout) and ``root/v_....avi``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..protocol import ucf101_attack_indices, ucf101_class_names, ucf101_test01_rows
from .csv_dataset import ClipDataset, ClipRef, clip_list_under
from .transforms import SpatialTransform, ucf_loop_indices
from .video import DEFAULT_FRAME_PATTERN, VideoDecodeError

__all__ = [
    "UCF101_NUM_CLASSES",
    "UCF101_SOURCES",
    "ucf101_attack_list",
    "ucf101_test01_list",
    "ucf101_class_names",
    "UCF101Clips",
]

UCF101_NUM_CLASSES = 101
UCF101_SOURCES = ("auto", "frames", "video")


def ucf101_test01_list(root: str | os.PathLike | None = None) -> list[ClipRef]:
    """All 3783 UCF-101 split-1 test clips (frame folders) as :class:`ClipRef`, in file order."""
    return [
        ClipRef(
            path=str(row["path"]),
            label=int(row["target"]),
            num_frames_hint=int(row["duration"]),
            root=None if root is None else str(root),
        )
        for row in ucf101_test01_rows()
    ]


def ucf101_attack_list(root: str | os.PathLike | None = None) -> list[ClipRef]:
    """The paper's 101 attacked UCF-101 clips (split-1 test rows picked by the paper's indices)."""
    all_clips = ucf101_test01_list(root)
    return [all_clips[index] for index in ucf101_attack_indices()]


def _load_indices(indices: Sequence[int] | str | os.PathLike) -> list[int]:
    if isinstance(indices, str | os.PathLike):
        index_file = Path(indices)
        if not index_file.is_file():
            raise FileNotFoundError(f"index file not found: {index_file}")
        try:
            indices = json.loads(index_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"index file {index_file} is not a JSON list of integers: {error}") from None
    if not isinstance(indices, Sequence) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in indices
    ):
        raise ValueError("indices must be a list of integers (or a JSON file holding one)")
    return list(indices)


class UCF101Clips(ClipDataset):
    """UCF-101 clips under ``root``; items are ``(clip, label, clip_id)``.

    ``clips``: ``None`` (the paper's 101-clip list), a CSV path (``path,duration,target`` or any format
    :func:`read_clip_csv` reads) or a list of :class:`ClipRef`; ``indices`` (list or JSON file) then picks
    rows of it. ``source``: ``"frames"`` (jpg folders), ``"video"`` (``video_ext`` files) or ``"auto"``
    (whichever exists, folders first). ``start`` (0-based, default 1 = ``image_00002.jpg``), ``frames``
    and ``stride`` set the window; ``size`` the crop and ``short_side`` (default ``size``) the resize.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        clips: str | os.PathLike | Sequence[ClipRef] | None = None,
        *,
        indices: Sequence[int] | str | os.PathLike | None = None,
        frames: int = 32,
        start: int = 1,
        stride: int = 1,
        size: int = 224,
        short_side: int | None = None,
        source: str = "auto",
        video_ext: str = ".avi",
        frame_pattern: str = DEFAULT_FRAME_PATTERN,
        limit: int | None = None,
    ) -> None:
        if source not in UCF101_SOURCES:
            raise ValueError(f"source must be one of {UCF101_SOURCES}, got {source!r}")
        self.root = Path(root)
        refs = clip_list_under(
            self.root, clips, ucf101_test01_list if indices is not None else ucf101_attack_list
        )
        if indices is not None:
            wanted = _load_indices(indices)
            bad = [i for i in wanted if not 0 <= i < len(refs)]
            if bad:
                raise ValueError(f"index {bad[0]} is outside the clip list of {len(refs)} rows")
            refs = [refs[i] for i in wanted]
        if limit is not None:
            refs = refs[: int(limit)]
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.frames, self.start, self.stride = int(frames), int(start), int(stride)
        self.source, self.video_ext = source, video_ext
        spatial = SpatialTransform(short_side=short_side if short_side is not None else size, crop_size=size)
        super().__init__(
            refs, self._select, spatial, frame_pattern=frame_pattern, num_classes=UCF101_NUM_CLASSES
        )

    @property
    def class_names(self) -> list[str]:
        """UCF-101 class names by label."""
        return ucf101_class_names()

    def _select(self, ref: ClipRef, num_frames: int) -> list[int]:
        start = self.start if ref.start_frame is None else ref.start_frame
        return ucf_loop_indices(num_frames, self.frames, start, self.stride)

    def resolve(self, ref: ClipRef) -> Path:
        """First existing candidate among folder/video, nested/flat layouts (see the module docstring)."""
        listed = ref.full_path
        flat = listed if ref.root is None else Path(ref.root) / listed.name
        candidates: list[Path] = []
        for base in dict.fromkeys([listed, flat]):
            if self.source in ("auto", "frames"):
                candidates.append(base)
            if self.source in ("auto", "video"):
                candidates.append(
                    base if base.suffix == self.video_ext else base.with_name(base.name + self.video_ext)
                )
        for candidate in candidates:
            if candidate.exists() and (candidate.is_dir() == (candidate.suffix != self.video_ext)):
                return candidate
        raise VideoDecodeError(listed, f"UCF-101 clip not found (tried {[str(c) for c in candidates]})")
