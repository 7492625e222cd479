"""scripts/perturbation_distance.py on a hand-built run folder with known perturbations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.scripts import load_script
from vidadv.experiments.runtime import RUN_FORMAT, SELECTION_FORMAT, RunLayout

EPS = 8 / 255


@pytest.fixture(scope="module")
def script():
    return load_script("perturbation_distance")


def write_run(root: Path) -> RunLayout:
    layout = RunLayout.of(root)
    root.mkdir()
    config = {"eps": EPS, "whitebox": ["m1", "m2"], "attacks": [{"name": "A"}, {"name": "B"}]}
    layout.run_config.write_text(json.dumps({"format": RUN_FORMAT, "config": config}))
    selected = [{"index": i, "clip_id": f"c{i}", "label": 0} for i in range(2)]
    layout.selection_json.write_text(json.dumps({"format": SELECTION_FORMAT, "selected": selected}))
    clean = torch.full((3, 4, 2, 2), 0.5)
    for clip in ("c0", "c1"):
        # m1: identical perturbations; m2: opposite corners on half of the voxels, equal on the rest
        half = torch.zeros_like(clean)
        half[:, :2] = 1.0
        advs = {("m1", "A"): clean + EPS, ("m1", "B"): clean + EPS,
                ("m2", "A"): clean + EPS, ("m2", "B"): clean + EPS - 2 * EPS * half}  # fmt: skip
        for (whitebox, attack), adv in advs.items():
            path = layout.adv_path(whitebox, attack, clip)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"adv": adv.contiguous()}, str(path))
    return layout


def test_distances_match_the_constructed_perturbations(tmp_path, script, capsys):
    write_run(tmp_path / "run")
    assert script.main([str(tmp_path / "run"), "A", "B"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| m")]
    assert rows == ["| m1 | 2 | 0.000 | 1.000 |", "| m2 | 2 | 1.000 | 0.500 |"]


def test_unknown_attack_and_missing_run_are_named(tmp_path, script, capsys):
    write_run(tmp_path / "run")
    assert script.main([str(tmp_path / "run"), "A", "C"]) == 2
    assert "attack 'C' is not in the run" in capsys.readouterr().err
    assert script.main([str(tmp_path / "nowhere"), "A", "B"]) == 2
    assert "not a vidadv run folder" in capsys.readouterr().err
