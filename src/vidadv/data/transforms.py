"""Temporal sampling rules and spatial transforms that turn decoded frames into model-ready clips.

Clips are float32 tensors ``(C, T, H, W)`` with values in [0, 1]; normalization (mean/std) is *not* done
here, it lives in the model wrapper ``vidadv.models.VideoClassifier``.

Resizing uses ``torch.nn.functional.interpolate`` (bilinear, ``align_corners=False``, ``antialias=True``
when downscaling). The paper's pipelines resized differently: decord/ffmpeg's swscale for Kinetics-400
(decoding straight to 340x256) and PIL bilinear for the UCF-101 jpgs, so pixel values can differ slightly
(typically a few 1/255 levels) from the original code; sampling positions and crop offsets are the same.

Temporal rules (all indices are 0-based decoded-frame numbers):

* :func:`tt_kinetics_indices` - the TT code's Kinetics-400 rule (``clip_index`` ``-1`` = last window).
* :func:`strided_last_indices` - "the last ``frames*stride`` frames, every ``stride``-th" (the plain reading
  of the paper's description).
* :func:`ucf_loop_indices` - UCF-101: frames 2..33 (``image_00002.jpg`` ...), loop-padded when short.
* :func:`strided_window_indices` - generic window from a start frame, for custom CSV datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SHORT_VIDEO_MODES",
    "tt_kinetics_indices",
    "strided_last_indices",
    "ucf_loop_indices",
    "strided_window_indices",
    "loop_pad",
    "frames_to_clip",
    "resize_clip",
    "resize_short_side",
    "center_crop",
    "SpatialTransform",
]

#: What to do when a video is shorter than the sampled window: loop the available frames, repeat the last
#: frame ("clamp"), or raise.
SHORT_VIDEO_MODES = ("loop", "clamp", "error")


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_num_frames(num_frames: int) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer) or num_frames < 1:
        raise ValueError(f"the video must have at least one frame, got num_frames={num_frames!r}")
    return int(num_frames)


def loop_pad(indices: Sequence[int], length: int) -> list[int]:
    """Repeat ``indices`` cyclically until ``length`` entries (3D-ResNets' ``LoopPadding``), or truncate."""
    _check_positive("length", length)
    if len(indices) == 0:
        raise ValueError("cannot loop-pad an empty index list")
    return [int(indices[position % len(indices)]) for position in range(length)]


def tt_kinetics_indices(
    num_frames: int, clip_index: int = -1, frames: int = 32, stride: int = 2
) -> list[int]:
    """Kinetics-400 frame indices exactly as the TT code (gluoncv-style ``VideoClsDataset``) picks them.

    With ``span = frames * stride`` (64 in the paper):

    * ``num_frames > span`` and ``clip_index == -1``: the window ends at the last frame; the indices are
      ``floor(linspace(n - 1 - span, n - 1, frames))`` clipped to ``n - 2``. This is "the last 64 frames,
      every other one" up to one extra step of 3 frames in the middle (``n-65, n-63, ..., n-35, n-32, ...,
      n-4, n-2`` for the paper's setting).
    * ``num_frames > span`` and ``clip_index >= 0``: the window end is ``RandomState(clip_index).randint(span,
      n)`` (the paper seeds numpy's legacy generator with the clip index; two of its 400 clips use 6 and 9).
    * ``num_frames <= span``: ``floor(linspace(0, n, n // stride))`` padded with ``n`` up to ``frames``
      entries, all clipped to ``n - 1`` (so short videos repeat their last frame).
    """
    num_frames = _check_num_frames(num_frames)
    frames = _check_positive("frames", frames)
    stride = _check_positive("stride", stride)
    span = frames * stride
    if num_frames <= span:
        count = num_frames // stride
        index = np.linspace(0, num_frames, num=count)
        index = np.concatenate((index, np.full(frames - count, float(num_frames))))
        index = np.clip(index, 0, num_frames - 1).astype(np.int64)
        return [int(i) for i in index[:frames]]
    if clip_index == -1:
        end = num_frames - 1
    elif isinstance(clip_index, int | np.integer) and clip_index >= 0:
        end = int(np.random.RandomState(int(clip_index)).randint(span, num_frames))
    else:
        raise ValueError(f"clip_index must be -1 (last window) or a non-negative seed, got {clip_index!r}")
    start = end - span
    index = np.clip(np.linspace(start, end, num=frames), start, end - 1).astype(np.int64)
    return [int(i) for i in index]


def strided_window_indices(
    num_frames: int, start: int = 0, frames: int = 32, stride: int = 1, short_video: str = "loop"
) -> list[int]:
    """Indices ``start, start + stride, ...`` (``frames`` of them); negative ``start`` counts from the end.

    When the window runs past the last frame, ``short_video`` decides: ``"loop"`` cycles the in-range
    indices, ``"clamp"`` repeats the last frame, ``"error"`` raises ``ValueError``.
    """
    num_frames = _check_num_frames(num_frames)
    frames = _check_positive("frames", frames)
    stride = _check_positive("stride", stride)
    if short_video not in SHORT_VIDEO_MODES:
        raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")
    first = int(start) + num_frames if int(start) < 0 else int(start)
    if not 0 <= first < num_frames:
        raise ValueError(f"start frame {start} is outside a video of {num_frames} frames")
    wanted = [first + k * stride for k in range(frames)]
    available = [index for index in wanted if index < num_frames]
    if len(available) == frames:
        return wanted
    if short_video == "error":
        raise ValueError(
            f"too few frames: a window of {frames} frames with stride {stride} from frame {first} needs "
            f"{first + (frames - 1) * stride + 1} frames, the video has {num_frames}"
        )
    if short_video == "clamp":
        return available + [available[-1]] * (frames - len(available))
    return loop_pad(available, frames)


def strided_last_indices(
    num_frames: int, frames: int = 32, stride: int = 2, short_video: str = "clamp"
) -> list[int]:
    """The last ``span = frames * stride`` frames, every ``stride``-th: ``n - span, ..., n - stride``.

    Videos shorter than the window start at frame 0 and are padded per ``short_video`` (see
    :func:`strided_window_indices`).
    """
    num_frames = _check_num_frames(num_frames)
    span = _check_positive("frames", frames) * _check_positive("stride", stride)
    return strided_window_indices(num_frames, max(num_frames - span, 0), frames, stride, short_video)


def ucf_loop_indices(num_frames: int, frames: int = 32, start: int = 1, stride: int = 1) -> list[int]:
    """UCF-101 rule of the paper: frames ``start, start+stride, ...`` (0-based; default ``start=1`` is
    ``image_00002.jpg``, so the clip is images 2..33), cycled (loop padding) when the video is shorter.

    A video with a single frame (nothing at or after ``start``) falls back to its first frame.
    """
    num_frames = _check_num_frames(num_frames)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if start >= num_frames:
        return [0] * _check_positive("frames", frames)
    return strided_window_indices(num_frames, start, frames, stride, short_video="loop")


# --------------------------------------------------------------------------------------------------
# Spatial transforms on (C, T, H, W) float clips
# --------------------------------------------------------------------------------------------------


def _check_clip(clip: torch.Tensor) -> None:
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or not torch.is_floating_point(clip):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"expected a floating clip tensor (C, T, H, W), got {shape}")


