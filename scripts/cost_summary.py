"""The cost frontier's answers (docs/results.md section 8) from an evaluated frontier run.

Reads RUN/eval/frontier.csv (written by `vidadv evaluate`: per attack, gradient evaluations per clip,
wall time per clip and average black-box ASR with its 95 % interval) and runs `vidadv compare` for the
comparisons fixed below, then prints Markdown:

1. the target: every cheaper estimator at <= 50 gradient evaluations per clip (k chosen on the tuning
   clips), and TT with the most steps within 50 (TT(3), 45), against TT(10) (150), and their momentum
   variants against MI+TT(10); reached when the lower bound of the paired 95 % interval of
   (new - reference), averaged over the white-box models, is >= -1.0 percentage point;
2. the same differences per white-box model;
3. every attack that spends exactly 150 evaluations, best first, with its paired difference to TT(10)
   (MI+TT(10) for momentum attacks): is TT's 10 steps x 15 shifts the best split of that budget?
4. the more-steps control: SAG at 50 against BIM(50) and TT(10) against BIM(150).

    python scripts/cost_summary.py [RUN_DIR] [--out docs/results/cost_frontier/summary.md]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from pathlib import Path

from vidadv.evaluation.findings import not_measurably_worse
from vidadv.evaluation.report import markdown_table, paired_difference_text
from vidadv.experiments.evaluate import run_compare
from vidadv.experiments.runtime import slug
from vidadv.utils.io import atomic_write_text

#: Lower bound (percentage points) the paired interval of (new - reference) must reach: issue #16.
TARGET_LOWER_BOUND = -1.0
TARGET_BUDGET = 50
FULL_BUDGET = 150
#: (cheaper attack at <= 50 evaluations, reference at 150): the estimators with the k chosen on the tuning
#: clips, and TT itself with the most steps that fit in 50 evaluations (3 x 15 = 45; step size eps / 3).
TARGET_PAIRS = (
    ("TT-sag2(25)", "TT(10)"),
    ("TT-iid5(10)", "TT(10)"),
    ("TT-anti5(10)", "TT(10)"),
    ("TT(3)", "TT(10)"),
    ("MI+TT-sag2(25)", "MI+TT(10)"),
    ("MI+TT-iid1(50)", "MI+TT(10)"),
    ("MI+TT-anti5(10)", "MI+TT(10)"),
    ("MI+TT(3)", "MI+TT(10)"),
)
#: More steps alone (no averaging over shifts) at the same count of gradient evaluations.
CONTROL_PAIRS = (("TT-sag2(25)", "BIM(50)"), ("TT(10)", "BIM(150)"))


def read_frontier(run: Path) -> dict[str, dict]:
    """Attack name -> its frontier.csv row (numbers as floats/ints)."""
    path = run / "eval" / "frontier.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `vidadv evaluate {run}` first")
    rows = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key in ("seconds_per_clip", "blackbox_asr_pct", "ci_lo_pct", "ci_hi_pct"):
                row[key] = float(row[key]) if row[key] else None
            row["gradient_evaluations_per_clip"] = int(row["gradient_evaluations_per_clip"])
            row["n_clips"] = int(row["n_clips"])
            rows[row["attack"]] = row
    return rows


def reference_of(attack: str) -> str:
    """The 150-evaluation reference of an attack: MI+TT(10) for momentum attacks, else TT(10)."""
    return "MI+TT(10)" if attack.startswith("MI+") else "TT(10)"


def pairs_at_full_budget(frontier: dict[str, dict]) -> list[tuple[str, str]]:
    """(attack, its reference) for every attack spending exactly 150 evaluations, references excluded."""
    return [
        (name, reference_of(name))
        for name, row in frontier.items()
        if row["gradient_evaluations_per_clip"] == FULL_BUDGET and reference_of(name) != name
    ]


def compare(run: Path, a: str, b: str) -> dict:
    """`vidadv compare RUN A B` (no model runs after `vidadv evaluate`); its JSON."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_compare(run, a, b, progress=False)
    if code != 0:
        raise SystemExit(
            f"{run}: adversarial clips of {a!r} or {b!r} are missing; finish `vidadv attack` first"
        )
    return json.loads((run / "eval" / f"compare_{slug(a)}_vs_{slug(b)}.json").read_text())


def overall_row(result: dict, whitebox: str = "all") -> dict:
    """The black-box-average row of a compare result, over all white-box models or for one."""
    for row in result["rows"]:
        if row["whitebox"] == whitebox and row["model"] == "black-box average":
            return row
    raise SystemExit(
        f"compare {result['attack_a']} vs {result['attack_b']}: no black-box average for {whitebox}"
    )


