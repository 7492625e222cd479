"""Local Hugging Face video transformers (VideoMAE, TimeSformer, ViViT) as vidadv models.

`load_hf_video_classifier(DIR)` (also `load_model("hf", checkpoint=DIR)`) reads a folder written by
`save_pretrained` with `AutoModelForVideoClassification.from_pretrained(DIR, local_files_only=True)`: no
download is ever attempted (`HF_HUB_OFFLINE` is set too) and no code from the folder is run
(`trust_remote_code=False`; `.bin` weights are read by transformers with `torch.load(weights_only=True)`).
The result is an `HFVideoClassifier`: clips (N, C, T, H, W) in [0, 1] -> logits (N, K), like every vidadv
model. The wrapper normalizes with the mean/std of the folder's preprocessor config
(`video_preprocessor_config.json` or `preprocessor_config.json`, including its rescale factor) or, when
there is none, the ImageNet statistics (with a warning), and hands the model (N, T, C, H, W) clips, the
layout of `pixel_values` of these models. The model was built for exactly `config.num_frames` frames of
`config.image_size` pixels: other clips are refused with a clear error (TimeSformer would otherwise
silently interpolate its embeddings).

Token Grad-CAM (for `vidadv analyze` and the ATA attack): Grad-CAM needs an activation laid out as
(N, C, T', H', W'). A transformer's activations are token sequences (N, L, C), so the network carries a
`TokenGrid` module that views the patch tokens entering the last encoder block as that grid (T' = frames
per tubelet: num_frames / tubelet size for VideoMAE and ViViT, num_frames for TimeSformer; H', W' = image
size / patch size); the class token (TimeSformer, ViViT) is left out. A forward pre-hook routes the block's
input through `TokenGrid` and back (an exact reshape, so the logits are those of the Hugging Face model),
which puts the grid on the gradient path. The classifier's `attention_layer` is "network.token_grid", so
`vidadv.models.gradcam`, `vidadv.analysis.importance.gradcam_importance` (each slice mapped back to the
input frames it covers) and ATA need nothing transformer-specific. The last block's *input* is used, not
its output: a class-token model reads only the class token of the last block's output, so its patch
tokens there have zero gradient.

`transformers` is an optional dependency (`pip install 'vidadv[transformers]'`); it is imported only when
a model is loaded, because the import is slow (seconds) and may be absent.

SGM does not apply to these models (it needs residual CNN blocks) and says so when asked.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

__all__ = [
    "HF_ARCHITECTURES",
    "HF_MODEL_NAME",
    "PREPROCESSOR_FILES",
    "HFArchitecture",
    "HFVideoClassifier",
    "HFVideoNetwork",
    "TokenGrid",
    "import_transformers",
    "load_hf_video_classifier",
    "preprocessor_normalization",
]

#: The `load_model` name whose `checkpoint` is a Hugging Face model folder.
HF_MODEL_NAME = "hf"
#: Preprocessor configs read for the normalization, first found wins (video processors, then image ones).
PREPROCESSOR_FILES: tuple[str, ...] = ("video_preprocessor_config.json", "preprocessor_config.json")
_INSTALL_HINT = "install it with `pip install 'vidadv[transformers]'` (or `pip install 'transformers>=5'`)"


@dataclass(frozen=True)
class HFArchitecture:
    """Where the patch tokens of one Hugging Face video architecture live, for token Grad-CAM.

    `encoder_layers`: dotted path (in the `...ForVideoClassification` model) of the `nn.ModuleList` of
    encoder blocks; `prefix_tokens`: class tokens before the patch tokens; `token_order`: "thw" (time
    outermost, VideoMAE/ViViT tubelets) or "hwt" (time innermost, TimeSformer).
    """

    model_type: str
    encoder_layers: str
    prefix_tokens: int
    token_order: str

    def grid_shape(self, config: Any) -> tuple[int, int, int]:
        """(T', H', W') of the patch-token grid for a model `config`."""
        height, width = _pair(config.image_size, "image_size")
        frames = int(config.num_frames)
        if self.model_type == "vivit":
            tube_t, patch_h, patch_w = (int(v) for v in config.tubelet_size)
        else:
            tube_t = int(getattr(config, "tubelet_size", 1)) if self.model_type == "videomae" else 1
            patch_h, patch_w = _pair(config.patch_size, "patch_size")
        for size, patch, what in (
            (frames, tube_t, "frames"),
            (height, patch_h, "height"),
            (width, patch_w, "width"),
        ):
            if patch < 1 or size % patch:
                raise ValueError(
                    f"{self.model_type} config: {what} {size} is not a multiple of the patch/tubelet size "
                    f"{patch}; vidadv maps token slices back to input frames only for whole tubelets"
                )
        return frames // tube_t, height // patch_h, width // patch_w


#: The architectures vidadv wraps, by `config.model_type`.
HF_ARCHITECTURES: dict[str, HFArchitecture] = {
    arch.model_type: arch
    for arch in (
        HFArchitecture("videomae", "videomae.encoder.layer", prefix_tokens=0, token_order="thw"),
        HFArchitecture("timesformer", "timesformer.encoder.layer", prefix_tokens=1, token_order="hwt"),
        HFArchitecture("vivit", "vivit.layers", prefix_tokens=1, token_order="thw"),
    )
}


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, Sequence) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"model config {what} must be an int or a pair of ints, got {value!r}")


