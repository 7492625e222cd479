"""The cost frontier of `vidadv evaluate` on real runs: recorded costs and times, the files, the methods of
the frontier config, paired comparisons of estimator names, and runs without recorded counts."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from tests.attacks.tiny_models import TinyConv
from tests.evaluation.fakes import FAKES, config_dict, load_fake_config
from vidadv.attacks import build_attack
from vidadv.cli import main
from vidadv.evaluation.frontier import FrontierPoint, gradient_evaluations_per_clip, method_names
from vidadv.evaluation.outcomes import Outcome, Outcomes
from vidadv.experiments import run_attack, run_compare, run_evaluate, run_select
from vidadv.experiments.config import load_config
from vidadv.experiments.evaluate import _frontier_findings
from vidadv.experiments.frontier import run_costs
from vidadv.experiments.run_records import read_record
from vidadv.experiments.runner import attack_settings
from vidadv.experiments.runtime import RunLayout
from vidadv.utils.stats import bootstrap_mean_ci, paired_bootstrap_diff

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_frontier_config_attacks_group_into_its_methods_with_their_costs() -> None:
    """Every attack of configs/embedded_cost_frontier.yaml, built and recorded as the runner does: its
    method is the config's series name (written by hand) and its count the attack's own."""
    config = load_config(CONFIGS / "embedded_cost_frontier.yaml", check_files=False)
    model = TinyConv()
    built = {a.name: build_attack(a.spec, model, **config.attack_options(a)) for a in config.attacks}
    settings = {a.name: attack_settings(config, a, built[a.name]) for a in config.attacks}
    methods = method_names(settings)
    for name, method in methods.items():
        series = name.split("(")[0]
        assert method == ("VR" if series.startswith("VR") else series), name
        assert (
            gradient_evaluations_per_clip(name, settings[name]) == built[name].gradient_evaluations_per_clip
        )
    assert list(dict.fromkeys(methods.values())) == [
        "BIM",
        "VR",
        "TT",
        "MI+TT",
        "TT-iid5",
        "MI+TT-iid1",
        "TT-anti5",
        "MI+TT-anti5",
        "TT-sag2",
        "MI+TT-sag2",
    ]


# ------------------------------------------------------------------------------------------------
# A tiny real run: zoo models nl-s and tpn-s, 2 clips, 3 attacks of different costs
# ------------------------------------------------------------------------------------------------

TINY_ATTACKS = [
    {"name": "BIM(2)", "spec": "bim", "options": {"steps": 2}},
    {"name": "TT(1)", "spec": "tt", "options": {"steps": 1, "shift_length": 1}},
    {
        "name": "TT-anti3(2)",
        "spec": "tt",
        "options": {"steps": 2, "shift_length": 1, "shift_sampling": "antithetic", "shift_samples": 3},
    },
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    import torch

    root = tmp_path_factory.mktemp("tiny-frontier")
    config = {
        "name": "tiny frontier",
        "output_dir": str(root / "run"),
        "dataset": {
            "type": "synthetic",
            "split": "test",
            "num_clips": 2,
            "size": 32,
            "frames": 32,
            "seed": 0,
        },
        "models": [{"name": "nl-s", "label": "nl-s"}, {"name": "tpn-s", "label": "tpn-s"}],
        "whitebox": ["nl-s", "tpn-s"],
        "attacks": TINY_ATTACKS,
        "eps": "16/255",
        "steps": 2,
        "batch_size": 2,
        "device": "cpu",
        "seed": 0,
        "selection": "auto",
        "bootstrap_samples": 500,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_attack(path, progress=False) == 0
        assert run_evaluate(root / "run", progress=False, gallery=0) == 0
    finally:
        torch.set_num_threads(previous)
    return RunLayout.of(root / "run")


def _hand_asr(layout: RunLayout, attack: str) -> list[float]:
    """Per clip: the share of black-box models fooled, averaged over white-box models (from outcomes.csv)."""
    fooled: dict[tuple[str, str], dict[str, int]] = {}
    with (layout.eval_dir / "outcomes.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["attack"] == attack and row["variant"] == "float" and row["model"] != row["whitebox"]:
                fooled.setdefault((row["clip_id"], row["whitebox"]), {})[row["model"]] = int(row["fooled"])
    clips = list(dict.fromkeys(clip for clip, _ in fooled))
    values = []
    for clip in clips:
        shares = [sum(f.values()) / len(f) for (c, _), f in fooled.items() if c == clip]
        values.append(sum(shares) / len(shares))
    return values


def test_evaluate_writes_the_frontier_of_a_tiny_real_run(tiny_run: RunLayout) -> None:
    layout = tiny_run
    selected = json.loads(layout.selection_json.read_text())["selected"]
    assert len(selected) == 2
    with (layout.eval_dir / "frontier.csv").open() as handle:
        rows = {row["attack"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["BIM(2)", "TT(1)", "TT-anti3(2)"]
    assert {a: rows[a]["method"] for a in rows} == {"BIM(2)": "BIM", "TT(1)": "TT", "TT-anti3(2)": "TT-anti3"}
    # BIM: 2 steps x 1; TT(1), L = 1: 1 step x 3 shifts; antithetic k = 3: 2 steps x 3
    assert {a: int(rows[a]["gradient_evaluations_per_clip"]) for a in rows} == {
        "BIM(2)": 2,
        "TT(1)": 3,
        "TT-anti3(2)": 6,
    }
    summary = json.loads(layout.attack_summary.read_text())
    for attack in rows:
        records = [
            read_record(layout.adv_path(wb, attack, clip["clip_id"]))
            for wb in ("nl-s", "tpn-s")
            for clip in selected
        ]
        seconds = [r["time_s"] for r in records]
        assert float(rows[attack]["seconds_per_clip"]) == pytest.approx(sum(seconds) / len(seconds))
        own = [r for r in summary["rows"] if r["attack"] == attack]
        for row in own:
            mine = [r["time_s"] for r in records if r["whitebox"] == row["whitebox"]]
            assert row["attack_seconds"] == pytest.approx(sum(mine)) and row["done"] == len(mine)
            assert row["gradient_evaluations_per_step"] == records[0]["gradient_evaluations_per_step"]
        values = _hand_asr(layout, attack)
        assert len(values) == 2
        assert float(rows[attack]["blackbox_asr_pct"]) == pytest.approx(100 * sum(values) / len(values))
        interval = bootstrap_mean_ci(values, n_boot=500, seed=0)
        assert float(rows[attack]["ci_lo_pct"]) == pytest.approx(100 * interval.lo)
        assert float(rows[attack]["ci_hi_pct"]) == pytest.approx(100 * interval.hi)
    for name in ("frontier.png", "frontier_time.png"):
        with Image.open(layout.eval_dir / name) as image:
            assert image.format == "PNG"
    assert "Cost frontier" in (layout.eval_dir / "frontier.md").read_text()
    html = (layout.eval_dir / "report.html").read_text()
    assert "Cost frontier (float)" in html
    # the frontier opens the report: right after the run's facts, before the per-model ASR tables
    assert html.index("<h2>Run") < html.index("<h2>Cost frontier (float)") < html.index("<h2>Results: float")
    # its findings open the page, naming the best attack of frontier.csv (the pairing of the cheaper
    # attacks against it: test_frontier_findings_pair_each_cheaper_attack_with_the_best_over_the_same_clips)
    best = min(
        rows.values(), key=lambda r: (-float(r["blackbox_asr_pct"]), int(r["gradient_evaluations_per_clip"]))
    )
    findings = html[html.index('class="findings"') : html.index("<h2>Run")]
    assert f'highest average <span class="nw">black-box</span> ASR is {best["attack"]}&#39;s' in findings
    # and its plot comes before its long per-attack table
    frontier = html[html.index("<h2>Cost frontier (float)") : html.index("<h2>Results: float")]
    assert frontier.index("<figure>") < frontier.index("<table>")
    results = json.loads((layout.eval_dir / "results.json").read_text())
    assert [p["attack"] for p in results["variants"]["float"]["frontier"]] == list(rows)


def test_cli_compare_takes_estimator_attack_names(
    tiny_run: RunLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tiny_run.root), "TT-anti3(2)", "TT(1)"]) == 0
    assert "== TT-anti3(2) vs TT(1) (float)" in capsys.readouterr().out
    [path] = tiny_run.eval_dir.glob("compare_TT-anti3_2-*_vs_TT_1-*.json")
    rows = json.loads(path.read_text())["rows"]
    overall = [r for r in rows if r["whitebox"] == "all"]
    a, b = _hand_asr(tiny_run, "TT-anti3(2)"), _hand_asr(tiny_run, "TT(1)")
    assert overall[0]["diff"] == pytest.approx((sum(a) - sum(b)) / len(a))


# ------------------------------------------------------------------------------------------------
# Runs of the test stand-ins
# ------------------------------------------------------------------------------------------------


def _fake_run(tmp_path: Path, **overrides: Any) -> RunLayout:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "out", **overrides)))
    config = load_fake_config(path)
    assert run_select(config, progress=False, factories=FAKES) == 0
    assert run_attack(config, progress=False, factories=FAKES) == 0
    return RunLayout.of(tmp_path / "out")


def test_compare_of_matched_budgets_with_estimator_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attacks = [
        {"name": "TT(10)", "spec": "bim", "options": {"steps": 3}},
        {"name": "TT-anti3(17)", "spec": "rand"},
        {"name": "MI+TT-anti3(17)", "spec": "fgsm"},
    ]
    layout = _fake_run(tmp_path, attacks=attacks)
    assert run_compare(layout.root, "TT-anti3(17)", "TT(10)", progress=False, factories=FAKES) == 0
    out = capsys.readouterr().out
    assert "== TT-anti3(17) vs TT(10) (float)" in out
    [path] = layout.eval_dir.glob("compare_TT-anti3_17-*_vs_TT_10-*.json")
    assert len(list(layout.eval_dir.glob("compare_TT-anti3_17-*_vs_TT_10-*.png"))) == 1
    data = json.loads(path.read_text())
    assert (data["attack_a"], data["attack_b"]) == ("TT-anti3(17)", "TT(10)")
    labels = {c["clip_id"]: c["label"] for c in json.loads(layout.selection_json.read_text())["selected"]}
    assert run_evaluate(layout.root, progress=False, gallery=0, factories=FAKES) == 0
    fooled: dict[tuple[str, str, str, str], int] = {}
    with (layout.eval_dir / "outcomes.csv").open() as handle:
        for row in csv.DictReader(handle):
            fooled[(row["whitebox"], row["attack"], row["clip_id"], row["model"])] = int(row["fooled"])
    for row in data["rows"]:
        if row["model"] in ("A", "B", "C"):
            a = [fooled[(row["whitebox"], "TT-anti3(17)", c, row["model"])] for c in labels]
            b = [fooled[(row["whitebox"], "TT(10)", c, row["model"])] for c in labels]
            assert row["diff"] == pytest.approx((sum(a) - sum(b)) / len(labels))
    with pytest.raises(ValueError, match=r"unknown attack 'TT-anti3\(10\)'"):
        run_compare(layout.root, "TT-anti3(10)", "TT(10)", progress=False, factories=FAKES)


def test_evaluate_of_a_run_without_recorded_counts_says_which_attack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _fake_run(tmp_path)
    config = load_fake_config(tmp_path / "config.yaml")
    costs = run_costs(config, layout)
    assert {a: c.gradient_evaluations for a, c in costs.items()} == {"FGSM": 1, "BIM(3)": 3, "RAND": 2}
    # a run recorded before the counts: neither the settings nor the summary rows have them
    summary = json.loads(layout.attack_summary.read_text())
    for settings in summary["attack_settings"].values():
        del settings["gradient_evaluations_per_step"]
    for row in summary["rows"]:
        del row["gradient_evaluations_per_step"], row["attack_seconds"]
    layout.attack_summary.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"attack 'FGSM': the run records no gradient evaluation count"):
        run_costs(config, layout)
    assert run_evaluate(layout.root, progress=False, gallery=0, factories=FAKES) == 0
    assert "no cost frontier: attack 'FGSM': the run records no gradient" in capsys.readouterr().out
    assert not (layout.eval_dir / "frontier.csv").exists()
    # the count only in the per-clip records (summary rows): used; times from the older mean_time_s
    for row in summary["rows"]:
        row["gradient_evaluations_per_step"] = 1
    layout.attack_summary.write_text(json.dumps(summary))
    costs = run_costs(config, layout)
    assert costs["BIM(3)"].gradient_evaluations == 3
    rows = [r for r in summary["rows"] if r["attack"] == "BIM(3)"]
    expected = sum(r["mean_time_s"] * r["done"] for r in rows) / sum(r["done"] for r in rows)
    assert costs["BIM(3)"].seconds_per_clip == pytest.approx(expected)
    layout.attack_summary.unlink()
    with pytest.raises(ValueError, match=r"attack_summary.json' is missing"):
        run_costs(config, layout)


def test_evaluate_writes_no_frontier_when_every_attack_costs_the_same(tmp_path: Path) -> None:
    attacks = [{"name": "BIM(2)", "spec": "bim"}, {"name": "RAND", "spec": "rand"}]
    layout = _fake_run(tmp_path, attacks=attacks)
    assert run_evaluate(layout.root, progress=False, gallery=0, factories=FAKES) == 0
    assert (layout.eval_dir / "table1.csv").exists() and not (layout.eval_dir / "frontier.csv").exists()


def test_frontier_findings_pair_each_cheaper_attack_with_the_best_over_the_same_clips() -> None:
    """A hand-made outcomes table: 2 white-box models x 3 models, 6 clips; the most expensive attack is
    best, and each cheaper one's difference is the paired bootstrap of the per-clip black-box averages."""
    models, whiteboxes, clips = ("m1", "m2", "m3"), ("m1", "m2"), [f"c{i}" for i in range(6)]
    rng = random.Random(3)
    fooled_share = {"BIM(10)": 0.2, "TT(3)": 0.5, "SAG(25)": 0.9}
    rows = [
        Outcome(wb, attack, clip, model, 0, 0, int(fooled), bool(fooled))
        for attack, share in fooled_share.items()
        for wb in whiteboxes
        for clip in clips
        for model in models
        for fooled in [model != wb and rng.random() < share]
    ]
    outcomes = Outcomes(models, whiteboxes, tuple(fooled_share), tuple(rows))

    def per_clip(attack: str) -> list[float]:  # black-box share per white-box, then averaged
        share = {
            (wb, c): sum(r.fooled for r in rows if (r.attack, r.whitebox, r.clip_id) == (attack, wb, c)) / 2
            for wb in whiteboxes
            for c in clips
        }
        return [(share[("m1", c)] + share[("m2", c)]) / 2 for c in clips]

    evals = {"BIM(10)": 10, "TT(3)": 45, "SAG(25)": 50}
    points = [
        FrontierPoint(a, a, evals[a], None, len(clips), sum(per_clip(a)) / 6, 0.0, 1.0) for a in fooled_share
    ]
    assert max(points, key=lambda p: p.asr).attack == "SAG(25)"
    boot = {"n_boot": 400, "seed": 0}
    sentences = _frontier_findings(outcomes, [asdict(p) for p in points], whiteboxes, boot)
    assert "is SAG(25)'s" in sentences[0]
    # the sentence names one cheaper attack (which one is the rule's business, tested in test_findings)
    # with exactly the paired interval of its per-clip averages against SAG(25)'s
    expected = {
        a: paired_bootstrap_diff(per_clip(a), per_clip("SAG(25)"), **boot) for a in ("BIM(10)", "TT(3)")
    }
    texts = {
        a: f"{a} at {evals[a]} evaluations, {100 * d.estimate:+.1f} points "
        f"(95 % CI [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}])"
        for a, d in expected.items()
    }
    assert sum(text in sentences[1] for text in texts.values()) == 1, (sentences[1], texts)
    assert "2 paired comparisons against SAG(25)" in sentences[2]