def _asr(row: dict) -> str:
    return f"{row['blackbox_asr_pct']:.2f} [{row['ci_lo_pct']:.2f}, {row['ci_hi_pct']:.2f}]"


def _seconds(row: dict) -> str:
    return "-" if row["seconds_per_clip"] is None else f"{row['seconds_per_clip']:.2f}"


def reached(row: dict) -> bool:
    """Issue #16's criterion: lower bound of the paired 95 % interval >= -1.0 percentage point."""
    return not_measurably_worse(row, margin=-TARGET_LOWER_BOUND / 100)


def summary(run: Path) -> str:
    frontier = read_frontier(run)
    full = pairs_at_full_budget(frontier)
    wanted = {name for pair in (*TARGET_PAIRS, *CONTROL_PAIRS, *full) for name in pair}
    missing = sorted(wanted - set(frontier))
    if missing:
        raise SystemExit(f"{run}/eval/frontier.csv lacks the attacks {', '.join(missing)}")
    for a, _ in TARGET_PAIRS:
        if frontier[a]["gradient_evaluations_per_clip"] > TARGET_BUDGET:
            raise SystemExit(
                f"{a} spends {frontier[a]['gradient_evaluations_per_clip']} > {TARGET_BUDGET} evaluations"
            )
    results = {pair: compare(run, *pair) for pair in (*TARGET_PAIRS, *CONTROL_PAIRS, *full)}
    whiteboxes = sorted({r["whitebox"] for r in results[TARGET_PAIRS[0]]["rows"]} - {"all"})
    n_clips = overall_row(results[TARGET_PAIRS[0]])["n"]
    parts = []

    header = ["new", "evals", "s/clip", "black-box ASR", "reference", "evals", "s/clip", "black-box ASR"]
    header += ["new - reference [95 % CI]", "target (lower bound >= -1.0)"]
    body = []
    for a, b in TARGET_PAIRS:
        row = overall_row(results[(a, b)])
        fa, fb = frontier[a], frontier[b]
        body.append(
            [a, fa["gradient_evaluations_per_clip"], _seconds(fa), _asr(fa)]
            + [b, fb["gradient_evaluations_per_clip"], _seconds(fb), _asr(fb)]
            + [paired_difference_text(row), "reached" if reached(row) else "not reached"]
        )
    parts.append(
        f"### Target: <= {TARGET_BUDGET} gradient evaluations per clip against {FULL_BUDGET}\n\n"
        f"Average black-box ASR (%) over the white-box models {', '.join(whiteboxes)} ({n_clips} clips), "
        "95 % bootstrap intervals; differences in percentage points, paired over the same clips.\n\n"
        + markdown_table(header, body)
    )

    header = ["new", "reference", *whiteboxes]
    body = [
        [a, b, *(paired_difference_text(overall_row(results[(a, b)], wb)) for wb in whiteboxes)]
        for a, b in TARGET_PAIRS
    ]
    parts.append("### The target's differences per white-box model\n\n" + markdown_table(header, body))

    ranked = sorted(
        [name for name, row in frontier.items() if row["gradient_evaluations_per_clip"] == FULL_BUDGET],
        key=lambda name: -frontier[name]["blackbox_asr_pct"],
    )
    header = ["attack", "s/clip", "black-box ASR", "reference", "attack - reference [95 % CI]"]
    body = []
    for name in ranked:
        pair = (name, reference_of(name))
        diff = "(reference)" if pair not in results else paired_difference_text(overall_row(results[pair]))
        body.append([name, _seconds(frontier[name]), _asr(frontier[name]), pair[1], diff])
    parts.append(
        f"### Exactly {FULL_BUDGET} gradient evaluations per clip, best first\n\n"
        + markdown_table(header, body)
    )

    header = ["A", "B", "black-box ASR A", "black-box ASR B", "A - B [95 % CI]"]
    body = [
        [a, b, _asr(frontier[a]), _asr(frontier[b]), paired_difference_text(overall_row(results[(a, b)]))]
        for a, b in CONTROL_PAIRS
    ]
    parts.append(
        "### More steps alone (the same count of gradient evaluations without averaging over shifts)\n\n"
        + markdown_table(header, body)
    )
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", default=Path("runs/embedded_cost_frontier"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/cost_frontier/summary.md"))
    args = parser.parse_args(argv)
    if not (args.run_dir / "run_config.json").is_file():
        raise SystemExit(f"{args.run_dir} is not a run folder (no run_config.json)")
    text = summary(args.run_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
