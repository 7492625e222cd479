"""Temporal sampling rules (against hand-derived lists and properties) and spatial transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vidadv.data.kinetics import kinetics_clip_indices
from vidadv.data.transforms import (
    SpatialTransform,
    center_crop,
    frames_to_clip,
    loop_pad,
    resize_clip,
    resize_short_side,
    strided_last_indices,
    strided_window_indices,
    tt_kinetics_indices,
    ucf_loop_indices,
)

# ---------------------------------------------------------------- Kinetics (TT code) rule


@pytest.mark.parametrize("n", [65, 66, 100, 300])
def test_tt_last_window_paper_setting(n):
    # floor((n-65) + k*64/31) = n-65 + 2k + floor(2k/31): step 2, one step of 3 after k=15; the last
    # value n-1 is clipped to n-2.
    expected = [n - 65 + 2 * k for k in range(16)] + [n - 65 + 2 * k + 1 for k in range(16, 31)] + [n - 2]
    assert tt_kinetics_indices(n, -1, 32, 2) == expected


def test_tt_short_video_repeats_last_frame():
    # linspace(0, 20, 10) = 0, 2.22, 4.44, 6.67, 8.89, 11.1, 13.3, 15.6, 17.8, 20 -> floor, 20 clipped to 19
    assert tt_kinetics_indices(20, -1) == [0, 2, 4, 6, 8, 11, 13, 15, 17, 19] + [19] * 22
    assert tt_kinetics_indices(64, -1) == tt_kinetics_indices(64, 9)  # short branch ignores clip_index
    assert tt_kinetics_indices(1, -1) == [0] * 32


def test_tt_seeded_window_matches_the_paper_code_seeding():
    n = 250
    for clip_index in (6, 9):
        np.random.seed(clip_index)  # what the paper's loader does before drawing the window end
        end = np.random.randint(64, n)
        expected = [end - 64 + offset for offset in tt_kinetics_indices(65, -1)]  # same shape, shifted
        assert tt_kinetics_indices(n, clip_index) == expected


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), frames=st.integers(1, 40), stride=st.integers(1, 4))
def test_tt_rule_properties(n, frames, stride):
    indices = tt_kinetics_indices(n, -1, frames, stride)
    assert len(indices) == frames
    assert all(0 <= i < n for i in indices)
    assert indices == sorted(indices)
    span = frames * stride
    if n > span:
        assert indices[0] == n - 1 - span and max(indices) <= n - 2


def test_strided_last_window_is_every_other_of_the_last_64():
    assert strided_last_indices(300, 32, 2) == list(range(236, 300, 2))
    assert kinetics_clip_indices(300, -1, sampling="strided") == list(range(236, 300, 2))
    assert kinetics_clip_indices(10, -1, frames=4, stride=2, sampling="strided") == [2, 4, 6, 8]
    # short video starts at 0; clamp repeats the last available frame
    assert kinetics_clip_indices(5, -1, frames=4, stride=2, sampling="strided") == [0, 2, 4, 4]
    with pytest.raises(ValueError, match="sampling"):
        kinetics_clip_indices(100, sampling="uniform")
    with pytest.raises(ValueError, match="clip_index"):
        tt_kinetics_indices(100, -2)


# ---------------------------------------------------------------- UCF rule and generic windows


def test_ucf_rule_frames_2_to_33():
    assert ucf_loop_indices(165) == list(range(1, 33))  # 0-based 1..32 = image_00002..image_00033
    assert ucf_loop_indices(33) == list(range(1, 33))
    # 20 frames: images 2..20 (19 frames), then loop from image 2 again
    assert ucf_loop_indices(20) == list(range(1, 20)) + list(range(1, 14))
    assert ucf_loop_indices(1) == [0] * 32


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 80), frames=st.integers(1, 40), start=st.integers(0, 3))
def test_ucf_rule_properties(n, frames, start):
    indices = ucf_loop_indices(n, frames, start)
    if start >= n:
        assert indices == [0] * frames
        return
    base = list(range(start, min(n, start + frames)))
    assert indices == [base[k % len(base)] for k in range(frames)]


def test_strided_window_modes():
    assert strided_window_indices(20, 2, 4, 3) == [2, 5, 8, 11]
    assert strided_window_indices(20, -5, 3, 2) == [15, 17, 19]
    assert strided_window_indices(10, 4, 4, 2, "loop") == [4, 6, 8, 4]
    assert strided_window_indices(10, 4, 4, 2, "clamp") == [4, 6, 8, 8]
    with pytest.raises(ValueError, match="too few frames"):
        strided_window_indices(10, 4, 4, 2, "error")
    with pytest.raises(ValueError, match="outside"):
        strided_window_indices(10, 12, 4, 1)
    with pytest.raises(ValueError, match="short_video"):
        strided_window_indices(10, 0, 4, 1, "wrap")
    with pytest.raises(ValueError, match="frames"):
        strided_window_indices(10, 0, 0, 1)
    assert loop_pad([3, 4], 5) == [3, 4, 3, 4, 3]


# ---------------------------------------------------------------- spatial


def test_resize_constant_and_range():
    clip = torch.full((3, 2, 48, 64), 0.25)
    assert torch.allclose(resize_clip(clip, (20, 30)), clip[..., :20, :30], atol=1e-6)
    noisy = torch.rand(3, 2, 48, 64, generator=torch.Generator().manual_seed(0))
    for size in [(20, 30), (97, 131)]:
        out = resize_clip(noisy, size)
        assert out.shape == (3, 2, *size)
        assert out.min() >= 0 and out.max() <= 1


def test_downscale_antialiases_like_pil():
    # a smooth image with fine texture: compare with PIL's bilinear resize (antialiased when shrinking)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
    ours = resize_clip(frames_to_clip(torch.from_numpy(image)[None]), (36, 48))
    pil = np.asarray(Image.fromarray(image).resize((48, 36), Image.BILINEAR)).astype(np.float64) / 255
    difference = np.abs(ours[:, 0].permute(1, 2, 0).numpy() - pil)
    assert difference.mean() < 1.5 / 255 and difference.max() < 6 / 255
    # without anti-aliasing the result would be far noisier than PIL's
    plain = torch.nn.functional.interpolate(
        frames_to_clip(torch.from_numpy(image)[None]).permute(1, 0, 2, 3), (36, 48), mode="bilinear"
    )
    assert np.abs(plain[0].permute(1, 2, 0).numpy() - pil).mean() > 2 * difference.mean()


def test_short_side_and_center_crop_geometry():
    clip = torch.arange(48 * 64, dtype=torch.float32).reshape(1, 1, 48, 64).expand(3, 2, 48, 64) / (48 * 64)
    assert resize_short_side(clip, 24).shape[-2:] == (24, 32)
    assert resize_short_side(clip.transpose(-1, -2), 24).shape[-2:] == (32, 24)
    assert resize_short_side(clip, 224).shape[-2:] == (224, int(224 * 64 / 48))  # 298, truncated
    assert resize_short_side(clip, 48) is clip
    cropped = center_crop(clip, 32)
    # offsets round((48-32)/2)=8 and round((64-32)/2)=16
    assert torch.equal(cropped, clip[..., 8:40, 16:48])
    odd = center_crop(clip, (47, 61))  # round(0.5)=0, round(1.5)=2 (banker's rounding, as gluoncv)
    assert torch.equal(odd, clip[..., 0:47, 2:63])
    with pytest.raises(ValueError, match="larger"):
        center_crop(clip, 50)


def test_spatial_transform_paper_kinetics_geometry():
    frames = torch.randint(
        0, 256, (5, 48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    transform = SpatialTransform(decode_size=(256, 340), short_side=256, crop_size=224, quantize_decoded=True)
    clip = transform(frames)
    assert clip.shape == (3, 5, 224, 224) and clip.dtype == torch.float32
    assert clip.min() >= 0 and clip.max() <= 1
    # short side already 256: the crop is cut from the 340x256 decode at offsets (16, 58), on the 1/255 grid
    decoded = torch.round(resize_clip(frames_to_clip(frames), (256, 340)).clamp(0, 1) * 255) / 255
    assert torch.allclose(clip, decoded[..., 16:240, 58:282], atol=1e-6)
    # chunking does not change the result
    single = SpatialTransform(
        decode_size=(256, 340), short_side=256, crop_size=224, quantize_decoded=True, chunk_frames=1
    )
    assert torch.allclose(single(frames), clip, atol=1e-6)


def test_frames_to_clip_layout():
    frames = torch.zeros(4, 6, 8, 3, dtype=torch.uint8)
    frames[2, :, :, 1] = 255
    clip = frames_to_clip(frames)
    assert clip.shape == (3, 4, 6, 8) and clip[1, 2].min() == 1 and clip.sum() == 6 * 8
    with pytest.raises(ValueError, match="uint8"):
        frames_to_clip(frames.float())
