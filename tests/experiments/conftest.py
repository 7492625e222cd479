"""Fixtures of the command tests: the run-layer tests' one-thread torch (tests/evaluation/conftest.py)."""

from tests.evaluation.conftest import _single_thread_torch  # noqa: F401  (autouse fixture)
