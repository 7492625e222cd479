"""Experiment configs: load, validate and hash the YAML file that drives `vidadv select/attack`.

A config names the dataset (a spec dict for `vidadv.data.build_dataset`), the models, which of them
are attacked white-box (the *source* models of the transfer attack; every other model is a black-box
*target*), the attacks with display names, the perturbation budget and the run settings. It is
validated completely on load: an unknown key, a bad value or a missing file is a `ConfigError` (a
`ValueError`) naming the key, the value and what is allowed, before any work starts.

Keys (top level):
  name              free text
  output_dir        run folder (relative paths are relative to the current directory)
  dataset           spec dict for build_dataset (passed through unchanged)
  paper_dataset     "kinetics400" | "ucf101" | null: which PAPER_NUMBERS to print beside results
  models            list of {name, label?, checkpoint?, num_classes?, mean?, std?}
  whitebox          list of model labels (or names) to attack
  attacks           list of {name (display, e.g. "TT(10)"), spec (e.g. "tt+mi"), options?, paper_key?}
  eps, step_size    L-inf budget and step in [0, 1] pixel units; numbers or "a/b" strings like "16/255"
  steps             attack iterations
  batch_size, chunk_size, device ("auto" | "cpu" | "cuda" | "cuda:N" | "mps"), dtype, save_dtype, seed
  selection         "required" (default: run `vidadv select` first) | "auto" (select if missing)
  select_models     labels that must classify a clip correctly (default: all models)
  max_clips         only the first N clips of the dataset (quick runs)
  clips_per_class   keep at most N selected clips per label, in dataset order (default: all)
  deterministic     request deterministic kernels (default true)
  bootstrap_samples resamples for the 95 % intervals (default 10000)
  h264_crf          CRF of the `--h264` evaluation variant (default 23)

The *config hash* covers everything that changes the adversarial clips (dataset, models, attacks,
budget, batch size, dtypes, seed, clip selection settings) and excludes what only changes where or how
fast they are computed (output_dir, device, chunk_size, evaluation settings).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidadv.evaluation.paper import PAPER_KEYS, PAPER_NUMBERS


class ConfigError(ValueError):
    """An experiment config is invalid; the message names the key and what is allowed."""


PLACEHOLDER_MARKERS = ("/path/to", "<path", "CHANGE_ME", "FILL_IN")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
SELECTION_MODES = ("required", "auto")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_PATH_KEY_PATTERN = re.compile(r"(root|dir|path|file|csv|json|list|annotations?|indices|index_file)$")

TOP_LEVEL_KEYS = (
    "name",
    "output_dir",
    "dataset",
    "paper_dataset",
    "models",
    "whitebox",
    "attacks",
    "eps",
    "steps",
    "step_size",
    "batch_size",
    "chunk_size",
    "device",
    "dtype",
    "save_dtype",
    "seed",
    "selection",
    "select_models",
    "max_clips",
    "clips_per_class",
    "deterministic",
    "bootstrap_samples",
    "h264_crf",
)
REQUIRED_KEYS = ("output_dir", "dataset", "models", "whitebox", "attacks", "eps", "steps")
MODEL_KEYS = ("name", "label", "checkpoint", "num_classes", "mean", "std")
ATTACK_KEYS = ("name", "spec", "options", "paper_key")
# options set globally by the config; an attack's own `options` may override them
_GLOBAL_ATTACK_OPTIONS = ("eps", "steps", "step_size", "chunk_size", "seed")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment: `name` for `vidadv.models.load_model`, `label` for tables."""

    name: str
    label: str
    checkpoint: str | None = None
    num_classes: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "checkpoint": self.checkpoint,
            "num_classes": self.num_classes,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
        }

    def spec_hash(self) -> str:
        """Short hash identifying this model (used to key cached predictions)."""
        return _hash_json(self.to_dict())[:12]


