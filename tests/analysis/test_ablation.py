"""TT ablation tooling (Figure 4, Table 2): names, detection, configs, and tables recomputed from clips."""

from __future__ import annotations

import csv
import json
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.evaluation.fakes import FakeDataset, config_dict, load_fake_config
from vidadv.attacks import build_attack
from vidadv.experiments import run_attack, run_select
from vidadv.experiments.ablation import (
    TT_DEFAULTS,
    TTVariant,
    attack_costs,
    detect_ablations,
    format_tt_name,
    parse_tt_name,
    run_ablation_report,
    tt_variants,
)
from vidadv.experiments.config import ModelSpec, config_from_dict, load_config
from vidadv.experiments.runtime import Factories, RunLayout
from vidadv.models.common import ResidualBlock
from vidadv.utils.io import load_tensors
from vidadv.utils.stats import paired_bootstrap_diff

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True, scope="module")
def _single_thread_torch() -> Iterator[None]:
    """The tiny stand-in models run fastest (and least disturbed by a busy machine) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Table 2 of the paper as quoted in the issue: (TT(1), TT(10)) average black-box ASR %, NL-101 white-box.
PAPER = {
    "uniform": (65.06, 49.80),
    "linear": (66.37, 52.60),
    "gaussian": (66.80, 51.35),
    "adjacent": (65.56, 43.37),
    "random": (58.06, 23.25),
    "remote": (57.31, 26.81),
}


# ------------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------------


def test_parse_names_fill_in_tt_defaults() -> None:
    assert parse_tt_name("TT(1) L=3") == TTVariant("TT(1) L=3", 1, 3, "gaussian", "adjacent")
    assert parse_tt_name("TT(10) weights=linear") == TTVariant(
        "TT(10) weights=linear", 10, 7, "linear", "adjacent"
    )
    assert parse_tt_name("TT(10) strategy=remote L=2") == TTVariant(
        "TT(10) strategy=remote L=2", 10, 2, "gaussian", "remote"
    )
    assert parse_tt_name("TT(10)") == TTVariant("TT(10)", 10, 7, "gaussian", "adjacent")
    for other in ("MI+TT(10)", "TI+TT(1)", "FGSM", "BIM(150)", "tt"):
        assert parse_tt_name(other) is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("TT(10) L=x", "L must be an integer"),
        ("TT(10) L=-1", "L must be an integer"),
        ("TT(10) weights=box", "weights must be one of uniform, linear, gaussian"),
        ("TT(10) strategy=far", "strategy must be one of adjacent, remote, random"),
        ("TT(10) sigma=3", "unknown setting 'sigma'"),
        ("TT(10) L=3 L=4", "sets 'L' twice"),
        ("TT(10) L3", "not key=value"),
        ("TT(0)", "must be >= 1"),
        ("TT(ten)", "does not follow the convention"),
        ("TT(10)x", "does not follow the convention"),
    ],
)
def test_malformed_names_are_clear_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_tt_name(name)


@given(
    n=st.integers(1, 50),
    length=st.none() | st.integers(0, 20),
    weights=st.none() | st.sampled_from(["uniform", "linear", "gaussian"]),
    strategy=st.none() | st.sampled_from(["adjacent", "random", "remote"]),
)
def test_format_and_parse_round_trip(
    n: int, length: int | None, weights: str | None, strategy: str | None
) -> None:
    name = format_tt_name(n, length, weights, strategy)
    parsed = parse_tt_name(name)
    assert parsed is not None and parsed.name == name and parsed.iterations == n
    assert parsed.shift_length == (TT_DEFAULTS["shift_length"] if length is None else length)
    assert parsed.weights == (weights or TT_DEFAULTS["weights"])
    assert parsed.strategy == (strategy or TT_DEFAULTS["strategy"])


def test_tt_defaults_are_build_attacks_defaults() -> None:
    attack = build_attack("tt", nn.Linear(1, 1))
    assert {key: attack.options[key] for key in TT_DEFAULTS} == TT_DEFAULTS


def _fake_config(tmp_path: Path, attacks: list[dict[str, Any]], **overrides: Any) -> Any:
    raw = config_dict(tmp_path / "out", attacks=attacks, **overrides)
    return config_from_dict(raw, check_files=False, model_names=None, attack_names=None, dataset_check=None)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ({"name": "TT(2) L=3", "spec": "tt", "options": {"shift_length": 2}}, "shift_length=3"),
        ({"name": "TT(2) L=7", "spec": "tt"}, None),  # omitted option = build_attack's default
        ({"name": "TT(2) weights=linear", "spec": "tt"}, "weights='linear'"),
        ({"name": "TT(10)", "spec": "tt"}, "steps=10"),  # the config's steps are 2
        ({"name": "TT(2)", "spec": "tt+mi"}, "spec is 'tt\\+mi'"),
        ({"name": "TT(2) strategy=remote", "spec": "tt", "options": {"strategy": "random"}}, "strategy"),
    ],
)
def test_names_must_agree_with_the_attack_options(
    tmp_path: Path, attack: dict[str, Any], message: str | None
) -> None:
    config = _fake_config(tmp_path, [attack, {"name": "FGSM", "spec": "fgsm"}])
    if message is None:
        assert [v.name for v in tt_variants(config)] == [attack["name"]]
    else:
        with pytest.raises(ValueError, match=message):
            tt_variants(config)


def test_detect_groups_by_the_one_setting_that_varies() -> None:
    names = [
        "TT(1) L=1",
        "TT(1) L=3",
        "TT(1)",
        "TT(1) L=7",  # same settings as "TT(1)": the first name represents them
        "TT(1) weights=uniform",
        "TT(1) strategy=remote",
        "TT(10) L=2 weights=linear",
        "TT(10) L=4 weights=linear",
        "TT(10) L=4 strategy=random",
    ]
    ablations = detect_ablations([parse_tt_name(n) for n in names])  # type: ignore[misc]
    sweeps = {key: [v.name for v in group] for key, group in ablations.shift_sweeps.items()}
    assert sweeps == {
        (1, "gaussian", "adjacent"): ["TT(1) L=1", "TT(1) L=3", "TT(1)"],
        (10, "linear", "adjacent"): ["TT(10) L=2 weights=linear", "TT(10) L=4 weights=linear"],
    }
    weights = {key: {k: v.name for k, v in group.items()} for key, group in ablations.weights.items()}
    assert weights == {
        (1, 7, "adjacent"): {"uniform": "TT(1) weights=uniform", "gaussian": "TT(1)"},
    }
    strategies = {key: {k: v.name for k, v in g.items()} for key, g in ablations.strategies.items()}
    assert strategies == {(1, 7, "gaussian"): {"adjacent": "TT(1)", "remote": "TT(1) strategy=remote"}}
    assert "TT(1) L=7" not in ablations.attack_names
    assert detect_ablations([parse_tt_name("TT(1)"), parse_tt_name("TT(10)")]).empty  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------------
# Config files
# ------------------------------------------------------------------------------------------------


class _Residual(ResidualBlock):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scale_residual_grad(self.conv(h))


class StandIn(nn.Module):
    """A tiny residual 3-D conv net with a Grad-CAM layer (what SGM and ATA need), 12 classes."""

    attention_layer = "block"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv3d(3, 4, 3, padding=1)
        self.block = _Residual(4)
        self.head = nn.Linear(4, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(torch.relu(self.stem(x))).mean(dim=(2, 3, 4)))


ZOO = ["nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l"]
PAPER_ATTACKS = [
    "FGSM",
    "BIM(10)",
    "MI(10)",
    "DI(10)",
    "TI(1)",
    "SIM(10)",
    "SGM(10)",
    "ATA(10)",
    "TT(1)",
    "TT(10)",
    "TI+TT(1)",
    "MI+TT(10)",
    "ATA+TT(10)",
]


def _check_common(config: Any, clips_per_class: int = 20) -> None:
    assert config.model_labels == tuple(ZOO)
    assert dict(config.dataset) == {
        "type": "synthetic",
        "split": "test",
        "num_clips": 720,
        "size": 32,
        "frames": 32,
        "seed": 0,
    }
    # the first `clips_per_class` all-six-correct clips of each of the 12 classes
    assert config.clips_per_class == clips_per_class
    # every attack is accepted by build_attack and runs one gradient estimate on a 32-frame clip
    model = StandIn()
    clip = torch.rand(1, 3, 32, 8, 8, generator=torch.Generator().manual_seed(0))
    for attack in config.attacks:
        built = build_attack(attack.spec, model, **config.attack_options(attack))
        gradient = built.estimate_gradient(clip, torch.tensor([3]))
        assert gradient.shape == clip.shape and torch.isfinite(gradient).all()


@pytest.mark.parametrize("name", ["ablation_shift_length", "ablation_weights_strategies"])
def test_ablation_configs(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml", check_files=False)
    _check_common(config)
    assert config.whitebox == ("nl-l",) and config.batch_size == 16
    assert config.eps == pytest.approx(16 / 255)
    variants = tt_variants(config)  # names agree with options
    assert len(variants) == len(config.attacks)
    ablations = detect_ablations(variants)
    settings = {(v.iterations, v.shift_length, v.weights, v.strategy) for v in variants}
    if name == "ablation_shift_length":
        expected = {(n, length, "gaussian", "adjacent") for n in (1, 10) for length in range(1, 10)}
        assert settings == expected and set(ablations.shift_sweeps) == {
            (1, "gaussian", "adjacent"),
            (10, "gaussian", "adjacent"),
        }
    else:
        expected = {(n, 7, w, "adjacent") for n in (1, 10) for w in ("uniform", "linear", "gaussian")}
        expected |= {(n, 7, "gaussian", s) for n in (1, 10) for s in ("adjacent", "random", "remote")}
        assert settings == expected
        assert {k: len(g) for k, g in ablations.weights.items()} == {
            (1, 7, "adjacent"): 3,
            (10, 7, "adjacent"): 3,
        }
        assert {k: len(g) for k, g in ablations.strategies.items()} == {
            (1, 7, "gaussian"): 3,
            (10, 7, "gaussian"): 3,
        }
    # compute: TT(n) with shift length L costs (2L+1) * n clip forward+backward passes per clip
    costs = {row["attack"]: row["per_clip"] for row in attack_costs(config, StandIn(), num_clips=204)}
    assert costs == {v.name: (2 * v.shift_length + 1) * v.iterations for v in variants}
    for variant in variants:
        options = config.attack_options(config.attack(variant.name))
        assert options["step_size"] == pytest.approx(config.eps / variant.iterations)


@pytest.mark.parametrize(("suffix", "eps"), [("", 16), ("_eps8", 8), ("_eps4", 4)])
def test_embedded_paper_attack_configs(suffix: str, eps: int) -> None:
    config = load_config(CONFIGS / f"embedded_paper_attacks{suffix}.yaml", check_files=False)
    # all three deep models and 20 clips per class at the paper's budget; nl-l alone on the first 10
    # clips per class (a subset of the 16/255 clips) for the 8/255 and 4/255 sensitivity runs
    _check_common(config, clips_per_class=20 if eps == 16 else 10)
    assert config.whitebox == (("nl-l", "slowfast-l", "tpn-l") if eps == 16 else ("nl-l",))
    assert [a.name for a in config.attacks] == [*PAPER_ATTACKS, "VR(10)", "BIM(150)"]
    assert config.eps == pytest.approx(eps / 255)
    for attack in config.attacks:
        options = config.attack_options(attack)
        steps = (
            150
            if attack.name == "BIM(150)"
            else (1 if attack.name.endswith("(1)") or attack.name == "FGSM" else 10)
        )
        assert options["steps"] == steps, attack.name
        assert options["step_size"] == pytest.approx(eps / 255 / steps), attack.name
        if "tt" in attack.spec.split("+"):
            assert {k: options[k] for k in TT_DEFAULTS} == {
                "shift_length": 7,
                "weights": "gaussian",
                "strategy": "adjacent",
            }
    costs = {row["attack"]: row for row in attack_costs(config, StandIn())}
    # the compute-matched controls use as many gradient evaluations as TT(10): 10 steps x (2L+1 = 15)
    assert costs["TT(10)"]["per_clip"] == 150
    assert costs["VR(10)"]["per_clip"] == costs["BIM(150)"]["per_clip"] == 150
    assert costs["VR(10)"]["per_step"] == 15 and costs["BIM(150)"]["per_step"] == 1


# ------------------------------------------------------------------------------------------------
# A finished ablation run on tiny stand-ins
# ------------------------------------------------------------------------------------------------


class TemporalNet(nn.Module):
    """Logits from per-frame channel means weighted by a model-specific temporal wave (any T).

    w[k, c, t] = 40 [k == c] + B[k, c] cos(2 pi f t / T + phi): the class is mostly "which channel is
    brightest" (as in the evaluation tests' fakes), but the gradient changes sign over time, differently
    for every model, so temporal translation matters and transfer between models is partial.
    """

    def __init__(self, seed: int, num_classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("base", 40.0 * torch.eye(num_classes, 3))
        self.register_buffer("wave", 80.0 * torch.randn(num_classes, 3, generator=generator))
        self.frequency = 1 + int(torch.randint(0, 3, (), generator=generator))
        self.phase = float(2 * torch.pi * torch.rand((), generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(3, 4))  # (N, C, T)
        T = means.shape[-1]
        time = torch.arange(T, dtype=x.dtype, device=x.device)
        wave = torch.cos(2 * torch.pi * self.frequency * time / T + self.phase)  # (T,)
        weights = self.base[:, :, None] + self.wave[:, :, None] * wave  # (K, C, T)
        return torch.einsum("nct,kct->nk", means - 0.5, weights) / T


def temporal_model_factory(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
    return TemporalNet(zlib.crc32(spec.name.encode()), spec.num_classes or 3)


class LongFakeDataset(FakeDataset):
    """The evaluation tests' fake clips, played forwards then backwards: 16 frames (TT needs T > 2L)."""

    def clip(self, index: int) -> torch.Tensor:
        base = super().clip(index)
        return torch.cat([base, base.flip(1)], dim=1)


