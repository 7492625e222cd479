"""Forward and forward+backward time and peak memory of vidadv's networks (not a test).

Each model is built with random weights (timing does not depend on them), wrapped in a VideoClassifier
with frozen parameters, and fed random clips in [0, 1]. "fwd" runs under torch.no_grad; "fwd+bwd"
computes the gradient of the summed logits with respect to the clip, as the attacks do.

    python benchmarks/models.py --models nl50 --batch 1 --device cpu
    python benchmarks/models.py --batch 1 8 --device cuda

Peak memory is torch.cuda.max_memory_allocated on CUDA and the process's resident-set high-water mark on
CPU (monotonic over the run, so only the first model's CPU figure is specific to it).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable

import torch

from vidadv.models import VideoClassifier, available_models, build_network

DEFAULT_MODELS = ["nl50", "nl101", "slowfast50", "slowfast101", "tpn50", "tpn101"]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _timed(step: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """(median seconds per call, peak MiB) after one warm-up call."""
    step()
    _synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], _peak_memory_mib(device)


def benchmark(name: str, batch: int, frames: int, size: int, device: torch.device, repeats: int) -> dict:
    model = VideoClassifier(build_network(name)).to(device).eval().requires_grad_(False)
    clip = torch.rand(batch, 3, frames, size, size, device=device)

    def forward() -> None:
        with torch.no_grad():
            model(clip)

    def forward_backward() -> None:
        x = clip.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        del grad

    fwd_s, fwd_mib = _timed(forward, device, repeats)
    bwd_s, bwd_mib = _timed(forward_backward, device, repeats)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"model": name, "batch": batch, "params_M": params, "fwd_s": fwd_s, "fwd_MiB": fwd_mib,
            "fwdbwd_s": bwd_s, "fwdbwd_MiB": bwd_mib}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="gluoncv names or aliases")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="height = width")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    unknown = [m for m in args.models if m not in available_models()]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {available_models()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    header = (
        f"{'model':<36}{'batch':>6}{'params(M)':>11}{'fwd s':>9}{'fwd MiB':>10}{'fwd+bwd s':>11}{'MiB':>10}"
    )
    print(f"device={device} frames={args.frames} size={args.size} repeats={args.repeats}")
    print(header)
    for name in args.models:
        for batch in args.batch:
            try:
                row = benchmark(name, batch, args.frames, args.size, device, args.repeats)
            except torch.OutOfMemoryError:
                print(f"{name:<36}{batch:>6}  out of memory")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            print(
                f"{row['model']:<36}{row['batch']:>6}{row['params_M']:>11.1f}{row['fwd_s']:>9.3f}"
                f"{row['fwd_MiB']:>10.0f}{row['fwdbwd_s']:>11.3f}{row['fwdbwd_MiB']:>10.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