@dataclass(frozen=True)
class AttackSpec:
    """One attack: display `name` (e.g. "TT(10)"), `spec` for build_attack, per-attack `options`."""

    name: str
    spec: str
    options: Mapping[str, Any] = field(default_factory=dict)
    paper_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "options": dict(self.options),
            "paper_key": self.paper_key,
        }


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config (see the module docstring for the keys)."""

    output_dir: str
    dataset: Mapping[str, Any]
    models: tuple[ModelSpec, ...]
    whitebox: tuple[str, ...]
    attacks: tuple[AttackSpec, ...]
    eps: float
    steps: int
    step_size: float | None = None
    name: str | None = None
    paper_dataset: str | None = None
    batch_size: int = 1
    chunk_size: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    save_dtype: str = "float32"
    seed: int = 0
    selection: str = "required"
    select_models: tuple[str, ...] | None = None
    max_clips: int | None = None
    clips_per_class: int | None = None
    deterministic: bool = True
    bootstrap_samples: int = 10000
    h264_crf: int = 23
    source: str | None = None

    # ----- lookups -----------------------------------------------------------------------------
    def model(self, label: str) -> ModelSpec:
        for spec in self.models:
            if spec.label == label:
                return spec
        raise ValueError(f"unknown model {label!r}; models: {', '.join(self.model_labels)}")

    def attack(self, name: str) -> AttackSpec:
        for spec in self.attacks:
            if spec.name == name:
                return spec
        raise ValueError(f"unknown attack {name!r}; attacks: {', '.join(a.name for a in self.attacks)}")

    @property
    def model_labels(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.models)

    @property
    def selection_models(self) -> tuple[str, ...]:
        """Labels of the models that must classify a clip correctly for it to be kept."""
        return self.model_labels if self.select_models is None else self.select_models

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def torch_save_dtype(self) -> torch.dtype:
        return DTYPES[self.save_dtype]

    def attack_options(self, attack: AttackSpec) -> dict[str, Any]:
        """Keyword options for build_attack: the global budget, overridden by the attack's own options."""
        options: dict[str, Any] = {"eps": self.eps, "steps": self.steps}
        if self.step_size is not None:
            options["step_size"] = self.step_size
        if self.chunk_size is not None:
            options["chunk_size"] = self.chunk_size
        options.update(dict(attack.options))
        return options

    def paper_key(self, attack: AttackSpec) -> str | None:
        if attack.paper_key is not None:
            return attack.paper_key
        return attack.name if attack.name in PAPER_KEYS else None

    # ----- serialization and hashing -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_dir": self.output_dir,
            "dataset": copy.deepcopy(dict(self.dataset)),
            "paper_dataset": self.paper_dataset,
            "models": [m.to_dict() for m in self.models],
            "whitebox": list(self.whitebox),
            "attacks": [a.to_dict() for a in self.attacks],
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
            "device": self.device,
            "dtype": self.dtype,
            "save_dtype": self.save_dtype,
            "seed": self.seed,
            "selection": self.selection,
            "select_models": None if self.select_models is None else list(self.select_models),
            "max_clips": self.max_clips,
            "clips_per_class": self.clips_per_class,
            "deterministic": self.deterministic,
            "bootstrap_samples": self.bootstrap_samples,
            "h264_crf": self.h264_crf,
        }

    def hashed_fields(self) -> dict[str, Any]:
        """The part of the config that determines the adversarial clips."""
        full = self.to_dict()
        keys = (
            "dataset",
            "models",
            "whitebox",
            "attacks",
            "eps",
            "steps",
            "step_size",
            "batch_size",
            "dtype",
            "save_dtype",
            "seed",
            "select_models",
            "max_clips",
            "clips_per_class",
        )
        return {key: full[key] for key in keys}

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of `hashed_fields()`."""
        return _hash_json(self.hashed_fields())

    def selection_fields(self) -> dict[str, Any]:
        """The part of the config that determines which clips `vidadv select` keeps."""
        return {
            "dataset": copy.deepcopy(dict(self.dataset)),
            "models": [self.model(label).to_dict() for label in self.selection_models],
            "dtype": self.dtype,
            "max_clips": self.max_clips,
            "clips_per_class": self.clips_per_class,
        }

    def selection_hash(self) -> str:
        return _hash_json(self.selection_fields())


def _hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------
# Value parsing helpers
# ------------------------------------------------------------------------------------------------


def _where(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_keys(mapping: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = f" (in {where})" if where else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def parse_number(value: Any, key: str) -> float:
    """A positive-or-zero finite number, given as a number or a fraction string like "16/255"."""
    number: float
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number or a fraction like '16/255', got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                numerator, denominator = text.split("/", 1)
                number = float(numerator) / float(denominator)
            else:
                number = float(text)
        except (ValueError, ZeroDivisionError) as err:
            raise ConfigError(f"{key} must be a number or a fraction like '16/255', got {value!r}") from err
    else:
        raise ConfigError(f"{key} must be a number or a fraction like '16/255', got {value!r}")
    if not math.isfinite(number):
        raise ConfigError(f"{key} must be finite, got {value!r}")
    return number


def _positive_int(value: Any, key: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or null" if allow_none else ""
        raise ConfigError(f"{key} must be a positive integer{extra}, got {value!r}")
    return value


def _choice(value: Any, key: str, allowed: Iterable[str]) -> str:
    options = tuple(allowed)
    if value not in options:
        raise ConfigError(f"{key} must be one of {', '.join(options)}; got {value!r}")
    return value


def _nonempty_str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _channel_stats(value: Any, key: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(
            f"{key} must be a list of per-channel numbers like [0.485, 0.456, 0.406], got {value!r}"
        )
    numbers = tuple(parse_number(v, f"{key}[{i}]") for i, v in enumerate(value))
    return numbers


def _is_placeholder(text: str) -> bool:
    return any(marker.lower() in text.lower() for marker in PLACEHOLDER_MARKERS)


def _path_problem(value: str, key: str, what: str) -> str | None:
    """Why the path `value` of config key `key` is unusable (placeholder or missing), or None."""
    if _is_placeholder(value):
        return f"{key} is still the placeholder {value!r}: replace it with the path to {what}"
    if not os.path.exists(os.path.expanduser(value)):
        return f"{key}: {what} not found: {value!r}"
    return None


def _dataset_path_problems(spec: Any, key: str) -> list[str]:
    """Placeholders anywhere, and missing files under path-like keys (root, list, *_dir, *_csv, ...)."""
    problems: list[str] = []
    items: Iterable[tuple[str, Any]]
    if isinstance(spec, Mapping):
        items = ((f"{key}.{sub_key}", value) for sub_key, value in spec.items())
    elif isinstance(spec, list | tuple):
        items = ((f"{key}[{index}]", value) for index, value in enumerate(spec))
    else:
        return problems
    for where, value in items:
        if isinstance(value, str):
            last = where.rsplit(".", 1)[-1].lower()
            if _is_placeholder(value) or (isinstance(spec, Mapping) and _PATH_KEY_PATTERN.search(last)):
                problem = _path_problem(value, where, "the dataset")
                if problem:
                    problems.append(problem)
        else:
            problems += _dataset_path_problems(value, where)
    return problems


def _known_names(loader: Callable[[], Iterable[str]] | None) -> set[str] | None:
    """Names from an `available_*()` function of a sibling package, or None if it is not importable."""
    if loader is None:
        return None
    try:
        return set(loader())
    except Exception:  # the sibling package may be incomplete; then its own factory validates
        return None


def _default_attack_names() -> Iterable[str]:
    from vidadv.attacks import available_attacks

    return available_attacks()


def _default_dataset_check(spec: Mapping[str, Any]) -> None:
    """Check the dataset spec's `type` and keys with vidadv.data.factory (skipped if it is not importable)."""
    try:
        from vidadv.data.factory import DATASET_TYPES, dataset_spec_keys
    except ImportError:
        return
    kind = spec.get("type")
    if kind not in DATASET_TYPES:
        raise ConfigError(f"dataset.type must be one of {', '.join(DATASET_TYPES)}; got {kind!r}")
    if kind == "synthetic":
        return
    allowed = ["type", *dataset_spec_keys(kind)]
    _check_keys(spec, allowed, f"dataset of type {kind!r}")


