"""Each baseline against its defining formula on a model whose gradient is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.attacks.tiny_models import (
    ForeignResNet,
    LinearResidual,
    LinearVideo,
    Recorder,
    SineVideo,
    TinyConv,
    autograd_ce,
    clips,
)
from vidadv.attacks import build_attack, ti_kernel
from vidadv.attacks.gradients import ModelGradient
from vidadv.attacks.transforms import DiverseInputs, Rows, StepContext

SHAPE = (3, 4, 5, 5)
EPS = 8 / 255


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


@pytest.fixture
def linear() -> LinearVideo:
    return LinearVideo(SHAPE)


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return clips(3, *SHAPE), torch.tensor([0, 2, 3])


def test_fgsm_on_linear_model(linear: LinearVideo, data) -> None:
    x, y = data
    expected = (x + EPS * linear.ce_grad(x, y).sign()).clamp(0, 1)
    assert torch.allclose(build_attack("fgsm", linear, eps=EPS)(x, y), expected, atol=1e-15)


def test_targeted_fgsm_descends_toward_target(linear: LinearVideo, data) -> None:
    x, y = data
    t = torch.tensor([1, 1, 0])
    attack = build_attack("fgsm", linear, eps=EPS, targeted=True)
    expected = (x - EPS * linear.ce_grad(x, t).sign()).clamp(0, 1)
    assert torch.allclose(attack(x, y, target=t), expected, atol=1e-15)


def test_cw_margin_loss_gradient(linear: LinearVideo, data) -> None:
    x, y = data
    z = linear(x).detach()
    others = z.clone()
    others[torch.arange(3), y] = -math.inf
    runner_up = others.argmax(1)
    W = linear.weight.detach()
    grad = (W[runner_up] - W[y]).view_as(x)
    expected = (x + EPS * grad.sign()).clamp(0, 1)
    assert torch.allclose(build_attack("fgsm", linear, eps=EPS, loss="cw")(x, y), expected, atol=1e-15)


def test_l2_fgsm(linear: LinearVideo, data) -> None:
    x, y = data
    eps = 0.05
    g = linear.ce_grad(x, y)
    expected = (x + eps * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1)).clamp(0, 1)
    out = build_attack("fgsm", linear, eps=eps, norm="l2")(x, y)
    assert torch.allclose(out, expected, atol=1e-12)
    assert ((out - x).flatten(1).norm(dim=1) <= eps + 1e-9).all()


def _bim(model, x, y, eps, steps, grad_fn) -> torch.Tensor:
    alpha = eps / steps
    x_adv = x.clone()
    for _ in range(steps):
        x_adv = _project(x_adv + alpha * grad_fn(model, x_adv, y).sign(), x, eps)
    return x_adv


def test_bim_iterates_projected_sign_steps(linear: LinearVideo, data) -> None:
    x, y = data
    expected = _bim(linear, x, y, EPS, 5, lambda m, a, b: m.ce_grad(a, b))
    assert torch.allclose(build_attack("bim", linear, eps=EPS, steps=5)(x, y), expected, atol=1e-15)


def _mi(model, x, y, steps: int, decay: float, dims) -> torch.Tensor:
    alpha = EPS / steps
    x_adv, g = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        grad = autograd_ce(model, x_adv, y)
        g = decay * g + grad / grad.abs().sum(dim=dims, keepdim=True)  # L1 (mean |.| differs by a constant)
        x_adv = _project(x_adv + alpha * g.sign(), x, EPS)
    return x_adv


def test_mi_accumulates_normalized_gradients_per_clip_or_per_frame() -> None:
    model = SineVideo(SHAPE)
    x, y = clips(2, *SHAPE), torch.tensor([1, 1])
    steps, decay = 5, 0.8
    outputs = {}
    for mode, dims in (("clip", (1, 2, 3, 4)), ("frame", (1, 3, 4))):
        attack = build_attack("mi", model, eps=EPS, steps=steps, decay=decay, momentum_norm=mode)
        outputs[mode] = attack(x, y)
        assert torch.allclose(outputs[mode], _mi(model, x, y, steps, decay, dims), atol=1e-15)
    assert not torch.equal(outputs["clip"], outputs["frame"])


def test_ni_takes_gradient_at_look_ahead_point(linear: LinearVideo, data) -> None:
    x, y = data
    steps, decay = 4, 1.0
    alpha = EPS / steps
    x_adv, g = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        grad = linear.ce_grad(x_adv + alpha * decay * g, y)
        g = decay * g + grad / grad.abs().mean(dim=(1, 2, 3, 4), keepdim=True)
        x_adv = _project(x_adv + alpha * g.sign(), x, EPS)
    assert torch.allclose(build_attack("ni", linear, eps=EPS, steps=steps)(x, y), x_adv, atol=1e-15)


def test_pgd_starts_inside_ball_and_differs_from_bim(linear: LinearVideo, data) -> None:
    x, y = data
    model = Recorder(linear)
    out = build_attack("pgd", model, eps=EPS, steps=2, seed=1)(x, y)
    start = model.calls[0]
    assert (start - x).abs().max() <= EPS + 1e-12 and (start - x).abs().max() > EPS / 2
    assert not torch.equal(start, x)
    # the rest is BIM from that start
    alpha = EPS / 2
    second = _project(start + alpha * linear.ce_grad(start, y).sign(), x, EPS)
    expected = _project(second + alpha * linear.ce_grad(second, y).sign(), x, EPS)
    assert torch.allclose(out, expected, atol=1e-15)


def _gkern(size: int, nsig: float) -> torch.Tensor:
    xs = [-nsig + 2 * nsig * i / (size - 1) for i in range(size)]
    pdf = torch.tensor([math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in xs], dtype=torch.float64)
    k = pdf[:, None] * pdf[None, :]
    return k / k.sum()


def test_ti_kernel_matches_official_gkern() -> None:
    assert torch.allclose(ti_kernel(15, 3), _gkern(15, 3), atol=1e-15)
    assert ti_kernel(15, 3).sum().item() == pytest.approx(1.0)


def test_ti_is_per_frame_depthwise_convolution_of_the_gradient() -> None:
    model = TinyConv()
    x, y = clips(2, t=4, h=9, w=9), torch.tensor([0, 1])
    attack = build_attack("ti", model, kernel_size=5, kernel_nsig=3)
    raw = autograd_ce(model, x, y)
    kernel = _gkern(5, 3)
    expected = torch.zeros_like(raw)
    for n in range(2):
        for c in range(3):
            for t in range(4):
                plane = raw[n, c, t][None, None]
                expected[n, c, t] = F.conv2d(plane, kernel[None, None], padding=2)[0, 0]
    assert torch.allclose(attack.estimate_gradient(x, y), expected, atol=1e-14)


def test_sim_is_mean_of_scaled_copy_gradients() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([3, 0])

    def loss_grad(scale: float) -> torch.Tensor:
        xs = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xs * scale), y, reduction="sum")
        return torch.autograd.grad(loss, xs)[0]

    expected = sum(loss_grad(2.0**-i) for i in range(5)) / 5
    attack = build_attack("sim", model)
    assert attack.gradient_evaluations_per_step == 5
    assert torch.allclose(attack.estimate_gradient(x, y), expected, atol=1e-14)


def test_di_with_probability_zero_is_bim() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([1, 2])
    bim = build_attack("bim", model, eps=EPS, steps=3)(x, y)
    assert torch.equal(build_attack("di", model, eps=EPS, steps=3, diversity_prob=0.0)(x, y), bim)


def test_di_transform_is_linear_with_exact_adjoint_and_same_for_all_frames() -> None:
    transform = DiverseInputs(diversity_prob=1.0, resize_rate=1.4)
    x = torch.rand(3, 2, 4, 10, 10, dtype=torch.float64)
    x[0] = x[0, :, :1].expand(2, 4, 10, 10)  # clip 0: all frames identical
    ctx = StepContext([torch.Generator().manual_seed(i) for i in range(3)], eps=EPS)
    out, saved = transform.expand(Rows(x, torch.arange(3)), ctx)
    assert out.x.shape == x.shape and not torch.equal(out.x, x)
    assert all(torch.equal(out.x[0, :, t], out.x[0, :, 0]) for t in range(4))
    g = torch.randn_like(x)
    back = transform.reduce(g, saved, ctx)
    # DI is linear in x: <DI(x), g> == <x, DI^T(g)>
    assert torch.allclose((out.x * g).sum(), (x * back).sum(), rtol=1e-12)


def test_di_draws_differ_between_steps_and_clips() -> None:
    model = Recorder(TinyConv())
    x = clips(1, h=12, w=12).repeat(2, 1, 1, 1, 1)
    x[1] = x[1].flip(-1)
    build_attack("di", model, steps=4, diversity_prob=1.0, resize_rate=1.5, seed=0)(x, torch.tensor([0, 1]))
    transformed = list(model.calls)
    # zero padding shows up as exact zeros; different steps/clips give different placements
    masks = {tuple((c[b] == 0).flatten().tolist()) for c in transformed for b in range(2)}
    assert len(masks) > 2


def test_vr_with_zero_sigma_is_bim() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([1, 2])
    bim = build_attack("bim", model, eps=EPS, steps=3)(x, y)
    vr = build_attack("vr", model, eps=EPS, steps=3, vr_sigma=0.0, vr_samples=4)(x, y)
    assert torch.allclose(vr, bim, atol=1e-15)


def test_vr_averages_gradients_at_gaussian_neighbours() -> None:
    model = Recorder(TinyConv())
    x, y = clips(1), torch.tensor([2])
    attack = build_attack("vr", model, vr_samples=64, vr_sigma=0.05)
    estimate = attack.estimate_gradient(x, y)
    (batch,) = model.calls
    noise = batch - x
    assert batch.shape[0] == 64
    assert noise.std().item() == pytest.approx(0.05, rel=0.05)
    expected = autograd_ce(model.model, batch, y.repeat(64)).mean(0, keepdim=True)
    assert torch.allclose(estimate, expected, atol=1e-14)


def test_vt_adds_previous_step_variance() -> None:
    model = Recorder(SineVideo(SHAPE))
    x, y = clips(1, *SHAPE), torch.tensor([1])
    eps, beta, n, steps = EPS, 1.5, 3, 2
    alpha = eps / steps
    out = build_attack("vt", model, eps=eps, steps=steps, vt_samples=n, vt_beta=beta)(x, y)
    first, second = model.calls
    assert first.shape[0] == n + 1 and torch.equal(first[:1], x)
    radius = (first[1:] - x).abs().max().item()
    assert beta * eps * 0.9 < radius <= beta * eps + 1e-12
    net = model.model
    g1 = autograd_ce(net, first, y.repeat(n + 1))
    x1 = _project(x + alpha * g1[:1].sign(), x, eps)  # v = 0 at the first step
    assert torch.equal(second[:1], x1)
    variance = g1[1:].mean(0, keepdim=True) - g1[:1]
    g2 = autograd_ce(net, x1, y) + variance
    expected = _project(x1 + alpha * g2.sign(), x, eps)
    assert torch.allclose(out, expected, atol=1e-15)
    without_variance = _project(x1 + alpha * autograd_ce(net, x1, y).sign(), x, eps)
    assert not torch.equal(expected, without_variance)  # the check above can tell the two apart


def test_vt_with_zero_beta_is_bim() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([1, 2])
    bim = build_attack("bim", model, eps=EPS, steps=3)(x, y)
    assert torch.allclose(build_attack("vt", model, eps=EPS, steps=3, vt_beta=0.0, vt_samples=2)(x, y), bim)


# ---------------------------------------------------------------------------------------------
# SGM
# ---------------------------------------------------------------------------------------------


def test_sgm_scales_residual_branch_gradient_exactly() -> None:
    shape = (1, 3, 2, 2)
    model = LinearResidual(shape)
    x, y = clips(2, *shape), torch.tensor([0, 2])
    L = model.block.lin.weight.detach()
    H = model.head.weight.detach()
    p = torch.softmax(model(x).detach(), 1)
    p[torch.arange(2), y] -= 1
    g_out = p @ H  # d loss / d block output
    for gamma in (1.0, 0.5, 0.2):
        expected = (g_out + gamma * g_out @ L).view_as(x)
        attack = build_attack("sgm", model, sgm_gamma=gamma)
        assert torch.allclose(attack.estimate_gradient(x, y), expected, atol=1e-14)
    assert model.block.residual_grad_scale == 1.0


def test_sgm_gamma_one_is_bim() -> None:
    shape = (1, 3, 2, 2)
    model = LinearResidual(shape)
    x, y = clips(2, *shape), torch.tensor([0, 2])
    bim = build_attack("bim", model, steps=3)(x, y)
    assert torch.equal(build_attack("sgm", model, steps=3, sgm_gamma=1.0)(x, y), bim)


def test_sgm_on_foreign_resnet_follows_official_relu_rule() -> None:
    shape = (1, 2, 2, 2)
    model = ForeignResNet(shape)
    x, y = clips(2, *shape), torch.tensor([1, 0])
    gamma = 0.3
    h0 = x.flatten(1)
    b0, b1 = model.layer[0], model.layer[1]
    h1 = b0(h0).detach()
    pre = b1.lin(h1).detach()
    h2 = h1 + pre.clamp_min(0)
    p = torch.softmax(model.head(h2).detach(), 1)
    p[torch.arange(2), y] -= 1
    g2 = p @ model.head.weight.detach()
    # block 1 (not the first of its stage): residual ReLU gradient scaled by gamma
    g1 = g2 + gamma * ((g2 * (pre > 0)) @ b1.lin.weight.detach())
    pre0 = b0.lin(h0).detach()
    g0 = g1 + (g1 * (pre0 > 0)) @ b0.lin.weight.detach()  # block 0 untouched
    attack = build_attack("sgm", model, sgm_gamma=gamma)
    assert torch.allclose(attack.estimate_gradient(x, y), g0.view_as(x), atol=1e-14)
    assert all(not m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------------------------------------
# ATA
# ---------------------------------------------------------------------------------------------


def _manual_cam(model: TinyConv, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM by splitting TinyConv at `features` (independent of the hook machinery)."""
    A = model.features(x)
    f = model.act(A)
    pooled = f.mean(dim=(3, 4))
    ramp = torch.linspace(-1.0, 1.0, pooled.shape[-1], dtype=x.dtype)
    z = model.head(torch.cat([pooled.mean(-1), model.temporal((pooled * ramp).mean(-1))], dim=1))
    dA = torch.autograd.grad(z.gather(1, labels[:, None]).sum(), A, create_graph=True)[0]
    w = dA.mean(dim=(2, 3, 4), keepdim=True)
    return z, torch.relu((w * A).sum(1))


