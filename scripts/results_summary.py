"""Summary tables of docs/results.md from the embedded paper-attack runs (after scripts/embedded_results.sh).

Reads runs/embedded_paper_attacks{,_eps8,_eps4}/eval/results.json (Table-1 rows: average black-box ASR
with 95 % bootstrap intervals) and the compare_*.json files written by `vidadv compare` (paired
differences on the same clips), and prints Markdown: the average black-box ASR of every attack at each
budget beside the paper's Kinetics-400 / UCF-101 averages, then the paired differences per budget
(all white-box models of a run, and the white-box model every budget shares) and per white-box model
at 16/255; first, when runs/analysis_embedded exists, frame-importance agreement within vs across model
families. Writes docs/results/summary.md as well.

    python scripts/results_summary.py [--runs runs] [--out docs/results/summary.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from vidadv.evaluation.paper import PAPER_NUMBERS
from vidadv.evaluation.report import asr_interval_text, markdown_table, paired_difference_text
from vidadv.experiments.runtime import slug
from vidadv.models.zoo import ZOO_SPECS
from vidadv.utils.io import atomic_write_text
from vidadv.utils.stats import bootstrap_mean_ci

BUDGETS = (("16/255", ""), ("8/255", "_eps8"), ("4/255", "_eps4"))
PAIRS = (
    ("TT(1)", "FGSM"),
    ("TT(10)", "BIM(10)"),
    ("TT(10)", "VR(10)"),
    ("TT(10)", "BIM(150)"),
    ("MI+TT(10)", "MI(10)"),
    ("TI+TT(1)", "TI(1)"),
    ("ATA+TT(10)", "ATA(10)"),
)
# the paper's average rows carry these keys; its "TT" row is TT(10)
PAPER_KEY = {"TT(10)": "TT"}


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _load_table1(run: Path) -> dict[str, dict]:
    results = json.loads((run / "eval" / "results.json").read_text())
    return {row["attack"]: row for row in results["variants"]["float"]["table1"]}


def _load_compare(run: Path, a: str, b: str) -> list[dict] | None:
    path = run / "eval" / f"compare_{slug(a)}_vs_{slug(b)}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else None


def analysis_summary(
    folder: Path, methods: tuple[str, ...] = ("gradcam", "zero_padding", "mean_padding")
) -> str:
    """Mean Spearman correlation of frame importance within a model family and across families.

    Per clip: the mean over the same-family pairs (nl-s/nl-l, slowfast-s/slowfast-l, tpn-s/tpn-l) and over
    the cross-family pairs, where defined; then the mean over clips with a 95 % bootstrap interval, and the
    paired difference (within - across) on the clips where both are defined.
    """
    header = ["method", "clips", "within family", "across families", "within - across"]
    body = []
    for method in methods:
        path = folder / f"spearman_{method}_per_clip.csv"
        if not path.exists():
            continue
        per_clip: dict[str, tuple[list[float], list[float]]] = {}
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                value = float(row["spearman"]) if row["spearman"] not in ("", "nan") else math.nan
                if math.isnan(value):
                    continue
                same = ZOO_SPECS[row["model_a"]].family == ZOO_SPECS[row["model_b"]].family
                per_clip.setdefault(row["clip_id"], ([], []))[0 if same else 1].append(value)
        within = [sum(w) / len(w) for w, _ in per_clip.values() if w]
        across = [sum(a) / len(a) for _, a in per_clip.values() if a]
        diffs = [sum(w) / len(w) - sum(a) / len(a) for w, a in per_clip.values() if w and a]
        cells = []
        for values in (within, across, diffs):
            interval = bootstrap_mean_ci(values)
            cells.append(f"{interval.estimate:+.3f} [{interval.lo:+.3f}, {interval.hi:+.3f}]")
        body.append([method, len(per_clip), *cells])
    return (
        "### Frame-importance agreement: mean Spearman within vs across families (95 % bootstrap)\n\n"
        + markdown_table(header, body)
        + "\n"
    )


def _columns(
    present: list[tuple[str, Path]], tables: dict[str, dict[str, dict]]
) -> list[tuple[str, str, str]]:
    """(label, budget, white-box or "all") columns: every white-box model together where a run has several,
    then each budget's common white-box model, so the budgets compare on the same source model."""
    columns = []
    for eps, _ in present:
        whiteboxes = list(next(iter(tables[eps].values()))["per_whitebox"])
        if len(whiteboxes) > 1:
            columns.append((f"{eps}, {len(whiteboxes)} white-box", eps, "all"))
    common = set.intersection(*(set(next(iter(t.values()))["per_whitebox"]) for t in tables.values()))
    for whitebox in sorted(common):
        columns += [(f"{eps}, {whitebox}", eps, whitebox) for eps, _ in present]
    return columns


