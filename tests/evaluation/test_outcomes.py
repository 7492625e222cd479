"""The outcomes table and its pure ASR functions, against hand-computed numbers and independent math."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.evaluation.fakes import (
    FAKES,
    FakeDataset,
    config_dict,
    load_fake_config,
    model_factory,
    write_config,
)
from vidadv.evaluation.outcomes import (
    ATTACKED,
    CLEAN_MISCLASSIFIED,
    LISTED,
    DroppedClip,
    asr_matrix,
    blackbox_cell,
    build_outcomes,
    decide_fooled,
    paired_differences,
    table1,
)
from vidadv.experiments import run_attack, run_evaluate, run_select
from vidadv.experiments.config import ModelSpec
from vidadv.experiments.runtime import RunLayout
from vidadv.utils.io import load_tensors

MODELS = ("A", "B", "C")


def _table(fooled: dict[tuple[str, str, str], dict[str, int]], labels: dict[str, int], **kwargs: Any):
    """Predictions that fool exactly where `fooled` says (pred = label + 1 mod 3 when fooled)."""
    predictions = {
        key: {m: (labels[key[2]] + flag) % 3 for m, flag in per_model.items()}
        for key, per_model in fooled.items()
    }
    return build_outcomes(predictions, labels, MODELS, ["A", "B"], ["X", "Y"], **kwargs)


def test_fooled_is_decided_once_untargeted_and_targeted() -> None:
    assert decide_fooled(2, 1) and not decide_fooled(2, 2)
    assert decide_fooled(2, 0, target=0) and not decide_fooled(2, 1, target=0)
    outcomes = build_outcomes(
        {("A", "X", "c"): {"A": 0, "B": 1, "C": 2}},
        {"c": 2},
        MODELS,
        ["A"],
        ["X"],
        targets={("A", "X", "c"): 1},
    )
    assert [(o.model, o.fooled, o.target) for o in outcomes.rows] == [
        ("A", False, 1),
        ("B", True, 1),
        ("C", False, 1),
    ]


def test_listed_rows_use_the_clean_prediction_of_clips_not_attacked() -> None:
    # two attacked clips; one dropped clip that model B misclassified clean
    fooled = {
        ("A", "X", "c1"): {"A": 1, "B": 1, "C": 0},
        ("A", "X", "c2"): {"A": 1, "B": 0, "C": 0},
    }
    labels = {"c1": 0, "c2": 1}
    dropped = [DroppedClip("d1", 2, {"A": 2, "B": 0, "C": 2})]
    outcomes = _table(fooled, labels, dropped=dropped)
    assert outcomes.has_listed
    kinds = {(o.clip_id, o.kind) for o in outcomes.rows}
    assert kinds == {("c1", ATTACKED), ("c2", ATTACKED), ("d1", CLEAN_MISCLASSIFIED)}
    selected = asr_matrix(outcomes).row("A", "X")
    assert selected.n_clips == 2 and dict(selected.asr) == {"A": 1.0, "B": 0.5, "C": 0.0}
    listed = asr_matrix(outcomes, LISTED).row("A", "X")
    # B: fooled on c1 and misclassified d1 clean: 2 of 3; A: 2 of 3 (d1 correct clean); C: 0 of 3
    assert listed.n_clips == 3
    assert dict(listed.asr) == pytest.approx({"A": 2 / 3, "B": 2 / 3, "C": 0.0})
    rows = table1(outcomes, n_boot=200, seed=0, denominator=LISTED)
    # black-box fractions (B, C) per clip: c1 0.5, c2 0, d1 0.5
    assert rows[0]["per_whitebox"]["A"]["asr"] == pytest.approx(1 / 3)
    assert rows[0]["per_whitebox"]["A"]["n"] == 3
    assert table1(outcomes, n_boot=200, seed=0)[0]["per_whitebox"]["A"]["asr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="denominator must be one of"):
        asr_matrix(outcomes, "all")


_flags = st.integers(0, 1)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(*[_flags] * 12), min_size=1, max_size=9))
def test_pure_functions_match_independent_sums(draws: list[tuple[int, ...]]) -> None:
    """ASR matrix, Table 1 and paired differences equal plain sums over a random fooled table."""
    labels = {f"c{i}": i % 3 for i in range(len(draws))}
    fooled: dict[tuple[str, str, str], dict[str, int]] = {}
    for whitebox_index, whitebox in enumerate(("A", "B")):
        for attack_index, attack in enumerate(("X", "Y")):
            for clip, flags in zip(labels, draws, strict=True):
                base = 6 * whitebox_index + 3 * attack_index
                fooled[(whitebox, attack, clip)] = dict(zip(MODELS, flags[base : base + 3], strict=True))
    outcomes = _table(fooled, labels)
    n = len(draws)
    matrix = asr_matrix(outcomes)
    assert [(r.whitebox, r.attack) for r in matrix.rows] == [("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Y")]
    for row in matrix.rows:
        for model in MODELS:
            expected = sum(fooled[(row.whitebox, row.attack, c)][model] for c in labels) / n
            assert row.asr[model] == pytest.approx(expected)

    def blackbox(whitebox: str, attack: str, clip: str) -> float:
        return sum(fooled[(whitebox, attack, clip)][m] for m in MODELS if m != whitebox) / 2

    rows = {r["attack"]: r for r in table1(outcomes, n_boot=100, seed=1)}
    for attack in ("X", "Y"):
        per_clip = [(blackbox("A", attack, c) + blackbox("B", attack, c)) / 2 for c in labels]
        assert rows[attack]["overall"]["asr"] == pytest.approx(float(np.mean(per_clip)))
        cell = blackbox_cell(outcomes, "B", attack, n_boot=100, seed=1)
        assert cell.average == pytest.approx(float(np.mean([blackbox("B", attack, c) for c in labels])))
        assert cell.average == pytest.approx(rows[attack]["per_whitebox"]["B"]["asr"])
    diffs = paired_differences(outcomes, "X", "Y", ["A", "B"], n_boot=100, seed=1)
    for row in diffs:
        if row["whitebox"] == "all":
            a = [(blackbox("A", "X", c) + blackbox("B", "X", c)) / 2 for c in labels]
            b = [(blackbox("A", "Y", c) + blackbox("B", "Y", c)) / 2 for c in labels]
        elif row["model"] == "black-box average":
            a = [blackbox(row["whitebox"], "X", c) for c in labels]
            b = [blackbox(row["whitebox"], "Y", c) for c in labels]
        else:
            a = [fooled[(row["whitebox"], "X", c)][row["model"]] for c in labels]
            b = [fooled[(row["whitebox"], "Y", c)][row["model"]] for c in labels]
            assert (row["only_a"], row["only_b"]) == (
                sum(x > y for x, y in zip(a, b, strict=True)),
                sum(y > x for x, y in zip(a, b, strict=True)),
            )
        assert row["diff"] == pytest.approx((sum(a) - sum(b)) / n)
        assert row["lo"] <= row["diff"] + 1e-12 and row["diff"] <= row["hi"] + 1e-12
    assert len(diffs) == 2 * (2 + 1) + 1


# ------------------------------------------------------------------------------------------------
# The LISTED denominator of a run (#12 item 9)
# ------------------------------------------------------------------------------------------------


def _pred(name: str, clip: torch.Tensor) -> int:
    model = model_factory(ModelSpec(name, name, num_classes=3), torch.device("cpu"), torch.float32).eval()
    with torch.no_grad():
        return int(model(clip[None]).argmax(1).item())


@pytest.fixture(scope="module")
def evaluated_fake_run(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    root = tmp_path_factory.mktemp("listed")
    config = load_fake_config(write_config(root / "config.yaml", root / "out"))
    assert run_select(config, progress=False, factories=FAKES) == 0
    assert run_attack(config, progress=False, factories=FAKES) == 0
    assert run_evaluate(root / "out", progress=False, gallery=0, factories=FAKES) == 0
    return RunLayout.of(root / "out")


def test_evaluate_reports_asr_over_all_listed_clips(evaluated_fake_run: RunLayout) -> None:
    layout = evaluated_fake_run
    selection = json.loads(layout.selection_json.read_text())
    selected = selection["selected"]
    dataset = FakeDataset(config_dict("x")["dataset"])
    names = {"A": "net-a", "B": "net-b", "C": "net-c"}
    # independent: the listed clips that load are the 10 indices other than 3 (missing) and 7 (broken)
    listed = [i for i in range(12) if i not in (3, 7)]
    attacked = {c["index"] for c in selected}
    dropped = [i for i in listed if i not in attacked]
    assert dropped, "the fake selection must drop misclassified clips for this test"
    results = json.loads((layout.eval_dir / "results.json").read_text())
    assert "2 listed clips that failed to load" in results["listed_denominator"]
    assert f"over the {len(listed)} listed clips" in results["listed_denominator"]
    matrix = {(r["whitebox"], r["attack"]): r for r in results["variants"]["float"]["asr_matrix_listed"]}
    for whitebox in ("A", "B"):
        for attack in ("FGSM", "BIM(3)", "RAND"):
            row = matrix[(whitebox, attack)]
            assert row["n_clips"] == len(listed)
            for model, name in names.items():
                wrong = 0
                for index in listed:
                    label = index % 3
                    if index in attacked:
                        clip_id = dataset[index][2]
                        adv = load_tensors(layout.adv_path(whitebox, attack, clip_id))["adv"]
                        wrong += _pred(name, adv) != label
                    else:  # not attacked: its clean prediction counts
                        wrong += _pred(name, dataset.clip(index)) != label
                assert row["asr"][model] == pytest.approx(wrong / len(listed))
    lines = (layout.eval_dir / "table1.csv").read_text().splitlines()
    assert lines[0].startswith("attack,clips,A -> black-box,B -> black-box,average")
    assert [line.split(",")[1] for line in lines[1:]] == ["selected", "all listed"] * 3
    selected_rows = {r["attack"]: r for r in results["variants"]["float"]["table1"]}
    assert selected_rows["FGSM"]["overall"]["n"] == len(selected)
    listed_rows = {r["attack"]: r for r in results["variants"]["float"]["table1_listed"]}
    assert listed_rows["FGSM"]["overall"]["n"] == len(listed)
    assert (layout.eval_dir / "asr_matrix_listed.csv").is_file()


def test_a_run_with_a_per_class_quota_reports_only_the_selected_clips(
    evaluated_fake_run: RunLayout, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(evaluated_fake_run.root, out)
    shutil.rmtree(out / "eval")
    selection = json.loads((out / "selection.json").read_text())
    selection["dropped"].append(
        {"index": 99, "clip_id": "x", "label": 0, "reason": "over the clips_per_class quota", "detail": ""}
    )
    (out / "selection.json").write_text(json.dumps(selection))
    assert run_evaluate(out, progress=False, gallery=0, factories=FAKES) == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert "no fixed clip list" in results["listed_denominator"]
    assert "table1_listed" not in results["variants"]["float"]
    assert (out / "eval" / "table1.csv").read_text().startswith("attack,A -> black-box,")
    assert not (out / "eval" / "asr_matrix_listed.csv").exists()
