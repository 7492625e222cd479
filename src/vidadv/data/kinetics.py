"""Kinetics-400 clips as the TT paper attacked them (video files decoded with PyAV).

Paper protocol (defaults): 400 validation clips, one per class (``kinetics400_attack_samples.csv``,
shipped in :mod:`vidadv.protocol`). A clip is a 64-frame window of which every other frame is kept
(32 frames); ``clip_index`` -1 is the window at the end of the video. Frames are decoded resized to
340x256 (width x height, aspect ratio ignored), then the short side is resized to 256 (a no-op) and a
224x224 center crop is taken. Values are float32 in [0, 1]; ImageNet mean/std are applied by the model
wrapper.

Two temporal rules (``sampling``):

* ``"tt"`` (default): exactly the TT code's indices, see :func:`vidadv.data.transforms.tt_kinetics_indices`
  (last window = ``n-65, n-63, ..., n-35, n-32, ..., n-4, n-2``; short videos repeat their last frame).
* ``"strided"``: the literal "last 64 frames, every other one" = ``n-64, n-62, ..., n-2``; ``clip_index``
  ``k >= 0`` uses the same seeded window end as ``"tt"``.

Resizing uses torch bilinear interpolation with anti-aliasing; decord/ffmpeg (used by the paper through
gluoncv) scale slightly differently, so pixels may differ by a few 1/255 levels.

Configurable for small models: ``frames``, ``stride``, ``size`` (crop), ``short_side`` (default
``round(size * 256 / 224)``) and ``decode_size`` (default ``(short_side, round(short_side * 340 / 256))``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..protocol import kinetics400_attack_rows, kinetics400_class_names
from .csv_dataset import ClipDataset, ClipRef, clip_list_under
from .transforms import SHORT_VIDEO_MODES, SpatialTransform, strided_window_indices, tt_kinetics_indices
from .video import VideoDecodeError

__all__ = [
    "KINETICS400_NUM_CLASSES",
    "KINETICS_SAMPLING_RULES",
    "kinetics400_attack_list",
    "kinetics400_class_names",
    "kinetics_clip_indices",
    "Kinetics400Clips",
]

KINETICS400_NUM_CLASSES = 400
KINETICS_SAMPLING_RULES = ("tt", "strided")
_PAPER_SIZE, _PAPER_SHORT_SIDE, _PAPER_DECODE = 224, 256, (256, 340)


def kinetics400_attack_list(root: str | os.PathLike | None = None) -> list[ClipRef]:
    """The paper's 400 attacked Kinetics-400 clips as :class:`ClipRef` (paths relative to ``root``)."""
    return [
        ClipRef(
            path=str(row["path"]),
            label=int(row["gt_label"]),
            clip_index=int(row["clip_index"]),
            root=None if root is None else str(root),
        )
        for row in kinetics400_attack_rows()
    ]


def kinetics_clip_indices(
    num_frames: int,
    clip_index: int = -1,
    frames: int = 32,
    stride: int = 2,
    sampling: str = "tt",
    short_video: str = "clamp",
) -> list[int]:
    """0-based frame indices of a Kinetics clip under ``sampling`` ("tt" or "strided", see module doc).

    ``short_video`` only affects ``"strided"`` (``"tt"`` always repeats the last frame, as the paper did).
    """
    if sampling == "tt":
        return tt_kinetics_indices(num_frames, clip_index, frames, stride)
    if sampling != "strided":
        raise ValueError(f"sampling must be one of {KINETICS_SAMPLING_RULES}, got {sampling!r}")
    span = frames * stride
    if num_frames <= span:
        return strided_window_indices(num_frames, 0, frames, stride, short_video)
    if clip_index == -1:
        end = num_frames
    elif isinstance(clip_index, int | np.integer) and clip_index >= 0:
        end = int(np.random.RandomState(int(clip_index)).randint(span, num_frames))
    else:
        raise ValueError(f"clip_index must be -1 (last window) or a non-negative seed, got {clip_index!r}")
    return strided_window_indices(num_frames, end - span, frames, stride, short_video)


class Kinetics400Clips(ClipDataset):
    """Kinetics-400 clips from video files under ``root``; items are ``(clip, label, clip_id)``.

    ``clips``: ``None`` (the paper's 400-clip list), a CSV path (``path,gt_label,clip_index`` or any
    format :func:`read_clip_csv` reads) or a list of :class:`ClipRef`. A listed class folder with spaces
    is also looked up with underscores (``air drumming`` -> ``air_drumming``), as some copies store it.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        clips: str | os.PathLike | Sequence[ClipRef] | None = None,
        *,
        frames: int = 32,
        stride: int = 2,
        size: int = _PAPER_SIZE,
        short_side: int | None = None,
        decode_size: tuple[int, int] | None = None,
        sampling: str = "tt",
        short_video: str = "clamp",
        limit: int | None = None,
    ) -> None:
        if sampling not in KINETICS_SAMPLING_RULES:
            raise ValueError(f"sampling must be one of {KINETICS_SAMPLING_RULES}, got {sampling!r}")
        if short_video not in SHORT_VIDEO_MODES:
            raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")
        self.root = Path(root)
        refs = clip_list_under(self.root, clips, kinetics400_attack_list)
        if limit is not None:
            refs = refs[: int(limit)]
        if short_side is None:
            short_side = int(round(size * _PAPER_SHORT_SIDE / _PAPER_SIZE))
        if decode_size is None:
            decode_size = (short_side, int(round(short_side * _PAPER_DECODE[1] / _PAPER_DECODE[0])))
        self.frames, self.stride = int(frames), int(stride)
        self.sampling, self.short_video = sampling, short_video
        spatial = SpatialTransform(
            decode_size=decode_size, short_side=short_side, crop_size=size, quantize_decoded=True
        )
        super().__init__(refs, self._select, spatial, num_classes=KINETICS400_NUM_CLASSES)

    @property
    def class_names(self) -> list[str]:
        """Kinetics-400 class names by label."""
        return kinetics400_class_names()

    def _select(self, ref: ClipRef, num_frames: int) -> list[int]:
        if ref.start_frame is not None:
            return strided_window_indices(
                num_frames, ref.start_frame, self.frames, self.stride, self.short_video
            )
        clip_index = -1 if ref.clip_index is None else ref.clip_index
        return kinetics_clip_indices(
            num_frames, clip_index, self.frames, self.stride, self.sampling, self.short_video
        )

    def resolve(self, ref: ClipRef) -> Path:
        """``root/path``, or with underscores for spaces in the path, whichever exists."""
        listed = ref.full_path
        if listed.exists():
            return listed
        alternative = listed.parent / listed.name
        if " " in ref.path:
            underscored = Path(ref.path.replace(" ", "_"))
            alternative = (
                underscored if underscored.is_absolute() or ref.root is None else Path(ref.root) / underscored
            )
        if alternative.exists():
            return alternative
        tried = [str(listed)] if alternative == listed else [str(listed), str(alternative)]
        raise VideoDecodeError(listed, f"video file not found (tried {tried})")
