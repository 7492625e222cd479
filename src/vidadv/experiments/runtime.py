"""Pieces shared by `select`, `attack` and `evaluate`: run-folder layout, `Factories`, seeds, batching."""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy
import safetensors
import torch
from torch import nn

import vidadv
from vidadv.attacks import build_attack
from vidadv.data import build_dataset
from vidadv.evaluation.report import format_table as format_table  # re-exported for the commands
from vidadv.experiments.config import ExperimentConfig, ModelSpec, config_from_dict, load_config
from vidadv.models import load_model
from vidadv.utils.io import jsonable as jsonable  # re-exported for the commands
from vidadv.utils.io import read_json

SELECTION_FORMAT = "vidadv-selection/1"
RUN_FORMAT = "vidadv-run/1"
ADV_FORMAT = "vidadv-adv/1"


class SeededAttack(Protocol):
    """What an attack factory builds for the runner (once per white-box model): called per batch with the
    batch's seed, which seeds the call's random draws (`vidadv.attacks.Attack` is one)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor: ...


ModelFactory = Callable[[ModelSpec, torch.device, torch.dtype], nn.Module]
DatasetFactory = Callable[[dict[str, Any]], Any]
AttackFactory = Callable[..., SeededAttack]


# ------------------------------------------------------------------------------------------------
# Factories: the real vidadv parts, or stand-ins injected by tests
# ------------------------------------------------------------------------------------------------


def default_model_factory(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """`vidadv.models.load_model` with the config's checkpoint / num_classes / mean / std."""
    return load_model(
        spec.name,
        checkpoint=spec.checkpoint,
        num_classes=spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        device=str(device),
    )


def default_dataset_factory(spec: dict[str, Any]) -> Any:
    """`vidadv.data.build_dataset(spec)`."""
    return build_dataset(spec)


def default_attack_factory(spec: str, model: nn.Module, **options: Any) -> SeededAttack:
    """`vidadv.attacks.build_attack(spec, model, **options)`."""
    return build_attack(spec, model, **options)


@dataclass(frozen=True)
class Factories:
    """What a run builds its models, dataset and attacks with; tests inject stand-ins.

    load_model(spec, device, dtype), build_dataset(spec dict) and build_attack(spec, model, **options)
    default to vidadv's own `load_model`, `build_dataset` and `build_attack`.
    """

    load_model: ModelFactory = default_model_factory
    build_dataset: DatasetFactory = default_dataset_factory
    build_attack: AttackFactory = default_attack_factory

    def load_config(self, config: Any, source: str | None = None) -> ExperimentConfig:
        """Load a config (a file, a mapping or an `ExperimentConfig`); checks against vidadv's registries
        are skipped for the parts replaced here. The attacks are validated with this `build_attack`.
        """
        kwargs: dict[str, Any] = {"attack_builder": self.build_attack}
        if self.load_model is not default_model_factory:
            kwargs["model_names"] = None
        if self.build_attack is not default_attack_factory:
            kwargs["attack_names"] = None
        if self.build_dataset is not default_dataset_factory:
            kwargs["check_dataset_files"] = False
            kwargs["dataset_check"] = None
        if isinstance(config, Mapping):
            return config_from_dict(config, source=source, **kwargs)
        return load_config(config, **kwargs)

    def prepare_model(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
        """Build a model, move it to device/dtype, put it in eval mode and freeze its parameters."""
        model = self.load_model(spec, device, dtype)
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"the model factory returned {type(model).__name__} for {spec.label!r}, not an nn.Module"
            )
        model = model.to(device=device, dtype=dtype).eval()
        model.requires_grad_(False)
        return model

    @property
    def real_models(self) -> bool:
        """Whether models come from vidadv's registry (so config model names are checked against it)."""
        return self.load_model is default_model_factory


DEFAULT_FACTORIES = Factories()


# ------------------------------------------------------------------------------------------------
# Naming, seeds, determinism
# ------------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    """A file-system-safe, collision-free name: readable prefix + 8 hex digits of sha1(text)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "x"
    return f"{readable}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def clip_seed(seed: int, clip_ids: Sequence[str]) -> int:
    """Attack seed of a clip (or of a fixed batch of clips), derived from (config seed, clip ids).

    It does not depend on which process or in which order the clip is attacked, so sharded runs give
    the same adversarial clips as single-process runs.
    """
    text = f"{seed}\x00" + "\x00".join(clip_ids)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") & ((1 << 63) - 1)


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """Ask torch for deterministic kernels (a warning, not an error, where none exists) while inside.

    The previous settings are restored on exit.
    """
    if not enabled:
        yield
        return
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_flags


