"""The model catalogue: entries match their networks, registering is one call, load_model reads entries."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vidadv.data.synthetic import CLASS_NAMES
from vidadv.models import (
    ModelEntry,
    available_models,
    build_network,
    catalogue,
    get_model_entry,
    load_model,
    model_entries,
    register_model,
    save_checkpoint,
)
from vidadv.models.zoo import ZOO_NAMES

GLUONCV_ALIASES = {
    "nl50": "i3d_nl5_resnet50_v1_kinetics400",
    "nl101": "i3d_nl5_resnet101_v1_kinetics400",
    "slowfast50": "slowfast_8x8_resnet50_kinetics400",
    "slowfast101": "slowfast_8x8_resnet101_kinetics400",
    "tpn50": "tpn_resnet50_f32s2_kinetics400",
    "tpn101": "tpn_resnet101_f32s2_kinetics400",
}


@pytest.fixture
def scratch_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries registered in a test disappear afterwards."""
    monkeypatch.setattr(catalogue, "_ENTRIES", dict(catalogue._ENTRIES))
    monkeypatch.setattr(catalogue, "_NAMES", dict(catalogue._NAMES))


def test_every_name_and_alias_is_listed_once() -> None:
    names = available_models()
    assert len(names) == len(set(names))
    assert set(GLUONCV_ALIASES) | set(GLUONCV_ALIASES.values()) | set(ZOO_NAMES) <= set(names)
    for alias, name in GLUONCV_ALIASES.items():
        assert get_model_entry(alias) is get_model_entry(name)
        assert get_model_entry(name).aliases == (alias,)


@pytest.mark.parametrize("entry", [e for e in model_entries() if e.builder is not None], ids=lambda e: e.name)
def test_entry_fields_agree_with_the_built_network(entry: ModelEntry) -> None:
    with torch.device("meta"):
        network = build_network(entry.name)
    assert network.num_classes == entry.num_classes
    assert network.min_frames == entry.min_frames
    assert getattr(network, "alpha", None) == entry.alpha
    classifier = catalogue.wrap_network(entry, network)
    classifier.get_submodule(entry.attention_layer)  # the attention layer exists
    assert classifier.attention_layer == entry.attention_layer
    torch.testing.assert_close(classifier.mean.flatten(), torch.tensor(entry.mean))
    if entry.weights is not None:  # the zoo: 32x32 clips of 32 frames, synthetic classes
        assert entry.class_names == tuple(CLASS_NAMES)
        assert (entry.frames, entry.input_size) == (32, 32)


def test_zoo_names_build_like_any_other() -> None:
    network = build_network("tpn-s", generator=torch.Generator().manual_seed(0))
    assert network.num_classes == len(CLASS_NAMES)
    with pytest.raises(ValueError, match="unknown model name 'tpn-xl'; valid names: .*tpn-s"):
        load_model("tpn-xl")
    with pytest.raises(TypeError, match="model name must be a string"):
        build_network(3)  # type: ignore[arg-type]


def test_zoo_class_count_is_checked_against_the_weights() -> None:
    with pytest.raises(ValueError, match="has 12 classes, asked for num_classes=400"):
        load_model("nl-s", num_classes=400)


def test_registering_a_builder_entry_is_one_call(scratch_catalogue: None, tmp_path: Path) -> None:
    reads: list[Path] = []

    def build(num_classes: int, generator: torch.Generator | None = None, **overrides) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 2 * 2, num_classes))

    def read(path: Path) -> dict[str, torch.Tensor]:
        reads.append(path)
        return {k.replace("net.", ""): v for k, v in torch.load(path, weights_only=True).items()}

    trained = build(5)
    torch.save({f"net.{k}": v for k, v in trained.state_dict().items()}, tmp_path / "w.pth")
    register_model(
        ModelEntry(
            name="toy",
            family="toy",
            description="a linear model",
            aliases=("toy-alias",),
            builder=build,
            weights=tmp_path / "w.pth",
            read_weights=read,
            num_classes=7,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            input_layout="NTCHW",
            min_frames=4,
        )
    )
    assert "toy" in available_models() and "toy-alias" in available_models()
    model = load_model("toy-alias")
    assert reads == [tmp_path / "w.pth"]  # the entry's default weights, through its own reader
    assert model.num_classes == 5 and model.input_layout == "NTCHW" and model.min_frames == 4
    clip = torch.rand(1, 3, 4, 2, 2)
    expected = trained(((clip - 0.5) / 0.5).transpose(1, 2))
    torch.testing.assert_close(model(clip), expected)
    with pytest.raises(ValueError, match="already in the catalogue"):
        register_model(
            ModelEntry(name="other", family="toy", description="", builder=build, aliases=("toy",))
        )
    register_model(dataclasses.replace(get_model_entry("toy"), num_classes=3), replace=True)
    assert build_network("toy")[1].out_features == 3


def test_a_loader_entry_gets_the_checkpoint_and_may_refine_the_entry(
    scratch_catalogue: None, tmp_path: Path
) -> None:
    calls: list = []

    def load_folder(entry: ModelEntry, checkpoint: Path | None, num_classes: int | None, overrides: dict):
        calls.append((checkpoint, num_classes, overrides))
        if checkpoint is None:
            raise ValueError(f"{entry.name!r} needs checkpoint=DIR")
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 2, num_classes or 4)), dataclasses.replace(
            entry, mean=(0.25, 0.25, 0.25)
        )

    register_model(ModelEntry(name="folder", family="hf", description="", loader=load_folder))
    with pytest.raises(ValueError, match="needs checkpoint=DIR"):
        load_model("folder")
    model = load_model("folder", checkpoint=str(tmp_path), num_classes=6, extra=1)
    assert calls[-1] == (tmp_path, 6, {"extra": 1})
    torch.testing.assert_close(model.mean.flatten(), torch.full((3,), 0.25))
    assert load_model("folder", checkpoint=tmp_path, mean=(0.1, 0.2, 0.3)).mean.flatten()[1] == pytest.approx(
        0.2
    )
    with pytest.raises(ValueError, match="made from its checkpoint"):
        build_network("folder")


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="needs a builder, a loader or load_classifier"):
        ModelEntry(name="x", family="x", description="")
    with pytest.raises(ValueError, match="input_layout"):
        ModelEntry(name="x", family="x", description="", builder=nn.Identity, input_layout="NHWC")
    with pytest.raises(ValueError, match="frames must be a positive int"):
        ModelEntry(name="x", family="x", description="", builder=nn.Identity, frames=0)
    with pytest.raises(TypeError, match="ModelEntry"):
        register_model("nl50")  # type: ignore[arg-type]


def test_loading_weights_leaves_the_global_generator_alone(tmp_path: Path) -> None:
    path = save_checkpoint(
        build_network("nl50", num_classes=3, layers=(1, 1, 1, 1), base_channels=4), tmp_path / "w.pth"
    )
    before = torch.random.get_rng_state()
    load_model("nl50", checkpoint=path, layers=(1, 1, 1, 1), base_channels=4)
    load_model("slowfast-s")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_models_import_no_higher_layer() -> None:
    """vidadv.models sits under attacks, training, evaluation, analysis and experiments."""
    code = (
        "import sys, vidadv.models; "
        "print(sorted(m for m in sys.modules if m.startswith('vidadv.') and m.split('.')[1] in "
        "('attacks', 'training', 'evaluation', 'analysis', 'experiments', 'cli')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
