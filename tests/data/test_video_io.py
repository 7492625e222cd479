"""PyAV reading/writing: frame accuracy, layouts, odd sizes, H.264 round trip and clear errors."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from tests.data.video_helpers import (
    LEVEL_STEP,
    frame_numbers,
    gray_frames,
    write_indexed_folder,
    write_indexed_video,
)
from vidadv.data.video import (
    VideoDecodeError,
    count_folder_frames,
    count_frames,
    decode_video_bytes,
    encode_video_bytes,
    h264_roundtrip,
    quantize_uint8,
    read_frame_folder,
    read_video_frames,
    to_uint8_frames,
    write_video,
)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10.0 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def indexed_video(tmp_path_factory):
    return write_indexed_video(tmp_path_factory.mktemp("vid") / "indexed.mp4", 70)


def test_all_frames_come_back_in_order(indexed_video):
    frames = read_video_frames(indexed_video)
    assert frames.dtype == torch.uint8 and frames.shape == (70, 48, 64, 3)
    assert frame_numbers(frames) == list(range(70))
    assert count_frames(indexed_video) == 70


def test_selected_frames_are_frame_accurate(indexed_video):
    wanted = [69, 0, 13, 13, 24, 25, 36, 47, 48]  # around keyframes (g=12), unordered, repeated
    assert frame_numbers(read_video_frames(indexed_video, wanted)) == wanted


def test_negative_indices_count_from_the_end(indexed_video):
    assert frame_numbers(read_video_frames(indexed_video, [-1, -64, -2])) == [69, 6, 68]


def test_metadata_is_not_trusted_for_counting(indexed_video):
    with av.open(str(indexed_video)) as container:
        metadata = container.streams.video[0].frames
    # whatever the container claims (0 when unknown), counting decodes
    assert count_frames(indexed_video) == 70
    assert metadata in (0, 70)


def test_too_few_frames_is_a_clear_error(indexed_video):
    with pytest.raises(VideoDecodeError, match=r"too few frames.*70 frames.*indexed\.mp4"):
        read_video_frames(indexed_video, [0, 70])
    with pytest.raises(VideoDecodeError, match="too few frames"):
        read_video_frames(indexed_video, [-71])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodeError, match=r"not found.*nope\.mp4") as info:
        read_video_frames(missing)
    assert isinstance(info.value, ValueError)
    with pytest.raises(VideoDecodeError, match="not found"):
        count_frames(missing)


def test_garbage_bytes_are_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match=r"garbage\.mp4"):
        read_video_frames(garbage)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        read_video_frames(empty)


def test_truncated_video_is_a_clear_error(tmp_path, indexed_video):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(indexed_video.read_bytes()[:300])
    with pytest.raises(VideoDecodeError, match=r"truncated\.mp4"):
        read_video_frames(truncated, [0, 50])


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="folder"):
        read_video_frames(tmp_path)


def test_frame_folder_reading(tmp_path):
    folder = write_indexed_folder(tmp_path / "v_x", 12)
    assert count_folder_frames(folder) == 12
    frames = read_frame_folder(folder, [0, 11, -1, 3])
    assert frames.shape == (4, 48, 64, 3)
    assert frame_numbers(frames) == [1, 12, 12, 4]  # index k is image number k + 1
    assert frame_numbers(read_frame_folder(folder)) == list(range(1, 13))


def test_frame_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match=r"no frames found.*image_00001\.jpg.*empty"):
        read_frame_folder(empty)
    with pytest.raises(VideoDecodeError, match="not found"):
        read_frame_folder(tmp_path / "absent")
    folder = write_indexed_folder(tmp_path / "broken", 4)
    (folder / "image_00003.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(VideoDecodeError, match=r"unreadable image.*image_00003\.jpg"):
        read_frame_folder(folder, [0, 2])
    assert frame_numbers(read_frame_folder(folder, [0, 1])) == [1, 2]  # other frames still fine
    with pytest.raises(VideoDecodeError, match="too few frames"):
        read_frame_folder(folder, [4])


@pytest.mark.parametrize("layout", ["THWC", "CTHW"])
def test_write_layouts_and_float_input(tmp_path, layout):
    levels = [LEVEL_STEP * k for k in range(6)]
    frames = torch.from_numpy(gray_frames(levels)).float() / 255.0  # T,H,W,C
    if layout == "CTHW":
        frames = frames.permute(3, 0, 1, 2)
    path = write_video(tmp_path / f"{layout}.mp4", frames, fps=10, crf=0)
    assert frame_numbers(read_video_frames(path)) == list(range(6))


def test_odd_sizes_are_padded_or_refused(tmp_path):
    frames = gray_frames([10, 20, 30], height=15, width=21)  # 3 frames of 3 channels: layout is ambiguous
    path = write_video(tmp_path / "odd.mp4", frames, crf=0, layout="THWC")
    decoded = read_video_frames(path)
    assert decoded.shape == (3, 16, 22, 3)  # padded by repeating the last row/column
    assert np.abs(decoded.numpy().astype(int) - np.array([10, 20, 30])[:, None, None, None]).max() <= 1
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "odd2.mp4", frames, layout="THWC", odd_size="error")


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_video(tmp_path / "a.mp4", torch.full((2, 8, 8, 3), 1.5))
    with pytest.raises(ValueError, match="layout"):
        write_video(tmp_path / "a.mp4", torch.zeros(3, 3, 8, 3))
    with pytest.raises(ValueError, match="4-D"):
        write_video(tmp_path / "a.mp4", torch.zeros(8, 8, 3))
    with pytest.raises(TypeError, match="dtype"):
        to_uint8_frames(np.zeros((2, 8, 8, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="output folder"):
        write_video(tmp_path / "missing_dir" / "a.mp4", torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="crf"):
        write_video(tmp_path / "a.mp4", torch.zeros(2, 8, 8, 3), crf=99)


def test_mpeg4_avi_writing(tmp_path):
    path = write_indexed_video(
        tmp_path / "clip.avi", 10, codec="mpeg4", crf=None, options={"qmin": "1", "qmax": "2"}
    )
    assert frame_numbers(read_video_frames(path)) == list(range(10))


def test_quantize_uint8_is_the_nearest_grid_point():
    values = torch.rand(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    quantized = quantize_uint8(values)
    assert torch.allclose(quantized * 255, torch.round(quantized * 255), atol=1e-4)
    assert (quantized - values).abs().max() <= 0.5 / 255 + 1e-7
    assert torch.equal(quantize_uint8(quantized), quantized)
    assert torch.equal(quantize_uint8(torch.tensor([-0.2, 1.3])), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError):
        quantize_uint8(torch.zeros(3, dtype=torch.uint8))


def smooth_clip(frames: int = 8, height: int = 48, width: int = 64) -> torch.Tensor:
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 1, height)[None, :, None]
    x = torch.linspace(0, 1, width)[None, None, :]
    channels = [
        0.5 + 0.35 * torch.sin(2 * math.pi * (x + 0.05 * t) + phase) * torch.cos(math.pi * y)
        for phase in (0, 1, 2)
    ]
    return torch.stack(channels).clamp(0, 1)


def test_h264_roundtrip_is_close_and_keeps_frames():
    clip = smooth_clip()
    result = h264_roundtrip(clip, crf=23)
    assert result.shape == clip.shape and result.dtype == clip.dtype
    assert psnr(result, clip) > 30.0
    assert torch.allclose(result * 255, torch.round(result * 255), atol=1e-3)  # 8-bit grid
    # order: per-frame gray offsets come back in the same order
    ordered = clip * 0.5 + torch.arange(8).float()[None, :, None, None] * 0.06
    back = h264_roundtrip(ordered, crf=18)
    assert torch.argsort(back.mean(dim=(0, 2, 3))).tolist() == list(range(8))
    assert (back.mean(dim=(0, 2, 3)) - ordered.mean(dim=(0, 2, 3))).abs().max() < 2 / 255


def test_h264_roundtrip_batch_odd_size_and_quality_order():
    clip = smooth_clip(frames=5, height=31, width=45)
    batch = torch.stack([clip, 1 - clip])
    result = h264_roundtrip(batch, crf=23)
    assert result.shape == batch.shape
    assert psnr(result[1], 1 - clip) > 30.0
    assert psnr(h264_roundtrip(clip, crf=40), clip) < psnr(h264_roundtrip(clip, crf=10), clip)
    with pytest.raises(ValueError, match=r"\(C,T,H,W\)"):
        h264_roundtrip(torch.zeros(3, 8, 8))


def test_encode_decode_bytes():
    frames = torch.from_numpy(gray_frames([LEVEL_STEP * k for k in range(5)]))
    data = encode_video_bytes(frames, crf=0)
    assert frame_numbers(decode_video_bytes(data, [4, 0])) == [4, 0]
    with pytest.raises(VideoDecodeError):
        decode_video_bytes(b"\x00" * 100)


def test_a_gap_in_a_frame_folder_is_named_not_skipped(tmp_path):
    folder = write_indexed_folder(tmp_path / "v_gap", 12)
    (folder / "image_00005.jpg").unlink()
    for call in (lambda: count_folder_frames(folder), lambda: read_frame_folder(folder, [0, 1])):
        with pytest.raises(
            VideoDecodeError, match=r"'image_00005\.jpg' is missing.*'image_00012\.jpg'.*v_gap"
        ):
            call()
    (folder / "image_00001.jpg").unlink()  # the first frame missing too: not "no frames found"
    with pytest.raises(VideoDecodeError, match=r"'image_00001\.jpg' is missing"):
        count_folder_frames(folder)
    (folder / "notes.txt").write_text("x")  # other files are not frames
    (folder / "image_1.jpg").write_text("x")  # nor is another numbering
    for number in range(6, 13):
        (folder / f"image_{number:05d}.jpg").unlink()
    with pytest.raises(VideoDecodeError, match=r"'image_00001\.jpg' is missing.*'image_00004\.jpg'"):
        count_folder_frames(folder)
