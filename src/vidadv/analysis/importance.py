"""Frame importance: how much a video model relies on each input frame (TT paper, Figure 2).

The TT paper (Wei et al., AAAI 2022) argues that different video models rely on different
"discriminative temporal patterns". It measures, per clip and model, the importance of every frame in
three ways and compares the resulting rankings between models (see `vidadv.analysis.correlation`):

- **Grad-CAM** (`gradcam_importance`): the Grad-CAM map of a chosen layer (default: the classifier's
  `attention_layer`) is averaged over space, giving one score per temporal slice of that layer. A layer
  with temporal stride has T' < T slices; the scores are mapped back to the T input frames either by
  linear interpolation (default, ``"interpolate"``: slice j is taken to sit at the centre of the input
  frames it covers, i.e. ``F.interpolate(..., mode="linear", align_corners=False)``) or by repeating each
  slice over the input frames it covers (``"repeat"``: frame t gets slice ``floor(t * T' / T)``).
- **zero-padding** (`zero_padding_importance`): the loss change when frame t is replaced by a constant
  "zero" frame. The paper's models consume *normalized* tensors, so its zeros most likely are zeros after
  normalization, i.e. the per-channel normalization mean colour. vidadv clips live in [0, 1] pixel space
  and the model wrapper normalizes, so the literal zero (the default, ``fill=0.0``) is the black frame;
  ``fill="model_mean"`` uses the model's normalization mean (zero after normalization, the paper's
  reading); any other value in [0, 1] (or one value per channel) is a grey/coloured frame.
- **mean-padding** (`mean_padding_importance`): the loss change when frame t is replaced by the mean of
  its neighbours t-1 and t+1. At the ends, ``boundary="clamp"`` (default) uses the only existing
  neighbour (frame 0 becomes a copy of frame 1, frame T-1 a copy of frame T-2; a frame never enters its
  own replacement); ``boundary="cyclic"`` wraps around (frame 0 uses frames T-1 and 1), matching the
  cyclic shift of the TT attack.

The loss is the cross-entropy with the true label; importance = loss(perturbed) - loss(clean), so a
larger value means the model relies more on that frame. The occlusion methods are batched: the T
perturbed copies of every clip are built in chunks of ``chunk_size`` copies (mixing clips) and each
chunk goes through the model in one forward pass. Models should be in eval mode (the functions do not
change the mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.models.gradcam import grad_cam

IMPORTANCE_METHODS: tuple[str, ...] = ("gradcam", "zero_padding", "mean_padding")
MEAN_PADDING_BOUNDARIES: tuple[str, ...] = ("clamp", "cyclic")
GRADCAM_TEMPORAL_MAPPINGS: tuple[str, ...] = ("interpolate", "repeat")
MODEL_MEAN_FILL = "model_mean"

FillValue = float | str | Sequence[float] | torch.Tensor


def normalize_method_name(method: str) -> str:
    """Canonical method name ("zero-padding" and "Zero_Padding" both become "zero_padding")."""
    if not isinstance(method, str):
        raise TypeError(f"importance method must be a string, one of {IMPORTANCE_METHODS}; got {method!r}")
    canonical = method.strip().lower().replace("-", "_").replace(" ", "_")
    if canonical == "grad_cam":
        canonical = "gradcam"
    if canonical not in IMPORTANCE_METHODS:
        raise ValueError(
            f"unknown importance method {method!r}; valid methods: {', '.join(IMPORTANCE_METHODS)}"
        )
    return canonical


def _check_clips_and_labels(clips: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(clips, torch.Tensor) or clips.ndim != 5:
        shape = tuple(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
        raise ValueError(f"clips must be a tensor of shape (N, C, T, H, W); got {shape}")
    if not clips.is_floating_point():
        raise TypeError(f"clips must be a floating-point tensor in [0, 1]; got dtype {clips.dtype}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != clips.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must be a 1-D tensor with one class index per clip ({clips.shape[0]}); got {shape}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor; got dtype {labels.dtype}")


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")


def neighbour_indices(num_frames: int, boundary: str = "clamp") -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (previous, next) of the two frames whose mean replaces frame t in mean-padding.

    ``"clamp"``: a missing neighbour at either end is replaced by the other one (previous[0] = 1,
    next[T-1] = T-2). ``"cyclic"``: indices wrap around modulo T.
    """
    if boundary not in MEAN_PADDING_BOUNDARIES:
        raise ValueError(
            f"unknown mean-padding boundary {boundary!r}; valid values: {', '.join(MEAN_PADDING_BOUNDARIES)}"
        )
    if num_frames < 2:
        raise ValueError(f"mean-padding needs at least 2 frames per clip; got {num_frames}")
    frames = torch.arange(num_frames)
    if boundary == "cyclic":
        return (frames - 1) % num_frames, (frames + 1) % num_frames
    previous = frames - 1
    following = frames + 1
    previous[0] = 1
    following[-1] = num_frames - 2
    return previous, following


