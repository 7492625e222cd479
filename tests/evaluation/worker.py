"""Runs `run_select` + `run_attack` with the test stand-ins (for subprocess, SIGKILL and torchrun tests).

Usage: python tests/evaluation/worker.py CONFIG [--force] [--no-resume]
(the repository root must be on PYTHONPATH).
"""

from __future__ import annotations

import sys

from tests.evaluation.fakes import FAKES, load_fake_config
from vidadv.experiments import run_attack


def main(argv: list[str]) -> int:
    config = load_fake_config(argv[0])
    return run_attack(
        config, force="--force" in argv, resume="--no-resume" not in argv, progress=False, factories=FAKES
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