class TokenGrid(nn.Module):
    """Patch tokens (N, P + T'H'W', C) -> grid (N, C, T', H', W') (P class tokens dropped), and back.

    Its forward output is the activation token Grad-CAM hooks (see the module docstring).
    """

    def __init__(self, grid: tuple[int, int, int], prefix_tokens: int, token_order: str) -> None:
        super().__init__()
        if token_order not in ("thw", "hwt"):
            raise ValueError(f"token_order must be 'thw' or 'hwt', got {token_order!r}")
        self.grid = tuple(int(v) for v in grid)
        self.prefix_tokens = int(prefix_tokens)
        self.token_order = token_order

    @property
    def num_tokens(self) -> int:
        return self.prefix_tokens + math.prod(self.grid)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[1] != self.num_tokens:
            raise ValueError(
                f"expected tokens (N, {self.num_tokens}, C) ({self.prefix_tokens} class tokens + a "
                f"{'x'.join(map(str, self.grid))} patch grid), got {tuple(tokens.shape)}"
            )
        t, h, w = self.grid
        patches = tokens[:, self.prefix_tokens :]
        if self.token_order == "thw":
            return patches.unflatten(1, (t, h, w)).permute(0, 4, 1, 2, 3)
        return patches.unflatten(1, (h, w, t)).permute(0, 4, 3, 1, 2)

    def to_tokens(self, grid: torch.Tensor) -> torch.Tensor:
        """Inverse of `forward` for the patch tokens: (N, C, T', H', W') -> (N, T'H'W', C)."""
        order = (0, 2, 3, 4, 1) if self.token_order == "thw" else (0, 3, 4, 2, 1)
        return grid.permute(*order).flatten(1, 3)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, prefix_tokens={self.prefix_tokens}, token_order={self.token_order!r}"


class HFVideoNetwork(nn.Module):
    """A Hugging Face `...ForVideoClassification` model as a bare vidadv network.

    Takes normalized clips (N, T, C, H, W) (the models' `pixel_values`), returns the logits (N, K).
    `attention_layer` ("token_grid") is the token Grad-CAM layer (see `TokenGrid`).
    """

    attention_layer = "token_grid"

    def __init__(self, model: nn.Module, architecture: HFArchitecture) -> None:
        super().__init__()
        config = model.config
        self.model = model
        self.architecture = architecture
        self.num_frames = int(config.num_frames)
        self.image_size = _pair(config.image_size, "image_size")
        self.num_classes = int(config.num_labels)
        self.min_frames = self.num_frames
        self.token_grid = TokenGrid(
            architecture.grid_shape(config), architecture.prefix_tokens, architecture.token_order
        )
        layers = model.get_submodule(architecture.encoder_layers)
        if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
            raise ValueError(
                f"{architecture.model_type} model has no encoder blocks at {architecture.encoder_layers!r}"
            )
        layers[-1].register_forward_pre_hook(self._route_through_grid, with_kwargs=True)

    def _route_through_grid(
        self, _block: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Forward pre-hook of the last encoder block: its input tokens go through `token_grid` and back."""
        if args:
            tokens, rest = args[0], args[1:]
        else:
            tokens, rest = kwargs.pop("hidden_states"), ()
        grid = self.token_grid(tokens)
        rebuilt = torch.cat([tokens[:, : self.token_grid.prefix_tokens], self.token_grid.to_tokens(grid)], 1)
        if args:
            return (rebuilt, *rest), kwargs
        return (), {**kwargs, "hidden_states": rebuilt}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=video).logits


class HFVideoClassifier(VideoClassifier):
    """`VideoClassifier` around an `HFVideoNetwork`: also checks the exact frame count, size and dtype.

    Extra attributes: `class_names` (the config's id2label in class order), `normalization_source` (where
    mean/std came from), `checkpoint_dir`.
    """

    network: HFVideoNetwork

    def __init__(
        self,
        network: HFVideoNetwork,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
        *,
        class_names: Sequence[str] = (),
        normalization_source: str = "",
        checkpoint_dir: str = "",
    ) -> None:
        super().__init__(network, mean=mean, std=std, input_layout="NTCHW")
        self.class_names = tuple(class_names)
        self.normalization_source = normalization_source
        self.checkpoint_dir = checkpoint_dir

    def check_clip(self, clip: torch.Tensor) -> None:
        super().check_clip(clip)
        frames, (height, width) = self.network.num_frames, self.network.image_size
        if clip.shape[2] != frames or tuple(clip.shape[3:]) != (height, width):
            raise ValueError(
                f"this {self.network.architecture.model_type} model takes clips of exactly {frames} frames "
                f"of {height}x{width} pixels (N, C, {frames}, {height}, {width}), got shape "
                f"{tuple(clip.shape)}; resample the clip (vidadv.data.transforms) to that size"
            )
        dtype = next(self.network.parameters()).dtype
        if clip.dtype != dtype:
            raise ValueError(
                f"this model computes in {dtype}; got a {clip.dtype} clip (use clip.to({dtype}))"
            )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalization from {self.normalization_source}"


# ------------------------------------------------------------------------------------------ loading


def import_transformers() -> Any:
    """The `transformers` module, imported on first use (slow; optional dependency), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            f"loading Hugging Face models needs the `transformers` package; {_INSTALL_HINT}"
        ) from error
    major = int(transformers.__version__.split(".")[0])
    if major < 5:
        raise ImportError(
            f"vidadv needs transformers >= 5, found {transformers.__version__}; {_INSTALL_HINT}"
        )
    return transformers


