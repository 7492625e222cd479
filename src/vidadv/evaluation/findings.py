"""The findings sentences that open a report, generated from the paired differences.

A paired-difference row (see `vidadv.evaluation.outcomes.paired_differences`) compares attack A with
attack B on the same clips: diff = ASR(A) - ASR(B) with a 95 % paired bootstrap interval [lo, hi]. A row is
*significant* when its interval excludes 0. Intervals are per comparison: no multiple-comparison
correction is applied, and the sentences say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The compute-matched comparison (TT and its control use the same gradient evaluations per step).
COMPUTE_MATCHED = ("TT(10)", "VR(10)")
MAX_LISTED = 4


def excludes_zero(row: Mapping[str, Any]) -> bool:
    """True when the 95 % interval [lo, hi] of a difference row lies entirely on one side of 0."""
    return float(row["lo"]) > 0.0 or float(row["hi"]) < 0.0


def points(value: float) -> str:
    """A difference of fractions as signed percentage points, e.g. +4.2."""
    return f"{100 * value:+.1f}"


def interval_text(row: Mapping[str, Any]) -> str:
    """'+4.2 points (95 % CI [+1.0, +7.5])'."""
    return f"{points(row['diff'])} points (95 % CI [{points(row['lo'])}, {points(row['hi'])}])"


def _where(row: Mapping[str, Any]) -> str:
    whitebox = str(row["whitebox"])
    return "averaged over all white-box models" if whitebox == "all" else f"from white-box {whitebox}"


def findings_sentences(
    rows: Sequence[Mapping[str, Any]], compute_matched: tuple[str, str] = COMPUTE_MATCHED
) -> list[str]:
    """Two or three sentences: the compute-matched comparison first (when present), then which
    comparisons have intervals excluding 0, then the note that intervals are per comparison.

    rows: mappings with a, b, whitebox, diff, lo, hi (fractions), one per comparison.
    """
    for row in rows:
        missing = [k for k in ("a", "b", "whitebox", "diff", "lo", "hi") if k not in row]
        if missing:
            raise ValueError(f"a paired-difference row needs a, b, whitebox, diff, lo, hi; missing {missing}")
        if not float(row["lo"]) <= float(row["diff"]) <= float(row["hi"]):
            raise ValueError(
                f"interval [{row['lo']}, {row['hi']}] does not contain the difference {row['diff']}"
            )
    if not rows:
        return ["No paired comparisons were run."]
    sentences = []
    matched = [r for r in rows if (r["a"], r["b"]) == tuple(compute_matched)]
    overall = [r for r in matched if r["whitebox"] == "all"]
    if overall or matched:
        headline = (overall or matched)[0] if overall or len(matched) == 1 else None
        a, b = compute_matched
        if headline is not None:
            verdict = "excludes 0" if excludes_zero(headline) else "includes 0 (no detectable difference)"
            sentences.append(
                f"Compute-matched comparison: {a} minus {b} in black-box ASR is {interval_text(headline)} "
                f"{_where(headline)}; the interval {verdict}."
            )
        else:
            parts = [f"{interval_text(r)} {_where(r)}" for r in matched]
            sentences.append(
                f"Compute-matched comparison, {a} minus {b} in black-box ASR: " + "; ".join(parts) + "."
            )
    significant = [r for r in rows if excludes_zero(r)]
    listed = [f"{r['a']} vs {r['b']} {_where(r)} ({points(r['diff'])})" for r in significant[:MAX_LISTED]]
    more = len(significant) - len(listed)
    if not significant:
        sentences.append(f"None of the {len(rows)} comparisons has a 95 % interval excluding 0.")
    else:
        sentences.append(
            f"{len(significant)} of {len(rows)} comparisons have a 95 % interval excluding 0: "
            + "; ".join(listed)
            + (f"; and {more} more" if more else "")
            + "."
        )
    sentences.append(
        "Intervals are per comparison, without multiple-comparison correction: of "
        f"{len(rows)} comparisons, about {len(rows) / 20:.1f} would exclude 0 by chance alone."
    )
    return sentences


#: Margin (fraction) within which a cheaper attack counts as "not measurably worse" than the best on the
#: cost frontier: the lower bound of the paired 95 % interval of (cheaper - best) must reach -1 point.
FRONTIER_MARGIN = 0.01


def not_measurably_worse(row: Mapping[str, Any], margin: float = FRONTIER_MARGIN) -> bool:
    """True when the lower bound of a paired difference row's 95 % interval (attack - reference) reaches
    -margin; a bound of exactly -margin counts (rounded to 1e-12 against float noise)."""
    return round(float(row["lo"]), 12) >= -margin


def frontier_findings(
    points: Sequence[Mapping[str, Any]],
    differences: Mapping[str, Mapping[str, Any]],
    margin: float = FRONTIER_MARGIN,
) -> list[str]:
    """The sentences that open a cost-frontier report: the attack with the highest average black-box
    ASR, then the cheapest attack not measurably worse than it (paired 95 % lower bound of
    (attack - best) >= -margin), or the closest cheaper one when none is.

    points: mappings with attack, gradient_evaluations, asr, lo, hi (fractions); differences: for each
    attack cheaper than the best (see `frontier_best`), the overall paired-difference row against it
    (diff, lo, hi).
    """
    if not points:
        return []
    best = frontier_best(points)
    sentences = [
        f"Cost frontier: the highest average black-box ASR is {best['attack']}'s, "
        f"{100 * best['asr']:.1f} % (95 % CI [{100 * best['lo']:.1f}, {100 * best['hi']:.1f}]) at "
        f"{best['gradient_evaluations']} gradient evaluations per clip."
    ]
    cheaper = sorted(
        (p for p in points if p["gradient_evaluations"] < best["gradient_evaluations"]),
        key=lambda p: (p["gradient_evaluations"], -p["asr"], p["attack"]),
    )
    missing = [p["attack"] for p in cheaper if p["attack"] not in differences]
    if missing:
        raise ValueError(f"no paired difference against {best['attack']} for {missing}")
    if not cheaper:
        sentences.append("No attack of the run is cheaper.")
        return sentences
    bound = f"paired 95 % lower bound of the difference >= {-100 * margin:+.1f} points"
    within = [p for p in cheaper if not_measurably_worse(differences[p["attack"]], margin)]
    if within:
        found = within[0]
        sentences.append(
            f"The cheapest attack not measurably worse ({bound}): {found['attack']} at "
            f"{found['gradient_evaluations']} evaluations, {interval_text(differences[found['attack']])}."
        )
    else:
        closest = max(
            cheaper, key=lambda p: (float(differences[p["attack"]]["lo"]), -p["gradient_evaluations"])
        )
        sentences.append(
            f"No cheaper attack is within {100 * margin:.0f} point of it ({bound}); the closest: "
            f"{closest['attack']} at {closest['gradient_evaluations']} evaluations, "
            f"{interval_text(differences[closest['attack']])}."
        )
    sentences.append(
        f"Intervals are per comparison ({len(cheaper)} paired comparisons against {best['attack']}), "
        "without multiple-comparison correction."
    )
    return sentences


def frontier_best(points: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The frontier point with the highest ASR (ties: fewer gradient evaluations, then the name)."""
    return min(points, key=lambda p: (-p["asr"], p["gradient_evaluations"], p["attack"]))
