"""Wall-clock time of `vidadv demo` (the main job; target: at most 10 minutes on 2 CPU cores).

Runs the demo from scratch into a temporary folder (nothing resumed) and prints the elapsed time and
the peak resident memory of this process. `--quick` times the reduced version instead.

    python benchmarks/demo_time.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch

from vidadv.experiments.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time `vidadv demo --quick`")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="vidadv-demo-time-") as out:
        start = time.perf_counter()
        run_demo(out_dir=out, quick=args.quick)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "demo --quick" if args.quick else "demo"
    threads = torch.get_num_threads()
    print(f"vidadv {mode}: {seconds:.1f} s wall ({seconds / 60:.2f} min), {threads} torch threads, ", end="")
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
