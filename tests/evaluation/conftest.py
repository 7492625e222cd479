from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch() -> Iterator[None]:
    """The tiny stand-in models run fastest (and least disturbed by a busy machine) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """`vidadv demo --quick` run once per test session (about a minute): (output folder, exit code)."""
    from vidadv.experiments.demo import run_demo

    out = tmp_path_factory.mktemp("quick-demo") / "demo"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = run_demo(out, quick=True, progress=False)
    finally:
        torch.set_num_threads(previous)
    return out, code
