"""Names of the networks vidadv can build.

Each family module registers a builder `fn(num_classes: int, **kwargs) -> nn.Module` here under its
gluoncv name; aliases map short names to those. The embedded zoo's small models (`nl-s`, ...) are built
by the same family code with smaller depth/width (see vidadv.models.zoo).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}
_ALIASES: dict[str, str] = {
    "nl50": "i3d_nl5_resnet50_v1_kinetics400",
    "nl101": "i3d_nl5_resnet101_v1_kinetics400",
    "slowfast50": "slowfast_8x8_resnet50_kinetics400",
    "slowfast101": "slowfast_8x8_resnet101_kinetics400",
    "tpn50": "tpn_resnet50_f32s2_kinetics400",
    "tpn101": "tpn_resnet101_f32s2_kinetics400",
}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return deco


def _load_families() -> None:
    # Importing a family module registers its builders.
    from vidadv.models import i3d, slowfast, tpn  # noqa: F401


def available_networks() -> list[str]:
    _load_families()
    return sorted(_BUILDERS) + sorted(_ALIASES)


def resolve_name(name: str) -> str:
    _load_families()
    full = _ALIASES.get(name, name)
    if full not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(available_networks())}")
    return full


def get_builder(name: str) -> Builder:
    return _BUILDERS[resolve_name(name)]