def summary(runs: Path) -> str:
    present = [(eps, runs / f"embedded_paper_attacks{suffix}") for eps, suffix in BUDGETS]
    present = [(eps, run) for eps, run in present if (run / "eval" / "results.json").exists()]
    if not present:
        raise SystemExit(f"no evaluated embedded_paper_attacks run under {runs}")
    run_of = dict(present)
    tables = {eps: _load_table1(run) for eps, run in present}
    attacks = list(next(iter(tables.values())))
    columns = _columns(present, tables)
    parts = []

    def cell(eps: str, attack: str, whitebox: str) -> dict:
        row = tables[eps][attack]
        return row["overall"] if whitebox == "all" else row["per_whitebox"].get(whitebox, {})

    n = {label: max(cell(eps, a, wb).get("n", 0) for a in attacks) for label, eps, wb in columns}
    header = ["attack", *[f"{label} (n={n[label]})" for label, _, _ in columns]]
    header += ["paper K400 16/255", "paper UCF-101 16/255"]
    body = []
    for attack in attacks:
        key = PAPER_KEY.get(attack, attack)
        paper = [PAPER_NUMBERS[d].get(key) for d in ("kinetics400", "ucf101")]
        body.append(
            [attack, *[asr_interval_text(cell(eps, attack, wb)) for _, eps, wb in columns]]
            + ["" if p is None else f"{p:.2f}" for p in paper]
        )
    parts.append(
        "### Average black-box ASR (%), 95 % bootstrap interval over clips\n\n" + markdown_table(header, body)
    )

    header = ["A", "B", *[label for label, _, _ in columns]]
    body = []
    for a, b in PAIRS:
        cells = []
        for _, eps, whitebox in columns:
            rows = _load_compare(run_of[eps], a, b) or []
            match = [r for r in rows if r["whitebox"] == whitebox and r["model"] == "black-box average"]
            cells.append(paired_difference_text(match[0]) if match else "-")
        body.append([a, b, *cells])
    parts.append(
        "### Paired difference A - B in average black-box ASR (percentage points), same clips, 95 % paired "
        "bootstrap interval\n\n" + markdown_table(header, body)
    )

    eps, run = present[0]
    header = ["A", "B", "white-box", "n", "black-box ASR A", "black-box ASR B", "A - B [95 % CI]"]
    body = []
    for a, b in PAIRS:
        for row in _load_compare(run, a, b) or []:
            if row["model"] == "black-box average" and row["whitebox"] != "all":
                body.append(
                    [
                        a,
                        b,
                        row["whitebox"],
                        row["n"],
                        _pct(row["asr_a"]),
                        _pct(row["asr_b"]),
                        paired_difference_text(row),
                    ]
                )
    parts.append(f"### Per white-box model at {eps}\n\n" + markdown_table(header, body))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/summary.md"))
    args = parser.parse_args()
    text = summary(args.runs)
    if (args.runs / "analysis_embedded").exists():
        text = analysis_summary(args.runs / "analysis_embedded") + "\n" + text
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