def resolve_fill(fill: FillValue, model: nn.Module | None, num_channels: int) -> torch.Tensor:
    """Per-channel pixel value (C,) that zero-padding writes into the removed frame.

    ``fill`` is a number in [0, 1], one number per channel, or ``"model_mean"`` (the model's
    normalization mean, i.e. zero after normalization; needs a ``mean`` attribute on the model).
    """
    if isinstance(fill, str):
        if fill != MODEL_MEAN_FILL:
            raise ValueError(
                f"zero-padding fill must be a number in [0, 1], one number per channel, or "
                f"{MODEL_MEAN_FILL!r}; got {fill!r}"
            )
        mean = getattr(model, "mean", None)
        if mean is None:
            raise ValueError(
                f"fill={MODEL_MEAN_FILL!r} needs a model with a normalization `mean` attribute "
                f"(vidadv.models.VideoClassifier has one); got {type(model).__name__}"
            )
        values = torch.as_tensor(mean, dtype=torch.float32).detach().flatten().cpu()
    elif isinstance(fill, bool):
        raise TypeError(f"zero-padding fill must be a number, not a bool; got {fill!r}")
    elif isinstance(fill, int | float):
        values = torch.full((num_channels,), float(fill))
    else:
        try:
            values = torch.as_tensor(fill, dtype=torch.float32).detach().flatten().cpu()
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"zero-padding fill must be a number, a sequence of numbers or {MODEL_MEAN_FILL!r}; "
                f"got {fill!r}"
            ) from error
    if values.numel() == 1:
        values = values.expand(num_channels).clone()
    if values.numel() != num_channels:
        raise ValueError(
            f"zero-padding fill has {values.numel()} values but clips have {num_channels} channels"
        )
    if not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError(f"zero-padding fill values must lie in [0, 1] pixel space; got {values.tolist()}")
    return values


def replace_frames(
    clips: torch.Tensor,
    clip_index: torch.Tensor,
    frame_index: torch.Tensor,
    *,
    method: str,
    fill: torch.Tensor | None = None,
    boundary: str = "clamp",
) -> torch.Tensor:
    """Copies of ``clips[clip_index]`` with frame ``frame_index`` replaced (one copy per index pair).

    ``method`` is ``"zero_padding"`` (frame := ``fill``, a (C,) tensor) or ``"mean_padding"``
    (frame := mean of its neighbours, see `neighbour_indices`). Returns (k, C, T, H, W).
    """
    num_channels, num_frames = clips.shape[1], clips.shape[2]
    clip_index = clip_index.to(clips.device)
    frame_index = frame_index.to(clips.device)
    copies = clips[clip_index].clone()
    rows = torch.arange(copies.shape[0], device=clips.device)
    if method == "zero_padding":
        if fill is None:
            raise ValueError("zero-padding needs a fill tensor of one value per channel")
        replacement = fill.to(device=clips.device, dtype=clips.dtype).view(1, num_channels, 1, 1)
        replacement = replacement.expand(copies.shape[0], num_channels, clips.shape[3], clips.shape[4])
    elif method == "mean_padding":
        previous, following = (i.to(clips.device) for i in neighbour_indices(num_frames, boundary))
        # Advanced indices separated by a slice: the result is (k, C, H, W).
        replacement = 0.5 * (
            clips[clip_index, :, previous[frame_index]] + clips[clip_index, :, following[frame_index]]
        )
    else:
        raise ValueError(f"replace_frames supports 'zero_padding' and 'mean_padding'; got {method!r}")
    copies[rows, :, frame_index] = replacement
    return copies


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def clean_losses(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, chunk_size: int = 16
) -> torch.Tensor:
    """Per-clip cross-entropy of the unmodified clips, (N,), computed in chunks without gradients."""
    _check_clips_and_labels(clips, labels)
    _check_chunk_size(chunk_size)
    device = _model_device(model, clips.device)
    losses = []
    with torch.no_grad():
        for start in range(0, clips.shape[0], chunk_size):
            batch = clips[start : start + chunk_size].to(device)
            target = labels[start : start + chunk_size].to(device)
            losses.append(F.cross_entropy(model(batch), target, reduction="none").float())
    return torch.cat(losses).to(clips.device)


