"""Helpers that write tiny test videos and frame folders whose frames encode their own index.

Frame ``k`` of a video is a solid gray image of level ``LEVEL_STEP * k``; frame folders use the image
number ``i`` (1-based, ``image_{i:05d}.jpg``) as ``LEVEL_STEP * i``. Solid frames survive lossless
H.264, jpg, resizing and cropping with at most about one gray level of error, so ``frame_numbers``
recovers which frames a clip holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidadv.data.video import write_video

LEVEL_STEP = 3
HEIGHT, WIDTH = 48, 64


def gray_frames(levels: list[int], height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 frames (T, H, W, 3), frame t a solid gray of ``levels[t]``."""
    return np.stack([np.full((height, width, 3), level, dtype=np.uint8) for level in levels])


def write_indexed_video(path: Path, num_frames: int, codec: str = "libx264", **kwargs) -> Path:
    """Video whose frame k is gray level ``LEVEL_STEP * k`` (lossless x264 by default)."""
    assert LEVEL_STEP * (num_frames - 1) <= 255
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = gray_frames([LEVEL_STEP * k for k in range(num_frames)])
    if codec == "libx264":
        kwargs.setdefault("crf", 0)
        kwargs.setdefault("options", {"g": "12"})  # several keyframes and B-frames in between
    return write_video(path, frames, fps=25, codec=codec, **kwargs)


def write_indexed_folder(folder: Path, num_images: int) -> Path:
    """Frame folder ``image_00001.jpg ...``; image number i is gray level ``LEVEL_STEP * i``."""
    assert LEVEL_STEP * num_images <= 255
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, num_images + 1):
        image = Image.fromarray(gray_frames([LEVEL_STEP * number])[0])
        image.save(folder / f"image_{number:05d}.jpg", quality=95)
    return folder


def frame_numbers(clip: torch.Tensor) -> list[int]:
    """Recover the encoded number of every frame of a (C, T, H, W) [0, 1] clip (or uint8 (T, H, W, C))."""
    if clip.dtype == torch.uint8:
        means = clip.double().mean(dim=(1, 2, 3))
    else:
        means = clip.double().mean(dim=(0, 2, 3)) * 255.0
    return [int(round(float(m) / LEVEL_STEP)) for m in means]