def long_dataset_factory(spec: dict[str, Any]) -> LongFakeDataset:
    return LongFakeDataset(spec)


#: the temporal stand-in models and the long clips; vidadv's real attacks
TEMPORAL = Factories(load_model=temporal_model_factory, build_dataset=long_dataset_factory)


def _tt(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "spec": "tt", "options": options}


ONE_STEP = {"steps": 1, "step_size": "6/255"}
RUN_ATTACKS = [
    _tt("TT(1) L=1", shift_length=1, **ONE_STEP),
    _tt("TT(1) L=3", shift_length=3, **ONE_STEP),
    _tt("TT(1)", **ONE_STEP),
    _tt("TT(1) weights=uniform", weights="uniform", **ONE_STEP),
    _tt("TT(1) weights=linear", weights="linear", **ONE_STEP),
    _tt("TT(1) strategy=random", strategy="random", **ONE_STEP),
    _tt("TT(1) strategy=remote", strategy="remote", **ONE_STEP),
    _tt("TT(2) L=1", shift_length=1),
    _tt("TT(2)"),
    _tt("TT(2) strategy=remote", strategy="remote"),
    {"name": "FGSM", "spec": "fgsm", "options": {"steps": 1}},
]
MODEL_NAMES = {"A": "net-a", "B": "net-b", "C": "net-c", "D": "net-d"}


