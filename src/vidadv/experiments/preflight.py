"""Checks of an experiment config against the environment, run when it is loaded, before any work.

Placeholder and missing paths (all reported together), the dataset spec against `build_dataset`'s, and
every attack built against `ProbeNet`, a tiny video classifier, with the clip length of the dataset, so
an option typo, a spec such as ``tt+tt`` or a TT shift longer than the clips is a `ConfigError` naming
the attack's key path before clip selection or any attack runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vidadv.data import DATASET_TYPES, dataset_spec_keys
from vidadv.experiments.schema import ConfigError
from vidadv.models.common import ResidualBlock
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

if TYPE_CHECKING:  # the config module imports this one
    from vidadv.experiments.config import ExperimentConfig

PLACEHOLDER_MARKERS = ("/path/to", "<path", "CHANGE_ME", "FILL_IN")
_PATH_KEY_PATTERN = re.compile(r"(root|dir|path|file|csv|json|list|annotations?|indices|index_file)$")


def is_placeholder(text: str) -> bool:
    """Whether a path is still a template placeholder such as ``/path/to/kinetics``."""
    return any(marker.lower() in text.lower() for marker in PLACEHOLDER_MARKERS)


def path_problem(value: str, key: str, what: str) -> str | None:
    """Why the path `value` of config key `key` is unusable (placeholder or missing), or None."""
    if is_placeholder(value):
        return f"{key} is still the placeholder {value!r}: replace it with the path to {what}"
    if not os.path.exists(os.path.expanduser(value)):
        return f"{key}: {what} not found: {value!r}"
    return None


def dataset_path_problems(spec: Any, key: str) -> list[str]:
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
            if is_placeholder(value) or (isinstance(spec, Mapping) and _PATH_KEY_PATTERN.search(last)):
                problem = path_problem(value, where, "the dataset")
                if problem:
                    problems.append(problem)
        else:
            problems += dataset_path_problems(value, where)
    return problems


def default_dataset_check(spec: Mapping[str, Any]) -> None:
    """The dataset spec's `type` and keys against vidadv.data.build_dataset's."""
    kind = spec.get("type")
    if kind not in DATASET_TYPES:
        raise ConfigError(f"dataset.type must be one of {', '.join(DATASET_TYPES)}; got {kind!r}")
    if kind == "synthetic":
        return
    allowed = ["type", *dataset_spec_keys(kind)]
    for key in spec:
        if key not in allowed:
            raise ConfigError(
                f"unknown config key {key!r} (in dataset of type {kind!r}); "
                f"allowed keys: {', '.join(allowed)}"
            )


class ProbeNet(nn.Module):
    """A tiny video network that every attack can be built against once wrapped by `probe_model` (residual
    block and a ReLU module named like gluoncv's for SGM, a Grad-CAM layer for ATA, normalization for the
    official SIM/DI); used to validate attack specs and options before any work."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(3, 4, 1)
        self.block = _ProbeBlock()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.features(x).mean(dim=(2, 3, 4))))


class _ProbeBlock(ResidualBlock):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.scale_residual_grad(self.linear(x)))


def probe_model() -> VideoClassifier:
    """`ProbeNet` in the standard wrapper (ImageNet normalization, Grad-CAM layer `network.features`)."""
    return VideoClassifier(ProbeNet(), IMAGENET_MEAN, IMAGENET_STD, attention_layer="network.features")


AttackBuilder = Callable[..., Any]


def _attack_problem(
    builder: AttackBuilder, spec: str, options: dict[str, Any], frames: int | None
) -> str | None:
    """Why `builder(spec, probe, **options)` fails, or cannot attack clips of `frames` frames; or None."""
    try:
        attack = builder(spec, probe_model(), **options)
    except (TypeError, ValueError) as err:
        return str(err)
    if frames is not None:
        clip = torch.zeros(1, 3, frames, 2, 2)
        try:
            for transform in getattr(attack, "transforms", ()):
                transform.check(clip)
        except ValueError as err:
            return f"{err} (the dataset's clips have {frames} frames)"
    return None


def check_attacks(config: ExperimentConfig, builder: AttackBuilder) -> None:
    """Build every attack against `ProbeNet` and check its clip-shape needs against the dataset's clip
    length; a rejected spec or option is a ConfigError naming the attack's key path."""
    frames = config.clip_frames
    for index, attack in enumerate(config.attacks):
        options = config.attack_options(attack)
        options["seed"] = 0
        if isinstance(options.get("ata_layer"), str):
            options.pop("ata_layer")  # names a layer of the real models; checked when they are loaded
        problem = _attack_problem(builder, attack.spec, options, frames)
        if problem is None:
            continue
        # the option whose removal makes the attack valid is the one to blame
        for key in attack.options:
            if key in options:
                without = {k: v for k, v in options.items() if k != key}
                if _attack_problem(builder, attack.spec, without, frames) is None:
                    raise ConfigError(f"attacks[{index}].options.{key}: {problem}")
        raise ConfigError(f"attacks[{index}] ({attack.name!r}, spec {attack.spec!r}): {problem}")
