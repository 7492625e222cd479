"""The innermost gradient (one batched, chunked forward/backward over all copies), the attack
losses (cross-entropy, C&W margin, ATA's attention term), TI's gradient smoothing and SGM's
skip-gradient model modification."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.attacks.chunking import (
    cached_chunk_size,
    candidate_chunk_sizes,
    choose_chunk_size,
    chunk_key,
    rule_chunk_size,
)
from vidadv.models.common import residual_blocks, scale_grad
from vidadv.models.gradcam import logits_and_cam

__all__ = [
    "ModelGradient",
    "ti_kernel",
    "smooth_gradient",
    "skip_gradient",
    "check_skip_gradient",
    "per_row_loss",
]

LOSSES = ("ce", "cw")


def per_row_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str, targeted: bool) -> torch.Tensor:
    """The quantity each row's attack step *increases* (one value per row).

    ce: cross-entropy of the label (untargeted) or minus the cross-entropy of the target (targeted).
    cw: logit margin max_{j!=y} z_j - z_y (untargeted) or z_t - max_{j!=t} z_j (targeted).
    """
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
        return -value if targeted else value
    label_logit = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    best_other = others.max(dim=1).values
    return label_logit - best_other if targeted else best_other - label_logit


def _squared_distance(cam: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (cam - reference).pow(2).flatten(1).sum(1)


class ModelGradient:
    """Gradient of the attack loss for every row of a batch of copies, `chunk_size` rows per pass.

    With ATA the loss of a row is ``loss + ata_weight * ||A(row) - A(ref_row)||_2^2`` where A is the
    Grad-CAM map (differentiable, second order) of the clip's true label at `ata_layer` and ref_row
    the clean clip under the same geometric transforms. The reference maps are computed once per
    attack when no transform has random geometry, else once per step. `ata_distance` replaces the
    squared norm and ``ata_second_order=False`` treats the Grad-CAM channel weights as constants
    (both for `convention="official"`).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str,
        targeted: bool,
        chunk_size: int | str | None,
        ata_layer: nn.Module | None = None,
        ata_weight: float = 0.0,
        ata_distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        ata_second_order: bool = True,
    ) -> None:
        self.model = model
        self.loss = loss
        self.targeted = targeted
        self.chunk_size = chunk_size
        self.ata_layer = ata_layer
        self.ata_weight = ata_weight
        self.ata_distance = ata_distance or _squared_distance
        self.ata_second_order = ata_second_order
        self.chunk_size_used: int | None = None
        self.chunk_timings: dict[int, float] = {}

    def _check_logits(self, logits: object, labels: torch.Tensor) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise TypeError(f"model must map (N, C, T, H, W) clips to logits (N, K); got {shape}")
        K = logits.shape[1]
        if labels.numel() and int(labels.max()) >= K:
            raise ValueError(
                f"labels must lie in [0, {K}) (the model has {K} classes), got {int(labels.max())}"
            )
        return logits

    def _reference_cams(
        self, ref: torch.Tensor, cam_labels: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        assert self.ata_layer is not None
        source = ref[start:stop].detach().requires_grad_(True)
        _, cam = logits_and_cam(
            self.model, source, cam_labels[start:stop], self.ata_layer, create_graph=False
        )
        return cam.detach()

    def __call__(
        self,
        x: torch.Tensor,
        loss_labels: torch.Tensor,
        cam_labels: torch.Tensor | None = None,
        ref: torch.Tensor | None = None,
        ref_cams: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-row gradients (R, C, T, H, W), and the reference Grad-CAM maps used (for caching).

        `chunk_size`: an int, None (the deterministic rule) or "auto" (timed on the first call for this
        model and row shape, then cached): see `vidadv.attacks.chunking`. `chunk_size_used` records the
        size of the last call.
        """
        if self.chunk_size != "auto":
            chunk = rule_chunk_size(x) if self.chunk_size is None else int(self.chunk_size)
            self.chunk_size_used = chunk
            return self._passes(chunk, x, loss_labels, cam_labels, ref, ref_cams)
        key = chunk_key(x, (self.ata_layer is not None, ref_cams is not None, self.loss))
        chunk = cached_chunk_size(self.model, key)
        if chunk is None:
            chunk, result, self.chunk_timings = choose_chunk_size(
                self.model,
                key,
                x.device,
                lambda c: self._passes(c, x, loss_labels, cam_labels, ref, ref_cams),
                candidate_chunk_sizes(x.shape[0]),
            )
            self.chunk_size_used = chunk
            return result
        self.chunk_size_used = chunk
        return self._passes(chunk, x, loss_labels, cam_labels, ref, ref_cams)

    def _passes(
        self,
        chunk: int,
        x: torch.Tensor,
        loss_labels: torch.Tensor,
        cam_labels: torch.Tensor | None,
        ref: torch.Tensor | None,
        ref_cams: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The gradients of `__call__`, `chunk` rows per forward/backward pass."""
        rows = x.shape[0]
        chunk = min(chunk, rows)
        grads = torch.empty_like(x) if chunk < rows else x
        use_ata = self.ata_layer is not None
        new_ref_cams: list[torch.Tensor] = []
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            source = x[start:stop].detach().requires_grad_(True)
            labels = loss_labels[start:stop]
            with torch.enable_grad():
                if use_ata:
                    assert cam_labels is not None and ref is not None
                    if ref_cams is None:
                        reference = self._reference_cams(ref, cam_labels, start, stop)
                        new_ref_cams.append(reference)
                    else:
                        reference = ref_cams[start:stop]
                    logits, cam = logits_and_cam(
                        self.model,
                        source,
                        cam_labels[start:stop],
                        self.ata_layer,
                        create_graph=self.ata_second_order,
                    )
                else:
                    logits = self.model(source)
                objective = per_row_loss(self._check_logits(logits, labels), labels, self.loss, self.targeted)
                if use_ata:
                    attention_gap = self.ata_distance(cam, reference)
                    objective = objective + self.ata_weight * attention_gap
                (grad,) = torch.autograd.grad(objective.sum(), source)
                # a NaN/Inf loss marks its row's gradient NaN, so the attack loop's finiteness check sees it
                grad = grad.masked_fill(~torch.isfinite(objective.detach()).view(-1, 1, 1, 1, 1), math.nan)
            if start == 0 and stop == rows:
                grads = grad  # one pass: no copy
            else:
                grads[start:stop] = grad
        used = ref_cams if ref_cams is not None else (torch.cat(new_ref_cams) if new_ref_cams else None)
        return grads, used


def ti_kernel(kernel_size: int = 15, nsig: float = 3.0) -> torch.Tensor:
    """TI's 2-D Gaussian kernel, as the official ``gkern(kernlen, nsig)``: the standard normal pdf on
    ``linspace(-nsig, nsig, kernlen)``, outer product, normalized to sum 1 (float64)."""
    points = torch.linspace(-nsig, nsig, kernel_size, dtype=torch.float64)
    pdf = torch.exp(-(points**2) / 2.0) / math.sqrt(2.0 * math.pi)
    kernel = torch.outer(pdf, pdf)
    return kernel / kernel.sum()


def smooth_gradient(grad: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """TI (Dong et al. CVPR 2019) per frame: depthwise 2-D convolution of every frame of every
    channel of the gradient (N, C, T, H, W) with `kernel`, zero padding ("SAME")."""
    C = grad.shape[1]
    k = kernel.shape[-1]
    weight = kernel.to(dtype=grad.dtype, device=grad.device).expand(C, 1, 1, k, k)
    return F.conv3d(grad, weight, padding=(0, k // 2, k // 2), groups=C)


_BLOCK_MARKERS = ("Bottleneck", "BasicBlock")


def _foreign_relu_hooks(model: nn.Module, gamma: float) -> list[tuple[nn.Module, float]]:
    """Official SGM rule for torchvision-style ResNets: every ReLU inside a residual block (class
    named like Bottleneck/BasicBlock), except in the first block of a stage (name ending in ``0``),
    scales its gradient by gamma**0.5 (Bottleneck: two ReLUs per residual branch) or gamma
    (BasicBlock: one)."""
    hooks: list[tuple[nn.Module, float]] = []
    seen: set[int] = set()
    for name, block in model.named_modules():
        kind = next((m for m in _BLOCK_MARKERS if m in type(block).__name__), None)
        if kind is None or name.split(".")[-1] == "0":
            continue
        scale = gamma**0.5 if kind == "Bottleneck" else gamma
        for child in block.modules():
            if isinstance(child, nn.ReLU) and id(child) not in seen:
                seen.add(id(child))
                hooks.append((child, scale))
    return hooks


def check_skip_gradient(model: nn.Module) -> None:
    """Raise ValueError unless SGM can modify `model` (see `skip_gradient`)."""
    if not residual_blocks(model) and not _foreign_relu_hooks(model, 1.0):
        raise ValueError(
            "SGM needs a residual network: the model has no vidadv ResidualBlock and no ReLU inside "
            "modules named like Bottleneck/BasicBlock (other than the first block of a stage)"
        )


@contextlib.contextmanager
def skip_gradient(model: nn.Module, gamma: float) -> Iterator[None]:
    """SGM (Wu et al. ICLR 2020): during the block, gradients through residual branches are
    multiplied by gamma (skip connections untouched). vidadv's `ResidualBlock`s get
    ``residual_grad_scale = gamma``; other models get the official ReLU backward rule."""
    blocks = residual_blocks(model)
    if blocks:
        previous = [b.__dict__.get("residual_grad_scale") for b in blocks]
        try:
            for b in blocks:
                b.residual_grad_scale = gamma
            yield
        finally:
            for b, value in zip(blocks, previous, strict=True):
                if value is None:
                    b.__dict__.pop("residual_grad_scale", None)
                else:
                    b.residual_grad_scale = value
        return
    check_skip_gradient(model)
    targets = _foreign_relu_hooks(model, gamma)
    handles = []
    try:
        for module, scale in targets:

            def hook(_m: nn.Module, _inp: object, out: torch.Tensor, s: float = scale) -> torch.Tensor:
                return scale_grad(out, s)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
