"""The attack spec and its options: the method names and their canonical order, the option table (each
option's default, the methods it belongs to and its check), spec parsing and option resolution. The loop
that runs a resolved attack is `vidadv.attacks.core`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidadv.attacks import official
from vidadv.attacks.estimators import SHIFT_SAMPLING
from vidadv.attacks.gradients import LOSSES
from vidadv.attacks.temporal import SHIFT_STRATEGIES, WEIGHT_KINDS, temporal_weights

__all__ = [
    "ATTACK_NAMES",
    "CANONICAL_ORDER",
    "MOMENTUM_NORMS",
    "NORMS",
    "TRANSFORM_ORDER",
    "available_attacks",
    "check_seed",
    "resolve_options",
]

#: Every attack name, in the canonical composition order used by `Attack.spec`.
CANONICAL_ORDER = ("fgsm", "bim", "pgd", "mi", "ni", "vt", "vr", "sim", "di", "tt", "ti", "sgm", "ata")
ATTACK_NAMES = CANONICAL_ORDER
TRANSFORM_ORDER = ("vt", "vr", "sim", "di", "tt")  # outer -> inner
NORMS = ("linf", "l2")
MOMENTUM_NORMS = ("clip", "frame")


def available_attacks() -> list[str]:
    """Names usable in a spec (join them with ``+``), in canonical composition order."""
    return list(CANONICAL_ORDER)


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _real(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> float:
        if not _is_real(value):
            raise TypeError(f"option {name} must be a finite number, got {value!r}")
        v = float(value)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ValueError(f"option {name} must be {'>' if lo_open else '>='} {lo}, got {v}")
        if hi is not None and v > hi:
            raise ValueError(f"option {name} must be <= {hi}, got {v}")
        return v

    return check


def _int(lo: int) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"option {name} must be an int >= {lo}, got {value!r}")
        if int(value) < lo:
            raise ValueError(f"option {name} must be >= {lo}, got {value}")
        return int(value)

    return check


def _choice(choices: Sequence[str]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"option {name} must be one of {', '.join(choices)}; got {value!r}")
        return value

    return check


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"option {name} must be True or False, got {value!r}")
    return value


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else _int(1)(name, value)


def _chunk_size(name: str, value: Any) -> int | str | None:
    if value == "auto":
        return value
    try:
        return _optional_int(name, value)
    except (TypeError, ValueError):
        raise ValueError(
            f"option {name} must be an int >= 1, None (automatic rule) or 'auto' (timed), got {value!r}"
        ) from None


def _optional_step(name: str, value: Any) -> float | None:
    return None if value is None else _real(0.0, lo_open=True)(name, value)


def check_seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"option {name} must be an int, got {value!r}")
    return int(value)


def _odd_kernel(name: str, value: Any) -> int:
    v = _int(1)(name, value)
    if v % 2 == 0:
        raise ValueError(f"option {name} must be odd (a centred kernel), got {v}")
    return v


def _tt_weights(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return _choice(WEIGHT_KINDS)(name, value)
    if isinstance(value, Sequence | torch.Tensor):
        return [float(v) for v in value]
    raise ValueError(f"option {name} must be one of {', '.join(WEIGHT_KINDS)} or a sequence of 2L+1 numbers")


def _layer(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str | nn.Module):
        return value
    raise TypeError(f"option {name} must be a dotted layer name (str) or an nn.Module, got {value!r}")


@dataclass(frozen=True)
class _Option:
    default: Any
    methods: tuple[str, ...] | None  # None: applies to every attack
    check: Callable[[str, Any], Any]


_OPTIONS: dict[str, _Option] = {
    "eps": _Option(16 / 255, None, _real(0.0, lo_open=True)),
    "steps": _Option(None, None, _int(1)),
    "step_size": _Option(None, None, _optional_step),
    "norm": _Option("linf", None, _choice(NORMS)),
    "targeted": _Option(False, None, _bool),
    "loss": _Option("ce", None, _choice(LOSSES)),
    "seed": _Option(0, None, check_seed),
    "chunk_size": _Option(None, None, _chunk_size),
    "progress": _Option(False, None, _bool),
    "convention": _Option("vidadv", None, _choice(official.CONVENTIONS)),
    "decay": _Option(1.0, ("mi", "ni"), _real(0.0)),
    "momentum_norm": _Option("clip", ("mi", "ni"), _choice(MOMENTUM_NORMS)),
    "kernel_size": _Option(15, ("ti",), _odd_kernel),
    "kernel_nsig": _Option(3.0, ("ti",), _real(0.0, lo_open=True)),
    "diversity_prob": _Option(0.5, ("di",), _real(0.0, 1.0)),
    "resize_rate": _Option(250 / 224, ("di",), _real(1.0)),
    "sim_copies": _Option(5, ("sim",), _int(1)),
    "vt_samples": _Option(20, ("vt",), _int(1)),
    "vt_beta": _Option(1.5, ("vt",), _real(0.0)),
    "vr_samples": _Option(20, ("vr",), _int(1)),
    "vr_sigma": _Option(15 / 255, ("vr",), _real(0.0)),
    "sgm_gamma": _Option(0.5, ("sgm",), _real(0.0, lo_open=True)),
    "ata_layer": _Option(None, ("ata",), _layer),
    "ata_weight": _Option(1.0, ("ata",), _real(0.0)),
    "shift_length": _Option(7, ("tt",), _int(0)),
    "weights": _Option("gaussian", ("tt",), _tt_weights),
    "strategy": _Option("adjacent", ("tt",), _choice(SHIFT_STRATEGIES)),
    "shift_sampling": _Option("all", ("tt",), _choice(SHIFT_SAMPLING)),
    "shift_samples": _Option(None, ("tt",), _optional_int),
}


def _parse_spec(spec: str) -> tuple[str, ...]:
    if not isinstance(spec, str):
        raise TypeError(f"attack spec must be a str such as 'tt+mi', got {type(spec).__name__}")
    names = [part.strip().lower() for part in spec.split("+")]
    if any(not n for n in names):
        raise ValueError(f"empty attack name in spec {spec!r}; join names with '+', e.g. 'tt+mi'")
    unknown = [n for n in names if n not in CANONICAL_ORDER]
    if unknown:
        raise ValueError(
            f"unknown attack {unknown[0]!r} in spec {spec!r}; valid: {', '.join(CANONICAL_ORDER)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"attack spec {spec!r} names a method twice")
    if "fgsm" in names and "bim" in names:
        raise ValueError("fgsm (one step of size eps) and bim (iterative) contradict each other")
    return tuple(n for n in CANONICAL_ORDER if n in names)


def resolve_options(spec: str, options: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The methods of `spec` in canonical order and every applicable option checked, defaulted and
    completed (steps, step_size); a ValueError/TypeError names the bad option or method."""
    methods = _parse_spec(spec)
    applicable = [k for k, o in _OPTIONS.items() if o.methods is None or set(o.methods) & set(methods)]
    resolved: dict[str, Any] = {}
    for name, value in options.items():
        option = _OPTIONS.get(name)
        if option is None:
            raise ValueError(
                f"unknown option {name!r} for attack {spec!r}; valid options: {', '.join(applicable)}"
            )
        if option.methods is not None and not set(option.methods) & set(methods):
            raise ValueError(
                f"option {name!r} belongs to {'/'.join(option.methods)}, which is not in spec {spec!r}"
            )
        resolved[name] = option.check(name, value)
    if resolved.get("convention") == "official":
        official.apply_official_defaults(resolved, methods, options)
    for name in applicable:
        resolved.setdefault(name, _OPTIONS[name].default)
    if resolved["norm"] == "linf" and resolved["eps"] > 1.0:
        raise ValueError(
            f"option eps must lie in (0, 1] for norm 'linf' (pixels are in [0, 1]; e.g. 16/255), got "
            f"{resolved['eps']}; did you mean eps={resolved['eps']:g}/255?"
        )
    if "fgsm" in methods:
        if options.get("steps", 1) != 1:
            raise ValueError(f"fgsm is a single step; steps must be 1, got {options['steps']}")
        if resolved["step_size"] is not None and resolved["step_size"] != resolved["eps"]:
            raise ValueError("fgsm takes one step of size eps; do not set a different step_size")
        resolved["steps"] = 1
    if resolved["steps"] is None:
        resolved["steps"] = 10
    if resolved["step_size"] is None:
        resolved["step_size"] = resolved["eps"] / resolved["steps"]
    if "tt" in methods:
        temporal_weights(resolved["shift_length"], resolved["weights"])  # validates explicit weights
        if resolved["shift_sampling"] == "sag" and "di" in methods:
            raise ValueError(
                "shift_sampling='sag' cannot be combined with di: its table would keep gradients of earlier "
                "steps' random DI geometry and map them back through the current one"
            )
    return methods, resolved