def _check_folder(checkpoint_dir: object) -> Path:
    if checkpoint_dir is None:
        raise ValueError(
            f"load_model({HF_MODEL_NAME!r}) needs checkpoint=<folder written by save_pretrained> (with "
            f"config.json and the weights)"
        )
    if not isinstance(checkpoint_dir, str | os.PathLike):
        raise TypeError(f"checkpoint must be a folder path, got {type(checkpoint_dir).__name__}")
    folder = Path(checkpoint_dir).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"Hugging Face model folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(
            f"checkpoint {str(folder)!r} is a file; a Hugging Face model is a folder written by "
            f"save_pretrained (config.json + model.safetensors)"
        )
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"{str(folder)!r} holds no config.json: not a Hugging Face model folder (save one with "
            f"model.save_pretrained(folder))"
        )
    return folder


def _read_config(folder: Path) -> Any:
    transformers = import_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the model config in {str(folder)!r}: {_first_line(error)}") from error
    model_type = getattr(config, "model_type", None)
    from transformers.models.auto.modeling_auto import MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES

    if model_type not in MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(
            f"{str(folder)!r} holds a {model_type!r} model, not a video classifier; vidadv loads "
            f"{', '.join(sorted(HF_ARCHITECTURES))} video classification models"
        )
    if model_type not in HF_ARCHITECTURES:
        raise ValueError(
            f"{str(folder)!r} holds a {model_type!r} video classifier, which vidadv does not wrap yet (its "
            f"token layout for Grad-CAM is not declared); supported: {', '.join(sorted(HF_ARCHITECTURES))} "
            f"(add an HFArchitecture entry in vidadv.models.hf)"
        )
    return config


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _load_hf_model(folder: Path, attn_implementation: str) -> nn.Module:
    transformers = import_transformers()
    hf_logging = transformers.utils.logging
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar per model; restored below
    try:
        model, info = transformers.AutoModelForVideoClassification.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=False,
            dtype=torch.float32,
            attn_implementation=attn_implementation,
            output_loading_info=True,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"cannot load the Hugging Face model in {str(folder)!r}: {_first_line(error)}"
        ) from error
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
    missing = list(info.get("missing_keys", ()))
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        shown = ", ".join(map(str, (missing + mismatched)[:5]))
        raise ValueError(
            f"the weights in {str(folder)!r} do not cover the video classifier ({len(missing)} missing, "
            f"{len(mismatched)} of the wrong shape: {shown}); transformers would initialize them at random. "
            f"Is it a fine-tuned classification checkpoint (e.g. not a pre-training one)?"
        )
    return model


def _stats(values: Any, where: str) -> tuple[float, ...]:
    if isinstance(values, int | float) and not isinstance(values, bool):
        values = [values]
    if (
        not isinstance(values, Sequence)
        or not values
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
    ):
        raise ValueError(f"{where} must be a number or a list of finite numbers, got {values!r}")
    return tuple(float(v) for v in values)


