"""Frame-accurate video reading and H.264 writing with PyAV, plus frame-folder reading.

Reading decodes *sequentially from the first frame* and counts decoded frames, so frame ``k`` is the
``k``-th frame in presentation order whatever the container's timestamps, keyframe spacing or frame-count
metadata say (that metadata is often wrong; :func:`count_frames` decodes to count). This is slower than
seeking but exact, and Kinetics/UCF-101 clips are short (about 10 s).

Frames come back as ``uint8`` RGB tensors of layout ``(T, H, W, 3)`` at the stored resolution; resizing and
conversion to float clips live in :mod:`vidadv.data.transforms`.

Writing (:func:`write_video`) encodes H.264 (``libx264``) in an mp4 container. ``yuv420p`` needs even
width and height: odd sizes are padded by repeating the last row/column (``odd_size="pad"``) or refused
(``odd_size="error"``). :func:`h264_roundtrip` answers "what would this clip be after saving it as a
video": it encodes to an in-memory mp4, decodes it back and crops away any padding.

Any decoding problem (missing file, garbage bytes, no video stream, too few frames, unreadable jpg) is
raised as :class:`VideoDecodeError` (a ``ValueError``) naming the file and the problem.

One module on purpose: reading, writing and the H.264 round trip are the whole PyAV boundary of vidadv and
share its container handling, frame layouts and error type.
"""

from __future__ import annotations

import contextlib
import io
import os
import string
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

__all__ = [
    "VideoDecodeError",
    "count_frames",
    "video_frame_rate",
    "read_video_frames",
    "count_folder_frames",
    "read_frame_folder",
    "write_video",
    "encode_video_bytes",
    "decode_video_bytes",
    "to_uint8_frames",
    "quantize_uint8",
    "h264_roundtrip",
    "DEFAULT_FRAME_PATTERN",
]

#: File-name pattern of frame folders as extracted for UCF-101 in the paper (``image_00001.jpg`` ...).
DEFAULT_FRAME_PATTERN = "image_{:05d}.jpg"

PathLike = str | os.PathLike


