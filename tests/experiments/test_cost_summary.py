"""scripts/cost_summary.py: the target verdict, the 150-evaluation ranking, and its input checks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.scripts import load_script

FIELDS = [
    "method",
    "attack",
    "gradient_evaluations_per_clip",
    "seconds_per_clip",
    "ms_per_gradient_evaluation",
]
FIELDS += ["n_clips", "blackbox_asr_pct", "ci_lo_pct", "ci_hi_pct"]


@pytest.fixture(scope="module")
def script():
    return load_script("cost_summary")


#: attack -> (gradient evaluations per clip, black-box ASR %)
POINTS = {
    "TT(10)": (150, 20.0), "MI+TT(10)": (150, 45.0), "BIM(50)": (50, 10.0), "BIM(150)": (150, 11.0),
    "VR15(10)": (150, 18.0), "TT-sag2(75)": (150, 30.0), "MI+TT-sag2(75)": (150, 50.0),
    "TT-sag2(25)": (50, 25.0), "TT-iid5(10)": (50, 19.0), "TT-anti5(10)": (50, 17.0),
    "TT(3)": (45, 24.0), "MI+TT(3)": (45, 45.5),
    "MI+TT-sag2(25)": (50, 46.0), "MI+TT-iid1(50)": (50, 44.0), "MI+TT-anti5(10)": (50, 40.0),
}  # fmt: skip
#: (A, B) -> lower bound of the paired interval of A - B, in percentage points
LOWER = {("TT-sag2(25)", "TT(10)"): -0.99, ("TT-iid5(10)", "TT(10)"): -1.01, ("TT-anti5(10)", "TT(10)"): -3.0}


def write_run(root: Path, points: dict[str, tuple[int, float]]) -> Path:
    (root / "eval").mkdir(parents=True)
    (root / "run_config.json").write_text("{}")
    with (root / "eval" / "frontier.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for name, (evals, asr) in points.items():
            writer.writerow(["m", name, evals, 0.5, 1.0, 240, asr, asr - 2, asr + 2])
    return root


def fake_compare(run: Path, a: str, b: str) -> dict:
    diff = (POINTS[a][1] - POINTS[b][1]) / 100
    lo = LOWER.get((a, b), 100 * diff - 2) / 100
    rows = [
        {"whitebox": wb, "model": "black-box average", "n": 240, "diff": diff, "lo": lo, "hi": diff + 0.02}
        for wb in ("all", "w1", "w2")
    ]
    return {"attack_a": a, "attack_b": b, "rows": rows}


def test_target_verdict_uses_the_lower_bound(script, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "compare", fake_compare)
    text = script.summary(write_run(tmp_path / "run", POINTS))
    target = text.split("###")[1]
    lines = {line.split("|")[1].strip(): line for line in target.splitlines() if line.startswith("| ")}
    assert lines["TT-sag2(25)"].rstrip(" |").endswith("| reached")  # lower bound -0.99 >= -1.0
    assert lines["TT-iid5(10)"].rstrip(" |").endswith("not reached")  # -1.01 < -1.0
    assert lines["TT-anti5(10)"].rstrip(" |").endswith("not reached")
    assert "+5.00 [-0.99, +7.00]" in lines["TT-sag2(25)"]
    assert "w1" in text.split("###")[2] and "w2" in text.split("###")[2]


def test_full_budget_table_ranks_every_150_attack(script, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "compare", fake_compare)
    section = script.summary(write_run(tmp_path / "run", POINTS)).split("###")[3]
    names = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    names = [n for n in names if not set(n) <= {"-", ":"}]
    assert names == ["MI+TT-sag2(75)", "MI+TT(10)", "TT-sag2(75)", "TT(10)", "VR15(10)", "BIM(150)"]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert "| MI+TT(10) |" in rows["MI+TT-sag2(75)"] and "+5.00" in rows["MI+TT-sag2(75)"]
    assert "| TT(10) |" in rows["BIM(150)"] and "-9.00" in rows["BIM(150)"]
    assert "(reference)" in rows["TT(10)"]


def test_missing_attack_and_budget_are_named(script, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "compare", fake_compare)
    points = {k: v for k, v in POINTS.items() if k != "BIM(50)"}
    with pytest.raises(SystemExit, match=r"lacks the attacks BIM\(50\)"):
        script.summary(write_run(tmp_path / "a", points))
    with pytest.raises(SystemExit, match=r"TT-sag2\(25\) spends 51 > 50"):
        script.summary(write_run(tmp_path / "b", {**POINTS, "TT-sag2(25)": (51, 25.0)}))
    with pytest.raises(SystemExit, match="vidadv evaluate"):
        script.summary(tmp_path / "nothing")
    with pytest.raises(SystemExit, match="not a run folder"):
        script.main([str(tmp_path / "nothing")])