def test_ata_loss_gradient_matches_manual_grad_cam_objective() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([1, 3])
    ref = clips(2, seed=5)
    weight = 7.0
    grads, _ = ModelGradient(model, "ce", False, None, ata_layer=model.features, ata_weight=weight)(
        x, y, cam_labels=y, ref=ref
    )
    xs = x.clone().requires_grad_(True)
    z, cam = _manual_cam(model, xs, y)
    ref_cam = _manual_cam(model, ref.clone().requires_grad_(True), y)[1].detach()
    objective = F.cross_entropy(z, y, reduction="sum") + weight * (cam - ref_cam).pow(2).sum()
    expected = torch.autograd.grad(objective, xs)[0]
    assert torch.allclose(grads, expected, atol=1e-12)


def test_ata_with_zero_weight_is_bim_and_layer_default_comes_from_model() -> None:
    model = TinyConv()
    x, y = clips(2), torch.tensor([1, 3])
    bim = build_attack("bim", model, eps=EPS, steps=2)(x, y)
    ata = build_attack("ata", model, eps=EPS, steps=2, ata_weight=0.0)
    assert ata.model_gradient.ata_layer is model.features
    assert torch.allclose(ata(x, y), bim, atol=1e-15)


def test_ata_changes_the_attack_and_caches_reference_when_geometry_is_fixed() -> None:
    model = Recorder(TinyConv())
    x, y = clips(1), torch.tensor([1])
    attack = build_attack(
        "ata+tt", model, eps=EPS, steps=3, shift_length=1, ata_layer="model.features", ata_weight=1e4
    )
    assert attack.setup_gradient_evaluations == 3 and attack.gradient_evaluations_per_step == 3
    out = attack(x, y)
    # one reference pass (3 copies) + three steps of 3 copies
    assert [c.shape[0] for c in model.calls] == [3, 3, 3, 3]
    plain = build_attack("tt", model, eps=EPS, steps=3, shift_length=1)(x, y)
    assert not torch.equal(out, plain)
    random_geometry = build_attack("ata+di", model, steps=2, diversity_prob=1.0, ata_layer="model.features")
    assert random_geometry.gradient_evaluations_per_step == 2
