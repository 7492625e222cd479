"""One built attack serves many batches: a per-call `seed` equals building the attack with that seed."""

from __future__ import annotations

import pytest
import torch

from tests.attacks.tiny_models import TinyConv, clips
from vidadv.attacks import build_attack


@pytest.mark.parametrize(
    ("spec", "options"),
    [("pgd", {}), ("di", {"resize_rate": 1.5}), ("tt", {"shift_length": 2, "strategy": "random"})],
)
def test_call_seed_equals_a_build_seed(spec: str, options: dict) -> None:
    model = TinyConv()
    x, y = clips(), torch.tensor([0, 1])
    built_once = build_attack(spec, model, steps=2, seed=0, **options)
    for seed in (3, 11):
        expected = build_attack(spec, model, steps=2, seed=seed, **options)(x, y)
        assert torch.equal(built_once(x, y, seed=seed), expected)
        gradient = build_attack(spec, model, seed=seed, **options).estimate_gradient(x, y)
        assert torch.equal(built_once.estimate_gradient(x, y, seed=seed), gradient)
    assert not torch.equal(built_once(x, y, seed=3), built_once(x, y, seed=11))  # the seed is used
    assert torch.equal(built_once(x, y), build_attack(spec, model, steps=2, seed=0, **options)(x, y))
    with pytest.raises(TypeError, match="seed must be an int"):
        built_once(x, y, seed=1.5)
