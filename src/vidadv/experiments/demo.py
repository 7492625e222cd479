"""`vidadv demo`: the paper's transfer experiment on the embedded benchmark, in minutes on a CPU.

Six small video models (the shipped zoo: I3D-NL, SlowFast and TPN at two depths, trained on the
procedural action dataset) stand in for the paper's six Kinetics models. The demo

1. selects clips of the synthetic test split that all six models classify correctly (per class);
2. attacks them from each deep model (`nl-l`, `slowfast-l`, `tpn-l`) at eps 16/255 with FGSM, BIM(10),
   TT(1), TT(10), MI(10), TT+MI(10), TI(1), TI+TT(1) (L = 7, gaussian, adjacent) and the
   compute-matched control VR(10): BIM whose gradient is averaged over 2L+1 = 15 gaussian-noise copies,
   the same number of gradient evaluations per step as TT;
3. evaluates every adversarial clip on all six models: ASR table, and for each X+TT against X (and TT
   against the control) the paired difference in black-box ASR with a 95 % bootstrap interval;
4. writes asr.csv, asr.md, pairs.csv, pairs.md, results.json, asr_<whitebox>.png and report.html.

It is the generic run machinery (`vidadv select/attack`) on a built-in config, so it resumes: rerunning
the same command skips finished work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vidadv.data.synthetic import CLASS_NAMES
from vidadv.evaluation.outcomes import BLACKBOX_AVERAGE, Outcomes, asr_matrix, paired_differences
from vidadv.evaluation.report import (
    HtmlTable,
    ReportWriter,
    Section,
    asr_table_rows,
    gallery_item,
    plot_asr_bars,
)
from vidadv.experiments import run_attack, run_select
from vidadv.experiments.predictions import FLOAT, collect_predictions, load_run, run_outcomes
from vidadv.experiments.runtime import DEFAULT_FACTORIES, check_item, slug, versions
from vidadv.models.zoo import zoo_manifest
from vidadv.utils.io import atomic_write_text, load_tensors

ZOO_MODELS = ("nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l")
WHITEBOX_MODELS = ("nl-l", "slowfast-l", "tpn-l")
SHIFT_LENGTH = 7
TT_OPTIONS = {"shift_length": SHIFT_LENGTH, "weights": "gaussian", "strategy": "adjacent"}
SINGLE_STEP = {"steps": 1, "step_size": "16/255"}

#: (display name, spec, options) of the demo's attacks, in table order.
DEMO_ATTACKS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("FGSM", "fgsm", dict(SINGLE_STEP)),
    ("BIM(10)", "bim", {}),
    ("TT(1)", "tt", {**SINGLE_STEP, **TT_OPTIONS}),
    ("TT(10)", "tt", dict(TT_OPTIONS)),
    ("MI(10)", "mi", {}),
    ("TT+MI(10)", "tt+mi", dict(TT_OPTIONS)),
    ("TI(1)", "ti", dict(SINGLE_STEP)),
    ("TI+TT(1)", "ti+tt", {**SINGLE_STEP, **TT_OPTIONS}),
    ("VR(10)", "vr", {"vr_samples": 2 * SHIFT_LENGTH + 1}),
)

#: (with TT, without TT) pairs compared on the same clips; the last one is the compute-matched control.
DEMO_PAIRS: tuple[tuple[str, str], ...] = (
    ("TT(1)", "FGSM"),
    ("TT(10)", "BIM(10)"),
    ("TT+MI(10)", "MI(10)"),
    ("TI+TT(1)", "TI(1)"),
    ("TT(10)", "VR(10)"),
)

QUICK_ATTACKS = ("FGSM", "BIM(10)", "TT(1)", "TI(1)", "TI+TT(1)")


def demo_config(
    out_dir: str | Path,
    quick: bool = False,
    clips_per_class: int | None = None,
    seed: int = 0,
    whitebox: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The experiment config (a `vidadv attack` config dict) that the demo runs."""
    per_class = clips_per_class if clips_per_class is not None else (1 if quick else 2)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"clips_per_class must be a positive integer, got {clips_per_class!r}")
    num_classes = len(CLASS_NAMES)
    attacks = [a for a in DEMO_ATTACKS if not quick or a[0] in QUICK_ATTACKS]
    whiteboxes = list(whitebox) if whitebox is not None else (["nl-l"] if quick else list(WHITEBOX_MODELS))
    unknown = [m for m in whiteboxes if m not in ZOO_MODELS]
    if unknown:
        raise ValueError(f"unknown white-box model(s) {unknown}; choose from {', '.join(ZOO_MODELS)}")
    return {
        "name": "vidadv demo (embedded benchmark)" + (" --quick" if quick else ""),
        "output_dir": str(out_dir),
        # candidates: four times the needed clips per class (balanced labels), so that enough are correct
        "dataset": {
            "type": "synthetic",
            "split": "test",
            "num_clips": 4 * per_class * num_classes,
            "size": 32,
            "frames": 32,
            "seed": seed,
        },
        "models": [{"name": name, "label": name} for name in ZOO_MODELS],
        "whitebox": whiteboxes,
        "attacks": [{"name": name, "spec": spec, "options": dict(opts)} for name, spec, opts in attacks],
        "eps": "16/255",
        "steps": 10,
        "step_size": "1.6/255",
        "batch_size": 8,
        "chunk_size": None,
        "device": "cpu",
        "dtype": "float32",
        "save_dtype": "float32",
        "seed": seed,
        "selection": "auto",
        "clips_per_class": per_class,
        "bootstrap_samples": 10000,
    }


