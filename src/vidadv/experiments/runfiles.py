"""Adversarial clip files that vouch for themselves: a checksum, the budget they were made with, and the
checks `evaluate` runs before it scores a file.

Every file `vidadv attack` writes holds, besides the tensor "adv" and the per-clip "record" (see
`vidadv.experiments.runner`), two header entries:

  budget   JSON {"eps": float, "norm": "linf" | "l2"}: the attack budget the clip was made with
  sha256   hex SHA-256 of the tensor's dtype, shape and bytes and of the "budget" and "record" texts

`load_verified_clip` refuses (`AdversarialFileError`, naming the file) a file whose checksum does not
match, whose budget differs from the run's, whose values are not finite or leave [0, 1], or whose
distance to the clean clip (or, when the dataset cannot be opened, its checksummed recorded distance)
exceeds the budget plus the rounding of the compute and save dtypes. Files written before checksums were
recorded ("legacy") are accepted with one warning: range, finiteness and the distance to the clean clip
are still checked, their bytes cannot be.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidadv.experiments.config import AttackSpec, ExperimentConfig
from vidadv.experiments.runtime import (
    ADV_FORMAT,
    RunLayout,
    SelectedClip,
    check_item,
    default_dataset_factory,
)
from vidadv.utils.io import exclusive_lock, load_tensor_metadata, load_tensors

CHECKSUM_KEY = "sha256"
BUDGET_KEY = "budget"
RECORD_KEY = "record"


class AdversarialFileError(ValueError):
    """An adversarial clip file failed verification; the message names the file and the check."""


@dataclass(frozen=True)
class Budget:
    """The perturbation budget of an attack: radius `eps` in the `norm` ("linf" or "l2")."""

    eps: float
    norm: str = "linf"

    def matches(self, other: Budget) -> bool:
        return self.norm == other.norm and math.isclose(self.eps, other.eps, rel_tol=1e-9, abs_tol=0.0)

    def distance(self, delta: torch.Tensor) -> float:
        """The size of a perturbation (C, T, H, W) in this budget's norm."""
        delta = delta.double()
        return float(delta.abs().max()) if self.norm == "linf" else float(delta.flatten().norm())

    def to_json(self) -> str:
        return json.dumps({"eps": self.eps, "norm": self.norm}, sort_keys=True)

    def __str__(self) -> str:
        return f"{self.norm} eps {self.eps:.6g} (= {255 * self.eps:.4g}/255)"


def attack_budget(config: ExperimentConfig, attack: AttackSpec) -> Budget:
    """The budget `attack` runs with under `config` (the global eps, overridden by the attack's options)."""
    options = config.attack_options(attack)
    return Budget(float(options["eps"]), str(options.get("norm", "linf")))


def dtype_resolution(dtype: torch.dtype) -> float:
    """Rounding error of `dtype` for values up to 1 (used as tolerance of the budget check)."""
    return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


def budget_tolerance(config: ExperimentConfig) -> float:
    """Slack of the budget check: the rounding of the compute dtype and of the save dtype."""
    return 1e-6 + dtype_resolution(config.torch_dtype) + dtype_resolution(config.torch_save_dtype)


