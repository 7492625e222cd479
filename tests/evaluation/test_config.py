"""Config validation: clear errors before any work; the hash covers what changes the adversarial clips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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
        {"h264_crf": 30},
    ]
    for change in same:
        raw = config_dict(tmp_path / "run")
        raw.update(change)
        assert _load(raw).config_hash() == base, change
    different = [
        {"eps": "8/255"},
        {"seed": 6},
        {"batch_size": 3},
        {"steps": 3},
        {"save_dtype": "float16"},
        {"chunk_size": 4},
    ]
    for change in different:
        assert _load(config_dict(tmp_path / "run", **change)).config_hash() != base, change
    raw = config_dict(tmp_path / "run")
    raw["attacks"][1]["options"] = {"steps": 4}
    assert _load(raw).config_hash() != base


# ------------------------------------------------------------------------------------------------
# The schema: hash stability, derived serialization, error translation
# ------------------------------------------------------------------------------------------------

#: config hashes recorded before the schema rewrite: run folders on disk must still resume
# the paper configs changed on purpose when they adopted convention: official (#12)
RECORDED_HASHES = {
    "ablation_shift_length": "fb53e8e865608e2c3915fce1cbb40171d2975d5f47742e8ac88bde4ee133822b",
    "ablation_weights_strategies": "a05a136633a9e3457b28f5c91f1d591db00a43e17bd01368faca7e6d994f725a",
    "embedded_paper_attacks": "a1aa556daf1eef10ce9e964c0d49cec5ec4959dba1485177eededac77a3f5f6b",
    "embedded_paper_attacks_eps4": "36ba0ed973ed52179db3f200b77dbaaff5f608ecead45b0bff0cdff5a9905b35",
    "embedded_paper_attacks_eps8": "11232ddb64dd91a725be1fbfa215fb34c1f12ae9cd55b697284a61df98c910b6",
    "paper_kinetics400": "5e6a908806507df356b6afb6614de93731fd5fd3d62643676a0c92f844f77111",
    "paper_ucf101": "052d0e03c9587e757fed12ed514682ba495f963de20ba8180f4ee2b5b3c67bd0",
}
RECORDED_DEMO_HASHES = {
    (False, None): "ad187756faf42d195a349d6d02469d85837d231beca44435321fb2bf36a90427",
    (True, None): "69d1c0fcb805ac64ba935b298b77cb87a195a809cd730ed12b5d0e3a542d4181",
    (True, 3): "0e5a262ccc43232b95862955bd6a14adbedf58ccac6c78df339b93edd34c7c86",
}
HASHED_KEYS = {
    "dataset",
    "models",
    "whitebox",
    "attacks",
    "eps",
    "steps",
    "step_size",
    "batch_size",
    "dtype",
    "save_dtype",
    "seed",
    "select_models",
    "max_clips",
    "clips_per_class",
}


@pytest.mark.parametrize("name", sorted(RECORDED_HASHES))
def test_config_hashes_are_those_of_existing_runs(name: str) -> None:
    config = load_config(REPO / "configs" / f"{name}.yaml", check_files=False)
    assert config.config_hash() == RECORDED_HASHES[name]
    assert set(config.hashed_fields()) == HASHED_KEYS
    again = _load(config.to_dict())  # what run_config.json stores loads back to the same config
    assert again == config.model_copy(update={"source": None})


@pytest.mark.parametrize("quick, per_class", sorted(RECORDED_DEMO_HASHES, key=str))
def test_demo_config_hash_is_unchanged(tmp_path: Path, quick: bool, per_class: int | None) -> None:
    from vidadv.experiments.demo import demo_config

    config = config_from_dict(demo_config(tmp_path, quick=quick, clips_per_class=per_class))
    assert config.config_hash() == RECORDED_DEMO_HASHES[(quick, per_class)]


def test_every_key_is_declared_once_with_a_description() -> None:
    from vidadv.experiments.config import ExperimentConfig

    keys = ExperimentConfig.config_keys()
    assert "source" not in keys and len(keys) == 23
    for key in keys:
        assert ExperimentConfig.model_fields[key].description, key
    with pytest.raises(Exception, match="frozen"):
        _load(config_dict("/tmp/run")).eps = 0.5  # type: ignore[misc]


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(sorted(config_dict("/tmp/run")) + ["models.0", "attacks.1", "attacks.1.options"]),
    value=junk,
)
def test_any_bad_value_is_a_config_error_naming_its_key(key: str, value: Any) -> None:
    raw = config_dict("/tmp/run")
    parts = key.split(".")
    target: Any = raw
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    try:
        _load(raw)
    except ConfigError as err:  # never a pydantic ValidationError, a TypeError or a traceback from inside
        message = str(err)
        assert "\n" not in message or message.split("\n")[0].endswith("problems:")
        assert parts[0] in message or "missing required config key" in message, message


# ------------------------------------------------------------------------------------------------
# Issue 14: every bad input refused at load, before any work
# ------------------------------------------------------------------------------------------------


def test_per_attack_budget_over_one_is_refused_like_the_global_one(tmp_path: Path) -> None:
    raw = config_dict(tmp_path / "run")
    raw["attacks"][1]["options"] = {"eps": 5}
    with pytest.raises(ConfigError, match=r"attacks\[1\]\.options\.eps is the L-inf budget .* got 5"):
        _load(raw)
    raw["attacks"][1]["options"] = {"eps": "8/255"}
    assert _load(raw).attack_options(_load(raw).attack("BIM(3)"))["eps"] == 8 / 255


def _bomb(levels: int, fanout: int = 10) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fanout) + "]")
    return "\n".join("    " + line for line in lines)


@pytest.mark.parametrize("where", ["dataset", "models", "name"])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(f"output_dir: {tmp_path}\n{where}:\n  junk:\n{_bomb(9)}\n")  # 10^9 leaves
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*expands to more than 100000 YAML nodes"):
        load_config(path)
    assert time.perf_counter() - start < 2.0
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*refers to itself"):
        load_config(path)
    # shared anchors that stay small are fine
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "run")) + "extra: &e [1, 2]\n")
    with pytest.raises(ConfigError, match="unknown config key 'extra'"):
        load_config(path, model_names=None, attack_names=None, dataset_check=None)


def _real(tmp_path: Path, attack: dict[str, Any], frames: int | None = 32) -> dict[str, Any]:
    """A config of the embedded benchmark with one attack, validated against the real attack engine."""
    dataset = {"type": "synthetic", "split": "test", "num_clips": 10, "size": 32}
    if frames is not None:
        dataset["frames"] = frames
    return {
        "output_dir": str(tmp_path / "run"),
        "dataset": dataset,
        "models": ["nl-s", "nl-l"],
        "whitebox": ["nl-l"],
        "attacks": [{"name": "BIM", "spec": "bim"}, attack],
        "eps": "16/255",
        "steps": 10,
    }


@pytest.mark.parametrize(
    "attack, message",
    [
        (
            {"name": "TT", "spec": "tt", "options": {"shift_lenght": 3}},
            r"attacks\[1\]\.options\.shift_lenght: unknown option 'shift_lenght' for attack 'tt'",
        ),
        (
            {"name": "TT", "spec": "tt", "options": {"decay": 0.5}},
            r"attacks\[1\]\.options\.decay: option 'decay' belongs to mi/ni",
        ),
        ({"name": "TT", "spec": "tt+tt"}, r"attacks\[1\] \('TT', spec 'tt\+tt'\): .*names a method twice"),
        (
            {"name": "TT", "spec": "tt", "options": {"shift_length": 16}},
            r"attacks\[1\]\.options\.shift_length: TT shift_length L=16 needs clips with T > 2L = 32 "
            r"frames, got T=32.*the dataset's clips have 32 frames",
        ),
        ({"name": "TT", "spec": "tt", "options": {"weights": "flat"}}, r"attacks\[1\]\.options\.weights"),
        ({"name": "F", "spec": "fgsm"}, r"attacks\[1\] \('F', spec 'fgsm'\): fgsm is a single step"),
    ],
)
def test_attack_problems_are_reported_at_load(tmp_path: Path, attack: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_real(tmp_path, attack), check_files=False)


def test_clip_length_comes_from_the_dataset(tmp_path: Path) -> None:
    attack = {"name": "TT", "spec": "tt", "options": {"shift_length": 15}}
    assert config_from_dict(_real(tmp_path, attack), check_files=False).clip_frames == 32
    assert config_from_dict(_real(tmp_path, attack, frames=None), check_files=False).clip_frames == 32
    with pytest.raises(ConfigError, match=r"attacks\[1\] \('TT', spec 'tt'\): TT shift_length L=7.*T=8"):
        config_from_dict(_real(tmp_path, {"name": "TT", "spec": "tt"}, frames=8), check_files=False)


def test_attack_problems_stop_select_and_attack_before_any_work(tmp_path: Path) -> None:
    from dataclasses import replace

    from tests.evaluation.fakes import FAKES
    from vidadv.experiments import run_attack, run_select
    from vidadv.experiments.runtime import DEFAULT_FACTORIES

    raw = config_dict(tmp_path / "run", selection="auto")
    raw["attacks"] = [
        {"name": "BIM", "spec": "bim"},
        {"name": "TT", "spec": "tt", "options": {"shift_lenght": 3}},
    ]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    real_attacks = replace(FAKES, build_attack=DEFAULT_FACTORIES.build_attack)
    for command in (run_select, run_attack):
        with pytest.raises(
            ConfigError, match=r"c\.yaml: attacks\[1\]\.options\.shift_lenght: unknown option"
        ):
            command(path, progress=False, factories=real_attacks)
    assert not (tmp_path / "run").exists()  # no selection, no run record
    raw["attacks"] = [{"name": "BIM", "spec": "bim"}, {"name": "X", "spec": "warp"}]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"attacks\[1\] \('X', spec 'warp'\): unknown fake attack"):
        run_select(path, progress=False, factories=FAKES)  # the injected build_attack validates too


def test_bad_device_is_the_same_error_in_a_config_on_the_command_line_and_in_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidadv.cli import main
    from vidadv.experiments.analyze import parse_analysis_config
    from vidadv.experiments.config import resolve_device

    message = "device must be one of auto, cpu, cuda, cuda:N, mps; got 'banana'"
    with pytest.raises(ConfigError, match=message):
        _load(config_dict(tmp_path / "run", device="banana"))
    with pytest.raises(ConfigError, match=message):
        parse_analysis_config({"models": ["m"], "dataset": {}, "output_dir": "o", "device": "banana"})
    with pytest.raises(ConfigError, match=message):
        resolve_device("banana")
    for command in (["evaluate", str(tmp_path)], ["compare", str(tmp_path), "A", "B"], ["ablation", "r"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--device", "banana"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_a_set_chunk_size_enters_the_run_hash_and_null_keeps_old_hashes(tmp_path: Path) -> None:
    """Another chunk size changes results by float rounding (as another batch size does): a set value is
    hashed, so a resume with another one is refused; null leaves the hashes of existing runs as they were."""
    base = load_config(REPO / "configs" / "embedded_paper_attacks_eps4.yaml", check_files=False)
    assert "chunk_size" not in base.hashed_fields()
    assert base.config_hash() == RECORDED_HASHES["embedded_paper_attacks_eps4"]
    four = base.model_copy(update={"chunk_size": 4})
    five = base.model_copy(update={"chunk_size": 5})
    assert four.hashed_fields()["chunk_size"] == 4
    assert len({base.config_hash(), four.config_hash(), five.config_hash()}) == 3
