"""vidadv.attacks: composable transfer attacks on video recognition models.

    from vidadv.attacks import build_attack
    attack = build_attack("tt+mi", model, eps=16/255, steps=10, shift_length=7)
    x_adv = attack(x, y)

Names (join with ``+``): fgsm, bim, pgd, mi, ni, vt, vr, sim, di, tt, ti, sgm, ata. The order of names
in a spec does not matter; see `vidadv.attacks.core` for the canonical composition.
"""

from vidadv.attacks.core import (
    CANONICAL_ORDER,
    Attack,
    NonFiniteGradientError,
    available_attacks,
    build_attack,
    clip_generators,
)
from vidadv.attacks.gradients import per_row_loss, smooth_gradient, ti_kernel
from vidadv.attacks.temporal import roll_frames, shift_offsets, temporal_weights

__all__ = [
    "Attack",
    "CANONICAL_ORDER",
    "NonFiniteGradientError",
    "available_attacks",
    "build_attack",
    "clip_generators",
    "per_row_loss",
    "roll_frames",
    "shift_offsets",
    "smooth_gradient",
    "temporal_weights",
    "ti_kernel",
]
