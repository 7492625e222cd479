"""Cost of Temporal Translation: TT(steps) wall time and peak memory versus the bare passes it needs.

TT(10) with shift length L costs (2L+1) * 10 clip forward+backward passes per clip. This script times
the attack and, separately, exactly those bare passes (same model, same batch of copies, same
chunking, gradient with respect to the input only), and prints the ratio (target <= 1.10) for each
`chunk_size`.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` during the measured call. On CPU, every
configuration runs in a fresh subprocess and reports the growth of its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from just before the measured call to just after;
that includes allocator caching, so it is an upper bound on the tensors alive at the peak.

Time: best of --repeats, TT and bare runs interleaved in one process; both wall-clock and process CPU
time are printed (on a shared, loaded CPU the CPU-time ratio is the steadier one). One torch thread by
default, for the same reason.

    python benchmarks/tt_cost.py --model tiny --clip 3 16 48 48 --batch 1 --shift-length 7 --chunks 0 5 1

``--sweep``: the automatic chunk sizes (the rule ``chunk_size=None`` and the timed ``"auto"``,
`vidadv.attacks.chunking`) against every fixed chunk size 1..2L+1, for TT (L = 7) on NL-50 (gluoncv
layout, random weights) at 32x56x56 and 32x112x112 and the zoo's nl-l at 32x32x32; one clip, a reduced
number of steps (SWEEP_CASES), all configurations interleaved in one process, best of the repeats; the
timed choice's one-off selection call is timed apart. Wall and process CPU time are both printed: on a
shared machine the CPU time is the steadier one.

    python benchmarks/tt_cost.py --sweep

``--estimators``: wall and process CPU time per clip of the cost frontier's attacks at 50 and 150
gradient evaluations (TT(10), MI+TT(10), BIM(50), BIM(150), VR15(10), TT(3), MI+TT(3) and the cheaper
estimators' 50-points, `configs/embedded_cost_frontier.yaml`) on the zoo's nl-l, slowfast-l and
tpn-l, a batch of 16 random 32x32x32 clips as in the run; interleaved, best of --repeats, torch's
default threads. The frontier run records wall time under whatever else the machine ran; this
measures the same attacks on an otherwise idle machine, so the estimators' overheads (bookkeeping,
fewer copies per pass) show.

    python benchmarks/tt_cost.py --estimators --repeats 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from vidadv.attacks import build_attack
from vidadv.experiments.config import load_config
from vidadv.models import build_network, load_model
from vidadv.utils.io import atomic_write_json


class SmallConv3D(nn.Module):
    """A small built-in 3-D conv net (about 0.1 M parameters)."""

    attention_layer = "features.6"

    def __init__(self, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
            nn.BatchNorm3d(width),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, stride=(1, 2, 2), padding=1),
            nn.BatchNorm3d(2 * width),
            nn.ReLU(),
            nn.Conv3d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


def _model(name: str, device: str) -> nn.Module:
    if name == "tiny":
        return SmallConv3D().to(device).eval()
    return load_model(name, device=device).eval()


def _peak_start(device: str) -> int:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_mib(device: str, start: int) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start) / 2**20


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _bare_passes(model: nn.Module, copies: torch.Tensor, labels: torch.Tensor, chunk: int | None, steps: int):
    rows = copies.shape[0]
    size = chunk or rows
    for _ in range(steps):
        for start in range(0, rows, size):
            part = copies[start : start + size].detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(part), labels[start : start + size], reduction="sum")
            torch.autograd.grad(loss, part)


def worker(args: argparse.Namespace) -> dict:
    """One measurement in a fresh process: ``time`` (TT and the bare passes interleaved, best of
    --repeats) or ``mem-tt`` / ``mem-bare`` (peak memory of one run)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    torch.manual_seed(0)
    model = _model(args.model, device)
    C, T, H, W = args.clip
    x = torch.rand(args.batch, C, T, H, W, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    chunk = args.chunk or None
    L = args.shift_length
    attack = build_attack("tt", model, eps=16 / 255, steps=args.steps, shift_length=L, chunk_size=chunk)
    copies = torch.cat([torch.roll(x, s, dims=2) for s in range(-L, L + 1)])
    labels = y.repeat(2 * L + 1)

    def run_tt() -> None:
        attack(x, y)

    def run_bare() -> None:
        _bare_passes(model, copies, labels, chunk, args.steps)

    if args.measure != "time":
        run = run_tt if args.measure == "mem-tt" else run_bare
        start = _peak_start(device)
        run()
        return {"peak_mib": _peak_mib(device, start)}
    # warm-up (allocator, kernels) outside the measurement
    build_attack("tt", model, steps=1, shift_length=L, chunk_size=chunk)(x, y)
    _bare_passes(model, copies, labels, chunk, 1)
    wall: dict[str, list[float]] = {"tt": [], "bare": []}
    cpu: dict[str, list[float]] = {"tt": [], "bare": []}
    for _ in range(args.repeats):
        for name, run in (("tt", run_tt), ("bare", run_bare)):
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            _sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        f"{kind}_{clock}": min(values[kind])
        for clock, values in (("s", wall), ("cpu", cpu))
        for kind in values
    }


