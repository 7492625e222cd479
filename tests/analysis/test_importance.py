"""Frame importance: definitions against direct per-frame loops, batching, and stand-in models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.analysis.standins import CountingModel, FrameModel, TinyConvNet, channel_clips
from vidadv.analysis.correlation import pairwise_spearman
from vidadv.analysis.importance import (
    frame_importance,
    map_to_input_frames,
    mean_padding_importance,
    neighbour_indices,
    normalize_method_name,
    occlusion_importance,
    replace_frames,
    resolve_fill,
    zero_padding_importance,
)


def loop_importance(model, clips, labels, replacement_of) -> torch.Tensor:
    """Reference: one forward pass per clip and frame; `replacement_of(clip, t)` is the new frame (C,H,W)."""
    out = torch.zeros(clips.shape[0], clips.shape[2])
    with torch.no_grad():
        for n in range(clips.shape[0]):
            clean = F.cross_entropy(model(clips[n : n + 1]), labels[n : n + 1])
            for t in range(clips.shape[2]):
                perturbed = clips[n].clone()
                perturbed[:, t] = replacement_of(clips[n], t)
                out[n, t] = F.cross_entropy(model(perturbed[None]), labels[n : n + 1]) - clean
    return out


def mean_neighbours_clamp(clip: torch.Tensor, t: int) -> torch.Tensor:
    last = clip.shape[1] - 1
    if t == 0:
        return clip[:, 1]
    if t == last:
        return clip[:, last - 1]
    return (clip[:, t - 1] + clip[:, t + 1]) / 2


def mean_neighbours_cyclic(clip: torch.Tensor, t: int) -> torch.Tensor:
    frames = clip.shape[1]
    return (clip[:, (t - 1) % frames] + clip[:, (t + 1) % frames]) / 2


@pytest.fixture
def conv_setup() -> tuple[TinyConvNet, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    clips = torch.rand(3, 3, 6, 5, 5, generator=generator)
    labels = torch.tensor([0, 3, 4])
    return TinyConvNet(num_classes=5).eval(), clips, labels


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_zero_padding_matches_per_frame_loop(conv_setup, chunk_size: int) -> None:
    model, clips, labels = conv_setup
    for fill in (0.0, 0.3):
        expected = loop_importance(
            model, clips, labels, lambda clip, t, f=fill: torch.full_like(clip[:, t], f)
        )
        got = zero_padding_importance(model, clips, labels, fill=fill, chunk_size=chunk_size)
        assert got.shape == (3, 6)
        assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 5, 100])
def test_mean_padding_matches_per_frame_loop(conv_setup, chunk_size: int) -> None:
    model, clips, labels = conv_setup
    for boundary, reference in (("clamp", mean_neighbours_clamp), ("cyclic", mean_neighbours_cyclic)):
        expected = loop_importance(model, clips, labels, reference)
        got = mean_padding_importance(model, clips, labels, boundary=boundary, chunk_size=chunk_size)
        assert torch.allclose(got, expected, atol=1e-5), boundary


def test_model_mean_fill_uses_normalization_mean(conv_setup) -> None:
    model, clips, labels = conv_setup
    model.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1))
    colour = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    expected = loop_importance(model, clips, labels, lambda clip, t: colour.expand_as(clip[:, t]))
    got = occlusion_importance(model, clips, labels, method="zero-padding", fill="model_mean", chunk_size=7)
    assert torch.allclose(got, expected, atol=1e-5)


def test_occlusion_is_batched_in_chunks(conv_setup) -> None:
    model, clips, labels = conv_setup
    counting = CountingModel(model)
    occlusion_importance(counting, clips, labels, method="mean_padding", chunk_size=8)
    # 3 clean clips in one pass, then 3*6 = 18 perturbed copies in ceil(18/8) = 3 passes.
    assert counting.batch_sizes == [3, 8, 8, 2]


def test_replace_frames_definition() -> None:
    clips = torch.rand(2, 3, 5, 2, 2, generator=torch.Generator().manual_seed(0))
    clip_index, frame_index = torch.tensor([0, 1, 1]), torch.tensor([0, 4, 2])
    fill = torch.tensor([0.1, 0.2, 0.3])
    zeroed = replace_frames(clips, clip_index, frame_index, method="zero_padding", fill=fill)
    meaned = replace_frames(clips, clip_index, frame_index, method="mean_padding", boundary="cyclic")
    for row, (n, t) in enumerate(zip(clip_index.tolist(), frame_index.tolist(), strict=True)):
        others = [f for f in range(5) if f != t]
        assert torch.equal(zeroed[row][:, others], clips[n][:, others])
        assert torch.equal(zeroed[row][:, t], fill.view(3, 1, 1).expand(3, 2, 2))
        assert torch.equal(meaned[row][:, others], clips[n][:, others])
        assert torch.allclose(meaned[row][:, t], mean_neighbours_cyclic(clips[n], t))
    assert clips.shape == (2, 3, 5, 2, 2)  # input untouched in shape; copies are new tensors


def test_neighbour_indices() -> None:
    previous, following = neighbour_indices(4, "clamp")
    assert previous.tolist() == [1, 0, 1, 2] and following.tolist() == [1, 2, 3, 2]
    previous, following = neighbour_indices(4, "cyclic")
    assert previous.tolist() == [3, 0, 1, 2] and following.tolist() == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="clamp, cyclic"):
        neighbour_indices(4, "reflect")
    with pytest.raises(ValueError, match="at least 2 frames"):
        neighbour_indices(1, "clamp")


@pytest.mark.parametrize("frame", [0, 3, 7])
def test_zero_padding_peaks_at_the_only_frame_a_model_sees(frame: int) -> None:
    labels = [0, 1, 2, 1]
    clips = channel_clips(labels, frames=8)
    importance = zero_padding_importance(FrameModel(frame), clips, torch.tensor(labels))
    assert torch.equal(importance.argmax(dim=1), torch.full((4,), frame))
    others = [t for t in range(8) if t != frame]
    assert torch.equal(importance[:, others], torch.zeros(4, 7))
    # The removed frame leaves uniform logits: the loss rises to log K from the clean loss.
    assert (importance[:, frame] > 0).all()
    assert float(importance[:, frame].max()) < math.log(3)


def test_spearman_of_frame_models() -> None:
    labels = [0, 1, 2, 2, 0]
    clips = channel_clips(labels, frames=8, seed=1)
    y = torch.tensor(labels)
    importances = {
        "frame2": zero_padding_importance(FrameModel(2), clips, y),
        "frame2_copy": zero_padding_importance(FrameModel(2, scale=3.0), clips, y),
        "frame6": zero_padding_importance(FrameModel(6), clips, y),
    }
    result = pairwise_spearman(importances)
    assert float(result.mean[0, 1]) == pytest.approx(1.0)
    # Two one-hot importance lists at different positions (T = 8): rho = -1 / (T - 1).
    assert float(result.mean[0, 2]) == pytest.approx(-1.0 / 7.0, abs=1e-12)
    for method in ("mean_padding", "zero_padding"):
        a = frame_importance(FrameModel(4), clips, y, method)
        b = frame_importance(FrameModel(4), clips, y, method)
        assert float(pairwise_spearman({"a": a, "b": b}).mean[0, 1]) == pytest.approx(1.0)


def test_map_to_input_frames_repeat_and_identity() -> None:
    scores = torch.tensor([[1.0, 4.0, 2.0, 3.0]])
    assert torch.equal(map_to_input_frames(scores, 8, "repeat"), scores.repeat_interleave(2, dim=1))
    assert torch.equal(map_to_input_frames(scores, 4, "interpolate"), scores)
    uneven = map_to_input_frames(torch.arange(3.0)[None], 8, "repeat")[0]
    assert (uneven.diff() >= 0).all() and set(uneven.tolist()) == {0.0, 1.0, 2.0}
    assert (
        max(uneven.tolist().count(v) for v in (0.0, 1.0, 2.0))
        - min(uneven.tolist().count(v) for v in (0.0, 1.0, 2.0))
        <= 1
    )


@settings(max_examples=30)
@given(
    st.sampled_from([(2, 8), (4, 16), (8, 32), (4, 8)]),
    st.floats(min_value=-3, max_value=3),
    st.floats(min_value=-2, max_value=2),
)
def test_map_to_input_frames_interpolates_linearly_between_slice_centres(
    sizes: tuple[int, int], intercept: float, slope: float
) -> None:
    num_slices, num_frames = sizes
    stride = num_frames / num_slices
    centres = (torch.arange(num_slices, dtype=torch.float64) + 0.5) * stride - 0.5  # in frame coordinates
    mapped = map_to_input_frames((intercept + slope * centres)[None], num_frames, "interpolate")[0]
    for t in range(num_frames):
        clamped = min(max(float(t), float(centres[0])), float(centres[-1]))
        assert float(mapped[t]) == pytest.approx(intercept + slope * clamped, abs=1e-6)


def test_bad_arguments_give_clear_errors(conv_setup) -> None:
    model, clips, labels = conv_setup
    with pytest.raises(ValueError, match="valid methods"):
        normalize_method_name("occlusion")
    assert normalize_method_name("Grad-CAM") == "gradcam"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_fill(1.5, model, 3)
    with pytest.raises(ValueError, match="model_mean"):
        resolve_fill("grey", model, 3)
    with pytest.raises(ValueError, match="normalization `mean`"):
        resolve_fill("model_mean", TinyConvNet(), 3)
    with pytest.raises(ValueError, match="channels"):
        resolve_fill([0.1, 0.2], model, 3)
    with pytest.raises(ValueError, match=r"\(N, C, T, H, W\)"):
        zero_padding_importance(model, clips[0], labels)
    with pytest.raises(ValueError, match="one class index per clip"):
        zero_padding_importance(model, clips, labels[:2])
    with pytest.raises(ValueError, match="chunk_size"):
        zero_padding_importance(model, clips, labels, chunk_size=0)
    with pytest.raises(ValueError, match="interpolate, repeat"):
        map_to_input_frames(torch.ones(1, 2), 4, "nearest")


def test_gradcam_importance_peaks_at_the_frame_a_model_sees() -> None:
    pytest.importorskip("vidadv.models.gradcam")
    labels = [0, 1, 2]
    clips = channel_clips(labels, frames=8, seed=2)
    y = torch.tensor(labels)
    for frame in (1, 5):
        importance = frame_importance(FrameModel(frame), clips, y, "gradcam")
        assert importance.shape == (3, 8)
        assert torch.equal(importance.argmax(dim=1), torch.full((3,), frame))
        others = [t for t in range(8) if t != frame]
        assert torch.allclose(importance[:, others], torch.zeros(3, 7))
    two = frame_importance(FrameModel(1), clips, y, "gradcam")
    six = frame_importance(FrameModel(6), clips, y, "gradcam")
    assert float(pairwise_spearman({"a": two, "b": six}).mean[0, 1]) == pytest.approx(-1.0 / 7.0, abs=1e-9)


def test_gradcam_importance_maps_strided_layer_back_to_frames() -> None:
    pytest.importorskip("vidadv.models.gradcam")

    class StridedNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 4, kernel_size=(2, 1, 1), stride=(2, 1, 1))
            self.head = torch.nn.Linear(4, 3)
            self.attention_layer = "conv"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))

    torch.manual_seed(0)
    model = StridedNet().eval()
    clips = torch.rand(2, 3, 8, 4, 4)
    labels = torch.tensor([0, 2])
    repeated = frame_importance(model, clips, labels, "gradcam", temporal_mapping="repeat")
    interpolated = frame_importance(model, clips, labels, "gradcam", temporal_mapping="interpolate")
    assert repeated.shape == interpolated.shape == (2, 8)
    assert torch.equal(repeated[:, 0::2], repeated[:, 1::2])  # T' = 4 slices, each over 2 frames
    # Interpolation keeps the value of the end slices at the end frames.
    assert torch.allclose(interpolated[:, 0], repeated[:, 0]) and torch.allclose(
        interpolated[:, -1], repeated[:, -1]
    )
