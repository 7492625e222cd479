"""Experiment configs: the YAML file that drives `vidadv select/attack`, as a validated schema with a hash.

A config names the dataset (a spec dict for `vidadv.data.build_dataset`), the models, which of them
are attacked white-box (the *source* models of the transfer attack; every other model is a black-box
*target*), the attacks with display names, the perturbation budget and the run settings. Each key is
declared once below, with its default, its check, its description and whether it enters the run hash.

`config_from_dict` / `load_config` validate a config completely before any work starts: the schema
(unknown keys, types, ranges, cross references), then the environment (model and attack registries,
and `vidadv.experiments.preflight`: the dataset type, placeholder and missing paths, and every attack
built against a probe network with the clip length of the dataset, so an option typo or an impossible
TT shift is reported at once). Every problem is a `ConfigError` (a `ValueError`) naming the key path,
the value and what is allowed.

The *config hash* covers everything that changes the adversarial clips (dataset, models, attacks,
budget, batch size, dtypes, seed, clip selection settings, a chunk_size that is set) and excludes what
only changes where or how fast they are computed (output_dir, device, evaluation settings).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

import torch
from pydantic import AfterValidator, BeforeValidator, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vidadv.attacks import available_attacks, build_attack
from vidadv.data import DATASET_TYPES
from vidadv.evaluation.paper import PAPER_KEYS, PAPER_NUMBERS
from vidadv.experiments.preflight import (
    AttackBuilder,
    check_attacks,
    dataset_path_problems,
    default_dataset_check,
    is_placeholder,
    path_problem,
)
from vidadv.experiments.schema import (
    Budget,
    ChannelStats,
    ConfigError,
    ConfigModel,
    Crf,
    Device,
    Flag,
    Name,
    NonNegativeInt,
    OptionalName,
    OptionalPositiveInt,
    OptionalText,
    PositiveInt,
    PositiveStep,
    fail,
    one_of,
    parse_budget,
    parse_fraction,
    positive_int,
    positive_step,
    read_config_file,
    resolve_device,
    sequence_of,
    setting,
    shown,
    unique,
    validate_config,
    within,
)
from vidadv.models import available_models

__all__ = [
    "AttackSpec",
    "ConfigError",
    "ExperimentConfig",
    "ModelSpec",
    "config_from_dict",
    "load_config",
    "parse_number",
    "resolve_device",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
SELECTION_MODES = ("required", "auto")
#: clip length of the built-in dataset types when their spec sets no `frames`
DEFAULT_DATASET_FRAMES = 32


def parse_number(value: Any, key: str) -> float:
    """A finite number, given as a number or a fraction string like "16/255"; ConfigError naming `key`."""
    try:
        return within(key, parse_fraction, value)
    except PydanticCustomError as err:
        raise ConfigError(str(err)) from None


def _hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------
# Field checks specific to experiment configs
# ------------------------------------------------------------------------------------------------


def _output_dir(value: str) -> str:
    if is_placeholder(value):
        raise fail(f" is still the placeholder {value!r}: choose a results folder")
    return value


def _dataset(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise fail(" must be a non-empty mapping (the spec passed to vidadv.data.build_dataset)")
    return copy.deepcopy(dict(value))


def _attack_options(value: Any) -> dict[str, Any]:
    """Per-attack build_attack options; the budget and step are parsed like the global ones."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(f" must be a mapping of build_attack options, got {shown(value)}")
    options = dict(value)
    checks: dict[str, Callable[[Any], Any]] = {
        "eps": parse_budget,
        "step_size": positive_step,
        "steps": positive_int,
    }
    for key, check in checks.items():
        if key in options:
            options[key] = within(f".{key}", check, options[key])
    if "seed" in options:
        raise fail(".seed: per-clip seeds are derived from the config 'seed'; remove it")
    return options


ModelRefs = Annotated[tuple[str, ...], sequence_of("model labels", strings=True)]
OptionalModelRefs = Annotated[
    tuple[str, ...] | None, sequence_of("model labels", allow_empty=True, strings=True, allow_none=True)
]


# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------


