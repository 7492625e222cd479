"""Access to the gluoncv reference files in ../shared/reference/gluoncv (see README there)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
GLUONCV_DIR = REFERENCE_DIR / "gluoncv"

GLUONCV_MODELS = [
    "i3d_nl5_resnet50_v1_kinetics400",
    "i3d_nl5_resnet101_v1_kinetics400",
    "slowfast_8x8_resnet50_kinetics400",
    "slowfast_8x8_resnet101_kinetics400",
    "tpn_resnet50_f32s2_kinetics400",
    "tpn_resnet101_f32s2_kinetics400",
]


def load_reference(name: str) -> dict:
    path = GLUONCV_DIR / f"{name}.json"
    if not path.exists():
        pytest.skip(f"reference file {path} not present")
    return json.loads(path.read_text())


def recipe_tensor(key: str, shape: list[int], dtype: str) -> torch.Tensor:
    """The reference's deterministic value for one state-dict entry (README 'weights_recipe')."""
    if not dtype.startswith("float"):
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    if len(shape) >= 2:
        values = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))
    elif key.endswith("running_var") or key.endswith("weight"):
        values = rng.uniform(0.5, 1.5, shape)
    else:
        values = rng.uniform(-0.1, 0.1, shape)
    return torch.from_numpy(np.asarray(values, dtype=np.float32).reshape(shape))


def recipe_state_dict(reference: dict) -> dict[str, torch.Tensor]:
    return {key: recipe_tensor(key, shape, dtype) for key, shape, dtype in reference["state_dict"]}


def recipe_input() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 32, 224, 224)).astype(np.float32))