def _run(
    root: Path, attacks: list[dict[str, Any]], num_clips: int, whitebox: tuple[str, ...] = ("A",)
) -> Path:
    out = root / "out"
    raw = config_dict(
        out,
        dataset={"name": "fake", "num_clips": num_clips, "seed": 1},
        models=[{"name": name, "label": label, "num_classes": 3} for label, name in MODEL_NAMES.items()],
        whitebox=list(whitebox),
        attacks=attacks,
        eps="6/255",
        step_size=None,
        batch_size=4,
    )
    path = root / "config.yaml"
    path.write_text(json.dumps(raw))
    config = load_fake_config(path)
    assert run_select(config, progress=False, factories=TEMPORAL) == 0
    assert run_attack(config, progress=False, factories=TEMPORAL) == 0
    return out


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = _run(tmp_path_factory.mktemp("ablation"), RUN_ATTACKS, num_clips=18)
    report = out / "report"
    code = run_ablation_report(out, report, progress=False, factories=TEMPORAL)
    return {"out": out, "report": report, "code": code}


def _fooled(out: Path) -> dict[tuple[str, str], dict[str, int]]:
    """{(attack, clip id): {model: fooled}}, clips in selection order, from the saved clips and new models."""
    layout = RunLayout.of(out)
    selection = json.loads(layout.selection_json.read_text())
    clips = [(c["clip_id"], c["label"]) for c in selection["selected"]]
    models = {
        label: temporal_model_factory(
            ModelSpec(name, label, num_classes=3), torch.device("cpu"), torch.float32
        )
        for label, name in MODEL_NAMES.items()
    }
    result = {}
    for attack in RUN_ATTACKS:
        for clip_id, label in clips:
            adversarial = load_tensors(layout.adv_path("A", attack["name"], clip_id))["adv"].float()
            with torch.no_grad():
                result[(attack["name"], clip_id)] = {
                    m: int(model(adversarial[None]).argmax(1).item() != label) for m, model in models.items()
                }
    return result


