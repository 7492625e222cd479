"""The findings sentences that open a report, from fake paired-difference rows."""

from __future__ import annotations

import pytest

from vidadv.evaluation.findings import excludes_zero, findings_sentences, frontier_best, frontier_findings


def _row(a: str, b: str, whitebox: str, diff: float, lo: float, hi: float) -> dict[str, object]:
    return {"a": a, "b": b, "whitebox": whitebox, "diff": diff, "lo": lo, "hi": hi}


ROWS = [
    _row("TT(1)", "FGSM", "nl-l", 0.10, 0.02, 0.18),  # excludes 0
    _row("TT(10)", "BIM(10)", "nl-l", 0.05, -0.01, 0.11),  # includes 0
    _row("TT(10)", "VR(10)", "nl-l", -0.04, -0.09, -0.01),  # excludes 0 (negative)
    _row("TT(10)", "VR(10)", "tpn-l", 0.01, -0.03, 0.05),
    _row("TT(10)", "VR(10)", "all", -0.015, -0.04, 0.01),  # the overall compute-matched row
]


def test_excludes_zero_on_both_sides_and_at_the_boundary() -> None:
    assert excludes_zero({"lo": 0.001, "hi": 0.2}) and excludes_zero({"lo": -0.2, "hi": -0.001})
    assert not excludes_zero({"lo": 0.0, "hi": 0.2}) and not excludes_zero({"lo": -0.1, "hi": 0.1})


def test_compute_matched_comparison_comes_first_with_its_overall_interval() -> None:
    sentences = findings_sentences(ROWS)
    assert len(sentences) == 3
    first = sentences[0]
    assert first.startswith("Compute-matched comparison: TT(10) minus VR(10)")
    assert "-1.5 points (95 % CI [-4.0, +1.0]) averaged over all white-box models" in first
    assert "includes 0" in first


def test_significant_comparisons_are_counted_and_named() -> None:
    second = findings_sentences(ROWS)[1]
    assert second.startswith("2 of 5 comparisons have a 95 % interval excluding 0:")
    assert "TT(1) vs FGSM from white-box nl-l (+10.0)" in second
    assert "TT(10) vs VR(10) from white-box nl-l (-4.0)" in second
    assert "BIM(10)" not in second and "tpn-l" not in second


def test_note_on_multiple_comparisons() -> None:
    last = findings_sentences(ROWS)[-1]
    assert "without multiple-comparison correction" in last and "5 comparisons" in last
    assert "0.2 would exclude 0 by chance" in last  # 5 x 5 %


def test_without_the_control_and_without_significant_rows() -> None:
    rows = [_row("TT(1)", "FGSM", "nl-l", 0.0, -0.1, 0.1)]
    sentences = findings_sentences(rows)
    assert len(sentences) == 2 and "Compute-matched" not in sentences[0]
    assert sentences[0] == "None of the 1 comparisons has a 95 % interval excluding 0."


def test_per_whitebox_compute_matched_rows_when_there_is_no_overall_row() -> None:
    sentences = findings_sentences(ROWS[2:4])
    assert sentences[0].count("points (95 % CI") == 2
    assert "white-box nl-l" in sentences[0] and "white-box tpn-l" in sentences[0]
    assert "excludes 0" not in sentences[0]  # two rows: listed, no single verdict


def test_many_significant_rows_are_capped() -> None:
    rows = [_row(f"A{i}", "B", "nl-l", 0.1, 0.05, 0.15) for i in range(7)]
    assert "; and 3 more." in findings_sentences(rows)[0]


def test_bad_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="missing"):
        findings_sentences([{"a": "x", "b": "y", "diff": 0.1}])
    with pytest.raises(ValueError, match="does not contain"):
        findings_sentences([_row("A", "B", "nl-l", 0.5, 0.0, 0.1)])


def _point(attack: str, evals: int, asr: float) -> dict[str, object]:
    return {"attack": attack, "gradient_evaluations": evals, "asr": asr, "lo": asr - 0.03, "hi": asr + 0.03}


def _diff(diff: float, lo: float) -> dict[str, float]:
    return {"diff": diff, "lo": lo, "hi": diff + (diff - lo)}


FRONTIER = [
    _point("TT(10)", 150, 0.40),
    _point("SAG(75)", 150, 0.45),
    _point("SAG(25)", 50, 0.44),
    _point("TT(3)", 45, 0.43),
    _point("BIM(10)", 10, 0.10),
]


def test_frontier_findings_name_the_best_and_the_cheapest_within_the_margin() -> None:
    differences = {
        "SAG(25)": _diff(-0.01, -0.01),
        "TT(3)": _diff(-0.02, -0.0101),
        "BIM(10)": _diff(-0.35, -0.4),
    }
    first, second, third = frontier_findings(FRONTIER, differences)
    assert "SAG(75)'s, 45.0 % (95 % CI [42.0, 48.0]) at 150 gradient evaluations" in first
    # TT(3) is cheaper but its lower bound misses -1 point by 0.01; SAG(25) reaches it exactly
    assert second.startswith("The cheapest attack not measurably worse")
    assert "SAG(25) at 50 evaluations, -1.0 points (95 % CI [-1.0, -1.0])" in second
    assert "3 paired comparisons against SAG(75)" in third


def test_frontier_findings_without_a_cheaper_attack_within_the_margin_name_the_closest() -> None:
    differences = {
        "SAG(25)": _diff(-0.02, -0.03),
        "TT(3)": _diff(-0.02, -0.025),
        "BIM(10)": _diff(-0.35, -0.4),
    }
    second = frontier_findings(FRONTIER, differences)[1]
    assert second.startswith("No cheaper attack is within 1 point of it")
    assert "the closest: TT(3) at 45 evaluations, -2.0 points" in second


def test_frontier_best_breaks_ties_by_cost_and_a_cheapest_best_says_so() -> None:
    tied = [_point("B", 30, 0.5), _point("A", 60, 0.5), _point("C", 90, 0.2)]
    assert frontier_best(tied)["attack"] == "B"
    sentences = frontier_findings([_point("A", 10, 0.5), _point("B", 30, 0.2)], {})
    assert sentences[1] == "No attack of the run is cheaper."


def test_frontier_findings_need_every_cheaper_attacks_difference() -> None:
    with pytest.raises(ValueError, match=r"\['TT\(3\)'\]"):
        frontier_findings(FRONTIER, {"SAG(25)": _diff(0, -0.01), "BIM(10)": _diff(-0.3, -0.4)})
    assert frontier_findings([], {}) == []