def _child(passthrough: list[str], chunk: int, measure: str) -> dict:
    command = [sys.executable, __file__, *passthrough, "--chunk", str(chunk), "--measure", measure]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


SWEEP_CASES = (  # (model, H = W, TT steps, repeats)
    ("nl-l", 32, 3, 2),
    ("nl50", 56, 1, 1),
    ("nl50", 112, 1, 1),
)


def _sweep_model(name: str) -> nn.Module:
    model = build_network(name) if name == "nl50" else load_model(name)
    return model.eval().requires_grad_(False)


def sweep(shift_length: int = 7, threads: int = 0) -> list[dict]:
    """TT time with the automatic chunk sizes (the rule, ``chunk_size=None``, and the timed ``"auto"``)
    against every fixed chunk size 1..2L+1 (see the module docstring)."""
    if threads:
        torch.set_num_threads(threads)
    print(f"torch threads {torch.get_num_threads()}; on a shared machine the times are noisy", flush=True)
    copies = 2 * shift_length + 1
    rows = []
    for name, size, steps, repeats in SWEEP_CASES:
        torch.manual_seed(0)
        model = _sweep_model(name)
        x = torch.rand(1, 3, 32, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x).argmax(1)
        options = {"eps": 16 / 255, "steps": steps, "shift_length": shift_length}
        build_attack("tt", model, chunk_size=copies, **{**options, "steps": 1})(x, y)  # warm-up
        timed = build_attack("tt", model, chunk_size="auto", **options)
        t0 = time.perf_counter()
        timed(x, y)  # selection: every candidate timed on the first step, then cached
        first_call = time.perf_counter() - t0
        selection = dict(timed.model_gradient.chunk_timings)
        configs: list[int | str | None] = [None, "auto", *range(1, copies + 1)]
        attacks = {
            c: timed if c == "auto" else build_attack("tt", model, chunk_size=c, **options) for c in configs
        }
        wall: dict[int | str | None, float] = {}
        cpu: dict[int | str | None, float] = {}
        for _ in range(repeats):
            for c in configs:
                t0, c0 = time.perf_counter(), time.process_time()
                attacks[c](x, y)
                wall[c] = min(wall.get(c, float("inf")), time.perf_counter() - t0)
                cpu[c] = min(cpu.get(c, float("inf")), time.process_time() - c0)
        fixed = [c for c in configs if isinstance(c, int)]
        best = min(fixed, key=lambda c: wall[c])
        best_cpu = min(fixed, key=lambda c: cpu[c])
        choice = {"rule": attacks[None].chunk_size_used, "auto": timed.chunk_size_used}
        row = {
            "model": name,
            "clip": f"32x{size}x{size}",
            "steps": steps,
            "rule_chunk": choice["rule"],
            "auto_chunk": choice["auto"],
            "selection_s": selection,
            "auto_first_call_s": first_call,
            "best_fixed_wall": best,
            "best_fixed_cpu": best_cpu,
            "wall_s": {str(c): wall[c] for c in configs},
            "cpu_s": {str(c): cpu[c] for c in configs},
        }
        for label, chunk in choice.items():
            # the chosen size's own fixed-size run against the best fixed one, and the run itself
            key = None if label == "rule" else "auto"
            row[f"{label}_over_best_wall"] = wall[key] / wall[best] - 1.0
            row[f"{label}_over_best_cpu"] = cpu[key] / cpu[best_cpu] - 1.0
            row[f"{label}_fixed_over_best_cpu"] = cpu[chunk] / cpu[best_cpu] - 1.0
        rows.append(row)
        timings = ", ".join(f"{c}: {t:.2f}s" for c, t in selection.items())
        print(
            f"{name} {row['clip']} TT({steps}) L={shift_length}: rule chose {choice['rule']}, "
            f"timed 'auto' chose {choice['auto']} (step-1 timings {timings}; "
            f"first call with selection {first_call:.2f}s); best fixed: {best} by wall, {best_cpu} by cpu",
            flush=True,
        )
        for label in ("rule", "auto"):
            over_wall = 100 * row[label + "_over_best_wall"]
            over_cpu = 100 * row[label + "_over_best_cpu"]
            fixed_cpu = 100 * row[label + "_fixed_over_best_cpu"]
            print(
                f"  {label}: over the best fixed chunk size: wall {over_wall:+.1f} %, cpu {over_cpu:+.1f} % "
                f"(its size run as a fixed size: cpu {fixed_cpu:+.1f} %)",
                flush=True,
            )
        print("  wall s: " + " ".join(f"{c}:{wall[c]:.2f}" for c in configs), flush=True)
        print("  cpu s:  " + " ".join(f"{c}:{cpu[c]:.2f}" for c in configs), flush=True)
    return rows


