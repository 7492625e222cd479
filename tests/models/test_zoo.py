"""Tests of the embedded model zoo: architectures, augmentation, recipe, shipped weights, loading errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from vidadv.data.synthetic import CLASS_NAMES, ProceduralActions
from vidadv.models import zoo
from vidadv.models.common import ResidualBlock, residual_blocks
from vidadv.models.wrapper import VideoClassifier

SHIPPED = zoo.default_weights_dir()
HAS_SHIPPED = (SHIPPED / zoo.MANIFEST_NAME).is_file()
needs_shipped = pytest.mark.skipif(not HAS_SHIPPED, reason="no shipped zoo weights (run `vidadv zoo train`)")

# Residual blocks each network must have, from its architecture: one bottleneck per stage block (two
# pathways in SlowFast) plus the non-local blocks of I3D-NL.
EXPECTED_RESIDUAL_BLOCKS = {
    "nl-s": 4 + 1,
    "nl-l": 8 + 2,
    "slowfast-s": 2 * 4,
    "slowfast-l": 2 * 8,
    "tpn-s": 4,
    "tpn-l": 8,
}


def test_zoo_names_and_specs_agree() -> None:
    assert zoo.ZOO_NAMES == ("nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l")
    assert set(zoo.ZOO_SPECS) == set(zoo.ZOO_NAMES)
    families = {name: zoo.ZOO_SPECS[name].family for name in zoo.ZOO_NAMES}
    assert families == {
        "nl-s": "i3d_nonlocal",
        "nl-l": "i3d_nonlocal",
        "slowfast-s": "slowfast",
        "slowfast-l": "slowfast",
        "tpn-s": "tpn",
        "tpn-l": "tpn",
    }
    for name in zoo.ZOO_NAMES:
        assert zoo.ZOO_SPECS[name].constructor["num_classes"] == len(CLASS_NAMES)
    # The large variant of each family is deeper than the small one.
    for family in ("nl", "slowfast", "tpn"):
        small = zoo.ZOO_SPECS[f"{family}-s"].constructor["layers"]
        large = zoo.ZOO_SPECS[f"{family}-l"].constructor["layers"]
        assert sum(large) > sum(small)


@pytest.mark.parametrize("name", zoo.ZOO_NAMES)
def test_blocks_are_residual_and_attention_layer_has_spatial_extent(name: str) -> None:
    network = zoo.build_zoo_network(name)
    classifier = zoo.wrap_zoo_network(name, network)
    blocks = residual_blocks(network)
    assert len(blocks) == EXPECTED_RESIDUAL_BLOCKS[name]
    # Every module with a shortcut (named like a bottleneck / non-local block) is an SGM-capable block.
    for module in network.modules():
        if "Bottleneck" in type(module).__name__ or "NonLocal" in type(module).__name__:
            if isinstance(module, nn.Module) and not isinstance(module, nn.Sequential):
                assert isinstance(module, ResidualBlock) or type(module).__name__ == "I3DNonLocal"

    layer = classifier.get_submodule(classifier.attention_layer)
    seen: list[torch.Size] = []
    handle = layer.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.no_grad():
        logits = classifier.eval()(torch.rand(1, 3, zoo.INPUT_FRAMES, zoo.INPUT_SIZE, zoo.INPUT_SIZE))
    handle.remove()
    assert logits.shape == (1, len(CLASS_NAMES))
    assert len(seen) == 1
    height, width = seen[0][-2:]
    assert height >= 2 and width >= 2, f"{classifier.attention_layer} is {height}x{width} at 32x32 input"


@pytest.mark.parametrize("name", ["nl-s", "slowfast-s", "tpn-s"])
def test_build_is_seeded(name: str) -> None:
    first = zoo.build_zoo_network(name, seed=5).state_dict()
    again = zoo.build_zoo_network(name, seed=5).state_dict()
    other = zoo.build_zoo_network(name, seed=6).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nl-s, nl-l, slowfast-s"):
        zoo.build_zoo_network("nl-xl")
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.load_zoo_model("resnet50")
    with pytest.raises(TypeError):
        zoo.load_zoo_model(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.run_train(models=["nl-s", "nope"])


# ------------------------------------------------------------------------------------------ augmentation


def test_flip_label_map_swaps_mirrored_classes_only() -> None:
    mapping = zoo.flip_label_map(CLASS_NAMES)
    assert torch.equal(mapping[mapping], torch.arange(len(CLASS_NAMES)))  # an involution
    changed = {CLASS_NAMES[i]: CLASS_NAMES[int(j)] for i, j in enumerate(mapping) if i != int(j)}
    assert changed == {
        "move_right": "move_left",
        "move_left": "move_right",
        "rotate_cw": "rotate_ccw",
        "rotate_ccw": "rotate_cw",
    }


def _plain(**changes: object) -> zoo.Recipe:
    base = dict(crop_scale=(1.0, 1.0), flip_probability=0.0, contrast=0.0, brightness=0.0)
    base.update(changes)
    return dataclasses.replace(zoo.Recipe(), **base)


def test_augment_identity_and_exact_flip() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(4, 3, 5, 8, 8, generator=generator)
    labels = torch.tensor([0, 1, 6, 9])
    mapping = zoo.flip_label_map(CLASS_NAMES)
    same, same_labels = zoo.augment_clips(clips, labels, generator, _plain(), mapping)
    torch.testing.assert_close(same, clips, atol=1e-6, rtol=0)
    assert torch.equal(same_labels, labels)
    flipped, flipped_labels = zoo.augment_clips(
        clips, labels, generator, _plain(flip_probability=1.0), mapping
    )
    torch.testing.assert_close(flipped, clips.flip(-1), atol=1e-6, rtol=0)
    assert flipped_labels.tolist() == [1, 0, 7, 9]


def test_augment_crop_keeps_time_and_range() -> None:
    generator = torch.Generator().manual_seed(1)
    # Each frame is constant with value t / T: any spatial crop/resample keeps it, so frames stay in order.
    frames = torch.arange(6, dtype=torch.float32) / 6
    clips = frames.view(1, 1, 6, 1, 1).expand(3, 3, 6, 16, 16).contiguous()
    out, _ = zoo.augment_clips(
        clips,
        torch.zeros(3, dtype=torch.long),
        generator,
        _plain(crop_scale=(0.5, 0.9)),
        zoo.flip_label_map(CLASS_NAMES),
    )
    torch.testing.assert_close(out, clips, atol=1e-6, rtol=0)
    jittered, _ = zoo.augment_clips(
        torch.rand(8, 3, 4, 16, 16, generator=generator),
        torch.zeros(8, dtype=torch.long),
        generator,
        zoo.Recipe(),
        zoo.flip_label_map(CLASS_NAMES),
    )
    assert jittered.shape == (8, 3, 4, 16, 16)
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0


def test_one_cycle_schedule_shape() -> None:
    steps, warmup = 200, 0.1
    values = [zoo._one_cycle(step, steps, warmup) for step in range(steps + 1)]
    assert values[0] == pytest.approx(1 / 25)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 20
    decay = values[20:]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert values[-1] < 1e-3
    # Cosine: half-way through the decay the multiplier is ~0.5.
    assert values[20 + 90] == pytest.approx(0.5, abs=0.01)


def test_recipe_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="steps"):
        zoo.Recipe(steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        zoo.Recipe(batch_size=1)
    with pytest.raises(ValueError, match="crop_scale"):
        zoo.Recipe(crop_scale=(0.5, 1.5))


# ------------------------------------------------------------------------------------------ evaluation


class _FirstFrameOracle(nn.Module):
    """Predicts the class written in pixel (0, 0) of frame 0 (value = label / 100)."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        label = torch.round(clips[:, 0, 0, 0, 0] * 100).long()
        return nn.functional.one_hot(label, len(CLASS_NAMES)).float()