def versions() -> dict[str, str]:
    """Versions of the software that produced a result (recorded in results.json)."""
    info = {
        "vidadv": getattr(vidadv, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": getattr(safetensors, "__version__", "unknown"),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["cuda"] = str(torch.version.cuda)
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------------------------
# Run folder
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunLayout:
    """Where everything of a run lives inside its output folder."""

    root: Path

    @classmethod
    def of(cls, output_dir: str | Path) -> RunLayout:
        return cls(Path(output_dir).expanduser())

    @property
    def run_config(self) -> Path:
        return self.root / "run_config.json"

    @property
    def config_hash_file(self) -> Path:
        return self.root / "config_hash.txt"

    @property
    def selection_json(self) -> Path:
        return self.root / "selection.json"

    @property
    def selection_csv(self) -> Path:
        return self.root / "selection.csv"

    @property
    def adv_dir(self) -> Path:
        return self.root / "adv"

    @property
    def records_csv(self) -> Path:
        return self.root / "attack_records.csv"

    @property
    def attack_summary(self) -> Path:
        return self.root / "attack_summary.json"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def adv_path(self, whitebox: str, attack: str, clip_id: str) -> Path:
        return self.adv_dir / slug(whitebox) / slug(attack) / f"{slug(clip_id)}.safetensors"


@dataclass(frozen=True)
class SelectedClip:
    """A clip kept by `vidadv select`: dataset index, id and true label."""

    index: int
    clip_id: str
    label: int


def load_selection(layout: RunLayout) -> dict[str, Any]:
    """The selection.json of a run folder, checked for its format."""
    data = read_json(layout.selection_json)
    if not isinstance(data, dict) or data.get("format") != SELECTION_FORMAT:
        raise ValueError(
            f"{str(layout.selection_json)!r} is not a vidadv selection file ({SELECTION_FORMAT})"
        )
    return data


def selected_clips(selection: dict[str, Any]) -> list[SelectedClip]:
    return [SelectedClip(int(c["index"]), str(c["clip_id"]), int(c["label"])) for c in selection["selected"]]


def read_run_config(layout: RunLayout) -> dict[str, Any] | None:
    """The run_config.json of a run folder, or None if the folder has none yet."""
    if not layout.run_config.is_file():
        return None
    data = read_json(layout.run_config)
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise ValueError(f"{str(layout.run_config)!r} is not a vidadv run record ({RUN_FORMAT})")
    return data


# ------------------------------------------------------------------------------------------------
# Dataset items and batches
# ------------------------------------------------------------------------------------------------


def check_item(item: Any, index: int) -> tuple[torch.Tensor, int, str]:
    """Validate one dataset item `(clip (C,T,H,W) float in [0,1], label, clip_id)`."""
    if not isinstance(item, tuple | list) or len(item) != 3:
        raise TypeError(
            f"dataset item {index} must be a (clip, label, clip_id) tuple, got {type(item).__name__}"
        )
    clip, label, clip_id = item
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or not torch.is_floating_point(clip):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise TypeError(f"dataset item {index}: clip must be a float tensor (C, T, H, W), got {shape}")
    if isinstance(label, torch.Tensor):
        label = label.item()
    if isinstance(label, bool) or not isinstance(label, int):
        raise TypeError(f"dataset item {index}: label must be an int, got {label!r}")
    if not isinstance(clip_id, str) or not clip_id:
        raise TypeError(f"dataset item {index}: clip_id must be a non-empty str, got {clip_id!r}")
    bad = ~torch.isfinite(clip) | (clip < 0) | (clip > 1)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        count = int(bad.sum())
        raise ValueError(
            f"dataset item {index} ({clip_id!r}): pixel value {float(clip[tuple(where)]):.8g} at "
            f"(c, t, h, w) = {tuple(where)} is outside [0, 1]"
            + (f" ({count - 1} more such value(s))" if count > 1 else "")
        )
    return clip, int(label), clip_id


def batched(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive groups of `size` items (the last may be shorter)."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def same_shape_runs(clips: Sequence[torch.Tensor]) -> list[list[int]]:
    """Positions of `clips` grouped into consecutive runs of equal shape (so each run can be stacked)."""
    runs: list[list[int]] = []
    for position, clip in enumerate(clips):
        if runs and clips[runs[-1][0]].shape == clip.shape:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs


def misclassified_by(predictions: Mapping[str, int], label: int) -> dict[str, int]:
    """The models that get a clip wrong ({model: predicted class}); the paper attacks (and analyzes)
    only clips for which this is empty, i.e. clips every model classifies correctly."""
    return {name: int(pred) for name, pred in predictions.items() if int(pred) != label}


@torch.no_grad()
def predict(model: nn.Module, clips: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Top-1 predictions (N,) of `model` on a clip batch (N, C, T, H, W)."""
    device = next((p.device for p in model.parameters()), clips.device)
    logits = model(clips.to(device=device, dtype=dtype))
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != clips.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"a model must map (N, C, T, H, W) clips to logits (N, K); got {shape}")
    return logits.argmax(dim=1).cpu()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_for_record(config: ExperimentConfig) -> dict[str, Any]:
    """The config as stored in run records (with its hash)."""
    return {"config": config.to_dict(), "config_hash": config.config_hash(), "source": config.source}