def _check_zoo() -> None:
    manifest = zoo_manifest()  # raises a clear error when the weights are missing
    missing = [name for name in ZOO_MODELS if name not in manifest.get("models", {})]
    if missing:
        raise ValueError(f"the zoo manifest lacks {missing}; run `vidadv zoo train` first")


def _pair_rows(outcomes: Outcomes, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """The black-box-average rows of `paired_differences` for each of DEMO_PAIRS in the run."""
    rows = []
    for with_tt, without in DEMO_PAIRS:
        if with_tt not in outcomes.attacks or without not in outcomes.attacks:
            continue
        differences = paired_differences(
            outcomes, with_tt, without, outcomes.whiteboxes, n_boot=n_boot, seed=seed
        )
        rows += [{"a": with_tt, "b": without, **r} for r in differences if r["model"] == BLACKBOX_AVERAGE]
    return rows


def _pair_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "white-box", "n clips", "black-box ASR A", "black-box ASR B", "A - B", "95 % CI"]
    body = [
        [
            r["a"],
            r["b"],
            r["whitebox"],
            str(r["n"]),
            f"{100 * r['asr_a']:.2f}",
            f"{100 * r['asr_b']:.2f}",
            f"{100 * r['diff']:+.2f}",
            f"[{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}]",
        ]
        for r in rows
    ]
    return header, body


