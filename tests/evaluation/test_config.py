"""Config validation: clear errors before any work; the hash covers what changes the adversarial clips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.evaluation.fakes import config_dict
from vidadv.evaluation.paper import PAPER_NUMBERS
from vidadv.experiments.config import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]
PAPER_CONFIGS = {
    "kinetics400": REPO / "configs/paper_kinetics400.yaml",
    "ucf101": REPO / "configs/paper_ucf101.yaml",
}


def _load(raw: dict[str, Any], **kwargs: Any):
    options = {"model_names": None, "attack_names": None, "dataset_check": None, "check_files": False}
    options.update(kwargs)
    return config_from_dict(raw, **options)


@pytest.mark.parametrize("dataset", sorted(PAPER_CONFIGS))
def test_paper_configs_describe_the_paper_experiment(dataset: str) -> None:
    config = load_config(PAPER_CONFIGS[dataset], check_files=False)
    assert config.paper_dataset == dataset
    assert [m.name for m in config.models] == [
        "nl50",
        "nl101",
        "slowfast50",
        "slowfast101",
        "tpn50",
        "tpn101",
    ]
    assert set(config.whitebox) == {"NL-101", "SlowFast-101", "TPN-101"}
    assert {m.num_classes for m in config.models} == {400 if dataset == "kinetics400" else 101}
    assert config.eps == pytest.approx(16 / 255) and config.steps == 10
    assert config.step_size == pytest.approx(1.6 / 255)
    names = [a.name for a in config.attacks]
    assert len(names) == 13
    expected_specs = {"fgsm", "bim", "mi", "di", "ti", "sim", "sgm", "ata", "tt", "ti+tt", "mi+tt", "ata+tt"}
    assert {a.spec for a in config.attacks} == expected_specs
    for attack in config.attacks:
        options = config.attack_options(attack)
        one_step = attack.name.endswith("(1)") or attack.spec == "fgsm"
        assert options["steps"] == (1 if one_step else 10), attack.name
        assert options["step_size"] == pytest.approx((16 if one_step else 1.6) / 255), attack.name
        if "tt" in attack.spec.split("+"):
            assert (options["shift_length"], options["weights"], options["strategy"]) == (
                7,
                "gaussian",
                "adjacent",
            )
    # every published number is matched by exactly one attack of the config
    keys = [config.paper_key(a) for a in config.attacks if config.paper_key(a)]
    assert sorted(keys) == sorted(PAPER_NUMBERS[dataset])


@pytest.mark.parametrize("dataset", sorted(PAPER_CONFIGS))
def test_paper_config_placeholders_are_named_clearly(dataset: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(PAPER_CONFIGS[dataset])
    message = str(info.value)
    assert "dataset.root is still the placeholder" in message
    for index in range(6):
        assert f"models[{index}].checkpoint is still the placeholder" in message
    assert "/path/to/" in message


def test_paper_attack_options_are_accepted_by_build_attack() -> None:
    attacks = pytest.importorskip("vidadv.attacks")
    if not hasattr(attacks, "build_attack"):
        pytest.skip("vidadv.attacks.build_attack not available yet")
    import torch
    from torch import nn

    from vidadv.models import VideoClassifier
    from vidadv.models.common import ResidualBlock

    class Block(ResidualBlock):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 6)
            self.relu = nn.ReLU()  # named like gluoncv's ReLUs, for convention="official" SGM

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(x + self.scale_residual_grad(self.linear(x)))

    class Net(nn.Module):
        attention_layer = "features"

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Conv3d(3, 6, 1)
            self.block = Block()
            self.head = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(self.features(x).mean(dim=(2, 3, 4))))

    config = load_config(PAPER_CONFIGS["kinetics400"], check_files=False)
    for attack in config.attacks:
        # a VideoClassifier: convention="official" SIM and DI need the model's normalization
        model = VideoClassifier(Net())
        built = attacks.build_attack(attack.spec, model, seed=1, **config.attack_options(attack))
        assert callable(built)


def test_missing_checkpoint_file_is_named(tmp_path: Path) -> None:
    raw = config_dict(tmp_path / "run")
    raw["models"][1]["checkpoint"] = str(tmp_path / "weights" / "b.pth")
    with pytest.raises(ConfigError, match=r"models\[1\]\.checkpoint: the checkpoint of model 'B' not found"):
        _load(raw, check_files=True)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "b.pth").write_bytes(b"x")
    assert _load(raw, check_files=True).model("B").checkpoint == str(tmp_path / "weights" / "b.pth")


def test_dataset_path_keys_are_checked(tmp_path: Path) -> None:
    raw = config_dict(tmp_path / "run", dataset={"type": "csv", "list": str(tmp_path / "clips.csv")})
    with pytest.raises(ConfigError, match=r"dataset\.list: the dataset not found"):
        _load(raw, check_files=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epsilon": 0.1}, r"unknown config key 'epsilon'.*allowed keys: name, output_dir"),
        ({"eps": "abc"}, r"eps must be a number or a fraction"),
        ({"eps": 0}, r"eps is the L-inf budget"),
        ({"eps": 2}, r"eps is the L-inf budget"),
        ({"steps": 0}, r"steps must be a positive integer"),
        ({"steps": 2.5}, r"steps must be a positive integer"),
        ({"device": "gpu"}, r"device must be one of auto, cpu, cuda, cuda:N, mps; got 'gpu'"),
        ({"dtype": "float8"}, r"dtype must be one of float32, float64, float16, bfloat16"),
        ({"whitebox": ["D"]}, r"whitebox\[0\] = 'D' is not a model of this config; models: A, B, C"),
        ({"whitebox": []}, r"whitebox must be a non-empty list"),
        ({"selection": "maybe"}, r"selection must be one of required, auto"),
        ({"batch_size": -1}, r"batch_size must be a positive integer"),
        ({"seed": -3}, r"seed must be a non-negative integer"),
        ({"paper_dataset": "hmdb51"}, r"paper_dataset must be one of ucf101, kinetics400; got .hmdb51."),
        ({"output_dir": "/path/to/results"}, r"output_dir is still the placeholder"),
        ({"models": []}, r"models must be a non-empty list"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = config_dict(tmp_path / "run")
    raw.update(change)
    with pytest.raises(ConfigError, match=message):
        _load(raw)


def test_bad_entries_name_their_position(tmp_path: Path) -> None:
    raw = config_dict(tmp_path / "run")
    raw["models"][1]["weights"] = "x"
    with pytest.raises(
        ConfigError, match=r"unknown config key 'weights' \(in models\[1\]\); allowed keys: name, label"
    ):
        _load(raw)
    raw = config_dict(tmp_path / "run")
    raw["attacks"].append({"name": "FGSM", "spec": "bim"})
    with pytest.raises(ConfigError, match="attack names must be unique; repeated: FGSM"):
        _load(raw)
    raw = config_dict(tmp_path / "run")
    raw["attacks"][0]["paper_key"] = "XYZ"
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.paper_key must be one of TI\(1\)"):
        _load(raw)
    raw = config_dict(tmp_path / "run")
    raw["attacks"][0]["options"] = {"seed": 3}
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.options\.seed"):
        _load(raw)
    raw = config_dict(tmp_path / "run")
    raw["attacks"][0]["spec"] = "fgsm+warp"
    with pytest.raises(ConfigError, match=r"unknown attack 'warp'; known: bim, fgsm"):
        _load(raw, attack_names=lambda: ["fgsm", "bim"])


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("eps: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="nothing.yaml"):
        load_config(tmp_path / "nothing.yaml")
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "run", eps=-1)))
    with pytest.raises(ConfigError, match=r"bad.yaml: eps"):
        load_config(path, model_names=None, attack_names=None, dataset_check=None)


def test_fractions_and_option_overrides(tmp_path: Path) -> None:
    config = _load(config_dict(tmp_path / "run"))
    assert config.eps == 4 / 255 and config.step_size == 2 / 255
    assert config.attack_options(config.attack("BIM(3)")) == {
        "eps": 4 / 255,
        "steps": 3,
        "step_size": 2 / 255,
    }
    assert config.attack_options(config.attack("FGSM"))["steps"] == 2


def test_hash_tracks_what_changes_the_adversarial_clips(tmp_path: Path) -> None:
    base = _load(config_dict(tmp_path / "run")).config_hash()
    same = [
        {"device": "auto"},
        {"output_dir": str(tmp_path / "elsewhere")},
        {"chunk_size": 4},
        {"h264_crf": 30},
    ]
    for change in same:
        raw = config_dict(tmp_path / "run")
        raw.update(change)
        assert _load(raw).config_hash() == base, change
    different = [{"eps": "8/255"}, {"seed": 6}, {"batch_size": 3}, {"steps": 3}, {"save_dtype": "float16"}]
    for change in different:
        assert _load(config_dict(tmp_path / "run", **change)).config_hash() != base, change
    raw = config_dict(tmp_path / "run")
    raw["attacks"][1]["options"] = {"steps": 4}
    assert _load(raw).config_hash() != base