def _default_model_names() -> Iterable[str]:
    from vidadv.models import available_models

    return available_models()


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def _parse_models(
    raw: Any, check_files: bool, known_models: set[str] | None, problems: list[str]
) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("models must be a non-empty list of {name, checkpoint, num_classes, ...} entries")
    specs: list[ModelSpec] = []
    for index, entry in enumerate(raw):
        where = f"models[{index}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(MODEL_KEYS)}, got {entry!r}")
        _check_keys(entry, MODEL_KEYS, where)
        if "name" not in entry:
            raise ConfigError(f"{where} needs a 'name' (a vidadv.models.load_model name)")
        name = _nonempty_str(entry["name"], f"{where}.name")
        if known_models is not None and name not in known_models:
            raise ConfigError(
                f"{where}.name {name!r} is not a known model; known: {', '.join(sorted(known_models))}"
            )
        label = _nonempty_str(entry.get("label", name), f"{where}.label")
        checkpoint = entry.get("checkpoint")
        if checkpoint is not None:
            checkpoint = _nonempty_str(checkpoint, f"{where}.checkpoint")
            problem = _path_problem(checkpoint, f"{where}.checkpoint", f"the checkpoint of model {label!r}")
            if check_files and problem:
                problems.append(problem)
        num_classes = _positive_int(entry.get("num_classes"), f"{where}.num_classes", allow_none=True)
        mean = _channel_stats(entry.get("mean"), f"{where}.mean")
        std = _channel_stats(entry.get("std"), f"{where}.std")
        if std is not None and any(s <= 0 for s in std):
            raise ConfigError(f"{where}.std must be positive in every channel, got {list(std)}")
        if mean is not None and std is not None and len(mean) != len(std):
            raise ConfigError(f"{where}.mean and .std need the same number of channels")
        specs.append(ModelSpec(name, label, checkpoint, num_classes, mean, std))
    labels = [s.label for s in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"model labels must be unique; repeated: {', '.join(duplicates)} (set 'label')")
    return tuple(specs)


