"""Time of one zoo training step for the zoo transformers (and a zoo CNN for reference) on this machine.

One step = forward, cross-entropy, backward and an AdamW update on a batch of `--batch` random clips
(N, 3, 32, 32, 32) in train mode, as in the zoo recipe (augmentation and data rendering excluded; they
cost the same for every model). The median over `--repeats` timed steps after one warm-up step is
printed (models taking turns) with the parameter count and the estimated time of `--steps` steps.

    python benchmarks/transformer_zoo_step.py [--models timesformer-s videomae-s nl-s] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vidadv.models import zoo, zoo_transformers


def _classifier(name: str) -> torch.nn.Module:
    if name in zoo_transformers.TRANSFORMER_ZOO_NAMES:
        return zoo_transformers.wrap_transformer_network(zoo_transformers.build_transformer_network(name))
    return zoo.wrap_zoo_network(name, zoo.build_zoo_network(name))


def training_step(name: str, batch: int) -> tuple[Callable[[], None], int]:
    """(one training step of model `name` on a fixed random batch, parameter count)."""
    classifier = _classifier(name).train()
    optimizer = torch.optim.AdamW(classifier.network.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(batch, 3, zoo.INPUT_FRAMES, zoo.INPUT_SIZE, zoo.INPUT_SIZE, generator=generator)
    labels = torch.arange(batch) % 12

    def step() -> None:
        loss = F.cross_entropy(classifier.network(classifier.network_input(clips)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, sum(p.numel() for p in classifier.network.parameters())


def step_seconds(names: list[str], batch: int, repeats: int) -> dict[str, tuple[float, int]]:
    """{name: (median seconds per training step, parameter count)}; the models take turns step by step,
    so a change in the machine's load hits all of them alike."""
    steps = {name: training_step(name, batch) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for step, _ in steps.values():
        step()  # warm-up
    for _ in range(repeats):
        for name, (step, _) in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), steps[name][1]) for name in names}


def main(argv: list[str] | None = None) -> int:
    names = list(zoo_transformers.TRANSFORMER_ZOO_NAMES) + list(zoo.ZOO_NAMES)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["timesformer-s", "videomae-s", "nl-s"], choices=names)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000, help="steps of the estimate (zoo recipe: 3000)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x (3, 32, 32, 32)"
    )
    print(f"{'model':<14} {'params':>8} {'s/step':>7} {f'min/{args.steps} steps':>16}")
    for name, (seconds, params) in step_seconds(args.models, args.batch, args.repeats).items():
        print(f"{name:<14} {params:>8} {seconds:>7.3f} {seconds * args.steps / 60:>16.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
