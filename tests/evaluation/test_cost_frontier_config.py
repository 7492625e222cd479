"""configs/embedded_cost_frontier*.yaml: valid, separate clips, and the gradient budgets they claim."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tests.attacks.tiny_models import TinyConv
from vidadv.attacks import build_attack
from vidadv.experiments.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BUDGETS = (10, 30, 50, 100, 150)


def _evaluations(name: str) -> dict[str, int]:
    config = load_config(CONFIGS / name, check_files=False)
    assert config.whitebox and len(config.whitebox) == 3
    model = TinyConv()
    return {
        a.name: build_attack(a.spec, model, **config.attack_options(a)).gradient_evaluations_per_clip
        for a in config.attacks
    }


def test_frontier_spends_about_each_budget_per_method() -> None:
    costs = _evaluations("embedded_cost_frontier.yaml")
    assert costs["TT(10)"] == 150 and costs["MI+TT(10)"] == 150 and costs["BIM(150)"] == 150
    assert sorted(v for k, v in costs.items() if k.startswith("TT(")) == [15 * n for n in range(1, 11)]
    series: dict[str, list[int]] = defaultdict(list)
    for name, cost in costs.items():
        method = name.split("(")[0]
        if method not in ("TT", "MI+TT"):
            series["VR" if method.startswith("VR") else method].append(cost)
    assert set(series) == {
        "BIM",
        "VR",
        "TT-iid5",
        "MI+TT-iid1",
        "TT-anti5",
        "MI+TT-anti5",
        "TT-sag2",
        "MI+TT-sag2",
    }
    for name, costs_of_series in series.items():
        assert len(costs_of_series) == len(BUDGETS), name
        for cost, budget in zip(sorted(costs_of_series), BUDGETS, strict=True):
            assert abs(cost - budget) <= 1, (name, cost, budget)
        if name not in ("BIM", "VR"):
            assert sorted(costs_of_series)[2] <= 50, name  # eligible for the target: <= 50 evaluations
    assert sum(costs.values()) == 3890  # the cost stated in the config's header


def test_tuning_runs_every_estimator_at_about_50_on_other_clips() -> None:
    costs = _evaluations("embedded_cost_frontier_tuning.yaml")
    assert costs.pop("TT(10)") == 150 and costs.pop("MI+TT(10)") == 150
    assert len(costs) == 20 and all(abs(c - 50) <= 1 for c in costs.values())
    assert sum(costs.values()) + 300 == 1304
    tuning = load_config(CONFIGS / "embedded_cost_frontier_tuning.yaml", check_files=False)
    frontier = load_config(CONFIGS / "embedded_cost_frontier.yaml", check_files=False)
    assert dict(tuning.dataset) == {**dict(frontier.dataset), "seed": 1}  # other clips, same distribution