def _blackbox_fractions(fooled: dict, attack: str) -> list[float]:
    rows = [v for (a, _clip), v in fooled.items() if a == attack]  # in selection order
    return [(v["B"] + v["C"] + v["D"]) / 3 for v in rows]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_shift_length_table_matches_recomputed_outcomes(ablation_run: dict[str, Any]) -> None:
    assert ablation_run["code"] == 0
    fooled = _fooled(ablation_run["out"])
    rows = _read_csv(ablation_run["report"] / "shift_length.csv")
    assert [(r["iterations"], r["L"], r["attack"]) for r in rows] == [
        ("1", "1", "TT(1) L=1"),
        ("1", "3", "TT(1) L=3"),
        ("1", "7", "TT(1)"),
        ("2", "1", "TT(2) L=1"),
        ("2", "7", "TT(2)"),
    ]
    assert set(rows[0]) >= {"B", "C", "D", "average"} and "A" not in rows[0]  # black-box columns only
    values = []
    for row in rows:
        outcomes = [v for (a, _c), v in fooled.items() if a == row["attack"]]
        assert int(row["n_clips"]) == len(outcomes) > 5
        for model in "BCD":
            expected = 100 * sum(o[model] for o in outcomes) / len(outcomes)
            assert float(row[model]) == pytest.approx(expected, abs=0.006)
            values.append(expected)
        average = 100 * sum(_blackbox_fractions(fooled, row["attack"])) / len(outcomes)
        assert float(row["average"]) == pytest.approx(average, abs=0.006)
        assert float(row["average_lo"]) <= float(row["average"]) <= float(row["average_hi"])
    assert len(set(values)) > 1  # the attacks do not all score the same (the check can fail)
    assert "TT(2), white-box A" in (ablation_run["report"] / "shift_length.md").read_text()


