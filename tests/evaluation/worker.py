"""Runs `run_attack` (after selection) or `run_evaluate` with the test stand-ins, for subprocess, SIGKILL,
torchrun, lock and file-system-fault tests.

Usage: python tests/evaluation/worker.py CONFIG [--force] [--no-resume] [--cli]
       python tests/evaluation/worker.py --evaluate RUN [--cli]
--cli reports errors as the command line does (one line on stderr, exit code 1 or 2).
(the repository root must be on PYTHONPATH).
"""

from __future__ import annotations

import sys

from tests.evaluation.fakes import FAKES, load_fake_config
from vidadv.cli import report_errors
from vidadv.experiments import run_attack, run_evaluate


def main(argv: list[str]) -> int:
    if "--evaluate" in argv:
        run = argv[argv.index("--evaluate") + 1]
        command = "evaluate"

        def call() -> int:
            return run_evaluate(run, progress=False, gallery=0, factories=FAKES)

    else:
        command = "attack"

        def call() -> int:
            config = load_fake_config(argv[0])
            return run_attack(
                config,
                force="--force" in argv,
                resume="--no-resume" not in argv,
                progress=False,
                factories=FAKES,
            )

    return report_errors(command, call) if "--cli" in argv else call()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
