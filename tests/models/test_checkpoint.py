"""build_network / load_model: checkpoint formats, class counts and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from vidadv.models import VideoClassifier, build_network, load_model, save_checkpoint
from vidadv.models.checkpoint import classifier_keys, extract_state_dict, read_checkpoint

TINY = {"layers": (1, 1, 1, 1), "base_channels": 4}


class NotATensor:
    """A custom class: unpickling it would need code from this module."""

    def __init__(self) -> None:
        self.value = 3


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("nl50", num_classes=10, **TINY).eval()
    with torch.no_grad():  # non-trivial BN statistics and non-local scale, so outputs depend on them
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var") or name.endswith("bn.weight"):
                tensor.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))


def _write(network: torch.nn.Module, directory: Path, kind: str) -> Path:
    state = network.state_dict()
    if kind == "safetensors":
        return save_checkpoint(network, directory / "w.safetensors")
    if kind == "safetensors-dedup":  # safetensors' save_model drops one name of each shared tensor
        path = directory / "dedup.safetensors"
        save_model(network, str(path))
        return path
    content = {
        "pth": state,
        "pt": state,
        "nested-state_dict": {"state_dict": state, "epoch": 7, "optimizer": {"lr": 0.1}},
        "nested-model": {"model": state, "config": "x"},
        "dataparallel": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
    }[kind]
    path = directory / f"{kind}.{'pt' if kind == 'pt' else 'pth'}"
    torch.save(content, path)
    return path


@pytest.mark.parametrize(
    "kind",
    ["pth", "pt", "nested-state_dict", "nested-model", "dataparallel", "safetensors", "safetensors-dedup"],
)
def test_load_model_round_trip(network, x, tmp_path: Path, kind: str) -> None:
    path = _write(network, tmp_path, kind)
    model = load_model("nl50", checkpoint=path, **TINY)
    assert isinstance(model, VideoClassifier)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.num_classes == 10  # read from the checkpoint
    expected = VideoClassifier(network).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), expected(x), atol=1e-5)
    for key, tensor in network.state_dict().items():
        assert torch.equal(model.network.state_dict()[key], tensor)


def test_load_model_custom_normalization(network, x, tmp_path: Path) -> None:
    path = _write(network, tmp_path, "safetensors")
    model = load_model(
        "nl50", checkpoint=path, num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), **TINY
    )
    with torch.no_grad():
        assert torch.allclose(model(x), network((x - 0.5) / 0.25), atol=1e-5)


def test_class_count_mismatch(network, tmp_path: Path) -> None:
    path = _write(network, tmp_path, "pth")
    with pytest.raises(ValueError, match="checkpoint .* has 10 classes, asked for num_classes=101"):
        load_model("nl50", checkpoint=path, num_classes=101, **TINY)


def test_classifier_keys_found_by_shape() -> None:
    assert classifier_keys(lambda n: build_network("nl50", num_classes=n, **TINY)) == {
        "fc.weight": 0,
        "fc.bias": 0,
        "head.1.weight": 0,
        "head.1.bias": 0,
    }


def test_key_mismatch_reports_counts(network, tmp_path: Path) -> None:
    state = dict(network.state_dict())
    for key in ["first_stage.0.weight", "res_layers.0.0.conv1.weight", "res_layers.0.0.bn1.bias"]:
        del state[key]
    state["extra.weight"] = torch.zeros(1)
    state["another.bias"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="3 keys missing .*first_stage.0.weight.*; 2 unexpected keys"):
        load_model("nl50", checkpoint=path, **TINY)


def test_shape_mismatch(network, tmp_path: Path) -> None:
    path = _write(network, tmp_path, "pth")
    with pytest.raises(ValueError, match="wrong shape: first_stage.0.weight: checkpoint \\(4, 3, 5, 7, 7\\)"):
        load_model("nl50", checkpoint=path, layers=(1, 1, 1, 1), base_channels=8)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("nl50", checkpoint=tmp_path / "nothing.pth", **TINY)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_unreadable_checkpoint(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        read_checkpoint(path)


def test_pickle_needing_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "object.pth"
    torch.save({"weights": torch.zeros(2), "extra": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_checkpoint(path)


def test_unknown_suffix_and_non_state_dicts(tmp_path: Path) -> None:
    path = tmp_path / "weights.h5"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown checkpoint type '.h5'.*safetensors"):
        read_checkpoint(path)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(ValueError, match="does not contain a state dict"):
        read_checkpoint(listing)
    with pytest.raises(ValueError, match="holds no tensors"):
        extract_state_dict({"epoch": 3, "name": "x"})


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown model name 'i3d_nl99'; valid names: .*nl50") as info:
        build_network("i3d_nl99")
    assert all(name in str(info.value) for name in ["nl101", "tpn50", "slowfast_8x8_resnet50_kinetics400"])
    with pytest.raises(ValueError, match="unknown model name"):
        load_model("resnet-unknown", checkpoint="unused.pth")


def test_no_checkpoint_warns_and_gives_random_weights() -> None:
    with pytest.warns(UserWarning, match="random weights"):
        model = load_model("nl101", num_classes=7, **TINY)
    assert model.num_classes == 7 and model.network.fc.out_features == 7


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes(num_classes) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_network("nl50", num_classes=num_classes, **TINY)
    with pytest.raises(ValueError, match="num_classes"):
        load_model("nl50", num_classes=num_classes, **TINY)


def test_bad_device() -> None:
    with pytest.raises(ValueError, match="invalid device"):
        load_model("nl50", device="gpu-please", **TINY)


@pytest.mark.parametrize(("kind", "value"), [("pth", float("nan")), ("safetensors", float("inf"))])
def test_nan_or_inf_weights_are_refused_naming_the_tensor(
    network, tmp_path: Path, kind: str, value: float
) -> None:
    damaged = build_network("nl50", num_classes=10, **TINY)
    damaged.load_state_dict(network.state_dict())
    name = "first_stage.0.weight"
    with torch.no_grad():
        damaged.state_dict()[name].view(-1)[1] = value
    path = _write(damaged, tmp_path, kind)
    with pytest.raises(ValueError, match=rf"tensor '{name}' holds 1 NaN/Inf value\(s\)"):
        load_model("nl50", checkpoint=path, **TINY)
