"""The runner builds each attack once per white-box model and records its structured settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.evaluation.fakes import (
    FAKES,
    attack_factory,
    dataset_factory,
    load_fake_config,
    model_factory,
    write_config,
)
from vidadv.experiments import run_attack, run_select
from vidadv.experiments.runner import recorded_attack_settings
from vidadv.experiments.runtime import Factories, RunLayout
from vidadv.utils.io import load_tensor_metadata


def test_each_attack_is_built_once_per_whitebox_and_its_settings_are_recorded(tmp_path: Path) -> None:
    built: list[tuple[str, int]] = []

    def counting_factory(spec: str, model: torch.nn.Module, **options: Any) -> Any:
        built.append((spec, options["seed"]))
        return attack_factory(spec, model, **options)

    config = load_fake_config(write_config(tmp_path / "config.yaml", tmp_path / "out"))
    assert run_select(config, progress=False, factories=FAKES) == 0
    assert (
        run_attack(
            config,
            progress=False,
            factories=Factories(model_factory, dataset_factory, counting_factory),
        )
        == 0
    )
    layout = RunLayout.of(tmp_path / "out")
    selected = json.loads(layout.selection_json.read_text())["selected"]
    assert len(selected) > 2  # several batches of 2 clips
    # 2 white-box models x 3 attacks, whatever the number of batches; built with the config seed
    assert sorted(built) == sorted([("fgsm", 5), ("bim", 5), ("rand", 5)] * 2)
    settings = recorded_attack_settings(layout)
    assert list(settings) == ["FGSM", "BIM(3)", "RAND"]
    assert settings["BIM(3)"] == {
        "name": "BIM(3)",
        "spec": "bim",
        "steps": 3,
        "eps": 4 / 255,
        "options": {"eps": 4 / 255, "steps": 3, "step_size": 2 / 255},
        "gradient_evaluations_per_step": 1,  # the cost the attack reports (the stand-in: per step only)
    }
    record = json.loads(load_tensor_metadata(layout.adv_path("B", "RAND", selected[0]["clip_id"]))["record"])
    assert record["settings"] == settings["RAND"]
    assert recorded_attack_settings(RunLayout.of(tmp_path / "nowhere")) == {}
