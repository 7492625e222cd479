"""Bad input gets a clear ValueError/TypeError naming the problem and the allowed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.attacks.tiny_models import TinyConv, clips
from vidadv.attacks import available_attacks, build_attack


@pytest.fixture
def model() -> TinyConv:
    return TinyConv()


def test_available_attacks_lists_required_names() -> None:
    required = {"fgsm", "bim", "pgd", "mi", "ni", "di", "ti", "sim", "vt", "vr", "sgm", "ata", "tt"}
    assert required == set(available_attacks())


@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        (torch.rand(3, 8, 6, 6, dtype=torch.float64), ValueError, "5-D"),
        (torch.zeros(1, 3, 8, 6, 6, dtype=torch.int64), TypeError, "floating-point"),
        (torch.full((1, 3, 8, 6, 6), 1.5, dtype=torch.float64), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 6, 6), -0.1, dtype=torch.float64), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 6, 6), float("nan"), dtype=torch.float64), ValueError, "NaN"),
        ([[0.5]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_clips(model: TinyConv, x, exc, match: str) -> None:
    with pytest.raises(exc, match=match):
        build_attack("bim", model)(x, torch.tensor([0]))


def test_bad_labels(model: TinyConv) -> None:
    x = clips(2)
    attack = build_attack("bim", model, steps=1)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        attack(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        attack(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        attack(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=">= 0"):
        attack(x, torch.tensor([0, -1]))


def test_targeted_needs_target_and_untargeted_rejects_it(model: TinyConv) -> None:
    x, y = clips(1), torch.tensor([0])
    with pytest.raises(ValueError, match="target"):
        build_attack("bim", model, targeted=True)(x, y)
    with pytest.raises(ValueError, match="targeted=True"):
        build_attack("bim", model)(x, y, target=torch.tensor([1]))


@pytest.mark.parametrize(
    ("spec", "options", "exc", "match"),
    [
        ("tt+foo", {}, ValueError, "unknown attack 'foo'.*valid: fgsm, bim"),
        ("tt++mi", {}, ValueError, "empty attack name"),
        ("tt+tt", {}, ValueError, "twice"),
        ("fgsm+bim", {}, ValueError, "contradict"),
        ("tt", {"shift_lenght": 3}, ValueError, "unknown option 'shift_lenght'.*shift_length"),
        ("bim", {"decay": 0.5}, ValueError, "belongs to mi/ni"),
        ("bim", {"eps": 0.0}, ValueError, "eps must be > 0"),
        ("bim", {"eps": -1.0}, ValueError, "eps must be > 0"),
        ("bim", {"steps": 0}, ValueError, "steps must be >= 1"),
        ("bim", {"steps": 2.5}, TypeError, "steps must be an int"),
        ("fgsm", {"steps": 5}, ValueError, "single step"),
        ("bim", {"norm": "l1"}, ValueError, "norm must be one of linf, l2"),
        ("bim", {"loss": "nll"}, ValueError, "loss must be one of ce, cw"),
        ("tt", {"weights": "box"}, ValueError, "uniform, linear, gaussian"),
        ("tt", {"strategy": "far"}, ValueError, "adjacent, remote, random"),
        ("tt", {"shift_length": -1}, ValueError, "shift_length must be >= 0"),
        ("ti", {"kernel_size": 4}, ValueError, "odd"),
        ("di", {"diversity_prob": 1.5}, ValueError, "diversity_prob must be <= 1"),
        ("mi", {"momentum_norm": "pixel"}, ValueError, "clip, frame"),
        ("sgm", {}, ValueError, "SGM needs a residual network"),
        (123, {}, TypeError, "spec must be a str"),
    ],
)
def test_bad_specs_and_options(model: TinyConv, spec, options, exc, match: str) -> None:
    with pytest.raises(exc, match=match):
        build_attack(spec, model, **options)


def test_model_must_be_a_module() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        build_attack("bim", lambda x: x)


def test_shift_length_too_long_for_clip_names_t_and_l(model: TinyConv) -> None:
    attack = build_attack("tt", model, shift_length=4)
    with pytest.raises(ValueError, match=r"L=4.*T=8"):
        attack(clips(1, t=8), torch.tensor([0]))


def test_ata_without_a_valid_layer() -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 6 * 6, 4)).double()
    with pytest.raises(ValueError, match="ATA needs a Grad-CAM layer"):
        build_attack("ata", plain)
    with pytest.raises(ValueError, match="no layer 'body'.*valid layer names: 0, 1"):
        build_attack("ata", plain, ata_layer="body")


def test_dtype_mismatch_between_clip_and_model(model: TinyConv) -> None:
    with pytest.raises(TypeError, match="float32.*float64"):
        build_attack("bim", model)(clips(1).float(), torch.tensor([0]))