class _InMemoryClips:
    """A fixed set of clips with the `ProceduralActions` access methods `train_zoo_model` and
    `evaluate_accuracy` use."""

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor) -> None:
        self.data, self.labels = clips, labels

    def __len__(self) -> int:
        return len(self.labels)

    def clips(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return self.data[index], self.labels[index]

    def set_epoch(self, epoch: int) -> None:  # the windows were drawn once, at generation
        pass


def test_evaluate_accuracy_and_shifts_against_direct_count() -> None:
    generator = torch.Generator().manual_seed(3)
    n, frames = 37, 6
    labels = torch.randint(0, len(CLASS_NAMES), (n,), generator=generator)
    clips = torch.zeros(n, 3, frames, 2, 2)
    # Frame 0 carries the true label for every clip; frame f carries a random label.
    clips[:, 0, :, 0, 0] = torch.randint(0, len(CLASS_NAMES), (n, frames), generator=generator) / 100
    clips[:, 0, 0, 0, 0] = labels / 100
    accuracy = zoo.evaluate_accuracy(
        _FirstFrameOracle(), _InMemoryClips(clips, labels), batch_size=8, shifts=(0, 1, 2)
    )
    assert accuracy[0] == 1.0
    for shift in (1, 2):
        # After torch.roll by k, frame 0 holds what was frame T - k.
        expected = float(
            (torch.round(clips[:, 0, frames - shift, 0, 0] * 100).long() == labels).float().mean()
        )
        assert accuracy[shift] == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ training


@pytest.mark.slow
def test_recipe_learns_well_above_chance() -> None:
    """400 recipe steps on nl-s reach well above chance (1/12) on held-out clips of all twelve classes.

    96 validation clips: 25 % correct is six standard deviations above chance. (Measured on this code:
    0.31-0.70 over five data seeds, 0.49 for the seed used here; about 20 s on 2 CPU cores.)
    """
    from vidadv.data.synthetic import generate_batch

    generator = torch.Generator().manual_seed(2024)
    train_labels = torch.arange(len(CLASS_NAMES)).repeat(16)
    val_labels = torch.arange(len(CLASS_NAMES)).repeat(8)
    train = _InMemoryClips(generate_batch(train_labels, generator), train_labels)
    val = _InMemoryClips(generate_batch(val_labels, generator, random_window=False), val_labels)
    recipe = dataclasses.replace(zoo.Recipe(), steps=400, batch_size=16, eval_every=400)
    result = zoo.train_zoo_model("nl-s", recipe, train, val, progress=False)
    step, accuracy = result.val_curve[-1]
    assert step == recipe.steps
    assert accuracy >= 0.25, f"val accuracy {accuracy:.3f} over 12 classes after 400 steps (chance 0.083)"


# ------------------------------------------------------------------------------------------ shipped weights


@needs_shipped
def test_manifest_matches_specs_and_files() -> None:
    manifest = zoo.zoo_manifest()
    assert list(manifest["models"]) == list(zoo.ZOO_NAMES), "every zoo model must be shipped"
    assert manifest["dataset"]["class_names"] == CLASS_NAMES
    total_bytes = 0
    for name, entry in manifest["models"].items():
        spec = zoo.ZOO_SPECS[name]
        path = SHIPPED / entry["weights"]
        data = path.read_bytes()
        total_bytes += len(data)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{path} does not match the manifest"
        assert entry["family"] == spec.family
        assert entry["constructor"] == json.loads(json.dumps(spec.constructor))
        assert entry["attention_layer"] == spec.attention_layer
        assert entry["input"]["frames"] == zoo.INPUT_FRAMES and entry["input"]["size"] == zoo.INPUT_SIZE
        assert entry["normalization"] == {
            "mean": list(zoo.NORMALIZATION_MEAN),
            "std": list(zoo.NORMALIZATION_STD),
        }
        assert entry["test_split"] == zoo.TEST_SPLIT
        assert set(entry["shift_accuracy"]) == {str(k) for k in zoo.SHIFTS}
        assert entry["recipe"]["seed"] == spec.seed
        # The target is 90 %; the TPN models reach 87-88 % (README, "The embedded benchmark").
        assert entry["test_accuracy"] >= 0.85, f"{name}: shipped test accuracy {entry['test_accuracy']}"
    assert total_bytes < 20 * 2**20


@needs_shipped
@pytest.mark.parametrize("name", zoo.ZOO_NAMES)
def test_load_shipped_model(name: str) -> None:
    model = zoo.load_zoo_model(name)
    assert isinstance(model, VideoClassifier)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.attention_layer == zoo.ZOO_SPECS[name].attention_layer
    model.get_submodule(model.attention_layer)
    entry = zoo.zoo_manifest()["models"][name]
    assert sum(p.numel() for p in model.network.parameters()) == entry["parameters"]
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(zoo.NORMALIZATION_MEAN))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(zoo.NORMALIZATION_STD))


