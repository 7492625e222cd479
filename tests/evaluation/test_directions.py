"""ASR differences by transfer direction (CNN -> transformer, ...): hand-computed and independent math."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.evaluation.fakes import FAKES, load_fake_config, write_config
from vidadv.evaluation.outcomes import build_outcomes, direction_differences, transfer_directions
from vidadv.experiments import run_attack, run_compare, run_select
from vidadv.experiments.config import config_from_dict
from vidadv.experiments.evaluate import model_groups

MODELS = ("c1", "c2", "t1", "t2")
GROUPS = {"c1": "cnn", "c2": "cnn", "t1": "transformer", "t2": "transformer"}
WHITEBOXES = ("c1", "t1")


def test_directions_pair_each_whitebox_with_the_other_models_of_each_group() -> None:
    directions = transfer_directions(GROUPS, WHITEBOXES, MODELS)
    assert directions == {
        "cnn -> cnn": [("c1", "c2")],
        "cnn -> transformer": [("c1", "t1"), ("c1", "t2")],
        "transformer -> cnn": [("t1", "c1"), ("t1", "c2")],
        "transformer -> transformer": [("t1", "t2")],
    }
    with pytest.raises(ValueError, match="no group given for model.*t2"):
        transfer_directions({k: v for k, v in GROUPS.items() if k != "t2"}, WHITEBOXES, MODELS)


def _outcomes(flags: np.ndarray):
    """flags[attack, whitebox, clip, model] in {0, 1}; label 0, a fooled model predicts 1."""
    predictions = {
        (whitebox, attack, f"clip{c}"): {m: int(flags[a, w, c, k]) for k, m in enumerate(MODELS)}
        for a, attack in enumerate(("A", "B"))
        for w, whitebox in enumerate(WHITEBOXES)
        for c in range(flags.shape[2])
    }
    labels = {f"clip{c}": 0 for c in range(flags.shape[2])}
    return build_outcomes(predictions, labels, MODELS, WHITEBOXES, ("A", "B"))


def test_hand_computed_direction_difference() -> None:
    flags = np.zeros((2, 2, 2, 4), dtype=int)
    # clip0: attack A on c1 fools t1 and t2, B fools t1 -> cnn->transformer shares 1.0 and 0.5
    flags[0, 0, 0, 2:] = 1
    flags[1, 0, 0, 2] = 1
    # clip1: A on t1 fools c2 (transformer->cnn share 0.5), B fools nothing
    flags[0, 1, 1, 1] = 1
    rows = {
        r["direction"]: r
        for r in direction_differences(_outcomes(flags), "A", "B", GROUPS, n_boot=200, seed=0)
    }
    assert rows["cnn -> transformer"]["asr_a"] == pytest.approx(0.5)  # (1.0 + 0) / 2 clips
    assert rows["cnn -> transformer"]["asr_b"] == pytest.approx(0.25)
    assert rows["cnn -> transformer"]["diff"] == pytest.approx(0.25)
    assert rows["transformer -> cnn"]["diff"] == pytest.approx(0.25)  # (0 + 0.5) / 2
    assert rows["cnn -> cnn"]["diff"] == 0 and rows["transformer -> transformer"]["diff"] == 0
    assert {r["pairs"] for r in rows.values()} == {1, 2} and all(r["n"] == 2 for r in rows.values())


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_direction_difference_is_the_mean_over_clips_and_pairs(data: st.DataObject) -> None:
    clips = data.draw(st.integers(1, 6))
    bits = data.draw(st.lists(st.integers(0, 1), min_size=2 * 2 * clips * 4, max_size=2 * 2 * clips * 4))
    flags = np.array(bits).reshape(2, 2, clips, 4)
    rows = direction_differences(_outcomes(flags), "A", "B", GROUPS, n_boot=100, seed=1)
    index = {m: k for k, m in enumerate(MODELS)}
    for row in rows:
        pairs = transfer_directions(GROUPS, WHITEBOXES, MODELS)[row["direction"]]
        expected = [
            np.mean([flags[a, WHITEBOXES.index(w), :, index[m]] for w, m in pairs], axis=0).mean()
            for a in (0, 1)
        ]
        assert row["asr_a"] == pytest.approx(expected[0]) and row["asr_b"] == pytest.approx(expected[1])
        assert row["diff"] == pytest.approx(expected[0] - expected[1])
        assert row["lo"] <= row["diff"] + 1e-12 and row["diff"] <= row["hi"] + 1e-12


def test_model_groups_come_from_the_catalogue_families() -> None:
    base = {
        "name": "t",
        "output_dir": "/tmp/unused",
        "dataset": {"type": "synthetic", "split": "test", "num_clips": 24, "size": 32, "frames": 32},
        "attacks": [{"name": "FGSM", "spec": "fgsm"}],
        "eps": "16/255",
        "steps": 1,
        "step_size": "16/255",
    }
    models = ["nl-s", "videomae-s", {"name": "hf", "label": "mine", "checkpoint": "x"}]
    mixed = config_from_dict(
        {**base, "models": models, "whitebox": ["nl-s"]}, check_files=False, source="test"
    )
    assert model_groups(mixed) == {"nl-s": "cnn", "videomae-s": "transformer", "mine": "transformer"}


def test_compare_adds_the_direction_table_when_the_models_span_both_groups(tmp_path, capsys) -> None:
    # catalogue names (their families give the groups), tiny stand-in networks (FAKES) behind them
    models = [
        {"name": "nl-s", "label": "nl-s", "num_classes": 3},
        {"name": "tpn-s", "label": "tpn-s", "num_classes": 3},
        {"name": "videomae-s", "label": "videomae-s", "num_classes": 3},
    ]
    path = write_config(tmp_path / "c.yaml", tmp_path / "run", models=models, whitebox=["nl-s", "videomae-s"])
    config = load_fake_config(path)
    assert run_select(config, factories=FAKES, progress=False) == 0
    assert run_attack(config, factories=FAKES, progress=False) == 0
    assert run_compare(config.output_dir, "BIM(3)", "FGSM", factories=FAKES, progress=False) == 0
    assert "by transfer direction" in capsys.readouterr().out
    record = json.loads(next(Path(config.output_dir, "eval").glob("compare_BIM*_vs_FGSM*.json")).read_text())
    rows = {r["direction"]: r for r in record["directions"]}
    assert {d: r["pairs"] for d, r in rows.items()} == {
        "cnn -> cnn": 1,
        "cnn -> transformer": 1,
        "transformer -> cnn": 2,
    }
    single = {(r["whitebox"], r["model"]): r for r in record["rows"]}
    # one pair per direction: the direction row is that pair's row of the per-model table
    assert rows["cnn -> transformer"]["diff"] == pytest.approx(single[("nl-s", "videomae-s")]["diff"])
    two = [single[("videomae-s", m)] for m in ("nl-s", "tpn-s")]
    assert rows["transformer -> cnn"]["asr_a"] == pytest.approx(sum(r["asr_a"] for r in two) / 2)
    assert list(Path(config.output_dir, "eval").glob("compare_BIM*_vs_FGSM*_directions.md"))


def test_a_whitebox_without_clips_is_left_out_of_its_directions() -> None:
    flags = np.ones((2, 2, 3, 4), dtype=int)
    outcomes = _outcomes(flags)
    partial = build_outcomes(
        {key: {m: 1 for m in MODELS} for key in outcomes.items() if key[0] == "c1"},
        {f"clip{c}": 0 for c in range(3)},
        MODELS,
        ("c1", "c2", "t1"),
        ("A", "B"),
    )  # c2 (same group as c1) and t1 have not attacked yet
    rows = direction_differences(partial, "A", "B", GROUPS, n_boot=100, seed=0)
    assert [r["direction"] for r in rows] == ["cnn -> cnn", "cnn -> transformer"]
    assert all(r["n"] == 3 for r in rows) and [r["pairs"] for r in rows] == [1, 2]
