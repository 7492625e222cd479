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
4. writes asr.csv, asr.md, pairs.csv, pairs.md, results.json, asr_<whitebox>.png (transfer bars), pairs.png
   (forest plot of the paired differences), gallery/*.png and report.html (findings first).

It is the generic run machinery (`vidadv select/attack`) on a built-in config, so it resumes: rerunning
the same command skips finished work.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from vidadv.data.synthetic import CLASS_NAMES
from vidadv.evaluation.findings import excludes_zero, findings_sentences
from vidadv.evaluation.outcomes import (
    BLACKBOX_AVERAGE,
    Outcomes,
    asr_matrix,
    blackbox_cell,
    paired_differences,
)
from vidadv.evaluation.plots import ForestRow, model_color, plot_forest
from vidadv.evaluation.report import (
    Figure,
    GalleryItem,
    HtmlTable,
    Prediction,
    ReportWriter,
    Section,
    asr_html_table,
    asr_table_rows,
    attack_settings_text,
    gallery_item,
    plot_figure3,
    transfer_bars,
    transfer_plot_alt,
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


def _check_zoo() -> dict[str, Any]:
    """The zoo manifest (raises a clear error when the weights or a demo model are missing)."""
    manifest = zoo_manifest()
    missing = [name for name in ZOO_MODELS if name not in manifest.get("models", {})]
    if missing:
        raise ValueError(f"the zoo manifest lacks {missing}; run `vidadv zoo train` first")
    return manifest


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
    manifest = _check_zoo() if factories.real_models else {}
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

    averages = {}
    for wb in config.whitebox:
        for attack in outcomes.attacks:
            cell = blackbox_cell(outcomes, wb, attack, n_boot=config.bootstrap_samples, seed=config.seed)
            if cell.interval is not None:
                averages[(wb, attack)] = tuple(cell.interval)
    figures = []
    for wb, path in zip(
        matrix.whiteboxes,
        plot_figure3(matrix, out, prefix="asr", averages=averages, pairs=DEMO_PAIRS),
        strict=True,
    ):
        bars = transfer_bars(matrix, wb, averages)
        figures.append(Figure(path, transfer_plot_alt(wb, bars)))
    if pairs:
        forest = plot_forest(
            [
                ForestRow(
                    f"{r['a']} - {r['b']}, {r['whitebox']}",
                    r["diff"],
                    r["lo"],
                    r["hi"],
                    model_color(r["whitebox"]),
                )
                for r in pairs
            ],
            out / "pairs.png",
            title="Paired difference in black-box ASR (95 % CI)",
        )
        figures.append(Figure(forest, _forest_alt(pairs)))
    report.plots(f.path for f in figures)

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
    findings = findings_sentences(pairs)
    print("\n" + "\n".join(findings))

    gallery, gallery_note = _gallery(run, out, factories, outcomes, config.eps)
    elapsed = time.perf_counter() - started
    results = {
        "config": raw,
        "versions": versions(),
        "seed": seed,
        "num_clips": n_clips,
        "denominator": denominator,
        "findings": findings,
        "asr": [r.to_dict() for r in matrix.rows],
        "blackbox_average": [
            {"whitebox": wb, "attack": attack, "asr": v[0], "lo": v[1], "hi": v[2]}
            for (wb, attack), v in averages.items()
        ],
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
            text=denominator
            + "\nBars: each black-box model's ASR with a 95 % Wilson interval (binomial, n = "
            f"{n_clips} clips; one clip = {100 / max(1, n_clips):.1f} points); hatched black bar: the "
            "black-box average with a 95 % bootstrap interval over clips. A 0 % bar is labelled 0.",
            tables=[asr_html_table(matrix, "shaded * = the white-box (source) model")],
            images=figures[: len(matrix.whiteboxes)],
        )
    )
    report.section(
        Section(
            "Does Temporal Translation transfer better? (paired, same clips)",
            text=(
                "A - B: difference in black-box ASR between the attack with TT and the same attack "
                "without it, with a 95 % paired bootstrap interval over clips "
                f"({config.bootstrap_samples} resamples). TT(10) vs VR(10) is the compute-matched "
                "control: both average the gradient over 15 copies per step, VR over noisy copies instead of "
                "time-shifted ones. Highlighted rows (\u2605): the interval excludes 0. Intervals are per "
                "comparison (no multiple-comparison correction)."
            ),
            tables=[
                HtmlTable(
                    pair_header,
                    pair_body,
                    row_classes=[_pair_row_class(pairs, i) for i in range(len(pairs))],
                )
            ],
            images=figures[len(matrix.whiteboxes) :],
        )
    )
    if gallery:
        report.section(
            Section("Clips: clean, adversarial, perturbation", gallery=gallery, gallery_note=gallery_note)
        )
    provenance = _provenance(run, config, out, n_clips, elapsed, manifest)
    html = report.html(
        "vidadv demo: Temporal Translation on the embedded benchmark",
        findings=findings,
        provenance=provenance,
    )
    print(
        f"wrote {out}/asr.csv, asr.md, pairs.csv, pairs.md, results.json, "
        f"{', '.join(Path(f.path).name for f in figures)}, {html.name}  ({elapsed:.0f} s)"
    )
    return 0


def _pair_row_class(pairs: list[dict[str, Any]], index: int) -> str:
    classes = ["sig"] if excludes_zero(pairs[index]) else []
    if (
        index
        and pairs[index]["a"] != pairs[index - 1]["a"]
        or index
        and pairs[index]["b"] != pairs[index - 1]["b"]
    ):
        classes.append("group-start")
    return " ".join(classes)


def _forest_alt(pairs: list[dict[str, Any]]) -> str:
    parts = [
        f"{r['a']} minus {r['b']} from {r['whitebox']}: {100 * r['diff']:+.1f} points "
        f"[{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}]"
        for r in pairs
    ]
    return "Forest plot of paired differences in black-box ASR with 95 % intervals, line at 0: " + "; ".join(
        parts
    )


def _provenance(
    run: Any, config: Any, out: Path, n_clips: int, elapsed: float, manifest: Mapping[str, Any]
) -> dict[str, str]:
    """The provenance block: versions, seed, config hash, command, data and model facts, attack settings."""
    dataset = dict(config.dataset)
    input_facts = manifest.get("input", {})
    classes = manifest.get("dataset", {}).get("class_names", [])
    accuracy = ", ".join(
        f"{name} {100 * manifest['models'][name]['test_accuracy']:.1f} %"
        for name in config.model_labels
        if "test_accuracy" in manifest.get("models", {}).get(name, {})
    )
    side = input_facts.get("size", dataset.get("size"))
    frames = input_facts.get("frames", dataset.get("frames"))
    info = {
        "vidadv": versions().get("vidadv", "?"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions().items() if k != "vidadv"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in ["vidadv", *sys.argv[1:]])
        if Path(sys.argv[0]).name in ("vidadv", "__main__.py")
        else "vidadv demo",
        "run time": f"{elapsed:.0f} s (this command; a resumed run skips finished work)",
        "seed": str(config.seed),
        "config hash": run.config_hash,
        "data": (
            f"synthetic {dataset.get('split')} split, {n_clips} clips, "
            f"{side}\u00d7{side} px, {frames} frames, {len(classes)} classes"
        ),
        "clean accuracy (zoo test split, 600 clips)": accuracy,
        "selection rule": (
            f"{config.clips_per_class} clip(s) per class among clips every model classifies correctly "
            f"(selection: {config.selection})"
        ),
        "bootstrap": f"{config.bootstrap_samples} resamples of clips, percentile 95 % intervals",
        "budget": f"L\u221e eps {config.eps * 255:.0f}/255, {config.steps} steps of "
        f"{(config.step_size or 0) * 255:.1f}/255",
    }
    settings = _attack_settings(out)
    for name, options in settings.items():
        info[f"attack {name}"] = options
    return info


def _attack_settings(out: Path) -> dict[str, str]:
    """Every attack's full hyperparameters (MI, TI, VR, TT ones included) from attack_summary.json."""
    path = out / "attack_summary.json"
    if not path.is_file():
        return {}
    return attack_settings_text(json.loads(path.read_text()).get("attack_settings", {}))


def _summary_text(config: Any, n_clips: int) -> str:
    attacks = ", ".join(a.name for a in config.attacks)
    return (
        f"Models: {', '.join(config.model_labels)} (embedded zoo, trained on the procedural action dataset). "
        f"White-box: {', '.join(config.whitebox)}. Attacks: {attacks}; eps 16/255, 10 steps of 1.6/255 "
        f"(single-step ones: one step of 16/255); TT: L = {SHIFT_LENGTH}, gaussian weights, adjacent shifts. "
        f"{n_clips} clips, seed {config.seed}."
    )


#: Attacks shown side by side in the gallery (the first set the run has).
GALLERY_ATTACKS = (("BIM(10)", "TT(10)", "VR(10)"), ("FGSM", "TT(1)", "TI+TT(1)"))


def _gallery(
    run: Any, out: Path, factories: Any, outcomes: Outcomes, eps: float, count: int = 1
) -> tuple[list[GalleryItem], str]:
    """Clean / adversarial / amplified-perturbation clips (lossless APNG) of `count` clips under several
    attacks from the first white-box model, with each model's prediction on the adversarial clip."""
    dataset = factories.build_dataset(dict(run.config.dataset))
    names = [a.name for a in run.config.attacks]
    attacks = next((list(group) for group in GALLERY_ATTACKS if all(a in names for a in group)), names[:3])
    whitebox = run.config.whitebox[0]
    amplification = 0.5 / eps
    items = []
    for clip in run.clips[:count]:
        clean, _label, _clip_id = check_item(dataset[clip.index], clip.index)
        label_name = CLASS_NAMES[clip.label] if 0 <= clip.label < len(CLASS_NAMES) else str(clip.label)
        per_attack = outcomes.items()
        for attack in attacks:
            adversarial = load_tensors(run.layout.adv_path(whitebox, attack, clip.clip_id))["adv"].float()
            predictions = [
                Prediction(
                    model + (" (white-box)" if model == whitebox else ""),
                    CLASS_NAMES[o.adv_pred]
                    if o.adv_pred is not None and o.adv_pred < len(CLASS_NAMES)
                    else "?",
                    o.fooled,
                )
                for model, o in per_attack[(whitebox, attack, clip.clip_id)].items()
            ]
            items.append(
                gallery_item(
                    clean.float(),
                    adversarial,
                    out / "gallery",
                    f"{slug(clip.clip_id)}_{slug(attack)}",
                    f"{attack} from {whitebox} on {clip.clip_id}; clean: {label_name} (all correct). "
                    "Adversarial:",
                    amplification=amplification,
                    predictions=predictions,
                    clean_name=slug(clip.clip_id),
                )
            )
    size = tuple(clean.shape[-2:]) if items else (0, 0)
    note = (
        f"Frames: lossless animated PNG at native {size[1]}\u00d7{size[0]} px, shown 4\u00d7 enlarged "
        f"without smoothing. Perturbation: 0.5 + {amplification:.1f} \u00d7 delta (amplified "
        f"{amplification:.1f}\u00d7, so \u00b1eps maps to black/white; grey = unchanged). Predictions in "
        "orange: the model is fooled."
    )
    return items, note