FRONTIER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "embedded_cost_frontier.yaml"
#: The frontier config's attacks at 50 and 150 gradient evaluations per clip (options from the config).
ESTIMATOR_ATTACKS = (
    "TT(10)", "MI+TT(10)", "BIM(50)", "BIM(150)", "VR15(10)", "TT(3)", "MI+TT(3)", "TT-sag2(25)",
    "TT-iid5(10)", "TT-anti5(10)", "MI+TT-sag2(25)", "MI+TT-iid1(50)", "MI+TT-anti5(10)",
)  # fmt: skip


def estimators(models: list[str], batch: int, repeats: int) -> list[dict]:
    """Seconds per clip of ESTIMATOR_ATTACKS on each model (see the module docstring)."""
    config = load_config(FRONTIER_CONFIG)
    specs = {name: config.attack(name) for name in ESTIMATOR_ATTACKS}
    print(f"torch threads {torch.get_num_threads()}; batch {batch}; best of {repeats}", flush=True)
    rows = []
    for name in models:
        model = load_model(name).eval().requires_grad_(False)
        x = torch.rand(batch, 3, 32, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x).argmax(1)
        attacks = {
            label: build_attack(spec.spec, model, **config.attack_options(spec))
            for label, spec in specs.items()
        }
        build_attack("tt", model, eps=config.eps, steps=1)(x, y)  # warm-up
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for _ in range(repeats):
            for label, attack in attacks.items():
                t0, c0 = time.perf_counter(), time.process_time()
                attack(x, y)
                wall[label] = min(wall.get(label, float("inf")), time.perf_counter() - t0)
                cpu[label] = min(cpu.get(label, float("inf")), time.process_time() - c0)
        reference = wall["TT(10)"] / batch
        columns = (
            f"{'attack':<16} {'evals':>5} {'s/clip':>7} {'cpu s/clip':>10} {'ms/eval':>7} {'/TT(10)':>7}"
        )
        print(f"{name}: {columns}")
        for label, attack in attacks.items():
            evals = attack.gradient_evaluations_per_clip
            row = {
                "model": name,
                "attack": label,
                "gradient_evaluations_per_clip": evals,
                "seconds_per_clip": wall[label] / batch,
                "cpu_seconds_per_clip": cpu[label] / batch,
                "ms_per_gradient_evaluation": 1000 * wall[label] / batch / evals,
            }
            rows.append(row)
            print(
                f"{'':<{len(name) + 1}} {label:<16} {evals:>5} {row['seconds_per_clip']:7.3f} "
                f"{row['cpu_seconds_per_clip']:10.3f} {row['ms_per_gradient_evaluation']:7.2f} "
                f"{row['seconds_per_clip'] / reference:7.2f}",
                flush=True,
            )
    return rows


