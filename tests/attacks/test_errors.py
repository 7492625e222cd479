"""Bad input gets a clear ValueError/TypeError naming the problem and the allowed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.attacks.tiny_models import TinyConv, clips
from vidadv.attacks import NonFiniteGradientError, available_attacks, build_attack


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


class _PoisonedHead(nn.Module):
    """TinyConv whose logits become NaN (or +Inf in class 0) once the clip's mean passes `threshold`."""

    def __init__(self, value: float, threshold: float = -1.0, clip: int | None = None) -> None:
        super().__init__()
        self.net, self.value, self.threshold, self.clip = TinyConv(), value, threshold, clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        hit = x.mean(dim=(1, 2, 3, 4)) > self.threshold
        if self.clip is not None:
            hit = hit & (torch.arange(len(x)) == self.clip)
        offset = torch.zeros_like(logits)
        offset[:, 0] = self.value  # a constant: NaN makes CE NaN; +Inf makes the C&W margin +Inf
        return logits + torch.where(hit.view(-1, 1), offset, torch.zeros_like(offset))


@pytest.mark.parametrize("spec", ["bim", "tt+mi", "di+ti"])
def test_nan_logits_stop_the_attack_naming_clip_and_step(spec: str) -> None:
    model = _PoisonedHead(float("nan"), clip=1)
    attack = build_attack(spec, model, steps=3, **({"shift_length": 1} if "tt" in spec else {}))
    with pytest.raises(NonFiniteGradientError, match=r"clip 1 \(index in the batch\) at step 1 of 3") as info:
        attack(clips(3), torch.tensor([0, 1, 2]))
    assert info.value.clips == [1] and info.value.step == 0


def test_an_infinite_loss_with_a_finite_gradient_is_caught() -> None:
    model = _PoisonedHead(float("inf"))  # C&W: margin = +Inf, but max() passes a finite gradient
    with pytest.raises(NonFiniteGradientError, match="clip 0, 1"):
        build_attack("bim", model, loss="cw", steps=2)(clips(2), torch.tensor([1, 2]))
    with pytest.raises(NonFiniteGradientError, match="step 1 of 1"):
        build_attack("bim", model, loss="cw").estimate_gradient(clips(2), torch.tensor([1, 2]))


class _BreaksAtCall(nn.Module):
    """TinyConv whose logits are NaN from its `at`-th forward pass on (one pass per attack step)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.net, self.at, self.calls = TinyConv(), at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = self.net(x)
        return logits * float("nan") if self.calls >= self.at else logits


def test_a_nan_that_appears_mid_attack_names_its_step() -> None:
    with pytest.raises(NonFiniteGradientError, match=r"clip 0, 1 \(index in the batch\) at step 3 of 5"):
        build_attack("tt+mi", _BreaksAtCall(3), steps=5, shift_length=1)(clips(2), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"eps": 1e9}, r"eps must lie in \(0, 1\] for norm 'linf'"), ({"eps": 1.5}, "1.5/255")],
)
def test_a_linf_budget_over_1_is_refused(model: TinyConv, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_attack("bim", model, **options)
    build_attack("bim", model, eps=1.0)  # the whole range is still a (useless) budget


def test_an_l2_budget_over_the_clip_diameter_is_refused(model: TinyConv) -> None:
    x = clips(1)  # 3 * 8 * 6 * 6 = 864 values: largest L2 distance sqrt(864) = 29.39
    build_attack("bim", model, norm="l2", eps=29.0, steps=1)(x, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"sqrt\(C\*T\*H\*W\) = 29\.39"):
        build_attack("bim", model, norm="l2", eps=30.0, steps=1)(x, torch.tensor([0]))


@pytest.mark.parametrize("labels", ["0", b"0", ["0"]])
def test_labels_given_as_strings_are_a_clear_error(model: TinyConv, labels) -> None:
    with pytest.raises(TypeError, match="y must be integer class indices"):
        build_attack("bim", model, steps=1)(clips(1), labels)


def test_a_pixel_just_over_1_is_named_with_its_exact_value_and_place(model: TinyConv) -> None:
    x = clips(2)
    x[1, 2, 3, 4, 5] = 1 + 1e-6
    with pytest.raises(ValueError, match=r"clip 1 .* 1\.000001 at \(c, t, h, w\) = \(2, 3, 4, 5\)"):
        build_attack("bim", model)(x, torch.tensor([0, 1]))