def test_figure4_plots_are_written(ablation_run: dict[str, Any]) -> None:
    from PIL import Image

    for name in ("figure4_tt1.png", "figure4_tt2.png"):
        path = ablation_run["report"] / name
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
            darkest, brightest = image.convert("L").getextrema()
            assert brightest - darkest > 100  # lines and text on the canvas, not a blank image


def test_table2_matches_recomputed_outcomes_and_the_paper(ablation_run: dict[str, Any]) -> None:
    fooled = _fooled(ablation_run["out"])
    rows = _read_csv(ablation_run["report"] / "table2.csv")
    cells = {(r["factor"], r["setting"], r["iterations"]): r for r in rows}
    assert set(cells) == {
        ("weights", "uniform", "1"),
        ("weights", "linear", "1"),
        ("weights", "gaussian", "1"),
        ("strategy", "adjacent", "1"),
        ("strategy", "random", "1"),
        ("strategy", "remote", "1"),
        ("strategy", "adjacent", "2"),
        ("strategy", "remote", "2"),
    }
    assert (
        cells[("weights", "gaussian", "1")]["attack"]
        == cells[("strategy", "adjacent", "1")]["attack"]
        == "TT(1)"
    )
    for (_factor, setting, n), row in cells.items():
        fractions = _blackbox_fractions(fooled, row["attack"])
        assert float(row["blackbox_avg"]) == pytest.approx(100 * sum(fractions) / len(fractions), abs=0.006)
        assert float(row["lo"]) <= float(row["blackbox_avg"]) <= float(row["hi"])
        expected_paper = {"1": f"{PAPER[setting][0]:.2f}", "10": f"{PAPER[setting][1]:.2f}"}.get(n, "")
        assert row["paper"] == expected_paper
    markdown = (ablation_run["report"] / "table2.md").read_text()
    assert "66.80" in markdown and "57.31" in markdown