@needs_shipped
def test_load_model_dispatches_zoo_names() -> None:
    from vidadv.models import load_model

    via_registry = load_model("tpn-s")
    direct = zoo.load_zoo_model("tpn-s")
    for (key, a), (_, b) in zip(via_registry.state_dict().items(), direct.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


@pytest.fixture(scope="module")
def test_split() -> ProceduralActions:
    return ProceduralActions(**zoo.TEST_SPLIT, progress=False)


@pytest.mark.slow
@needs_shipped
@pytest.mark.parametrize("name", zoo.ZOO_NAMES)
def test_shipped_weights_reach_manifest_accuracy(name: str, test_split: ProceduralActions) -> None:
    entry = zoo.zoo_manifest()["models"][name]
    accuracy = zoo.evaluate_accuracy(zoo.load_zoo_model(name), test_split)[0]
    # Same clips, same weights: only float summation order (torch version, threads) may flip a clip or two.
    assert math.isclose(accuracy, entry["test_accuracy"], abs_tol=0.01), (accuracy, entry["test_accuracy"])
    assert accuracy >= 0.85  # target 90 %, met by the I3D-NL and SlowFast models, not by TPN (see README)


# ------------------------------------------------------------------------------------------ load errors


@pytest.fixture()
def copied_zoo(tmp_path: Path) -> Path:
    """A writable copy of the shipped tpn-s weights and the manifest."""
    if not HAS_SHIPPED:
        pytest.skip("no shipped zoo weights")
    shutil.copy(SHIPPED / zoo.MANIFEST_NAME, tmp_path / zoo.MANIFEST_NAME)
    shutil.copy(SHIPPED / "tpn-s.safetensors", tmp_path / "tpn-s.safetensors")
    return tmp_path


def test_missing_manifest_tells_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vidadv zoo train"):
        zoo.load_zoo_model("nl-s", weights_dir=tmp_path)
    (tmp_path / zoo.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="vidadv zoo train"):
        zoo.load_zoo_model("nl-s", weights_dir=tmp_path)


def test_missing_weights_file_is_clear(copied_zoo: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nl-s\.safetensors.*vidadv zoo train"):
        zoo.load_zoo_model("nl-s", weights_dir=copied_zoo)


def test_damaged_weights_fail_the_sha256_check(copied_zoo: Path) -> None:
    path = copied_zoo / "tpn-s.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256.*vidadv zoo train"):
        zoo.load_zoo_model("tpn-s", weights_dir=copied_zoo)


def test_model_missing_from_manifest_and_changed_architecture(copied_zoo: Path) -> None:
    manifest_path = copied_zoo / zoo.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"]["tpn-s"]
    manifest["models"] = {"tpn-s": {**entry, "constructor": {**entry["constructor"], "base_channels": 4}}}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="not in the manifest"):
        zoo.load_zoo_model("nl-l", weights_dir=copied_zoo)
    with pytest.raises(ValueError, match="architecture"):
        zoo.load_zoo_model("tpn-s", weights_dir=copied_zoo)


def test_print_zoo_without_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo.print_zoo(tmp_path) == 0
    out = capsys.readouterr().out
    assert "vidadv zoo train" in out
    assert all(name in out for name in zoo.ZOO_NAMES)
    assert out.count("not trained") == len(zoo.ZOO_NAMES)