class ModelSpec(ConfigModel):
    """One model of the experiment: `name` for `vidadv.models.load_model`, `label` for tables."""

    string_key = "name"

    name: Name = setting(description="a vidadv.models.load_model name")
    label: Name = setting(description="display name in tables (default: the name)")
    checkpoint: OptionalName = setting(None, description="weights file (default: the model's own)")
    num_classes: OptionalPositiveInt = setting(None, description="classifier width (default: the model's)")
    mean: ChannelStats = setting(None, description="per-channel input mean (default: the model's)")
    std: ChannelStats = setting(None, description="per-channel input std (default: the model's)")

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "label" not in data and "name" in data:
            data = {**data, "label": data["name"]}
        return data

    @field_validator("std")
    @classmethod
    def _positive_std(cls, std: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if std is not None and any(s <= 0 for s in std):
            raise fail(f" must be positive in every channel, got {list(std)}")
        return std

    @model_validator(mode="after")
    def _same_channels(self) -> ModelSpec:
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise fail(".mean and .std need the same number of channels")
        return self

    def spec_hash(self) -> str:
        """Short hash identifying this model (used to key cached predictions)."""
        return _hash_json(self.to_dict())[:12]


class AttackSpec(ConfigModel):
    """One attack: display `name` (e.g. "TT(10)"), `spec` for build_attack, per-attack `options`."""

    string_key = "spec"

    name: Name = setting(description='display name, e.g. "TT(10)" (default: the spec)')
    spec: Annotated[Name, AfterValidator(lambda s: s.strip().lower())] = setting(
        description="build_attack spec, e.g. 'tt', 'mi', 'ti+tt'"
    )
    options: Annotated[dict[str, Any], BeforeValidator(_attack_options)] = setting(
        {}, description="build_attack options overriding the global eps/steps/step_size/chunk_size"
    )
    paper_key: Annotated[str | None, one_of(PAPER_KEYS, allow_none=True)] = setting(
        None, description="the published number this attack reproduces (default: its name if published)"
    )

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "spec" not in data:
            raise fail(" needs a 'spec' like 'tt', 'mi', 'ti+tt'")
        if "name" not in data and isinstance(data["spec"], str):
            data = {**data, "name": data["spec"].strip().lower()}
        return data


def _labels(info: ValidationInfo) -> list[ModelSpec] | None:
    models = info.data.get("models")
    return list(models) if models is not None else None


def _resolve_refs(refs: Sequence[str], models: Sequence[ModelSpec]) -> tuple[str, ...]:
    by_label = [m.label for m in models]
    by_name: dict[str, list[str]] = {}
    for m in models:
        by_name.setdefault(m.name, []).append(m.label)
    resolved: list[str] = []
    for index, ref in enumerate(refs):
        if ref in by_label:
            label = ref
        elif len(by_name.get(ref, [])) == 1:
            label = by_name[ref][0]
        else:
            raise fail(f"[{index}] = {ref!r} is not a model of this config; models: {', '.join(by_label)}")
        if label in resolved:
            raise fail(f" lists model {label!r} twice")
        resolved.append(label)
    return tuple(resolved)


class ExperimentConfig(ConfigModel):
    """A validated experiment config; each field below is one config key."""

    name: OptionalText = setting(None, description="free text", hashed=False)
    output_dir: Annotated[Name, AfterValidator(_output_dir)] = setting(
        description="run folder (relative paths are relative to the current directory)", hashed=False
    )
    dataset: Annotated[dict[str, Any], BeforeValidator(_dataset)] = setting(
        description="spec dict for vidadv.data.build_dataset (passed through unchanged)"
    )
    paper_dataset: Annotated[str | None, one_of(PAPER_NUMBERS, allow_none=True)] = setting(
        None,
        description="which PAPER_NUMBERS to print beside results (default: the dataset type, if published)",
        hashed=False,
    )
    models: Annotated[
        tuple[ModelSpec, ...],
        sequence_of("{name, checkpoint, num_classes, ...} entries"),
    ] = setting(description="the models: {name, label?, checkpoint?, num_classes?, mean?, std?} or a name")
    whitebox: ModelRefs = setting(description="labels (or unique names) of the models to attack")
    attacks: Annotated[tuple[AttackSpec, ...], sequence_of("{name, spec, options, paper_key} entries")] = (
        setting(description="the attacks: {name, spec, options?, paper_key?} or a spec")
    )
    eps: Budget = setting(description='L-inf budget in [0, 1] pixel units; a number or "a/b" like "16/255"')
    steps: PositiveInt = setting(description="attack iterations")
    step_size: PositiveStep = setting(None, description="step in pixel units (default: eps / steps)")
    batch_size: PositiveInt = setting(1, description="clips attacked together (one seed per batch)")
    chunk_size: OptionalPositiveInt = setting(
        None,
        description="model rows per forward pass (null: vidadv.attacks.chunking's rule); another size "
        "changes results by float rounding, as another batch size does, so a set value enters the run hash",
        hashed="when_set",
    )
    device: Device = setting("auto", description="auto | cpu | cuda | cuda:N | mps", hashed=False)
    dtype: Annotated[str, one_of(DTYPES)] = setting("float32", description="model and attack dtype")
    save_dtype: Annotated[str, one_of(DTYPES)] = setting("float32", description="dtype of the saved clips")
    seed: NonNegativeInt = setting(0, description="seed of the per-clip attack seeds")
    selection: Annotated[str, one_of(SELECTION_MODES)] = setting(
        "required",
        description='"required": run `vidadv select` first; "auto": select if missing',
        hashed=False,
    )
    select_models: OptionalModelRefs = setting(
        None, description="labels that must classify a clip correctly (default: all models)"
    )
    max_clips: OptionalPositiveInt = setting(None, description="only the first N clips of the dataset")
    clips_per_class: OptionalPositiveInt = setting(
        None, description="keep at most N selected clips per label, in dataset order (default: all)"
    )
    deterministic: Flag = setting(True, description="request deterministic kernels", hashed=False)
    bootstrap_samples: PositiveInt = setting(
        10000, description="resamples for the 95 % intervals", hashed=False
    )
    h264_crf: Crf = setting(23, description="CRF of the `--h264` evaluation variant", hashed=False)
    source: str | None = setting(None, description="the file the config came from", internal=True)

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "paper_dataset" not in data and isinstance(data.get("dataset"), Mapping):
            kind = data["dataset"].get("type")
            data = {**data, "paper_dataset": kind if kind in PAPER_NUMBERS else None}
        return data

    @field_validator("models")
    @classmethod
    def _unique_labels(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        labels = [m.label for m in models]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise fail(
                f"model labels must be unique; repeated: {', '.join(repeated)} (set 'label')", absolute=True
            )
        return models

    @field_validator("whitebox", "select_models")
    @classmethod
    def _known_models(cls, refs: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        models = _labels(info)
        if refs is None or models is None:
            return refs
        return _resolve_refs(refs, models)

    @field_validator("attacks")
    @classmethod
    def _unique_attacks(cls, attacks: tuple[AttackSpec, ...]) -> tuple[AttackSpec, ...]:
        unique([a.name for a in attacks], "attack names")
        return attacks

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

    @property
    def clip_frames(self) -> int | None:
        """Frames per clip of a built-in dataset type (its `frames`, default 32); None when unknown."""
        if self.dataset.get("type") not in DATASET_TYPES:
            return None
        frames = self.dataset.get("frames", DEFAULT_DATASET_FRAMES)
        return frames if isinstance(frames, int) and not isinstance(frames, bool) else None

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

    # ----- hashing -----------------------------------------------------------------------------
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


def _known_names(loader: Callable[[], Iterable[str]] | None) -> set[str] | None:
    return None if loader is None else set(loader())


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


class _Default:
    """Marker: `attack_builder` follows `attack_names` (the real build_attack for vidadv's attacks)."""


_DEFAULT = _Default()


def config_from_dict(
    raw: Mapping[str, Any],
    *,
    check_files: bool = True,
    check_dataset_files: bool | None = None,
    attack_names: Callable[[], Iterable[str]] | None = available_attacks,
    model_names: Callable[[], Iterable[str]] | None = available_models,
    dataset_check: Callable[[Mapping[str, Any]], None] | None = default_dataset_check,
    attack_builder: AttackBuilder | None | _Default = _DEFAULT,
    source: str | None = None,
) -> ExperimentConfig:
    """Validate a config mapping and return an `ExperimentConfig`.

    check_files: require the checkpoints (and, unless `check_dataset_files` says otherwise, the
    dataset paths) to exist. attack_names / model_names: callables listing the known attack parts and
    model names; None disables that check (tests with stand-in factories). dataset_check: validates
    the dataset spec (default: its type and keys against vidadv.data.build_dataset's); None disables it.
    attack_builder: builds each attack against a probe network to validate its spec and options
    (default: vidadv's build_attack when `attack_names` is vidadv's, else no check); None disables it.
    """
    config = validate_config(ExperimentConfig, raw)
    if source is not None:
        config = config.model_copy(update={"source": source})
    if check_dataset_files is None:
        check_dataset_files = check_files

    known_models = _known_names(model_names)
    if known_models is not None:
        for index, model in enumerate(config.models):
            if model.name not in known_models:
                raise ConfigError(
                    f"models[{index}].name {model.name!r} is not a known model; "
                    f"known: {', '.join(sorted(known_models))}"
                )
    if dataset_check is not None:
        dataset_check(config.dataset)
    problems = dataset_path_problems(config.dataset, "dataset") if check_dataset_files else []
    for index, model in enumerate(config.models):
        if model.checkpoint is not None and check_files:
            where = f"models[{index}].checkpoint"
            problem = path_problem(model.checkpoint, where, f"the checkpoint of model {model.label!r}")
            if problem:
                problems.append(problem)
    if problems:
        listing = "\n  - ".join(problems)
        raise ConfigError(f"{len(problems)} path(s) to fill in or fix:\n  - {listing}")

    known_attacks = _known_names(attack_names)
    if known_attacks is not None:
        for index, attack in enumerate(config.attacks):
            for part in attack.spec.split("+"):
                if part not in known_attacks:
                    raise ConfigError(
                        f"attacks[{index}].spec {attack.spec!r}: unknown attack {part!r}; "
                        f"known: {', '.join(sorted(known_attacks))}"
                    )
    if isinstance(attack_builder, _Default):
        attack_builder = build_attack if attack_names is available_attacks else None
    if attack_builder is not None:
        check_attacks(config, attack_builder)
    return config


def load_config(path: str | os.PathLike[str] | ExperimentConfig, **kwargs: Any) -> ExperimentConfig:
    """Read and validate a YAML (or JSON) config file; an `ExperimentConfig` is returned unchanged."""
    if isinstance(path, ExperimentConfig):
        return path
    raw = read_config_file(path)
    if raw is None:
        raise ConfigError(f"config file {str(path)!r} is empty")
    try:
        return config_from_dict(raw, source=str(path), **kwargs)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
