"""`build_attack`: composable transfer attacks on video models.

An attack is a loop (steps, step size, projection onto the eps-ball and [0, 1]) around a gradient
estimator and an update rule. A spec such as ``"tt+mi"`` names the pieces; the canonical
composition (the order of names in a spec never matters) is::

    loss      : ce | cw, plus ATA's attention term (ata)
    model     : SGM's skip-gradient modification during the whole attack (sgm)
    estimator : VT( VR( SIM( DI( TT( model gradient ) ) ) ) )   outer -> inner, then TI smoothing (ti)
    update    : MI momentum (mi) | NI look-ahead momentum (ni, implies mi) | plain sign step
    start     : x (fgsm, bim) or x + U[-eps, eps] (pgd)

Input transforms run outer to inner on a batch and expand it: VT/VR add noise copies, SIM scales,
DI resizes/pads, TT shifts in time; all copies of all clips then go through the model as one batch,
split into `chunk_size` rows (chosen automatically when not given), and the gradients go back through
the transforms in reverse.

The spec's names, the option table and option resolution are `vidadv.attacks.spec`; this module is
the loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from vidadv.attacks import official
from vidadv.attacks.estimators import make_temporal_estimator
from vidadv.attacks.gradients import (
    ModelGradient,
    check_skip_gradient,
    skip_gradient,
    smooth_gradient,
    ti_kernel,
)
from vidadv.attacks.spec import (
    ATTACK_NAMES,
    CANONICAL_ORDER,
    TRANSFORM_ORDER,
    available_attacks,
    check_seed,
    resolve_options,
)
from vidadv.attacks.transforms import (
    DiverseInputs,
    InputTransform,
    Rows,
    ScaleInvariance,
    StepContext,
    VarianceReduction,
    VarianceTuning,
    total_copies,
)
from vidadv.models.gradcam import resolve_layer
from vidadv.utils.checks import check_labels

__all__ = [
    "Attack",
    "build_attack",
    "available_attacks",
    "ATTACK_NAMES",
    "CANONICAL_ORDER",
    "NonFiniteGradientError",
]

# ----------------------------------------------------------------------------------------------
# Input checks and per-clip generators
# ----------------------------------------------------------------------------------------------


def _first_bad_value(x: torch.Tensor, bad: torch.Tensor) -> str:
    """Where the first True of `bad` is and its exact value (e.g. 1.000001, not a rounded range)."""
    where = bad.nonzero()[0].tolist()
    more = int(bad.sum()) - 1
    value = float(x[tuple(where)])
    return f"clip {where[0]} (index in the batch) has {value:.8g} at (c, t, h, w) = {tuple(where[1:])}" + (
        f", and {more} more value(s) like it" if more else ""
    )


def _check_clips(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of clips (N, C, T, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.dim() != 5:
        raise ValueError(f"x must be 5-D (N, C, T, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"x contains NaN or infinite values; {_first_bad_value(x, ~finite)}")
    outside = (x < 0.0) | (x > 1.0)
    if bool(outside.any()):
        raise ValueError(f"x must lie in [0, 1]; {_first_bad_value(x, outside)}")
    return x.detach()


class NonFiniteGradientError(ValueError):
    """The loss or gradient of some clips is NaN/Inf at some step (a sign step of NaN is 0, so the
    attack would silently return the clean clip). `clips`: their indices in the batch; `step`: 0-based."""

    def __init__(self, clips: list[int], step: int, steps: int) -> None:
        self.clips, self.step, self.steps = clips, step, steps
        shown = ", ".join(map(str, clips[:5])) + (", ..." if len(clips) > 5 else "")
        super().__init__(
            f"non-finite loss or gradient for clip {shown} (index in the batch) at step {step + 1} of "
            f"{steps}: the model outputs NaN/Inf (damaged weights, or an overflow in its dtype)"
        )


def _check_finite_gradient(grad: torch.Tensor, step: int, steps: int) -> None:
    finite = torch.isfinite(grad).flatten(1).all(dim=1)
    if not bool(finite.all()):
        raise NonFiniteGradientError((~finite).nonzero().flatten().tolist(), step, steps)


def clip_generators(x: torch.Tensor, seed: int) -> list[torch.Generator]:
    """One generator per clip, seeded by (seed, the clip's bytes): a clip gets the same random draws
    alone or in any batch, and different clips get different draws."""
    data = x.detach().to("cpu").contiguous()
    generators = []
    for clip in data:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(int(seed).to_bytes(16, "little", signed=True))
        digest.update(str(clip.dtype).encode())
        digest.update(clip.reshape(-1).view(torch.uint8).numpy().tobytes())
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
        generators.append(generator)
    return generators


# ----------------------------------------------------------------------------------------------
# The attack
# ----------------------------------------------------------------------------------------------


class Attack:
    """A composed transfer attack; call it as ``attack(x, y)`` or ``attack(x, y, target=t)``.

    Attributes: `spec` (canonical spec string), `methods`, `options` (every resolved option),
    `gradient_evaluations_per_step` (clip forward+backward passes per step per clip) and
    `setup_gradient_evaluations` (one-off passes per clip, e.g. ATA's cached reference maps) and
    `gradient_evaluations_per_clip` (the whole attack's passes per clip).
    """

    def __init__(self, methods: tuple[str, ...], model: nn.Module, options: dict[str, Any]) -> None:
        self.methods = methods
        self.spec = "+".join(methods)
        self.model = model
        self.options = options
        self.eps: float = options["eps"]
        self.steps: int = options["steps"]
        self.step_size: float = options["step_size"]
        self.norm: str = options["norm"]
        self.targeted: bool = options["targeted"]
        self.random_start = "pgd" in methods
        self.momentum = "mi" in methods or "ni" in methods
        self.nesterov = "ni" in methods
        self.official = options["convention"] == "official"
        self.ti_kernel = (
            ti_kernel(options["kernel_size"], options["kernel_nsig"]) if "ti" in methods else None
        )
        if self.official:
            self.transforms = official.official_transforms(
                methods, options, model, self.ti_kernel, TRANSFORM_ORDER
            )
            # official TI+TT smooths (and normalizes) every shifted copy inside TT
            self._final_ti_kernel = None if "tt" in methods else self.ti_kernel
            self._gradient_scale = official.gradient_scale(model)
        else:
            self.transforms = self._make_transforms(methods, options)
            self._final_ti_kernel = self.ti_kernel
            self._gradient_scale = None
        ata_layer = None
        if "ata" in methods:
            ata_layer = self._resolve_ata_layer(model, options["ata_layer"])
        self.model_gradient = ModelGradient(
            model,
            options["loss"],
            self.targeted,
            options["chunk_size"],
            ata_layer=ata_layer,
            ata_weight=options["ata_weight"] if "ata" in methods else 0.0,
            **(official.OFFICIAL_ATTENTION if self.official else {}),
        )
        if "sgm" in methods:
            if self.official:
                official.check_official_sgm(model)
            else:
                check_skip_gradient(model)
        copies = total_copies(self.transforms)
        self._reference_is_fixed = not any(t.random_geometry for t in self.transforms)
        self.gradient_evaluations_per_step = copies
        self.setup_gradient_evaluations = 0
        if ata_layer is not None:
            if self._reference_is_fixed:
                self.setup_gradient_evaluations = copies
            else:
                self.gradient_evaluations_per_step = 2 * copies

    @property
    def gradient_evaluations_per_clip(self) -> int:
        """Clip forward+backward passes one clip costs over the whole attack (steps x per step + setup)."""
        return self.steps * self.gradient_evaluations_per_step + self.setup_gradient_evaluations

    @property
    def chunk_size_used(self) -> int | None:
        """Rows per forward/backward pass in the last gradient (the automatic choice when `chunk_size`
        is None or "auto"; see `vidadv.attacks.chunking`)."""
        return self.model_gradient.chunk_size_used

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.options.items() if not isinstance(v, nn.Module)}
        return f"Attack({self.spec!r}, {', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @staticmethod
    def _make_transforms(methods: tuple[str, ...], options: dict[str, Any]) -> list[InputTransform]:
        makers: dict[str, Callable[[], InputTransform]] = {
            "vt": lambda: VarianceTuning(options["vt_samples"], options["vt_beta"]),
            "vr": lambda: VarianceReduction(options["vr_samples"], options["vr_sigma"]),
            "sim": lambda: ScaleInvariance(options["sim_copies"]),
            "di": lambda: DiverseInputs(options["diversity_prob"], options["resize_rate"]),
            "tt": lambda: make_temporal_estimator(
                options["shift_length"],
                options["weights"],
                options["strategy"],
                options["shift_sampling"],
                options["shift_samples"],
            ),
        }
        return [makers[name]() for name in TRANSFORM_ORDER if name in methods]

    @staticmethod
    def _resolve_ata_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
        if isinstance(layer, nn.Module):
            return layer
        if layer is None:
            layer = getattr(model, "attention_layer", None)
            if not isinstance(layer, str):
                raise ValueError(
                    "ATA needs a Grad-CAM layer: pass ata_layer='<dotted submodule name>' or use a model "
                    "with an `attention_layer` attribute"
                )
        return resolve_layer(model, layer)

    # -- pieces of one step ------------------------------------------------------------------

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1)
            delta = delta * (self.eps / norms.clamp_min(1e-12)).clamp(max=1.0)
        return (x + delta).clamp(0.0, 1.0)

    def _step_direction(self, direction: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return direction.sign()
        norms = direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1)
        return direction / norms.clamp_min(torch.finfo(direction.dtype).tiny)

    def _normalize(self, grad: torch.Tensor) -> torch.Tensor:
        dims = (1, 2, 3, 4) if self.options["momentum_norm"] == "clip" else (1, 3, 4)
        scale = grad.abs().mean(dim=dims, keepdim=True)
        return grad / scale.clamp_min(torch.finfo(grad.dtype).tiny)

    def _random_start(self, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        noise = torch.empty_like(x)
        for i, generator in enumerate(ctx.generators):
            draw = torch.rand(x.shape[1:], generator=generator, device=generator.device, dtype=x.dtype)
            draw = draw.to(x.device)
            if self.norm == "linf":
                noise[i] = (2.0 * draw - 1.0) * self.eps
            else:
                direction = torch.randn(
                    x.shape[1:], generator=generator, device=generator.device, dtype=x.dtype
                ).to(x.device)
                radius = self.eps * float(draw.flatten()[0])
                noise[i] = direction / direction.norm().clamp_min(1e-12) * radius
        return self._project(x + noise, x)

    def _estimate(
        self,
        point: torch.Tensor,
        loss_labels: torch.Tensor,
        cam_labels: torch.Tensor,
        clean: torch.Tensor,
        ctx: StepContext,
    ) -> torch.Tensor:
        """The transformed (and TI-smoothed) gradient estimate at `point`, one per clip."""
        use_ata = self.model_gradient.ata_layer is not None
        clip = torch.arange(point.shape[0], device=point.device)
        rows = Rows(point.detach(), clip, clean if use_ata else None)
        saved = []
        for transform in self.transforms:
            rows, extra = transform.expand(rows, ctx)
            saved.append(extra)
        cached = ctx.state.get("reference_cams") if self._reference_is_fixed else None
        grads, used = self.model_gradient(
            rows.x, loss_labels[rows.clip], cam_labels[rows.clip] if use_ata else None, rows.ref, cached
        )
        if use_ata and self._reference_is_fixed:
            ctx.state["reference_cams"] = used
        if self._gradient_scale is not None:  # official: gradient with respect to the normalized clip
            grads = grads * self._gradient_scale.to(device=grads.device, dtype=grads.dtype)
        for transform, extra in zip(reversed(self.transforms), reversed(saved), strict=True):
            grads = transform.reduce(grads, extra, ctx)
        if self._final_ti_kernel is not None:
            grads = smooth_gradient(grads, self._final_ti_kernel)
        return grads

    # -- public API --------------------------------------------------------------------------

    def _prepare(self, x: Any, y: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _check_clips(x)
        n = x.shape[0]
        labels = check_labels(y, n, name="y", device=x.device)
        if self.targeted:
            loss_labels = check_labels(target, n, name="target (targeted=True)", device=x.device)
        else:
            if target is not None:
                raise ValueError("target given but the attack is untargeted; build it with targeted=True")
            loss_labels = labels
        if self.norm == "l2" and self.eps > math.sqrt(x[0].numel()):
            raise ValueError(
                f"option eps={self.eps} exceeds sqrt(C*T*H*W) = {math.sqrt(x[0].numel()):.4g}, the largest "
                "L2 distance between two clips in [0, 1]; for norm 'l2' eps must lie in (0, that bound]"
            )
        for transform in self.transforms:
            transform.check(x)
        parameter = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        if parameter is not None:
            if parameter.dtype != x.dtype:
                raise TypeError(f"x has dtype {x.dtype} but the model's parameters are {parameter.dtype}")
            if parameter.device != x.device:
                raise ValueError(f"x is on {x.device} but the model is on {parameter.device}")
        return x, loss_labels, labels

    @contextlib.contextmanager
    def _attack_mode(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        try:
            if "sgm" in self.methods:
                skip = official.official_skip_gradient if self.official else skip_gradient
                with skip(self.model, self.options["sgm_gamma"]):
                    yield
            else:
                yield
        finally:
            self.model.train(was_training)

    def estimate_gradient(
        self, x: torch.Tensor, y: Any, target: Any = None, *, seed: int | None = None
    ) -> torch.Tensor:
        """The attack's gradient estimate at `x` (first step: transforms, SGM, ATA and TI applied;
        no momentum), e.g. TT's weighted sum of rolled gradients. `seed` overrides the built seed."""
        x, loss_labels, labels = self._prepare(x, y, target)
        ctx = StepContext(clip_generators(x, self._call_seed(seed)), self.eps)
        with self._attack_mode():
            grad = self._estimate(x, loss_labels, labels, x, ctx).detach()
        _check_finite_gradient(grad, 0, 1)
        return grad

    def _call_seed(self, seed: int | None) -> int:
        return self.options["seed"] if seed is None else check_seed("seed", seed)

    def __call__(
        self, x: torch.Tensor, y: Any, target: Any = None, *, seed: int | None = None
    ) -> torch.Tensor:
        """Adversarial clips for clean clips `x` (N, C, T, H, W) in [0, 1] with labels `y` (N,).

        `seed` (default: the `seed` option) seeds the per-clip random draws of this call, so one built
        attack serves many batches with their own seeds.
        """
        x, loss_labels, labels = self._prepare(x, y, target)
        ctx = StepContext(clip_generators(x, self._call_seed(seed)), self.eps)
        decay = self.options.get("decay", 1.0)
        with self._attack_mode():
            x_adv = self._random_start(x, ctx) if self.random_start else x.clone()
            momentum = torch.zeros_like(x) if self.momentum else None
            steps = tqdm(range(self.steps), desc=self.spec, leave=False, disable=not self.options["progress"])
            for step in steps:
                point = x_adv
                if self.nesterov and momentum is not None:
                    point = x_adv + self.step_size * decay * momentum
                grad = self._estimate(point, loss_labels, labels, x, ctx)
                _check_finite_gradient(grad, step, self.steps)
                if momentum is not None:
                    momentum = decay * momentum + self._normalize(grad)
                    direction = momentum
                else:
                    direction = grad
                x_adv = self._project(x_adv + self.step_size * self._step_direction(direction), x)
        return x_adv.detach()


def build_attack(spec: str, model: nn.Module, **options: Any) -> Attack:
    """Build a composed attack from a ``+``-joined spec, e.g. ``build_attack("tt+mi", model, eps=16/255)``.

    Common options: eps (16/255), steps (10; fgsm: 1), step_size (eps/steps; fgsm: eps), norm
    ("linf" | "l2"), targeted (False), loss ("ce" | "cw"), seed (0), chunk_size (rows per forward pass;
    None = a deterministic rule, "auto" = timed; see `vidadv.attacks.chunking`), progress (False). Method
    options (only valid when the method is in the spec):
    mi/ni: decay=1.0, momentum_norm="clip"|"frame"; ti: kernel_size=15, kernel_nsig=3;
    di: diversity_prob=0.5, resize_rate=250/224; sim: sim_copies=5; vt: vt_samples=20, vt_beta=1.5;
    vr: vr_samples=20, vr_sigma=15/255; sgm: sgm_gamma=0.5; ata: ata_layer (default
    model.attention_layer), ata_weight=1.0; tt: shift_length=7, weights="gaussian", strategy="adjacent",
    shift_sampling="all" (TT; "iid" | "antithetic" | "sag": cheaper estimators, see
    `vidadv.attacks.estimators`), shift_samples (gradients per step for those).

    convention: "vidadv" (default; every method from its paper's definition) or "official" (the
    released TT code's conventions, see `vidadv.attacks.official`; needs a `VideoClassifier` for SIM
    and DI, sets momentum_norm="frame" and ata_weight=1e-2, and rejects the TT shift lengths the
    released code cannot run).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module mapping clips to logits, got {type(model).__name__}"
        )
    methods, resolved = resolve_options(spec, options)
    return Attack(methods, model, resolved)
