"""Tests of the procedural action dataset (vidadv.data.synthetic).

The motion checks use estimators written here, independently of the renderer: a global affine
Lucas-Kanade fit (translation, divergence, curl of the flow) and the trend of the spatial-gradient energy.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

import vidadv.data.synthetic as synthetic
from vidadv.data.synthetic import (
    CLASS_NAMES,
    REVERSED_PAIRS,
    ProceduralActions,
    build_synthetic_dataset,
    describe,
    generate_batch,
    item_seed,
)

NUM_CLASSES = len(CLASS_NAMES)
PAIR_IDS = [f"{CLASS_NAMES[a]}-{CLASS_NAMES[b]}" for a, b in REVERSED_PAIRS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small elementwise kernels: one thread is as fast and avoids OpenMP stalls on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------- estimators
def affine_flow(clips: torch.Tensor) -> torch.Tensor:
    """Least-squares affine optical flow per clip (brightness constancy on luminance, all frames).

    Returns (N, 6): vx = a0 + a1 X + a2 Y, vy = a3 + a4 X + a5 Y in pixels per frame, X, Y measured from the
    centroid of the moving region (pixels weighted by their squared temporal standard deviation).
    """
    gray = clips.mean(1, keepdim=True)  # objects differ from the background in luminance by construction
    n, c, t, h, w = gray.shape
    x = F.pad(gray, (1, 1, 1, 1, 0, 0), mode="replicate")
    x = F.avg_pool3d(x, (1, 3, 3), stride=1)
    mid = 0.5 * (x[:, :, 1:] + x[:, :, :-1])
    it = x[:, :, 1:] - x[:, :, :-1]
    ix = torch.zeros_like(mid)
    iy = torch.zeros_like(mid)
    ix[..., 1:-1] = 0.5 * (mid[..., 2:] - mid[..., :-2])
    iy[..., 1:-1, :] = 0.5 * (mid[..., 2:, :] - mid[..., :-2, :])
    weight = x.mean(1).std(1)
    weight = (weight / weight.amax((1, 2), keepdim=True)) ** 2
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    cx = (weight * xs).sum((1, 2)) / weight.sum((1, 2))
    cy = (weight * ys).sum((1, 2)) / weight.sum((1, 2))
    big_x = (xs - cx[:, None, None])[:, None, None]
    big_y = (ys - cy[:, None, None])[:, None, None]
    feats = torch.stack([ix, ix * big_x, ix * big_y, iy, iy * big_x, iy * big_y], -1)
    weighted = feats * weight[:, None, None, :, :, None]
    normal = torch.einsum("nctyxi,nctyxj->nij", weighted, feats)
    rhs = torch.einsum("nctyxi,nctyx->ni", weighted, -it)
    return torch.linalg.solve(normal + 1e-6 * torch.eye(6), rhs)


def motion_summary(clips: torch.Tensor) -> dict[str, torch.Tensor]:
    """Translation (tx, ty), divergence and curl (y down: positive curl = clockwise on screen)."""
    a = affine_flow(clips)
    return {"tx": a[:, 0], "ty": a[:, 3], "div": a[:, 1] + a[:, 5], "curl": a[:, 4] - a[:, 2]}


def edge_energy_trend(clips: torch.Tensor) -> torch.Tensor:
    """Slope over time of the total squared spatial gradient (positive when an object fades in)."""
    gx = clips[..., 1:] - clips[..., :-1]
    gy = clips[..., 1:, :] - clips[..., :-1, :]
    energy = (gx**2).sum((1, 3, 4)) + (gy**2).sum((1, 3, 4))
    centred_time = torch.arange(clips.shape[2], dtype=torch.float32) - (clips.shape[2] - 1) / 2
    return (energy * centred_time).sum(1) / energy.mean(1)


def motion_sign(clips: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """+1 where the clip looks like the first class of ``pair``, -1 where like the second."""
    m = motion_summary(clips)
    first = pair[0]
    if first == CLASS_NAMES.index("move_right"):
        stat = m["tx"]
    elif first == CLASS_NAMES.index("move_down"):
        stat = m["ty"]
    elif first == CLASS_NAMES.index("zoom_in"):
        stat = m["div"]
    elif first == CLASS_NAMES.index("rotate_cw"):
        stat = m["curl"]
    elif first == CLASS_NAMES.index("fade_in"):
        stat = edge_energy_trend(clips)
    elif first == CLASS_NAMES.index("meet"):
        stat = -m["div"]
    else:  # pragma: no cover
        raise AssertionError(pair)
    return torch.sign(stat)


def nearest_class_mean_accuracy(train_x, train_y, test_x, test_y) -> float:
    classes = train_y.unique()
    means = torch.stack([train_x[train_y == k].mean(0) for k in classes])
    predicted = classes[torch.cdist(test_x, means).argmin(1)]
    return (predicted == test_y).float().mean().item()


# ----------------------------------------------------------------------------------------- basics
def test_class_table() -> None:
    assert 10 <= NUM_CLASSES <= 20
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    paired = sorted(k for pair in REVERSED_PAIRS for k in pair)
    assert paired == list(range(NUM_CLASSES))
    table = describe()
    for name in CLASS_NAMES:
        assert name in table
    assert len(table.strip().splitlines()) == NUM_CLASSES + 2


@pytest.mark.parametrize(("size", "frames"), [(16, 8), (32, 32)])
def test_generate_batch_shape_dtype_range(size: int, frames: int) -> None:
    labels = torch.arange(NUM_CLASSES)
    clips = generate_batch(labels, _gen(0), size=size, frames=frames)
    assert clips.shape == (NUM_CLASSES, 3, frames, size, size)
    assert clips.dtype == torch.float32
    assert clips.min() >= 0.0 and clips.max() <= 1.0
    # 8-bit quantized, like decoded video.
    levels = clips * 255.0
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    # Not degenerate: every clip varies in space and in time.
    assert (clips.std((1, 2, 3, 4)) > 0.02).all()
    assert ((clips[:, :, 1:] - clips[:, :, :-1]).abs().amax((1, 2, 3, 4)) > 0.05).all()


def test_dataset_item_format() -> None:
    data = ProceduralActions("val", size=16, frames=8, num_clips=5, seed=3)
    clip, label, clip_id = data[4]
    assert clip.shape == (3, 8, 16, 16) and clip.dtype == torch.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert isinstance(label, int) and label == 4
    assert isinstance(clip_id, str) and clip_id != data[3][2]
    assert len(data) == 5
    batch, labels = data.clips([4, 0])
    assert torch.equal(batch[0], clip) and labels.tolist() == [4, 0]
    with pytest.raises(IndexError):
        data[5]


# ----------------------------------------------------------------------------------------- determinism
def test_generate_batch_determinism() -> None:
    labels = torch.tensor([0, 5, 11, 3, 3, 7])
    a = generate_batch(labels, _gen(7), size=16, frames=8)
    b = generate_batch(labels, _gen(7), size=16, frames=8)
    c = generate_batch(labels, _gen(8), size=16, frames=8)
    assert torch.equal(a, b)
    assert (a - c).abs().amax((1, 2, 3, 4)).min() > 0.1


def test_dataset_determinism_and_access_order() -> None:
    kwargs = {"split": "train", "size": 16, "frames": 8, "seed": 11}
    forward = ProceduralActions(num_clips=10, **kwargs)
    backward = ProceduralActions(num_clips=10, **kwargs)
    bigger = ProceduralActions(num_clips=37, **kwargs)
    other_seed = ProceduralActions(num_clips=10, **{**kwargs, "seed": 12})
    items_forward = [forward[i][0] for i in range(10)]
    items_backward = [backward[i][0] for i in reversed(range(10))][::-1]
    for i in range(10):
        assert torch.equal(items_forward[i], items_backward[i])
        assert torch.equal(items_forward[i], bigger[i][0])  # independent of the dataset size
        assert not torch.equal(items_forward[i], other_seed[i][0])
    batch, _ = bigger.clips([9, 3, 0])
    assert torch.equal(batch[0], items_forward[9]) and torch.equal(batch[2], items_forward[0])


def test_random_windows_are_crops_of_one_sequence() -> None:
    common = {"split": "train", "size": 16, "frames": 8, "sequence_length": 20, "num_clips": 6, "seed": 2}
    moving = ProceduralActions(random_window=True, **common)
    centred = ProceduralActions(random_window=False, **common)
    starts_seen = set()
    for index in range(6):
        reference = centred[index][0]  # window starting at (20 - 8) // 2 = 6
        for epoch in range(4):
            moving.set_epoch(epoch)
            clip = moving[index][0]
            # Find the offset d with clip[:, k] == reference[:, k - d] on the overlap.
            matches = []
            for d in range(-12, 13):
                lo, hi = max(0, d), min(8, 8 + d)
                if hi - lo >= 2 and torch.equal(clip[:, lo:hi], reference[:, lo - d : hi - d]):
                    matches.append(d)
            assert len(matches) == 1, (index, epoch, matches)
            starts_seen.add(6 - matches[0])
    assert len(starts_seen) >= 4  # windows really move between epochs / items


# ----------------------------------------------------------------------------------------- splits, balance
def test_splits_are_disjoint() -> None:
    clips = {
        split: ProceduralActions(split, size=16, frames=8, num_clips=96, seed=0).clips()[0]
        for split in ("train", "val", "test")
    }
    hashes = {split: {hashlib.sha1(c.numpy().tobytes()).hexdigest() for c in x} for split, x in clips.items()}
    assert all(len(h) == 96 for h in hashes.values())  # no repeats inside a split either
    assert not (hashes["train"] & hashes["val"]) and not (hashes["train"] & hashes["test"])
    assert not (hashes["val"] & hashes["test"])
    # No near-duplicates either: every cross-split pair differs clearly (mean abs difference).
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        distance = torch.cdist(clips[a].flatten(1), clips[b].flatten(1), p=1) / clips[a][0].numel()
        assert distance.min() > 0.02
    seeds = {item_seed(0, split, i) for split in ("train", "val", "test") for i in range(1000)}
    assert len(seeds) == 3000


@pytest.mark.parametrize("num_clips", [120, 125, 7])
def test_labels_balanced(num_clips: int) -> None:
    data = ProceduralActions("test", size=16, frames=4, num_clips=num_clips)
    counts = torch.bincount(data.labels, minlength=NUM_CLASSES)
    assert counts.sum() == num_clips
    assert counts.max() - counts.min() <= 1
    if num_clips >= NUM_CLASSES:
        assert (counts > 0).all()


# ----------------------------------------------------------------------------------------- temporal order
@pytest.mark.parametrize("pair", REVERSED_PAIRS, ids=PAIR_IDS)
def test_reversed_pair_is_exact_time_mirror(pair: tuple[int, int]) -> None:
    a, b = pair
    clip_a = generate_batch([a, a], _gen(5), size=16, frames=8, sequence_length=12, random_window=False)
    clip_b = generate_batch([b, b], _gen(5), size=16, frames=8, sequence_length=12, random_window=False)
    assert torch.equal(clip_a.flip(2), clip_b)
    assert not torch.equal(clip_a, clip_b)


@pytest.fixture(scope="module")
def motion_clips() -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(NUM_CLASSES).repeat_interleave(40)
    return generate_batch(labels, _gen(123), size=32, frames=32), labels


@pytest.mark.parametrize("pair", REVERSED_PAIRS, ids=PAIR_IDS)
def test_motion_statistic_matches_label_and_flips_under_reversal(motion_clips, pair: tuple[int, int]) -> None:
    clips, labels = motion_clips
    a, b = pair
    sign_a = motion_sign(clips[labels == a], pair)
    sign_b = motion_sign(clips[labels == b], pair)
    assert (sign_a > 0).float().mean() > 0.95, f"{CLASS_NAMES[a]}: {(sign_a > 0).float().mean():.3f}"
    assert (sign_b < 0).float().mean() > 0.95, f"{CLASS_NAMES[b]}: {(sign_b < 0).float().mean():.3f}"
    # A clip of A played backwards moves like B.
    reversed_a = motion_sign(clips[labels == a].flip(2), pair)
    assert (reversed_a < 0).float().mean() > 0.95


def test_translation_direction_matches_label(motion_clips) -> None:
    clips, labels = motion_clips
    keep = labels < 4
    m = motion_summary(clips[keep])
    predicted = torch.stack([m["tx"], -m["tx"], m["ty"], -m["ty"]], 1).argmax(1)
    assert (predicted == labels[keep]).float().mean() > 0.95


def test_single_frames_and_frame_sets_do_not_reveal_direction() -> None:
    """Without temporal order, the four translation classes are indistinguishable (nearest class mean)."""
    per_class = 100
    labels = torch.arange(4).repeat_interleave(per_class)
    train = generate_batch(labels, _gen(1), size=32, frames=32)
    test = generate_batch(labels, _gen(2), size=32, frames=32)

    def order_map(x: torch.Tensor) -> torch.Tensor:
        # Where and *when* pixels deviate from their temporal mean: order-aware (positive control).
        gray = x.sum(1)
        deviation = (gray - gray.mean(1, keepdim=True)).abs()
        centred_time = torch.arange(x.shape[2], dtype=torch.float32) - (x.shape[2] - 1) / 2
        return (deviation * centred_time[None, :, None, None]).sum(1).flatten(1)

    def shuffled(x: torch.Tensor, seed: int) -> torch.Tensor:
        g = _gen(seed)
        return torch.stack([clip[:, torch.randperm(x.shape[2], generator=g)] for clip in x])

    unordered_features = {
        "time-averaged frame": lambda x: x.mean(2).flatten(1),
        "frame mean-brightness histogram": lambda x: torch.stack(
            [torch.histc(m, 16, 0, 1) for m in x.mean((1, 3, 4))]
        ),
        "order map of shuffled frames": lambda x: order_map(shuffled(x, x.shape[0])),
    }
    pairs = labels < 2
    for name, feature in unordered_features.items():
        f_train, f_test = feature(train), feature(test)
        four_way = nearest_class_mean_accuracy(f_train, labels, f_test, labels)
        left_right = nearest_class_mean_accuracy(f_train[pairs], labels[pairs], f_test[pairs], labels[pairs])
        assert four_way < 0.35, (name, four_way)
        assert 0.4 < left_right < 0.6, (name, left_right)
    # Positive control: the same classifier separates the directions once temporal order is used.
    assert nearest_class_mean_accuracy(order_map(train), labels, order_map(test), labels) > 0.85


# ----------------------------------------------------------------------------------------- caching
def test_cache_roundtrip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIDADV_CACHE", str(tmp_path))
    first = ProceduralActions("val", size=16, frames=6, num_clips=9, seed=4, cache=True, progress=False)
    assert first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == tmp_path / "synthetic"
    leftovers = sorted(p.name for p in first.cache_path.parent.iterdir())
    assert leftovers == [first.cache_path.name]  # the atomic write left no temporary file

    def no_render(*args, **kwargs):
        raise AssertionError("cached split was rendered again")

    monkeypatch.setattr(synthetic, "_render_items", no_render)
    second = ProceduralActions("val", size=16, frames=6, num_clips=9, seed=4, cache=True, progress=False)
    for i in range(9):
        assert torch.equal(first[i][0], second[i][0])
    monkeypatch.undo()

    # A corrupt file is regenerated; an explicit folder works too.
    second.cache_path.write_bytes(b"not a safetensors file")
    third = ProceduralActions(
        "val", size=16, frames=6, num_clips=9, seed=4, cache=tmp_path / "synthetic", progress=False
    )
    assert torch.equal(third[8][0], first[8][0])
    uncached = ProceduralActions("val", size=16, frames=6, num_clips=9, seed=4)
    assert torch.equal(uncached[8][0], first[8][0])


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "training"}, "valid splits"),
        ({"split": "train", "frames": 1}, "frames"),
        ({"split": "train", "size": 15}, "size"),
        ({"split": "train", "frames": 32, "sequence_length": 31}, "sequence_length"),
        ({"split": "train", "num_clips": 0}, "num_clips"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ProceduralActions(**kwargs)


def test_bad_arguments_generate_batch() -> None:
    with pytest.raises(ValueError, match="labels"):
        generate_batch([0, NUM_CLASSES], _gen(0), size=16, frames=4)
    with pytest.raises(ValueError, match="labels"):
        generate_batch([-1], _gen(0), size=16, frames=4)
    with pytest.raises(ValueError, match="frames"):
        generate_batch([0], _gen(0), size=16, frames=1)
    with pytest.raises(ValueError, match="size"):
        generate_batch([0], _gen(0), size=8, frames=4)
    with pytest.raises(TypeError, match="labels"):
        generate_batch(torch.tensor([0.5]), _gen(0), size=16, frames=4)
    with pytest.raises(TypeError, match="generator"):
        generate_batch([0], 3, size=16, frames=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="size"):
        generate_batch([0], _gen(0), size=32.0, frames=4)  # type: ignore[arg-type]


def test_build_synthetic_dataset() -> None:
    data = build_synthetic_dataset(split="test", num_clips=3, size=16, frames=4, seed=1)
    assert isinstance(data, ProceduralActions) and len(data) == 3 and data.split == "test"
    with pytest.raises(ValueError, match="valid keys: split, num_clips, size, frames, seed"):
        build_synthetic_dataset(split="test", resolution=32)


@pytest.mark.parametrize("labels", ["3", b"3", ["a", "b"]])
def test_labels_given_as_strings_are_a_clear_error(labels) -> None:
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        synthetic.generate_batch(labels, size=8, frames=4)