class VideoDecodeError(ValueError):
    """A video file or frame folder could not be read; the message names the file and the problem."""

    def __init__(self, path: PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{problem}: {self.path}" if self.path is not None else problem)


# --------------------------------------------------------------------------------------------------
# Reading video files
# --------------------------------------------------------------------------------------------------


def _check_file(path: PathLike) -> Path:
    file_path = Path(path)
    if not file_path.exists():
        raise VideoDecodeError(file_path, "video file not found")
    if file_path.is_dir():
        raise VideoDecodeError(file_path, "expected a video file but found a folder")
    if file_path.stat().st_size == 0:
        raise VideoDecodeError(file_path, "video file is empty (0 bytes)")
    return file_path


def _open_input(source: PathLike | bytes, label: PathLike | None) -> Any:
    """Open a container for reading; ``source`` is a path or the encoded bytes."""
    try:
        if isinstance(source, bytes | bytearray):
            return av.open(io.BytesIO(bytes(source)), mode="r")
        return av.open(str(source), mode="r")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise VideoDecodeError(
            label, f"not a readable video container ({type(error).__name__}: {error})"
        ) from None


def _iter_decoded(source: PathLike | bytes, label: PathLike | None) -> Iterator[Any]:
    """Yield the ``av.VideoFrame`` objects of the first video stream in presentation order."""
    container = _open_input(source, label)
    try:
        if not container.streams.video:
            raise VideoDecodeError(label, "no video stream in file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            yield from container.decode(stream)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            if isinstance(error, VideoDecodeError):
                raise
            raise VideoDecodeError(
                label, f"video data is corrupt ({type(error).__name__}: {error})"
            ) from None
    finally:
        container.close()


def _frame_to_rgb(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def count_frames(path: PathLike) -> int:
    """Number of frames of a video file, counted by decoding (container metadata can be wrong)."""
    file_path = _check_file(path)
    return _count_decoded(file_path, file_path)


def video_frame_rate(path: PathLike) -> Fraction | None:
    """Average frame rate of the first video stream as the container states it (None when it does not)."""
    file_path = _check_file(path)
    container = _open_input(file_path, file_path)
    try:
        if not container.streams.video:
            raise VideoDecodeError(file_path, "no video stream in file")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    finally:
        container.close()
    if rate is None or rate <= 0:
        return None
    return Fraction(rate)


def _count_decoded(source: PathLike | bytes, label: PathLike | None) -> int:
    count = 0
    with contextlib.closing(_iter_decoded(source, label)) as frames:
        for _ in frames:
            count += 1
    return count


def _normalize_indices(indices: Sequence[int], num_frames: int, label: PathLike | None) -> list[int]:
    """Map possibly negative (from-the-end) indices to ``0..num_frames-1`` or raise naming the file."""
    resolved = []
    for index in indices:
        position = int(index) + num_frames if int(index) < 0 else int(index)
        if not 0 <= position < num_frames:
            raise VideoDecodeError(
                label,
                f"too few frames: frame index {int(index)} requested but the video has {num_frames} frames",
            )
        resolved.append(position)
    return resolved


def _read_frames(
    source: PathLike | bytes, label: PathLike | None, indices: Sequence[int] | None
) -> torch.Tensor:
    if indices is not None:
        indices = [int(i) for i in indices]
        if len(indices) == 0:
            raise ValueError(f"indices must not be empty (file {label})")
    needs_count = indices is None or any(i < 0 for i in indices)
    if indices is None:
        with contextlib.closing(_iter_decoded(source, label)) as decoded_frames:
            frames = [_frame_to_rgb(frame) for frame in decoded_frames]
        if not frames:
            raise VideoDecodeError(label, "video contains no decodable frames")
        return torch.from_numpy(np.stack(frames))
    if needs_count:
        total = _count_decoded(source, label)
        if total == 0:
            raise VideoDecodeError(label, "video contains no decodable frames")
        wanted = _normalize_indices(indices, total, label)
    else:
        wanted = indices
    wanted_set = set(wanted)
    last_wanted = max(wanted)
    collected: dict[int, np.ndarray] = {}
    decoded = 0
    with contextlib.closing(_iter_decoded(source, label)) as decoded_frames:
        for position, frame in enumerate(decoded_frames):
            decoded = position + 1
            if position in wanted_set:
                collected[position] = _frame_to_rgb(frame)
            if position >= last_wanted:
                break  # closing() shuts the container without decoding the rest
    if len(collected) != len(wanted_set):
        if decoded == 0:
            raise VideoDecodeError(label, "video contains no decodable frames")
        _normalize_indices(wanted, decoded, label)  # raises the "too few frames" error
    return torch.from_numpy(np.stack([collected[i] for i in wanted]))


def read_video_frames(path: PathLike, indices: Sequence[int] | None = None) -> torch.Tensor:
    """Decode frames of a video file as a ``uint8`` tensor ``(T, H, W, 3)`` (RGB).

    ``indices`` are 0-based frame numbers in presentation order, in any order and with repeats; negative
    values count from the end (``-1`` = last frame, which costs one extra decoding pass to count frames).
    ``None`` returns every frame. Requesting a frame past the end raises :class:`VideoDecodeError`.
    """
    file_path = _check_file(path)
    return _read_frames(file_path, file_path, indices)


def decode_video_bytes(data: bytes, indices: Sequence[int] | None = None) -> torch.Tensor:
    """Like :func:`read_video_frames` for an encoded video held in memory."""
    if len(data) == 0:
        raise VideoDecodeError(None, "encoded video is empty (0 bytes)")
    return _read_frames(bytes(data), "<in-memory video>", indices)


# --------------------------------------------------------------------------------------------------
# Reading frame folders (UCF-101 as used in the paper)
# --------------------------------------------------------------------------------------------------


def _check_folder(folder: PathLike) -> Path:
    folder_path = Path(folder)
    if not folder_path.exists():
        raise VideoDecodeError(folder_path, "frame folder not found")
    if not folder_path.is_dir():
        raise VideoDecodeError(folder_path, "expected a frame folder but found a file")
    return folder_path


def _frame_numbers(names: set[str], pattern: str) -> list[int]:
    """The frame numbers of the names matching `pattern` (one format field, e.g. ``image_{:05d}.jpg``)."""
    parts = [(literal, field) for literal, field, _spec, _conv in string.Formatter().parse(pattern)]
    fields = [i for i, (_literal, field) in enumerate(parts) if field is not None]
    if len(fields) != 1:
        return []
    prefix = "".join(literal for literal, _ in parts[: fields[0] + 1])
    suffix = "".join(literal for literal, _ in parts[fields[0] + 1 :])
    numbers = []
    for name in names:
        middle = name[len(prefix) : len(name) - len(suffix)] if len(name) > len(prefix) + len(suffix) else ""
        if name.startswith(prefix) and name.endswith(suffix) and middle.isdigit():
            number = int(middle)
            if pattern.format(number) == name:
                numbers.append(number)
    return sorted(numbers)


def count_folder_frames(folder: PathLike, pattern: str = DEFAULT_FRAME_PATTERN, first_number: int = 1) -> int:
    """Number of consecutive frames ``pattern.format(first_number), pattern.format(first_number + 1), ...``.

    Raises :class:`VideoDecodeError` when the folder has none, or when a frame is missing before the
    last one (a gap would otherwise silently shorten the clip and repeat its first frames).
    """
    folder_path = _check_folder(folder)
    names = set(os.listdir(folder_path))
    count = 0
    while pattern.format(first_number + count) in names:
        count += 1
    later = [n for n in _frame_numbers(names, pattern) if n >= first_number + count]
    if later:
        gap = pattern.format(first_number + count)
        raise VideoDecodeError(
            folder_path,
            f"frame {gap!r} is missing, but {len(later)} later frame(s) up to {pattern.format(later[-1])!r} "
            "exist; restore it (or renumber the frames without gaps)",
        )
    if count == 0:
        example = pattern.format(first_number)
        raise VideoDecodeError(folder_path, f"no frames found (expected files named like {example!r})")
    return count


def _read_image(image_path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not image_path.exists():
        raise VideoDecodeError(image_path, "frame image not found")
    try:
        with Image.open(image_path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise VideoDecodeError(image_path, f"unreadable image ({type(error).__name__}: {error})") from None


def read_frame_folder(
    folder: PathLike,
    indices: Sequence[int] | None = None,
    pattern: str = DEFAULT_FRAME_PATTERN,
    first_number: int = 1,
) -> torch.Tensor:
    """Read frames of a frame folder as a ``uint8`` tensor ``(T, H, W, 3)`` (RGB).

    Frame index ``k`` (0-based, negative counts from the end) is the file
    ``pattern.format(first_number + k)``, so with the default UCF-101 pattern index 0 is ``image_00001.jpg``.
    ``None`` reads all frames.
    """
    folder_path = _check_folder(folder)
    total = count_folder_frames(folder_path, pattern, first_number)
    wanted = list(range(total)) if indices is None else _normalize_indices(indices, total, folder_path)
    if not wanted:
        raise ValueError(f"indices must not be empty (folder {folder_path})")
    cache: dict[int, np.ndarray] = {}
    for index in wanted:
        if index not in cache:
            cache[index] = _read_image(folder_path / pattern.format(first_number + index))
    shapes = {image.shape for image in cache.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(folder_path, f"frames have different sizes {sorted(shapes)}")
    return torch.from_numpy(np.stack([cache[i] for i in wanted]))


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

_LAYOUTS = ("THWC", "CTHW")


def _guess_layout(shape: tuple[int, ...]) -> str:
    channels_last = shape[-1] in (1, 3)
    channels_first = shape[0] in (1, 3)
    if channels_last and not channels_first:
        return "THWC"
    if channels_first and not channels_last:
        return "CTHW"
    raise ValueError(
        f"cannot tell the layout of frames with shape {tuple(shape)}; pass layout='THWC' or layout='CTHW'"
    )


def to_uint8_frames(frames: torch.Tensor | np.ndarray, layout: str | None = None) -> np.ndarray:
    """Convert a clip to ``uint8`` RGB frames ``(T, H, W, 3)``.

    ``frames`` is ``(T, H, W, C)`` or ``(C, T, H, W)`` with C in {1, 3} (``layout`` resolves ambiguous
    shapes); ``uint8`` values are kept, floating values must lie in [0, 1] and are rounded to the 1/255 grid.
    """
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4:
        raise ValueError(f"frames must be 4-D (T,H,W,C) or (C,T,H,W), got shape {tuple(array.shape)}")
    if layout is None:
        layout = _guess_layout(array.shape)
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if layout == "CTHW":
        array = np.transpose(array, (1, 2, 3, 0))
    if array.shape[-1] not in (1, 3):
        raise ValueError(f"frames must have 1 or 3 channels, got {array.shape[-1]} (layout {layout})")
    if array.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")
    if array.dtype == np.uint8:
        result = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("floating frames contain NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(f"floating frames must lie in [0, 1], got range [{low:.4g}, {high:.4g}]")
        result = np.clip(np.rint(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"frames must be uint8 or floating point in [0, 1], got dtype {array.dtype}")
    if result.shape[-1] == 1:
        result = np.repeat(result, 3, axis=-1)
    return np.ascontiguousarray(result)


def _pad_to_even(frames: np.ndarray, odd_size: str) -> np.ndarray:
    height, width = frames.shape[1:3]
    if height % 2 == 0 and width % 2 == 0:
        return frames
    if odd_size == "error":
        raise ValueError(
            f"yuv420p video needs even width and height, got {width}x{height}; pass odd_size='pad' to pad "
            "by repeating the last row/column"
        )
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _encode(
    frames: np.ndarray,
    target: Any,
    container_format: str | None,
    fps: float | Fraction,
    codec: str,
    crf: int | None,
    pix_fmt: str,
    preset: str | None,
    extra_options: dict[str, str] | None = None,
) -> None:
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    options: dict[str, str] = {}
    if crf is not None:
        if codec in ("libx264", "libx265") and not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51] for {codec}, got {crf}")
        options["crf"] = str(int(crf))
    if preset is not None:
        options["preset"] = preset
    options.update({str(key): str(value) for key, value in (extra_options or {}).items()})
    try:
        container = av.open(target, mode="w", format=container_format)
    except (av.error.FFmpegError, ValueError) as error:
        raise ValueError(
            f"cannot open {target if isinstance(target, str) else 'buffer'} for writing: {error}"
        ) from None
    try:
        try:
            stream = container.add_stream(codec, rate=rate)
        except (av.error.FFmpegError, ValueError) as error:
            raise ValueError(f"cannot encode with codec {codec!r}: {error}") from None
        stream.width = int(frames.shape[2])
        stream.height = int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.options = options
        for position, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = position
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()


def write_video(
    path: PathLike,
    frames: torch.Tensor | np.ndarray,
    fps: float | Fraction = 25,
    codec: str = "libx264",
    crf: int | None = 18,
    *,
    pix_fmt: str = "yuv420p",
    preset: str | None = None,
    layout: str | None = None,
    odd_size: str = "pad",
    options: dict[str, str] | None = None,
) -> Path:
    """Write a clip as a video file (H.264 in mp4 by default) and return its path.

    ``frames``: ``uint8`` or float in [0, 1], layout ``(T, H, W, C)`` or ``(C, T, H, W)`` (see
    :func:`to_uint8_frames`). ``crf``: x264 constant rate factor (0 = lossless luma, 18 = visually
    lossless, 23 = ffmpeg's default). ``yuv420p`` needs even sizes: ``odd_size="pad"`` repeats the last
    row/column (the file is then one pixel larger), ``"error"`` refuses. ``options``: extra encoder
    options (e.g. ``{"g": "10"}`` for the keyframe interval, ``{"qmax": "2"}`` for high-quality ``mpeg4``).
    The container follows the file extension (``.mp4``, ``.avi``, ``.mkv``...). The parent folder must exist.
    """
    if odd_size not in ("pad", "error"):
        raise ValueError(f"odd_size must be 'pad' or 'error', got {odd_size!r}")
    images = to_uint8_frames(frames, layout)
    if pix_fmt in ("yuv420p", "nv12"):
        images = _pad_to_even(images, odd_size)
    out_path = Path(path)
    if not out_path.parent.exists():
        raise ValueError(f"output folder does not exist: {out_path.parent}")
    _encode(images, str(out_path), None, fps, codec, crf, pix_fmt, preset, options)
    return out_path


def encode_video_bytes(
    frames: torch.Tensor | np.ndarray,
    fps: float | Fraction = 25,
    codec: str = "libx264",
    crf: int | None = 23,
    *,
    pix_fmt: str = "yuv420p",
    preset: str | None = None,
    layout: str | None = None,
    container_format: str = "mp4",
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode a clip to video bytes in memory (odd sizes are edge-padded to even); see :func:`write_video`."""
    images = to_uint8_frames(frames, layout)
    if pix_fmt in ("yuv420p", "nv12"):
        images = _pad_to_even(images, "pad")
    buffer = io.BytesIO()
    _encode(images, buffer, container_format, fps, codec, crf, pix_fmt, preset, options)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# Helpers for evaluation: "what a saved image/video would be"
# --------------------------------------------------------------------------------------------------


def quantize_uint8(clip: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor (any shape) to the nearest multiple of 1/255, as saving 8-bit pixels does."""
    if not torch.is_floating_point(clip):
        raise TypeError(f"quantize_uint8 expects a floating tensor in [0, 1], got dtype {clip.dtype}")
    return torch.round(clip.clamp(0.0, 1.0) * 255.0) / 255.0


def h264_roundtrip(
    clip: torch.Tensor, crf: int = 23, fps: float = 25, preset: str | None = None
) -> torch.Tensor:
    """Encode a clip to H.264 (mp4, yuv420p, in memory), decode it back and return it like the input.

    ``clip`` is ``(C, T, H, W)`` or a batch ``(N, C, T, H, W)`` with values in [0, 1]. The result has the
    same shape, dtype and device, no gradient, values on the 1/255 grid; odd sizes are padded for encoding
    and cropped back. Raises if the decoder returns a different number of frames.
    """
    if not isinstance(clip, torch.Tensor) or not torch.is_floating_point(clip):
        raise TypeError("h264_roundtrip expects a floating torch tensor (C,T,H,W) or (N,C,T,H,W) in [0, 1]")
    if clip.dim() == 5:
        return torch.stack([h264_roundtrip(item, crf=crf, fps=fps, preset=preset) for item in clip])
    if clip.dim() != 4:
        raise ValueError(f"h264_roundtrip expects (C,T,H,W) or (N,C,T,H,W), got shape {tuple(clip.shape)}")
    channels, num_frames, height, width = clip.shape
    if channels not in (1, 3):
        raise ValueError(f"h264_roundtrip expects 1 or 3 channels, got {channels}")
    data = encode_video_bytes(clip.detach().clamp(0.0, 1.0), fps=fps, crf=crf, preset=preset, layout="CTHW")
    decoded = decode_video_bytes(data)
    if decoded.shape[0] != num_frames:
        raise RuntimeError(f"H.264 round trip returned {decoded.shape[0]} frames instead of {num_frames}")
    decoded = decoded[:, :height, :width, :]
    result = decoded.permute(3, 0, 1, 2).to(dtype=clip.dtype) / 255.0
    if channels == 1:
        result = result.mean(dim=0, keepdim=True)
    return result.to(clip.device)
