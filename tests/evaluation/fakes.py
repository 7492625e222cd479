"""Tiny stand-ins for the real vidadv parts (models, dataset, attacks) used by the evaluation tests."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from vidadv.experiments.config import ExperimentConfig, ModelSpec, load_config
from vidadv.experiments.runtime import Factories

NUM_CLASSES = 3
CLIP_SHAPE = (3, 8, 16, 16)


class TinyVideoNet(nn.Module):
    """Pooled-pixel MLP + per-channel means -> logits; the class is mostly 'which channel is brightest'."""

    def __init__(self, num_classes: int = NUM_CLASSES, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.pool = nn.AdaptiveAvgPool3d((2, 2, 2))
        self.hidden = nn.Linear(3 * 8, 8)
        self.head = nn.Linear(8 + 3, num_classes)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.randn(self.hidden.weight.shape, generator=generator))
            self.hidden.bias.zero_()
            weight = 0.3 * torch.randn(num_classes, 11, generator=generator)
            weight[:, 8:] += 40.0 * torch.eye(num_classes, 3)
            self.head.weight.copy_(weight)
            self.head.bias.copy_(0.3 * torch.randn(num_classes, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.hidden(self.pool(x - 0.5).flatten(1)))
        means = x.mean(dim=(2, 3, 4))
        return self.head(torch.cat([hidden, means], dim=1))


class CountingModelFactory:
    """Builds a TinyVideoNet per model name (seeded by the name); counts how many it built."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
        self.built.append(spec.label)
        seed = zlib.crc32(spec.name.encode())
        return TinyVideoNet(spec.num_classes or NUM_CLASSES, seed=seed)


def model_factory(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
    return CountingModelFactory()(spec, device, dtype)


class FakeDataset:
    """In-memory clips: the label's channel is a little brighter. Some indices fail to load on purpose."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.num_clips = int(spec.get("num_clips", 12))
        self.seed = int(spec.get("seed", 0))
        self.missing = set(spec.get("missing", ()))
        self.broken = set(spec.get("broken", ()))

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100003 + index)
        clip = 0.5 + 0.08 * torch.randn(CLIP_SHAPE, generator=generator)
        contrast = 0.01 + 0.05 * torch.rand((), generator=generator)
        clip[index % NUM_CLASSES] += contrast
        return clip.clamp(0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        if index in self.missing:
            raise FileNotFoundError(f"video file not found: /data/clip{index}.mp4")
        if index in self.broken:
            raise ValueError(f"invalid data found when processing input: /data/clip{index}.mp4")
        return self.clip(index), index % NUM_CLASSES, f"class{index % NUM_CLASSES}/clip {index:03d}.mp4"


def dataset_factory(spec: dict[str, Any]) -> FakeDataset:
    return FakeDataset(spec)


class FakeAttack:
    """I-FGSM on the cross-entropy loss; spec 'rand' adds a random start drawn from the seeded generator."""

    def __init__(
        self, spec: str, model: nn.Module, eps: float, steps: int, step_size: float | None, seed: int
    ):
        self.spec, self.model, self.eps, self.seed = spec, model, eps, seed
        self.steps = 1 if spec == "fgsm" else steps
        self.step_size = eps if spec == "fgsm" else (step_size or eps / steps)
        self.gradient_evaluations_per_step = 1

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, seed: int | None = None) -> torch.Tensor:
        delay = float(os.environ.get("VIDADV_TEST_ATTACK_SLEEP", "0"))
        if delay:
            time.sleep(delay)
        adv = x.clone()
        if self.spec == "rand":
            generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
            adv = adv + self.eps * (2 * torch.rand(x.shape, generator=generator) - 1).to(x)
        for _ in range(self.steps):
            adv = adv.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(self.model(adv), y)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + self.step_size * grad.sign()
            adv = torch.min(torch.max(adv, x - self.eps), x + self.eps).clamp(0, 1)
        return adv.detach()


def attack_factory(spec: str, model: nn.Module, **options: Any) -> FakeAttack:
    allowed = {"eps", "steps", "step_size", "seed", "chunk_size"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unexpected options {sorted(unknown)}")
    if spec not in ("fgsm", "bim", "rand"):
        raise ValueError(f"unknown fake attack {spec!r}")
    return FakeAttack(
        spec, model, options["eps"], options["steps"], options.get("step_size"), options["seed"]
    )


#: every part faked: tiny models, the in-memory dataset, I-FGSM attacks
FAKES = Factories(load_model=model_factory, build_dataset=dataset_factory, build_attack=attack_factory)


def config_dict(output_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """A small experiment: 3 models (2 white-box), 3 attacks, 12 clips (one missing, one broken)."""
    raw: dict[str, Any] = {
        "name": "fake experiment",
        "output_dir": str(output_dir),
        "dataset": {"name": "fake", "num_clips": 12, "seed": 1, "missing": [3], "broken": [7]},
        "models": [
            {"name": "net-a", "label": "A", "num_classes": 3},
            {"name": "net-b", "label": "B", "num_classes": 3},
            {"name": "net-c", "label": "C", "num_classes": 3},
        ],
        "whitebox": ["A", "B"],
        "attacks": [
            {"name": "FGSM", "spec": "fgsm"},
            {"name": "BIM(3)", "spec": "bim", "options": {"steps": 3}},
            {"name": "RAND", "spec": "rand"},
        ],
        "eps": "4/255",
        "steps": 2,
        "step_size": "2/255",
        "batch_size": 2,
        "device": "cpu",
        "seed": 5,
        "bootstrap_samples": 500,
    }
    raw.update(overrides)
    return raw


def write_config(path: Path, output_dir: Path | str, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(config_dict(output_dir, **overrides)))
    return path


def load_fake_config(path: Path | str) -> ExperimentConfig:
    return load_config(
        path, model_names=None, attack_names=None, check_dataset_files=False, dataset_check=None
    )
