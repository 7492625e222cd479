"""`vidadv.utils.checks.check_labels`: the one label check of attacks, Grad-CAM and the synthetic data."""

from __future__ import annotations

import pytest
import torch

from vidadv.utils.checks import check_labels


def test_check_labels_accepts_integer_labels() -> None:
    out = check_labels([2, 0, 1], 3, num_classes=3)
    assert out.dtype == torch.long and out.tolist() == [2, 0, 1]
    assert check_labels(torch.tensor([4], dtype=torch.int32)).dtype == torch.long


@pytest.mark.parametrize(
    ("labels", "n", "error", "message"),
    [
        (None, 2, ValueError, "y is required"),
        (torch.tensor([0.0, 1.0]), 2, TypeError, "y must be integer class indices"),
        (torch.tensor([True, False]), 2, TypeError, "integer"),
        ([0, 1, 2], 2, ValueError, r"y must have shape \(2,\), one per clip"),
        ([[0, 1]], None, ValueError, "y must be 1-D"),
        ([0, -1], 2, ValueError, ">= 0, got -1"),
        ([0, 3], 2, ValueError, r"y must lie in \[0, 2\], got 3"),
    ],
)
def test_check_labels_errors_name_the_argument(labels, n, error, message) -> None:
    with pytest.raises(error, match=message):
        check_labels(labels, n, name="y", num_classes=3)