def test_paired_differences_match_an_independent_bootstrap(ablation_run: dict[str, Any]) -> None:
    fooled = _fooled(ablation_run["out"])
    rows = _read_csv(ablation_run["report"] / "table2_pairs.csv")
    pairs = {(r["attack_a"], r["attack_b"]): r for r in rows}
    assert set(pairs) == {
        ("TT(1)", "TT(1) weights=uniform"),
        ("TT(1) weights=linear", "TT(1) weights=uniform"),
        ("TT(1)", "TT(1) weights=linear"),
        ("TT(1)", "TT(1) strategy=random"),
        ("TT(1)", "TT(1) strategy=remote"),
        ("TT(1) strategy=remote", "TT(1) strategy=random"),
        ("TT(2)", "TT(2) strategy=remote"),
    }
    for (a, b), row in pairs.items():
        fa, fb = _blackbox_fractions(fooled, a), _blackbox_fractions(fooled, b)
        interval = paired_bootstrap_diff(fa, fb, n_boot=500, seed=5)  # config: bootstrap_samples, seed
        assert float(row["diff"]) == pytest.approx(100 * (sum(fa) - sum(fb)) / len(fa), abs=0.006)
        assert float(row["lo"]) == pytest.approx(100 * interval.lo, abs=0.006)
        assert float(row["hi"]) == pytest.approx(100 * interval.hi, abs=0.006)
    assert any(float(r["lo"]) < float(r["hi"]) for r in rows)  # some interval is not a single point
    assert pairs[("TT(1)", "TT(1) weights=uniform")]["paper_diff"] == f"{66.80 - 65.06:.2f}"
    assert pairs[("TT(1)", "TT(1) strategy=remote")]["paper_diff"] == f"{65.56 - 57.31:.2f}"
    assert pairs[("TT(2)", "TT(2) strategy=remote")]["paper_diff"] == ""


def test_summary_json_and_default_output_folder(
    ablation_run: dict[str, Any], capsys: pytest.CaptureFixture
) -> None:
    summary = json.loads((ablation_run["report"] / "ablation.json").read_text())
    assert {"shift_length", "table2", "pairs", "missing"} <= set(summary) and summary["missing"] == []
    assert run_ablation_report(ablation_run["out"], progress=False, factories=TEMPORAL) == 0
    default = RunLayout.of(ablation_run["out"]).eval_dir / "ablation"
    assert (default / "table2.md").read_text() == (ablation_run["report"] / "table2.md").read_text()
    printed = capsys.readouterr().out
    assert "TT(1), white-box A" in printed and "Paired differences" in printed


