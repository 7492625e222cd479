"""Grad-CAM attention maps for video models (Selvaraju et al., ICCV 2017).

For a layer with activation A (N, C, T', H', W') and the logit z_y of each clip's label, Grad-CAM
weights every channel by the spatio-temporal mean of dz_y/dA and returns
``ReLU(sum_c w_c * A_c)`` of shape (N, T', H', W'). A layer with a 4-D activation (N, C, H', W')
gets a singleton time axis.

The attention-guided transfer attack (ATA, Wu et al. CVPR 2020) needs the map to be differentiable
with respect to the input, including the channel weights (a second-order term); pass
``create_graph=True`` for that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vidadv.utils.checks import check_labels

__all__ = ["grad_cam", "logits_and_cam", "resolve_layer"]


def _layer_names(model: nn.Module, limit: int = 12) -> list[str]:
    names = [name for name, _ in model.named_modules() if name]
    # Prefer short (top-level) names: they are the ones a user most likely means (sort is stable).
    return sorted(names, key=lambda n: n.count("."))[:limit]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule of `model` called `name` (dotted, e.g. ``"network.layer4"``).

    The name is looked up relative to `model` and, failing that, relative to ``model.network``
    (the bare network inside a `vidadv.models.VideoClassifier`).
    """
    if not isinstance(name, str):
        raise TypeError(f"layer name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("layer name must not be empty (the model itself outputs logits, not activations)")
    roots: list[nn.Module] = [model]
    network = getattr(model, "network", None)
    if isinstance(network, nn.Module):
        roots.append(network)
    for root in roots:
        try:
            return root.get_submodule(name)
        except AttributeError:
            continue
    valid = _layer_names(model)
    raise ValueError(f"model has no layer {name!r}; some valid layer names: {', '.join(valid)}")


def _layer_module(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    if layer is None:
        layer = getattr(model, "attention_layer", None)
        if layer is None:
            raise ValueError(
                "no Grad-CAM layer given and the model has no `attention_layer` attribute; pass a layer "
                f"name, e.g. one of: {', '.join(_layer_names(model))}"
            )
    if isinstance(layer, nn.Module):
        return layer
    return resolve_layer(model, layer)


def logits_and_cam(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    layer: nn.Module,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass returning (logits, Grad-CAM map) for the layer module `layer`.

    With ``create_graph=True`` both outputs stay differentiable with respect to `x` (which must then
    be part of an autograd graph, e.g. ``x.requires_grad_()``).
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"Grad-CAM layer {type(_module).__name__} must output a tensor, got {type(output).__name__}"
            )
        captured.append(output)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ValueError(
            f"the Grad-CAM layer ({type(layer).__name__}) was not used in the model's forward pass"
        )
    activation = captured[-1]
    if activation.dim() not in (4, 5):
        raise ValueError(
            "Grad-CAM needs a layer with a (N, C, T, H, W) or (N, C, H, W) output, "
            f"got {tuple(activation.shape)}"
        )
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise TypeError("model must return logits of shape (N, K)")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1]}) (the model has {logits.shape[1]} classes)"
        )
    if not activation.requires_grad:
        raise ValueError("the Grad-CAM layer's activation does not depend on any tensor requiring grad")
    label_logits = logits.gather(1, labels.view(-1, 1)).sum()
    (activation_grad,) = torch.autograd.grad(
        label_logits, activation, create_graph=create_graph, retain_graph=True
    )
    reduce_dims = tuple(range(2, activation.dim()))
    channel_weights = activation_grad.mean(dim=reduce_dims, keepdim=True)
    cam = torch.relu((channel_weights * activation).sum(dim=1))
    if cam.dim() == 3:
        cam = cam.unsqueeze(1)
    return logits, cam


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    layer: str | nn.Module | None = None,
    *,
    create_graph: bool = False,
) -> torch.Tensor:
    """Grad-CAM map (N, T', H', W') of each clip's label at `layer`.

    `layer` is a dotted submodule name (see `resolve_layer`), a module, or None for the model's
    ``attention_layer``. With ``create_graph=False`` the map is detached; with ``True`` it is
    differentiable with respect to `x` (pass an `x` that requires grad).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point tensor")
    module = _layer_module(model, layer)
    labels = check_labels(labels, x.shape[0], device=x.device)
    inputs = x if create_graph else x.detach().requires_grad_(True)
    _, cam = logits_and_cam(model, inputs, labels, module, create_graph=create_graph)
    return cam if create_graph else cam.detach()
