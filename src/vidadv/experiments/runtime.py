"""Pieces shared by `select`, `attack` and `evaluate`: run-folder layout, factories, seeds, batching."""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from vidadv.experiments.config import ExperimentConfig, ModelSpec, load_config
from vidadv.utils.io import read_json

SELECTION_FORMAT = "vidadv-selection/1"
RUN_FORMAT = "vidadv-run/1"
ADV_FORMAT = "vidadv-adv/1"


class Attack(Protocol):
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


ModelFactory = Callable[[ModelSpec, torch.device, torch.dtype], nn.Module]
DatasetFactory = Callable[[dict[str, Any]], Any]
AttackFactory = Callable[..., Attack]


# ------------------------------------------------------------------------------------------------
# Default factories (the real vidadv parts, imported lazily)
# ------------------------------------------------------------------------------------------------


def default_model_factory(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """`vidadv.models.load_model` with the config's checkpoint / num_classes / mean / std."""
    from vidadv.models import load_model

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
    from vidadv.data import build_dataset

    return build_dataset(spec)


def default_attack_factory(spec: str, model: nn.Module, **options: Any) -> Attack:
    """`vidadv.attacks.build_attack(spec, model, **options)`."""
    from vidadv.attacks import build_attack

    return build_attack(spec, model, **options)


def load_config_for(
    config: Any,
    model_factory: ModelFactory | None = None,
    attack_factory: AttackFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
) -> ExperimentConfig:
    """Load a config; name checks against the model/attack registries are skipped for injected factories."""
    kwargs: dict[str, Any] = {}
    if model_factory is not None:
        kwargs["model_names"] = None
    if attack_factory is not None:
        kwargs["attack_names"] = None
    if dataset_factory is not None:
        kwargs["check_dataset_files"] = False
        kwargs["dataset_check"] = None
    return load_config(config, **kwargs)


def prepare_model(
    factory: ModelFactory | None, spec: ModelSpec, device: torch.device, dtype: torch.dtype
) -> nn.Module:
    """Build a model, move it to device/dtype, put it in eval mode and freeze its parameters."""
    model = (factory or default_model_factory)(spec, device, dtype)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"the model factory returned {type(model).__name__} for {spec.label!r}, not an nn.Module"
        )
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return model


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
    import numpy
    import safetensors

    import vidadv

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


@torch.no_grad()
def predict(model: nn.Module, clips: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Top-1 predictions (N,) of `model` on a clip batch (N, C, T, H, W)."""
    device = next((p.device for p in model.parameters()), clips.device)
    logits = model(clips.to(device=device, dtype=dtype))
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != clips.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"a model must map (N, C, T, H, W) clips to logits (N, K); got {shape}")
    return logits.argmax(dim=1).cpu()


def jsonable(obj: Any) -> Any:
    """Recursively convert tuples/tensors/paths to JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def format_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns, for terminal summaries."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in header]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text_rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_for_record(config: ExperimentConfig) -> dict[str, Any]:
    """The config as stored in run records (with its hash)."""
    return {"config": config.to_dict(), "config_hash": config.config_hash(), "source": config.source}