def _given(option: str, argv: list[str]) -> bool:
    """Whether `option` was given on the command line (as ``--option V`` or ``--option=V``)."""
    return any(a == option or a.startswith(option + "=") for a in argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="tiny", help="'tiny' (built-in 3-D conv net) or a vidadv.models name"
    )
    parser.add_argument("--clip", type=int, nargs=4, default=(3, 16, 48, 48), metavar=("C", "T", "H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--shift-length", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 5, 1], help="chunk sizes; 0 = none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)  # worker mode
    parser.add_argument(
        "--measure", default="time", choices=["time", "mem-tt", "mem-bare"], help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--sweep", action="store_true", help="automatic vs every fixed chunk size (see above)"
    )
    parser.add_argument(
        "--estimators", action="store_true", help="time per clip of the cost frontier's attacks (see above)"
    )
    parser.add_argument(
        "--models", nargs="+", default=["nl-l", "slowfast-l", "tpn-l"], help="--estimators: zoo models"
    )
    parser.add_argument(
        "--json", default=None, help="--sweep/--estimators: also write the rows to this JSON file"
    )
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    if args.estimators:
        batch = args.batch if _given("--batch", given) else 16  # --estimators: the run's batch of 16
        rows = estimators(args.models, batch, args.repeats)
        if args.json:
            atomic_write_json(args.json, rows, indent=1)
        return 0
    if args.sweep:
        threads = args.threads if _given("--threads", given) else 0  # sweep: torch's default threads
        rows = sweep(args.shift_length, threads)
        if args.json:
            atomic_write_json(args.json, rows, indent=1)
        return 0
    if args.chunk is not None:
        print(json.dumps(worker(args)))
        return 0
    copies = (2 * args.shift_length + 1) * args.batch
    print(
        f"TT({args.steps}) L={args.shift_length} model={args.model} clip={tuple(args.clip)} "
        f"batch={args.batch} device={args.device}: {copies} copies/step, "
        f"{copies * args.steps} clip fwd+bwd passes in total"
    )
    print(
        f"{'chunk_size':>10} {'TT s':>8} {'bare s':>8} {'ratio':>6} {'TT cpu':>8} {'bare cpu':>8} "
        f"{'ratio':>6} {'TT peak MiB':>11} {'bare peak MiB':>13}"
    )
    passthrough = list(argv if argv is not None else sys.argv[1:])
    for chunk in args.chunks:
        timing = _child(passthrough, chunk, "time")
        tt_peak = _child(passthrough, chunk, "mem-tt")["peak_mib"]
        bare_peak = _child(passthrough, chunk, "mem-bare")["peak_mib"]
        label = "none" if chunk == 0 else str(chunk)
        ratio = timing["tt_s"] / timing["bare_s"]
        cpu_ratio = timing["tt_cpu"] / timing["bare_cpu"]
        print(
            f"{label:>10} {timing['tt_s']:8.3f} {timing['bare_s']:8.3f} {ratio:6.3f} {timing['tt_cpu']:8.3f} "
            f"{timing['bare_cpu']:8.3f} {cpu_ratio:6.3f} {tt_peak:11.1f} {bare_peak:13.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