def _resolve_model_refs(
    raw: Any, key: str, models: Sequence[ModelSpec], allow_empty: bool
) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or (not raw and not allow_empty):
        raise ConfigError(f"{key} must be a {'' if allow_empty else 'non-empty '}list of model labels")
    by_label = {m.label: m.label for m in models}
    by_name: dict[str, list[str]] = {}
    for m in models:
        by_name.setdefault(m.name, []).append(m.label)
    resolved: list[str] = []
    for index, ref in enumerate(raw):
        if isinstance(ref, str) and ref in by_label:
            label = ref
        elif isinstance(ref, str) and len(by_name.get(ref, [])) == 1:
            label = by_name[ref][0]
        else:
            raise ConfigError(
                f"{key}[{index}] = {ref!r} is not a model of this config; models: {', '.join(by_label)}"
            )
        if label in resolved:
            raise ConfigError(f"{key} lists model {label!r} twice")
        resolved.append(label)
    return tuple(resolved)


def _parse_attacks(raw: Any, known_attacks: set[str] | None) -> tuple[AttackSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("attacks must be a non-empty list of {name, spec, options, paper_key} entries")
    specs: list[AttackSpec] = []
    for index, entry in enumerate(raw):
        where = f"attacks[{index}]"
        if isinstance(entry, str):
            entry = {"name": entry, "spec": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(ATTACK_KEYS)}, got {entry!r}")
        _check_keys(entry, ATTACK_KEYS, where)
        if "spec" not in entry:
            raise ConfigError(f"{where} needs a 'spec' like 'tt', 'mi', 'ti+tt'")
        spec = _nonempty_str(entry["spec"], f"{where}.spec").strip().lower()
        if known_attacks is not None:
            for part in spec.split("+"):
                if part not in known_attacks:
                    raise ConfigError(
                        f"{where}.spec {spec!r}: unknown attack {part!r}; "
                        f"known: {', '.join(sorted(known_attacks))}"
                    )
        name = _nonempty_str(entry.get("name", spec), f"{where}.name")
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}.options must be a mapping of build_attack options, got {options!r}")
        options = dict(options)
        for key in ("eps", "step_size"):
            if key in options:
                options[key] = parse_number(options[key], f"{where}.options.{key}")
        if "steps" in options:
            _positive_int(options["steps"], f"{where}.options.steps")
        if "seed" in options:
            raise ConfigError(
                f"{where}.options.seed: per-clip seeds are derived from the config 'seed'; remove it"
            )
        paper_key = entry.get("paper_key")
        if paper_key is not None and paper_key not in PAPER_KEYS:
            raise ConfigError(f"{where}.paper_key must be one of {', '.join(PAPER_KEYS)}; got {paper_key!r}")
        specs.append(AttackSpec(name=name, spec=spec, options=options, paper_key=paper_key))
    names = [a.name for a in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"attack names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(specs)


def config_from_dict(
    raw: Mapping[str, Any],
    *,
    check_files: bool = True,
    check_dataset_files: bool | None = None,
    attack_names: Callable[[], Iterable[str]] | None = _default_attack_names,
    model_names: Callable[[], Iterable[str]] | None = _default_model_names,
    dataset_check: Callable[[Mapping[str, Any]], None] | None = _default_dataset_check,
    source: str | None = None,
) -> ExperimentConfig:
    """Validate a config mapping and return an `ExperimentConfig`.

    check_files: require the checkpoints (and, unless `check_dataset_files` says otherwise, the
    dataset paths) to exist. attack_names / model_names: callables listing the known attack parts and
    model names; None disables that check (tests with stand-in factories). dataset_check: validates
    the dataset spec (default: its type and keys against vidadv.data.build_dataset's); None disables it.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(raw).__name__}")
    _check_keys(raw, TOP_LEVEL_KEYS, "")
    missing = [key for key in REQUIRED_KEYS if key not in raw or raw[key] is None]
    if missing:
        raise ConfigError(f"missing required config key(s): {', '.join(missing)}")
    if check_dataset_files is None:
        check_dataset_files = check_files

    output_dir = _nonempty_str(raw["output_dir"], "output_dir")
    if _is_placeholder(output_dir):
        raise ConfigError(f"output_dir is still the placeholder {output_dir!r}: choose a results folder")
    dataset = raw["dataset"]
    if not isinstance(dataset, Mapping) or not dataset:
        raise ConfigError(
            "dataset must be a non-empty mapping (the spec passed to vidadv.data.build_dataset)"
        )
    dataset = copy.deepcopy(dict(dataset))
    if dataset_check is not None:
        dataset_check(dataset)
    path_problems = _dataset_path_problems(dataset, "dataset") if check_dataset_files else []

    paper_dataset = raw.get(
        "paper_dataset", dataset.get("type") if dataset.get("type") in PAPER_NUMBERS else None
    )
    if paper_dataset is not None:
        paper_dataset = _choice(paper_dataset, "paper_dataset", PAPER_NUMBERS)

    models = _parse_models(raw["models"], check_files, _known_names(model_names), path_problems)
    if path_problems:
        listing = "\n  - ".join(path_problems)
        raise ConfigError(f"{len(path_problems)} path(s) to fill in or fix:\n  - {listing}")
    whitebox = _resolve_model_refs(raw["whitebox"], "whitebox", models, allow_empty=False)
    select_models = raw.get("select_models")
    if select_models is not None:
        select_models = _resolve_model_refs(select_models, "select_models", models, allow_empty=True)
    attacks = _parse_attacks(raw["attacks"], _known_names(attack_names))

    eps = parse_number(raw["eps"], "eps")
    if not 0.0 < eps <= 1.0:
        raise ConfigError(
            f"eps is the L-inf budget in [0, 1] pixel units and must lie in (0, 1]; got {raw['eps']!r}"
        )
    steps = _positive_int(raw["steps"], "steps")
    step_size = raw.get("step_size")
    if step_size is not None:
        step_size = parse_number(step_size, "step_size")
        if step_size <= 0:
            raise ConfigError(f"step_size must be positive, got {raw['step_size']!r}")

    device = raw.get("device", "auto")
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ConfigError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {device!r}")
    dtype = _choice(raw.get("dtype", "float32"), "dtype", DTYPES)
    save_dtype = _choice(raw.get("save_dtype", "float32"), "save_dtype", DTYPES)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    deterministic = raw.get("deterministic", True)
    if not isinstance(deterministic, bool):
        raise ConfigError(f"deterministic must be true or false, got {deterministic!r}")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"name must be a string, got {name!r}")
    h264_crf = raw.get("h264_crf", 23)
    if isinstance(h264_crf, bool) or not isinstance(h264_crf, int) or not 0 <= h264_crf <= 51:
        raise ConfigError(f"h264_crf must be an integer in 0..51, got {h264_crf!r}")

    return ExperimentConfig(
        output_dir=output_dir,
        dataset=dataset,
        models=models,
        whitebox=whitebox,
        attacks=attacks,
        eps=eps,
        steps=steps,  # type: ignore[arg-type]
        step_size=step_size,
        name=name,
        paper_dataset=paper_dataset,
        batch_size=_positive_int(raw.get("batch_size", 1), "batch_size"),  # type: ignore[arg-type]
        chunk_size=_positive_int(raw.get("chunk_size"), "chunk_size", allow_none=True),
        device=device,
        dtype=dtype,
        save_dtype=save_dtype,
        seed=seed,
        selection=_choice(raw.get("selection", "required"), "selection", SELECTION_MODES),
        select_models=select_models,
        max_clips=_positive_int(raw.get("max_clips"), "max_clips", allow_none=True),
        clips_per_class=_positive_int(raw.get("clips_per_class"), "clips_per_class", allow_none=True),
        deterministic=deterministic,
        bootstrap_samples=_positive_int(raw.get("bootstrap_samples", 10000), "bootstrap_samples"),  # type: ignore[arg-type]
        h264_crf=h264_crf,
        source=source,
    )


def load_config(path: str | os.PathLike[str] | ExperimentConfig, **kwargs: Any) -> ExperimentConfig:
    """Read and validate a YAML (or JSON) config file; an `ExperimentConfig` is returned unchanged."""
    if isinstance(path, ExperimentConfig):
        return path
    import yaml

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"config file not found: {str(source)!r}")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{str(source)!r} is not valid YAML: {err}") from err
    if raw is None:
        raise ConfigError(f"config file {str(source)!r} is empty")
    try:
        return config_from_dict(raw, source=str(source), **kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def resolve_device(device: str, local_rank: int | None = None) -> torch.device:
    """A torch.device for a config device string; under torchrun, "cuda"/"auto" become cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available; use device: cpu")
        if device == "cuda":
            index = local_rank if local_rank is not None else torch.cuda.current_device()
            device = f"cuda:{index}"
        index = int(device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} does not exist; {torch.cuda.device_count()} CUDA device(s) visible"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but it is not available; use device: cpu")
    return torch.device(device)
