"""`vidadv demo --quick` end to end on the shipped zoo, checked against its own per-clip predictions."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from vidadv.experiments.demo import DEMO_PAIRS, QUICK_ATTACKS, ZOO_MODELS, demo_config, run_demo
from vidadv.utils.stats import paired_bootstrap_diff


def test_demo_config_validates_and_lists_the_issue_attacks(tmp_path: Path) -> None:
    from vidadv.experiments.config import config_from_dict

    config = config_from_dict(demo_config(tmp_path), source="test")
    names = [a.name for a in config.attacks]
    assert names == [
        "FGSM",
        "BIM(10)",
        "TT(1)",
        "TT(10)",
        "MI(10)",
        "TT+MI(10)",
        "TI(1)",
        "TI+TT(1)",
        "VR(10)",
    ]
    assert list(config.whitebox) == ["nl-l", "slowfast-l", "tpn-l"]
    assert config.clips_per_class == 2
    vr = next(a for a in config.attacks if a.name == "VR(10)")
    tt = next(a for a in config.attacks if a.name == "TT(10)")
    assert vr.options["vr_samples"] == 2 * tt.options["shift_length"] + 1  # compute-matched control
    with pytest.raises(ValueError, match="clips_per_class"):
        demo_config(tmp_path, clips_per_class=0)
    with pytest.raises(ValueError, match="white-box"):
        demo_config(tmp_path, whitebox=["resnet"])


@pytest.mark.slow
def test_quick_demo_writes_consistent_results(quick_demo: tuple[Path, int]) -> None:
    out, code = quick_demo
    assert code == 0
    names = (
        "asr.csv",
        "asr.md",
        "pairs.csv",
        "pairs.md",
        "results.json",
        "report.html",
        "asr_nl-l.png",
        "pairs.png",
    )
    for name in names:
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    labels = {c["clip_id"]: c["label"] for c in results["clips"]}
    assert len(labels) == results["num_clips"] > 0
    per_class = {}
    for label in labels.values():
        per_class[label] = per_class.get(label, 0) + 1
    assert max(per_class.values()) == 1  # quick: one clip per class

    # ASR recomputed from the per-clip predictions
    fooled: dict[tuple[str, str], dict[str, list[int]]] = {}
    for p in results["predictions"]:
        row = fooled.setdefault((p["whitebox"], p["attack"]), {m: [] for m in ZOO_MODELS})
        for model in ZOO_MODELS:
            row[model].append(int(p["preds"][model] != labels[p["clip_id"]]))
    assert {a for _wb, a in fooled} == set(QUICK_ATTACKS)
    with (out / "asr.csv").open() as handle:
        table = list(csv.DictReader(handle))
    for line in table:
        outcomes = fooled[(line["white-box"], line["attack"])]
        for model in ZOO_MODELS:
            assert float(line[model]) == pytest.approx(
                100 * sum(outcomes[model]) / len(outcomes[model]), abs=0.01
            )

    # paired differences: per-clip black-box averages of the two attacks on the same clips
    order = [p["clip_id"] for p in results["predictions"] if p["attack"] == "FGSM"]
    pairs = {(r["a"], r["b"]): r for r in results["pairs"]}
    for a, b in DEMO_PAIRS:
        if a not in QUICK_ATTACKS or b not in QUICK_ATTACKS:
            continue
        by_clip = {}
        for attack in (a, b):
            for p in results["predictions"]:
                if p["attack"] == attack:
                    others = [m for m in ZOO_MODELS if m != p["whitebox"]]
                    wrong = sum(p["preds"][m] != labels[p["clip_id"]] for m in others)
                    by_clip[(attack, p["clip_id"])] = wrong / len(others)
        expected = paired_bootstrap_diff([by_clip[(a, c)] for c in order], [by_clip[(b, c)] for c in order])
        assert pairs[(a, b)]["diff"] == pytest.approx(expected.estimate)
        assert pairs[(a, b)]["lo"] <= pairs[(a, b)]["diff"] <= pairs[(a, b)]["hi"]

    with (out / "pairs.csv").open() as handle:
        pair_rows = list(csv.DictReader(handle))
    assert len(pair_rows) == len(results["pairs"])
    assert all(r["95 % CI"].startswith("[") and r["95 % CI"].endswith("]") for r in pair_rows)

    # the report: findings first, the significance marks follow the intervals, provenance, gallery
    html = (out / "report.html").read_text()
    assert html.index('class="findings"') < html.index("<h2>")
    text = re.sub(r"<[^>]+>", "", html)
    assert results["findings"] and all(sentence in text for sentence in results["findings"])
    significant = [r for r in results["pairs"] if r["lo"] > 0 or r["hi"] < 0]
    assert html.count('<tr class="sig') == len(significant)
    for fact in ("clean accuracy", "config hash", "selection rule", "kernel_size=15", "attack TI+TT(1)"):
        assert fact in html, fact
    gallery = set(re.findall(r'src="(gallery/[^"]+\.png)"', html))
    assert len(gallery) == 7 and all((out / src).is_file() for src in gallery)  # one clean + 3 x (adv, delta)
    assert "(fooled)" in html and "amplified 8.0" in html
    assert "base64" not in html

    # rerunning resumes: nothing is attacked again and the results are the same
    before = (out / "asr.csv").read_text()
    assert run_demo(out, quick=True, progress=False) == 0
    assert (out / "asr.csv").read_text() == before