def occlusion_importance(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    method: str = "zero_padding",
    fill: FillValue = 0.0,
    boundary: str = "clamp",
    chunk_size: int = 16,
) -> torch.Tensor:
    """Loss change per removed frame, (N, T): ``CE(model(x with frame t replaced), y) - CE(model(x), y)``.

    ``method``: ``"zero_padding"`` (frame replaced by ``fill``, see `resolve_fill`) or
    ``"mean_padding"`` (frame replaced by the mean of its neighbours, ``boundary`` "clamp"/"cyclic").
    All N*T perturbed copies go through the model in batches of ``chunk_size`` copies.
    """
    _check_clips_and_labels(clips, labels)
    _check_chunk_size(chunk_size)
    method = normalize_method_name(method)
    if method == "gradcam":
        raise ValueError(
            "occlusion_importance computes 'zero_padding' or 'mean_padding'; use gradcam_importance"
        )
    num_clips, num_channels, num_frames = clips.shape[:3]
    fill_values = resolve_fill(fill, model, num_channels) if method == "zero_padding" else None
    if method == "mean_padding":
        neighbour_indices(num_frames, boundary)  # validates boundary and T >= 2 before any work
    device = _model_device(model, clips.device)
    baseline = clean_losses(model, clips, labels, chunk_size)
    perturbed = torch.empty(num_clips * num_frames, dtype=torch.float32, device=clips.device)
    with torch.no_grad():
        for start in range(0, num_clips * num_frames, chunk_size):
            flat = torch.arange(start, min(start + chunk_size, num_clips * num_frames))
            clip_index, frame_index = flat // num_frames, flat % num_frames
            copies = replace_frames(
                clips, clip_index, frame_index, method=method, fill=fill_values, boundary=boundary
            ).to(device)
            target = labels.to(device)[clip_index.to(device)]
            loss = F.cross_entropy(model(copies), target, reduction="none").float()
            perturbed[start : start + flat.numel()] = loss.to(clips.device)
    return perturbed.view(num_clips, num_frames) - baseline[:, None]


def zero_padding_importance(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    fill: FillValue = 0.0,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Zero-padding frame importance (N, T): loss change when frame t becomes a constant ``fill`` frame."""
    return occlusion_importance(model, clips, labels, method="zero_padding", fill=fill, chunk_size=chunk_size)


def mean_padding_importance(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    boundary: str = "clamp",
    chunk_size: int = 16,
) -> torch.Tensor:
    """Mean-padding frame importance (N, T): loss change when frame t becomes the mean of t-1 and t+1."""
    return occlusion_importance(
        model, clips, labels, method="mean_padding", boundary=boundary, chunk_size=chunk_size
    )


def map_to_input_frames(
    slice_scores: torch.Tensor, num_frames: int, mode: str = "interpolate"
) -> torch.Tensor:
    """Map per-slice scores (N, T') of a layer with temporal length T' to the T input frames, (N, T).

    ``"interpolate"``: linear interpolation with slice j centred on the input frames it covers
    (``align_corners=False``); ends are held constant. ``"repeat"``: frame t takes slice
    ``floor(t * T' / T)`` (each slice repeated over its T/T' frames when T' divides T).
    """
    if mode not in GRADCAM_TEMPORAL_MAPPINGS:
        raise ValueError(
            f"unknown Grad-CAM temporal mapping {mode!r}; "
            f"valid values: {', '.join(GRADCAM_TEMPORAL_MAPPINGS)}"
        )
    if slice_scores.ndim != 2 or slice_scores.shape[1] < 1:
        raise ValueError(f"slice scores must have shape (N, T'); got {tuple(slice_scores.shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive; got {num_frames}")
    num_slices = slice_scores.shape[1]
    if num_slices == num_frames:
        return slice_scores.clone()
    if mode == "repeat":
        index = torch.div(torch.arange(num_frames) * num_slices, num_frames, rounding_mode="floor")
        return slice_scores[:, index.to(slice_scores.device)]
    scores = slice_scores if slice_scores.is_floating_point() else slice_scores.float()
    return F.interpolate(scores[:, None, :], size=num_frames, mode="linear", align_corners=False)[:, 0, :]


def gradcam_importance(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    layer: str | nn.Module | None = None,
    temporal_mapping: str = "interpolate",
) -> torch.Tensor:
    """Grad-CAM frame importance (N, T): spatial mean of the Grad-CAM map per temporal slice of ``layer``
    (default: the classifier's ``attention_layer``), mapped back to the T input frames."""
    _check_clips_and_labels(clips, labels)
    if temporal_mapping not in GRADCAM_TEMPORAL_MAPPINGS:
        raise ValueError(
            f"unknown Grad-CAM temporal mapping {temporal_mapping!r}; "
            f"valid values: {', '.join(GRADCAM_TEMPORAL_MAPPINGS)}"
        )
    device = _model_device(model, clips.device)
    cam = grad_cam(model, clips.to(device), labels.to(device), layer=layer)
    if cam.ndim != 4 or cam.shape[0] != clips.shape[0]:
        raise ValueError(f"grad_cam returned shape {tuple(cam.shape)}; expected (N, T', H', W')")
    slice_scores = cam.detach().float().mean(dim=(-2, -1))
    return map_to_input_frames(slice_scores, clips.shape[2], temporal_mapping).to(clips.device)


def frame_importance(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    method: str,
    *,
    fill: FillValue = 0.0,
    boundary: str = "clamp",
    chunk_size: int = 16,
    layer: str | nn.Module | None = None,
    temporal_mapping: str = "interpolate",
) -> torch.Tensor:
    """Frame importance (N, T) by ``method`` ("gradcam", "zero_padding" or "mean_padding")."""
    method = normalize_method_name(method)
    if method == "gradcam":
        return gradcam_importance(model, clips, labels, layer=layer, temporal_mapping=temporal_mapping)
    return occlusion_importance(
        model, clips, labels, method=method, fill=fill, boundary=boundary, chunk_size=chunk_size
    )