def run_demo(
    out_dir: str | Path = "vidadv-demo",
    quick: bool = False,
    clips_per_class: int | None = None,
    seed: int = 0,
    *,
    whitebox: Sequence[str] | None = None,
    progress: bool = True,
    factories: Any = None,
) -> int:
    """Run the demo; returns an exit code. See the module docstring.

    factories: a `vidadv.experiments.runtime.Factories` (default: the real zoo, dataset and attacks).
    """
    factories = factories or DEFAULT_FACTORIES
    started = time.perf_counter()
    if factories.real_models:
        _check_zoo()
    out = Path(out_dir)
    raw = demo_config(out, quick=quick, clips_per_class=clips_per_class, seed=seed, whitebox=whitebox)
    config = factories.load_config(raw, source="vidadv demo")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "demo_config.yaml", yaml.safe_dump(raw, sort_keys=False))
    print(f"vidadv demo: results in {out}/ (rerun the same command to resume)")
    code = run_select(config, factories=factories, progress=progress)
    if code:
        return code
    code = run_attack(config, factories=factories, progress=progress)
    if code:
        return code

    run = load_run(out, check_model_names=factories.real_models)
    predictions, missing = collect_predictions(run, [FLOAT], factories=factories, progress=progress)
    if missing:
        raise RuntimeError(f"{len(missing)} adversarial clips are missing after the attack run")
    outcomes = run_outcomes(run, predictions[FLOAT])
    matrix = asr_matrix(outcomes)
    report = ReportWriter(out)
    report.asr_matrix(matrix, "asr", title="Embedded benchmark: attack success rate (%)")
    pairs = _pair_rows(outcomes, config.bootstrap_samples, config.seed)
    pair_header, pair_body = _pair_table(pairs)
    report.table("pairs", pair_header, pair_body)

    plots = []
    for wb in config.whitebox:
        per_attack = {
            r.attack: {m: r.asr[m] for m in matrix.models if m != wb} for r in matrix.rows if r.whitebox == wb
        }
        plots.append(plot_asr_bars(per_attack, out / f"asr_{wb}.png", title=f"white-box {wb}: transfer ASR"))
    report.plots(plots)

    n_clips = len(run.clips)
    denominator = (
        f"ASR = share of the {n_clips} attacked clips (all six models classify them correctly) that a model "
        "misclassifies; black-box average = mean over the five models other than the white-box one."
    )
    m_header, m_rows = asr_table_rows(matrix)
    report.show("ASR (%), * = white-box", m_header, m_rows)
    report.show(
        "Black-box ASR: attack with TT (A) vs without (B), same clips, paired bootstrap",
        pair_header,
        pair_body,
    )
    print(f"\n{denominator}")

    gallery = _gallery(run, out, factories)
    elapsed = time.perf_counter() - started
    results = {
        "config": raw,
        "versions": versions(),
        "seed": seed,
        "num_clips": n_clips,
        "denominator": denominator,
        "asr": [r.to_dict() for r in matrix.rows],
        "pairs": pairs,
        "clips": [{"clip_id": c.clip_id, "label": c.label, "index": c.index} for c in run.clips],
        "predictions": [
            {
                "whitebox": wb,
                "attack": attack,
                "clip_id": clip_id,
                "preds": {m: o.adv_pred for m, o in p.items()},
            }
            for (wb, attack, clip_id), p in outcomes.items().items()
        ],
        "seconds": round(elapsed, 1),
    }
    report.json("results.json", results)
    report.section(Section("What was run", text=_summary_text(config, n_clips)))
    report.section(
        Section(
            "Attack success rate (%)",
            text=denominator,
            tables=[HtmlTable(m_header, m_rows, "* = white-box model")],
            images=[str(p) for p in plots],
        )
    )
    report.section(
        Section(
            "Does Temporal Translation transfer better? (paired, same clips)",
            text=(
                "A - B: difference in black-box ASR between the attack with TT and the same attack "
                "without it, "
                "with a 95 % paired bootstrap interval over clips. TT(10) vs VR(10) is the compute-matched "
                "control: both average the gradient over 15 copies per step, VR over noisy copies instead of "
                "time-shifted ones."
            ),
            tables=[HtmlTable(pair_header, pair_body)],
        )
    )
    if gallery:
        report.section(Section("Clips: clean, adversarial, perturbation (amplified)", gallery=gallery))
    html = report.html("vidadv demo: Temporal Translation on the embedded benchmark")
    print(
        f"wrote {out}/asr.csv, asr.md, pairs.csv, pairs.md, results.json, "
        f"{', '.join(p.name for p in plots)}, {html.name}  ({elapsed:.0f} s)"
    )
    return 0


def _summary_text(config: Any, n_clips: int) -> str:
    attacks = ", ".join(a.name for a in config.attacks)
    return (
        f"Models: {', '.join(config.model_labels)} (embedded zoo, trained on the procedural action dataset). "
        f"White-box: {', '.join(config.whitebox)}. Attacks: {attacks}; eps 16/255, 10 steps of 1.6/255 "
        f"(single-step ones: one step of 16/255); TT: L = {SHIFT_LENGTH}, gaussian weights, adjacent shifts. "
        f"{n_clips} clips, seed {config.seed}."
    )


def _gallery(run: Any, out: Path, factories: Any, count: int = 3) -> list[Any]:
    """Clean / adversarial / amplified-perturbation GIFs for a few clips (TT(10) or the last attack)."""
    dataset = factories.build_dataset(dict(run.config.dataset))
    names = [a.name for a in run.config.attacks]
    attack = "TT(10)" if "TT(10)" in names else names[-1]
    whitebox = run.config.whitebox[0]
    items = []
    for clip in run.clips[:count]:
        clean, _label, _clip_id = check_item(dataset[clip.index], clip.index)
        adversarial = load_tensors(run.layout.adv_path(whitebox, attack, clip.clip_id))["adv"].float()
        items.append(
            gallery_item(
                clean.float(),
                adversarial,
                out / "gallery",
                f"{slug(clip.clip_id)}_{slug(attack)}",
                f"{clip.clip_id} (label {clip.label}), {attack} on {whitebox}",
                scale=4.0,
            )
        )
    return items