def preprocessor_normalization(folder: str | Path) -> tuple[tuple[float, ...], tuple[float, ...], str] | None:
    """(mean, std, source file) in [0, 1] pixel units from the folder's preprocessor config, or None.

    The Hugging Face processors feed the model ``(pixel * rescale_factor - mean) / std`` for pixels in
    0..255 (``pixel`` itself without ``do_rescale``, no mean/std without ``do_normalize``); with
    ``s = 255 * rescale_factor`` that is ``(x - mean / s) / (std / s)`` for x in [0, 1].
    """
    folder = Path(folder)
    for name in PREPROCESSOR_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read preprocessor config {str(path)!r}: {error}") from error
        if not isinstance(raw, Mapping):
            raise ValueError(f"preprocessor config {str(path)!r} is not a JSON object")
        scale = 255.0 * float(raw.get("rescale_factor", 1 / 255)) if raw.get("do_rescale", True) else 255.0
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(
                f"{str(path)!r}: rescale_factor must be positive, got {raw.get('rescale_factor')!r}"
            )
        if raw.get("do_normalize", True):
            mean = _stats(raw.get("image_mean", IMAGENET_MEAN), f"{path.name} image_mean")
            std = _stats(raw.get("image_std", IMAGENET_STD), f"{path.name} image_std")
        else:
            mean, std = (0.0,), (1.0,)
        if any(s <= 0 for s in std):
            raise ValueError(f"{str(path)!r}: image_std must be positive, got {list(std)}")
        return tuple(m / scale for m in mean), tuple(s / scale for s in std), str(path)
    return None


def load_hf_video_classifier(
    checkpoint_dir: str | Path,
    device: str | torch.device = "cpu",
    *,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    attn_implementation: str = "eager",
) -> HFVideoClassifier:
    """A Hugging Face video classifier saved in `checkpoint_dir` as a frozen vidadv model in eval mode.

    Args:
        checkpoint_dir: folder written by `save_pretrained` (config.json, model.safetensors, optionally a
            preprocessor config); read offline only.
        device: where the model lives.
        num_classes: if given, must equal the model's class count.
        mean, std: override the normalization (both in [0, 1] pixel units); default: the preprocessor
            config, else ImageNet statistics (with a warning).
        attn_implementation: transformers' attention kernel; "eager" (default) has exact second-order
            gradients (ATA differentiates the Grad-CAM map); "sdpa" is faster for the other attacks.

    Raises ImportError without transformers, FileNotFoundError/ValueError on a bad folder (no model, not a
    video classifier, unsupported architecture, weights not covering the classifier).
    """
    folder = _check_folder(checkpoint_dir)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std to override the normalization, or neither")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r} (examples: 'cpu', 'cuda', 'cuda:0')") from error
    config = _read_config(folder)
    architecture = HF_ARCHITECTURES[config.model_type]
    architecture.grid_shape(config)  # validates the patch geometry before the weights are read
    if num_classes is not None and num_classes != config.num_labels:
        raise ValueError(
            f"class-count mismatch: the model in {str(folder)!r} has {config.num_labels} classes, asked for "
            f"num_classes={num_classes}"
        )

    if mean is not None and std is not None:
        normalization = (tuple(mean), tuple(std), "the mean/std arguments")
    else:
        normalization = preprocessor_normalization(folder)
    network = HFVideoNetwork(_load_hf_model(folder, attn_implementation), architecture)
    if normalization is None:
        normalization = (IMAGENET_MEAN, IMAGENET_STD, "ImageNet defaults (no preprocessor config)")
        warnings.warn(
            f"{str(folder)!r} has no preprocessor config ({' or '.join(PREPROCESSOR_FILES)}): "
            f"normalizing with the ImageNet mean {IMAGENET_MEAN} and std {IMAGENET_STD}; pass "
            f"mean=/std= if the model was trained with others",
            UserWarning,
            stacklevel=2,
        )
    id2label = getattr(config, "id2label", None) or {}
    class_names = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(config.num_labels)]
    classifier = HFVideoClassifier(
        network,
        mean=normalization[0],
        std=normalization[1],
        class_names=class_names,
        normalization_source=normalization[2],
        checkpoint_dir=str(folder),
    )
    classifier.requires_grad_(False)
    return classifier.to(target).eval()


def load_hf_entry(checkpoint: str | Path | None, **options: Any) -> HFVideoClassifier:
    """`load_model("hf", checkpoint=DIR, ...)`: `load_hf_video_classifier` with the catalogue's options
    (num_classes, mean, std, attn_implementation); any other option is refused by name."""
    allowed = {"num_classes", "mean", "std", "attn_implementation"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"load_model({HF_MODEL_NAME!r}) takes no network overrides, got {unknown}")
    return load_hf_video_classifier(_check_folder(checkpoint), **options)