def file_checksum(tensor: torch.Tensor, budget_text: str, record_text: str) -> str:
    """SHA-256 of the tensor's dtype, shape and bytes and of the budget and record header texts."""
    data = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256()
    digest.update(f"{data.dtype}|{tuple(data.shape)}|".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(b"|" + budget_text.encode() + b"|" + record_text.encode())
    return digest.hexdigest()


def adversarial_metadata(tensor: torch.Tensor, record: Mapping[str, Any], budget: Budget) -> dict[str, str]:
    """The safetensors header of an adversarial clip file: format, record, budget and checksum."""
    record_text = json.dumps(dict(record))
    budget_text = budget.to_json()
    return {
        "format": ADV_FORMAT,
        RECORD_KEY: record_text,
        BUDGET_KEY: budget_text,
        CHECKSUM_KEY: file_checksum(tensor, budget_text, record_text),
    }


def recorded_budget(metadata: Mapping[str, str]) -> Budget | None:
    """The budget stored in a file's header, or None for a legacy file without one."""
    text = metadata.get(BUDGET_KEY)
    if text is None:
        return None
    try:
        data = json.loads(text)
        return Budget(float(data["eps"]), str(data["norm"]))
    except (ValueError, KeyError, TypeError):
        return None


def is_current(path: Path, budget: Budget, config_hash: str) -> bool:
    """Whether an existing adversarial file can be kept when resuming: it was made with `budget` (legacy
    files without a recorded budget: with the same config hash). Unreadable files are redone."""
    try:
        metadata = load_tensor_metadata(path)
    except (OSError, ValueError):
        return False
    stored = recorded_budget(metadata)
    if stored is not None:
        return stored.matches(budget)
    try:
        return json.loads(metadata.get(RECORD_KEY, "{}")).get("config_hash") == config_hash
    except ValueError:
        return False


def _budget_mismatch(path: Path, made_with: Budget, budget: Budget) -> str:
    return (
        f"{str(path)!r} was made with budget {made_with}, but this run's attack uses {budget}; rerun "
        "`vidadv attack` with the run's config (it redoes files of another budget), then evaluate again"
    )


def _check_values(path: Path, adv: torch.Tensor) -> None:
    finite = torch.isfinite(adv)
    if not bool(finite.all()):
        where = tuple((~finite).nonzero()[0].tolist())
        raise AdversarialFileError(
            f"{str(path)!r}: {int((~finite).sum())} NaN/Inf value(s), the first {float(adv[where]):.8g} at "
            f"(c, t, h, w) = {where}; the file is damaged: delete it and rerun `vidadv attack`"
        )
    outside = (adv < 0) | (adv > 1)
    if bool(outside.any()):
        where = tuple(outside.nonzero()[0].tolist())
        raise AdversarialFileError(
            f"{str(path)!r}: value {float(adv[where]):.8g} at (c, t, h, w) = {where} is outside [0, 1] "
            f"({int(outside.sum())} such value(s)); the file is damaged: delete it and rerun `vidadv attack`"
        )


def load_verified_clip(
    path: Path,
    budget: Budget,
    tolerance: float,
    clean: torch.Tensor | None = None,
    on_legacy: Callable[[Path], None] | None = None,
) -> torch.Tensor:
    """The "adv" tensor of an adversarial clip file (float32), after every check (see the module doc).

    budget: the run's budget for this attack; clean: the clean clip, or None to use the file's recorded
    distance (trusted only when the checksum holds); on_legacy: called for a file without a checksum.
    """
    path = Path(path)
    metadata = load_tensor_metadata(path)
    tensors = load_tensors(path)
    if "adv" not in tensors:
        raise AdversarialFileError(f"{str(path)!r} has no 'adv' tensor")
    stored = tensors["adv"]
    checksum = metadata.get(CHECKSUM_KEY)
    record_text = metadata.get(RECORD_KEY, "{}")
    made_with = recorded_budget(metadata)
    if checksum is None:
        if on_legacy is not None:
            on_legacy(path)
    else:
        actual = file_checksum(stored, metadata.get(BUDGET_KEY, ""), record_text)
        if actual != checksum:
            raise AdversarialFileError(
                f"{str(path)!r}: checksum mismatch (stored sha256 {checksum[:12]}..., content "
                f"{actual[:12]}...): the file is damaged: delete it and rerun `vidadv attack`"
            )
        if made_with is None:
            raise AdversarialFileError(f"{str(path)!r}: the header has a checksum but no readable budget")
    if made_with is not None and not made_with.matches(budget):
        raise AdversarialFileError(_budget_mismatch(path, made_with, budget))
    adv = stored.float()
    _check_values(path, adv)
    if clean is not None:
        if tuple(clean.shape) != tuple(adv.shape):
            raise AdversarialFileError(
                f"{str(path)!r} has shape {tuple(adv.shape)} but its clean clip {tuple(clean.shape)}"
            )
        distance, source = budget.distance(adv - clean.float()), "distance to the clean clip"
    elif checksum is not None:
        try:
            distance, source = float(json.loads(record_text)["linf"]), "recorded distance"
        except (ValueError, KeyError, TypeError):
            raise AdversarialFileError(f"{str(path)!r}: the record has no readable 'linf'") from None
        if budget.norm != "linf":
            return adv  # the record holds the L-inf distance only: nothing to compare an l2 budget with
    else:
        return adv  # legacy file without the clean clip: range and finiteness were all we could check
    if not distance <= budget.eps + tolerance:
        raise AdversarialFileError(
            f"{str(path)!r}: {source} {distance:.6g} (= {255 * distance:.4g}/255) exceeds the budget "
            f"{budget} (+ tolerance {tolerance:.2g}); delete it and rerun `vidadv attack`"
        )
    return adv


def holds_eval_lock(function: Callable[..., int]) -> Callable[..., int]:
    """Run `function(run_dir, ...)` holding the exclusive lock of `run_dir/eval` (two evaluations of one run
    would overwrite each other's prediction caches); a second process is refused naming the holder's pid."""

    @functools.wraps(function)
    def locked(run_dir: str | os.PathLike[str], *args: Any, **kwargs: Any) -> int:
        layout = RunLayout.of(run_dir)
        if not layout.run_config.is_file():
            return function(run_dir, *args, **kwargs)  # not a run: let it say so
        with exclusive_lock(layout.eval_dir, f"vidadv {function.__name__}"):
            return function(run_dir, *args, **kwargs)

    return locked


class ClipVerifier:
    """`load_verified_clip` for the files of one run: the run's budget per attack, the clean clips from
    the dataset when it can be opened (else the recorded distances, with one warning), one warning for
    legacy files, and each file's distance measured once per process."""

    def __init__(
        self, config: ExperimentConfig, dataset_factory: Callable[[dict[str, Any]], Any] | None = None
    ) -> None:
        self.config = config
        self.dataset_factory = dataset_factory
        self.tolerance = budget_tolerance(config)
        self._dataset: Any = None
        self._dataset_error: str | None = None
        self._verified: set[Path] = set()
        self._warned: set[str] = set()

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"WARNING: {text}", file=sys.stderr)

    def _clean(self, clip: SelectedClip) -> torch.Tensor | None:
        if self._dataset is None and self._dataset_error is None:
            try:
                self._dataset = (self.dataset_factory or default_dataset_factory)(dict(self.config.dataset))
            except Exception as err:  # the dataset may not be reachable where the evaluation runs
                self._dataset_error = f"{type(err).__name__}: {err}"
        if self._dataset is None:
            self._warn(
                "dataset",
                f"cannot open the dataset ({self._dataset_error}); each adversarial file's budget is checked "
                "against its recorded, checksummed distance instead of the clean clip",
            )
            return None
        try:
            clean, label, clip_id = check_item(self._dataset[clip.index], clip.index)
        except (OSError, ValueError, TypeError, RuntimeError, IndexError) as err:
            problem = f"cannot load clean clip {clip.clip_id!r} ({type(err).__name__}: {err})"
        else:
            if clip_id == clip.clip_id and label == clip.label:
                return clean
            problem = (
                f"dataset item {clip.index} is now ({clip_id!r}, label {label}) but the run's selection says "
                f"({clip.clip_id!r}, label {clip.label}): the dataset changed since the attack"
            )
        self._warn(
            "clean",
            f"{problem}; such files' budgets are checked against their recorded, checksummed distance",
        )
        return None

    def _legacy(self, path: Path) -> None:
        self._warn(
            "legacy",
            f"{str(path)!r} (and maybe other files of this run) carries no checksum or budget: it was "
            "written by an older vidadv. Its range, finiteness and distance to the clean clip are checked, "
            "its bytes cannot be; rerun `vidadv attack CONFIG --no-resume` to rewrite the run with checksums",
        )

    def check_budgets(self, files: Mapping[tuple[str, str], Sequence[tuple[SelectedClip, Path]]]) -> None:
        """Header-only check that every file {(white-box, attack): [(clip, path)]} was made with its
        attack's budget (cheap; covers files whose predictions are cached and so are not loaded again)."""
        for (_whitebox, attack), items in files.items():
            budget = attack_budget(self.config, self.config.attack(attack))
            for _clip, path in items:
                made_with = recorded_budget(load_tensor_metadata(path))
                if made_with is not None and not made_with.matches(budget):
                    raise AdversarialFileError(_budget_mismatch(path, made_with, budget))

    def load(self, path: Path, attack: str, clip: SelectedClip) -> torch.Tensor:
        """The verified float32 clip of `path`, an adversarial file of `attack` on `clip`."""
        budget = attack_budget(self.config, self.config.attack(attack))
        clean = None if path in self._verified else self._clean(clip)
        adv = load_verified_clip(path, budget, self.tolerance, clean, on_legacy=self._legacy)
        self._verified.add(path)
        return adv