def _pair(name: str, size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        return _check_positive(name, int(size)), _check_positive(name, int(size))
    if isinstance(size, Sequence) and len(size) == 2:
        return _check_positive(name, int(size[0])), _check_positive(name, int(size[1]))
    raise ValueError(f"{name} must be an int or a (height, width) pair, got {size!r}")


def resize_clip(clip: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize every frame of a ``(C, T, H, W)`` clip to ``size`` = ``(height, width)`` (bilinear).

    Anti-aliasing is on when either side shrinks (as PIL and ffmpeg's scalers do). Values stay in the
    input range (the bilinear/triangle weights are non-negative).
    """
    _check_clip(clip)
    height, width = _pair("size", size)
    if (height, width) == tuple(clip.shape[-2:]):
        return clip
    downscale = height < clip.shape[-2] or width < clip.shape[-1]
    per_frame = clip.permute(1, 0, 2, 3).contiguous()
    resized = F.interpolate(
        per_frame, size=(height, width), mode="bilinear", align_corners=False, antialias=downscale
    )
    return resized.permute(1, 0, 2, 3)


def resize_short_side(clip: torch.Tensor, short_side: int) -> torch.Tensor:
    """Resize so the shorter side equals ``short_side``; the longer becomes ``int(long * short_side / short)``
    (truncated, as gluoncv's and 3D-ResNets' ``Resize``/``Scale`` do). No-op when already that size."""
    _check_clip(clip)
    short_side = _check_positive("short_side", short_side)
    height, width = clip.shape[-2:]
    if min(height, width) == short_side:
        return clip
    if width <= height:
        new_size = (int(short_side * height / width), short_side)
    else:
        new_size = (short_side, int(short_side * width / height))
    return resize_clip(clip, new_size)


def center_crop(clip: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Center crop to ``size`` (``(height, width)`` or int); offsets ``round((W - w) / 2)`` as in gluoncv."""
    _check_clip(clip)
    crop_height, crop_width = _pair("crop size", size)
    height, width = clip.shape[-2:]
    if crop_height > height or crop_width > width:
        raise ValueError(f"crop size {crop_height}x{crop_width} is larger than the frames ({height}x{width})")
    top = int(round((height - crop_height) / 2.0))
    left = int(round((width - crop_width) / 2.0))
    return clip[..., top : top + crop_height, left : left + crop_width]


def frames_to_clip(frames: torch.Tensor) -> torch.Tensor:
    """``uint8`` frames ``(T, H, W, C)`` -> float32 clip ``(C, T, H, W)`` in [0, 1]."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.dtype != torch.uint8:
        raise ValueError("expected uint8 frames (T, H, W, C)")
    return frames.permute(3, 0, 1, 2).to(torch.float32).div_(255.0)


@dataclass(frozen=True)
class SpatialTransform:
    """Decoded ``uint8`` frames ``(T, H, W, C)`` -> float32 clip ``(C, T, crop, crop)`` in [0, 1].

    Steps, each optional: resize to ``decode_size`` = ``(height, width)`` ignoring aspect ratio (what decoding
    "resized to 340x256" does; with ``quantize_decoded`` the result is rounded to the 1/255 grid like a
    decoder's 8-bit output), resize the short side to ``short_side``, center crop ``crop_size``.
    Frames are processed in chunks of ``chunk_frames`` to bound memory for large videos.
    """

    decode_size: tuple[int, int] | None = None
    short_side: int | None = None
    crop_size: int | tuple[int, int] | None = None
    quantize_decoded: bool = False
    chunk_frames: int = 8

    def __post_init__(self) -> None:
        if self.decode_size is not None:
            object.__setattr__(self, "decode_size", _pair("decode_size", self.decode_size))
        if self.short_side is not None:
            _check_positive("short_side", self.short_side)
        if self.crop_size is not None:
            _pair("crop_size", self.crop_size)
        _check_positive("chunk_frames", self.chunk_frames)

    def _apply(self, clip: torch.Tensor) -> torch.Tensor:
        if self.decode_size is not None:
            clip = resize_clip(clip, self.decode_size)
            if self.quantize_decoded:
                clip = clip.clamp_(0.0, 1.0).mul_(255.0).round_().div_(255.0)
        if self.short_side is not None:
            clip = resize_short_side(clip, self.short_side)
        if self.crop_size is not None:
            clip = center_crop(clip, self.crop_size)
        return clip

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.dtype != torch.uint8:
            raise ValueError("SpatialTransform expects uint8 frames (T, H, W, C)")
        chunks = []
        for start in range(0, frames.shape[0], self.chunk_frames):
            # (C, t, H, W) view of a contiguous (t, C, H, W) float chunk: interpolate sees plain NCHW memory
            chunk = (
                frames[start : start + self.chunk_frames].permute(0, 3, 1, 2).contiguous().float().div_(255.0)
            )
            chunks.append(self._apply(chunk.permute(1, 0, 2, 3)))
        return torch.cat(chunks, dim=1).clamp_(0.0, 1.0).contiguous()
