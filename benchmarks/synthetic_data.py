"""Generation speed of the procedural action clips (vidadv.data.synthetic).

Prints clips per second of ``generate_batch`` (fresh training clips, 32 frames) at 32x32 and 64x64, and of
rendering a cached-style dataset split, for the current torch thread count and for one thread.

    python benchmarks/synthetic_data.py [--clips 512] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from vidadv.data.synthetic import CLASS_NAMES, ProceduralActions, generate_batch


def clips_per_second(size: int, num_clips: int, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` wall-clock and CPU-time throughput of generate_batch (clips / s)."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(num_clips) % len(CLASS_NAMES)
    generate_batch(labels[:16], generator, size=size)  # warm-up
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        generate_batch(labels, generator, size=size)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return num_clips / best_wall, num_clips / best_cpu


def dataset_clips_per_second(size: int, num_clips: int) -> float:
    """Wall-clock throughput of rendering a whole dataset split (48-frame sequences, per-item seeds)."""
    data = ProceduralActions("train", size=size, num_clips=num_clips, random_window=True, progress=False)
    start = time.perf_counter()
    data.materialize()
    return num_clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512, help="clips per timed batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="torch thread counts to try")
    args = parser.parse_args()
    thread_counts = args.threads or sorted({torch.get_num_threads(), 1}, reverse=True)
    print(f"torch {torch.__version__}, clips of 32 frames, batch of {args.clips}")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for size in (32, 64):
            clips = args.clips if size == 32 else max(args.clips // 4, 16)
            wall, cpu = clips_per_second(size, clips, args.repeats)
            print(
                f"threads={threads} generate_batch {size}x{size}: {wall:8.0f} clips/s "
                f"({cpu:.0f} clips per CPU-second; 1000 clips in {1000 / wall:.2f} s)"
            )
        rate = dataset_clips_per_second(32, min(args.clips, 256))
        print(f"threads={threads} ProceduralActions 32x32 (48-frame sequences): {rate:8.0f} clips/s")


if __name__ == "__main__":
    main()
