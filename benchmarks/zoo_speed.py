"""Speed of the embedded zoo models: forward and forward+backward time per clip on this machine.

Attacks need the gradient of the loss with respect to the input clip, so "forward+backward" here is one
such gradient evaluation (parameters frozen, as in `load_model`). Each model runs at the zoo's input
size, (N, 3, 32, 32, 32), with batch 1 and batch 32; the time reported is the median over `--repeats`
timed runs (after one warm-up run), divided by the batch size. Uses the shipped weights when they are
there, else random ones (speed does not depend on the values). `torch.set_num_threads` is left at its
default unless `--threads` is given.

    python benchmarks/zoo_speed.py [--models nl-s tpn-l] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from vidadv.models import load_model, wrap_network, zoo


def _classifier(name: str) -> torch.nn.Module:
    try:
        return load_model(name)
    except (FileNotFoundError, ValueError):
        classifier = wrap_network(name, zoo.build_zoo_network(name))
        classifier.requires_grad_(False)
        return classifier.eval()


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch: int, repeats: int) -> tuple[float, float]:
    """(forward, forward+backward) seconds per clip for zoo model `name` at `batch` clips per call."""
    model = _classifier(name)
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(batch, 3, zoo.INPUT_FRAMES, zoo.INPUT_SIZE, zoo.INPUT_SIZE, generator=generator)
    labels = torch.arange(batch) % int(model.num_classes)

    def forward() -> None:
        with torch.no_grad():
            model(clips)

    def forward_backward() -> None:
        x = clips.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels)
        torch.autograd.grad(loss, x)

    return _median_seconds(forward, repeats) / batch, _median_seconds(forward_backward, repeats) / batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(zoo.ZOO_NAMES), choices=zoo.ZOO_NAMES)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input (N, 3, 32, 32, 32)")
    print(f"{'model':<11} {'batch':>5} {'fwd ms/clip':>12} {'fwd+bwd ms/clip':>16}")
    for name in args.models:
        for batch in args.batches:
            forward, forward_backward = measure(name, batch, args.repeats)
            print(
                f"{name:<11} {batch:>5} {1000 * forward:>12.1f} {1000 * forward_backward:>16.1f}", flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