def test_a_run_without_ablation_attacks_is_a_clear_error(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        [{"name": "FGSM", "spec": "fgsm", "options": {"steps": 1}}, _tt("TT(1)", **ONE_STEP)],
        num_clips=6,
    )
    with pytest.raises(ValueError, match="contains no TT ablation .*attacks: FGSM, TT\\(1\\)"):
        run_ablation_report(out, progress=False, factories=TEMPORAL)


def test_several_whitebox_models_and_missing_clips(tmp_path: Path) -> None:
    attacks = [_tt("TT(1) L=1", shift_length=1, **ONE_STEP), _tt("TT(1) L=2", shift_length=2, **ONE_STEP)]
    out = _run(tmp_path, attacks, num_clips=8, whitebox=("A", "C"))
    layout = RunLayout.of(out)
    clip_id = json.loads(layout.selection_json.read_text())["selected"][0]["clip_id"]
    layout.adv_path("C", "TT(1) L=2", clip_id).unlink()
    report = tmp_path / "report"
    assert run_ablation_report(out, report, progress=False, factories=TEMPORAL) == 1
    assert (report / "figure4_tt1_A.png").is_file() and (report / "figure4_tt1_C.png").is_file()
    rows = _read_csv(report / "shift_length.csv")
    assert [(r["whitebox"], r["attack"], r["n_clips"]) for r in rows] == [
        ("A", "TT(1) L=1", "8"),
        ("A", "TT(1) L=2", "8"),
        ("C", "TT(1) L=1", "8"),
        ("C", "TT(1) L=2", "7"),  # the missing clip is left out
    ]
    # with several white-box models every model is a column; the white-box model's own cell is blank
    assert [r["A"] == "" for r in rows] == [True, True, False, False]
    assert [r["C"] == "" for r in rows] == [False, False, True, True]


def test_recorded_settings_not_names_define_the_ablation(tmp_path: Path) -> None:
    attacks = [
        _tt("short shifts", shift_length=1, **ONE_STEP),
        _tt("TT(1) L=9", shift_length=3, **ONE_STEP),  # a misleading name: the settings say L=3
        _tt("uniform copies", shift_length=1, weights="uniform", **ONE_STEP),
        {"name": "TT(1) L=2", "spec": "tt+mi", "options": {"steps": 1, "shift_length": 2}},  # not plain tt
    ]
    out = _run(tmp_path, attacks, num_clips=6)
    settings = json.loads(RunLayout.of(out).attack_summary.read_text())["attack_settings"]
    assert settings["short shifts"]["options"]["weights"] == "gaussian"  # build_attack's default, recorded
    assert settings["TT(1) L=2"]["spec"] == "mi+tt"
    report = tmp_path / "report"
    assert run_ablation_report(out, report, progress=False, factories=TEMPORAL) == 0
    rows = _read_csv(report / "shift_length.csv")
    assert [(r["L"], r["attack"]) for r in rows] == [("1", "short shifts"), ("3", "TT(1) L=9")]
    table2 = _read_csv(report / "table2.csv")
    assert [(r["setting"], r["attack"]) for r in table2] == [
        ("uniform", "uniform copies"),
        ("gaussian", "short shifts"),
    ]


def test_runs_without_recorded_settings_are_read_from_their_names(
    ablation_run: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(ablation_run["out"], out)
    layout = RunLayout.of(out)
    summary = json.loads(layout.attack_summary.read_text())
    del summary["attack_settings"]
    layout.attack_summary.write_text(json.dumps(summary))
    report = tmp_path / "report"
    assert run_ablation_report(out, report, progress=False, factories=TEMPORAL) == 0
    for name in ("shift_length.csv", "table2.csv", "table2_pairs.csv", "table2.md", "shift_length.md"):
        assert (report / name).read_text() == (ablation_run["report"] / name).read_text(), name
