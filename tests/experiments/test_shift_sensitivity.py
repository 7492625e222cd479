"""scripts/shift_sensitivity.py: 1 / 0 / 1 on a cyclic-shift-invariant model, less on a sensitive one."""

from __future__ import annotations

import pytest
import torch

from tests.attacks.tiny_models import CyclicShiftInvariant, TinyConv, clips
from tests.scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("shift_sensitivity")


def test_invariant_model_keeps_predictions_logits_and_gradients(script):
    x, y = clips(3), torch.tensor([0, 1, 2])
    result = script.shift_sensitivity(CyclicShiftInvariant(), x, y, [-2, 1, 3])
    for same, change, cosine in result.values():
        assert same == 1.0 and change == pytest.approx(0, abs=1e-12) and cosine == pytest.approx(1, abs=1e-12)


def test_shift_sensitive_model_changes(script):
    x, y = clips(3), torch.tensor([0, 1, 2])
    model = TinyConv()
    result = script.shift_sensitivity(model, x, y, [2])
    same, change, cosine = result[2]
    assert change > 1e-3 and cosine < 0.999
    # the cosine is the one of the rolled-back gradient with the plain gradient, computed independently
    xs = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xs), y, reduction="sum").backward()
    shifted = torch.roll(x, 2, dims=2).requires_grad_(True)
    torch.nn.functional.cross_entropy(model(shifted), y, reduction="sum").backward()
    back = torch.roll(shifted.grad, -2, dims=2)
    expected = torch.nn.functional.cosine_similarity(back.flatten(1), xs.grad.flatten(1)).mean()
    assert cosine == pytest.approx(float(expected), rel=1e-9)


def test_bad_arguments_are_named(script, tmp_path, capsys):
    assert script.main([str(tmp_path), "--clips", "0"]) == 2
    assert "--clips (0)" in capsys.readouterr().err
    assert script.main([str(tmp_path)]) == 2
    assert "not a vidadv run folder" in capsys.readouterr().err
