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
