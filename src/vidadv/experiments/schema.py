"""The config machinery shared by the experiment and the analysis configs: schema base, errors, YAML, devices.

A config is a frozen pydantic v2 model (`ConfigModel`). Each field is declared once, with its default,
its validator (an `Annotated` type from this module), its description and whether it enters the run
hash (`setting(..., hashed=False)`). Unknown keys, wrong types and bad values become one `ConfigError`
whose lines name the key path (``attacks[2].options.eps``), the value and what is allowed.

Config files are read by `read_config_file`: YAML (JSON is YAML) with a limit on the size of the
document after alias expansion, so an alias bomb is refused at once instead of expanding forever.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import torch
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_YAML_NODES",
    "ConfigError",
    "ConfigModel",
    "check_device",
    "read_config_file",
    "resolve_device",
    "setting",
    "shown",
    "validate_config",
]


class ConfigError(ValueError):
    """A config is invalid; the message names the key and what is allowed."""


#: Most nodes a config document may have once its aliases are expanded (real configs have a few hundred).
MAX_YAML_NODES = 100_000
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_ERROR_TYPE = "vidadv_config"
_UNKNOWN_KEY = "vidadv_unknown_key"

Model = TypeVar("Model", bound="ConfigModel")


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


def shown(value: Any) -> str:
    """`repr(value)`, shortened for error messages (a bad value may be a huge structure)."""
    return _SHORT.repr(value)


def fail(message: str, *, absolute: bool = False) -> PydanticCustomError:
    """A validation error; `message` follows the key path (``eps`` + `` must be ...``) unless `absolute`."""
    return PydanticCustomError(_ERROR_TYPE, "{message}", {"message": message, "absolute": absolute})


def within(prefix: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, with its error moved under the sub-key `prefix` (such as ``.eps`` or ``[2]``)."""
    try:
        return check(value)
    except PydanticCustomError as err:
        context = err.context or {}
        if err.type != _ERROR_TYPE or context.get("absolute"):
            raise
        raise fail(prefix + str(context["message"])) from None


def key_path(loc: Iterable[int | str]) -> str:
    """``("attacks", 2, "options", "eps")`` -> ``attacks[2].options.eps``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _joined(path: str, message: str) -> str:
    if not path:
        return message.lstrip(": ")
    return f"{path} {message}" if message[:1].isalnum() else f"{path}{message}"


def _error_lines(error: ValidationError) -> list[str]:
    """One line per problem; missing keys of one mapping are reported together."""
    lines: list[str] = []
    missing: dict[str, list[str]] = {}
    for item in error.errors():
        loc = tuple(item["loc"])
        kind = item["type"]
        ctx = item.get("ctx") or {}
        if kind == "missing":
            missing.setdefault(key_path(loc[:-1]), []).append(str(loc[-1]))
        elif kind == _ERROR_TYPE:
            lines.append(ctx["message"] if ctx.get("absolute") else _joined(key_path(loc), ctx["message"]))
        elif kind == _UNKNOWN_KEY:
            where = key_path(loc)
            hint = f" (in {where})" if where else ""
            lines.append(f"unknown config key {ctx['key']!r}{hint}; allowed keys: {ctx['allowed']}")
        elif kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
            lines.append(str(ctx["error"]))
        else:  # a pydantic check without a hand-written message
            lines.append(_joined(key_path(loc), f": {item['msg']}, got {shown(item.get('input'))}"))
    for where, keys in missing.items():
        hint = f" (in {where})" if where else ""
        lines.append(f"missing required config key(s){hint}: {', '.join(keys)}")
    return lines


def validate_config(cls: type[Model], raw: Any, *, what: str = "a config") -> Model:
    """`cls.model_validate(raw)`, with pydantic's ValidationError turned into one `ConfigError`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping of keys to values, got {type(raw).__name__}")
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        lines = _error_lines(err)
        if len(lines) == 1:
            raise ConfigError(lines[0]) from None
        listing = "\n  - ".join(lines)
        raise ConfigError(f"{len(lines)} problems:\n  - {listing}") from None


# ------------------------------------------------------------------------------------------------
# Schema base
# ------------------------------------------------------------------------------------------------


def setting(
    default: Any = ...,
    *,
    description: str,
    hashed: bool | str = True,
    internal: bool = False,
) -> Any:
    """A config field: its default, its description and whether it enters the run hash.

    hashed: True, False, or "when_set" (enters the hash only when it differs from the default, so runs
    made before the field could change results keep their hash).
    internal: set by the loader, not by the config file (such as the file it came from).
    """
    return Field(default, description=description, json_schema_extra={"hashed": hashed, "internal": internal})


def _marker(field: Any, key: str, default: bool) -> bool:
    extra = field.json_schema_extra
    return bool(extra.get(key, default)) if isinstance(extra, dict) else default


class ConfigModel(BaseModel):
    """A frozen config record: unknown keys refused, `to_dict` and the hashed part derived from the fields.

    Records may also be built with positional arguments in field order, e.g. ``ModelSpec("nl50", "NL-50")``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)
    #: what a plain string entry means (e.g. a model name), or None when only mappings are allowed
    string_key: ClassVar[str | None] = None

    def __init__(self, *args: Any, **data: Any) -> None:
        names = list(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
        data.update(zip(names, args, strict=False))
        super().__init__(**data)

    @classmethod
    def config_keys(cls) -> list[str]:
        """The keys a config file may set, in declaration order."""
        return [name for name, f in cls.model_fields.items() if not _marker(f, "internal", False)]

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook run on the raw mapping before the fields are validated (defaults derived from other keys)."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _check_mapping(cls, data: Any) -> Any:
        if isinstance(data, ConfigModel):
            return data
        if isinstance(data, str) and cls.string_key is not None:
            data = {cls.string_key: data}
        keys = cls.config_keys()
        if not isinstance(data, Mapping):
            raise fail(f" must be a mapping with keys {', '.join(keys)}, got {shown(data)}")
        for key in data:
            if key not in keys:
                raise PydanticCustomError(
                    _UNKNOWN_KEY, "unknown key {key}", {"key": key, "allowed": ", ".join(keys)}
                )
        required = {name for name, f in cls.model_fields.items() if f.is_required()}
        # a required key given as null counts as missing
        data = {key: value for key, value in data.items() if not (value is None and key in required)}
        return cls.prepare(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form: every config key, nested records included."""
        internal = {name for name, f in type(self).model_fields.items() if _marker(f, "internal", False)}
        return self.model_dump(mode="json", exclude=internal)

    def hashed_fields(self) -> dict[str, Any]:
        """The part of `to_dict()` whose fields are declared `hashed`."""
        full = self.to_dict()
        hashed = {}
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            rule = extra.get("hashed", True)
            if name not in full or not rule:
                continue
            if rule == "when_set" and getattr(self, name) == field.default:
                continue
            hashed[name] = full[name]
        return hashed


# ------------------------------------------------------------------------------------------------
# Value types (each an Annotated type: the check runs before pydantic's own)
# ------------------------------------------------------------------------------------------------


def parse_fraction(value: Any) -> float:
    """A finite number, given as a number or a fraction string like "16/255"."""
    expected = f" must be a number or a fraction like '16/255', got {shown(value)}"
    if isinstance(value, bool):
        raise fail(expected)
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
        except (ValueError, ZeroDivisionError):
            raise fail(expected) from None
    else:
        raise fail(expected)
    if not math.isfinite(number):
        raise fail(f" must be finite, got {shown(value)}")
    return number


def parse_budget(value: Any) -> float:
    """The L-inf budget eps: a fraction in (0, 1]."""
    eps = parse_fraction(value)
    if not 0.0 < eps <= 1.0:
        raise fail(f" is the L-inf budget in [0, 1] pixel units and must lie in (0, 1]; got {shown(value)}")
    return eps


def _positive_step(value: Any) -> float | None:
    if value is None:
        return None
    step = parse_fraction(value)
    if step <= 0:
        raise fail(f" must be positive, got {shown(value)}")
    return step


def _integer(low: int, high: int | None = None, allow_none: bool = False) -> Callable[[Any], Any]:
    if high is not None:
        what = f"an integer in {low}..{high}"
    else:
        what = "a positive integer" if low == 1 else "a non-negative integer"
    what += " or null" if allow_none else ""

    def check(value: Any) -> int | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise fail(f" must be {what}, got {shown(value)}")
        if high is not None and value > high:
            raise fail(f" must be {what}, got {shown(value)}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f" must be true or false, got {shown(value)}")
    return value


def _string(allow_none: bool = False, allow_empty: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise fail(f" must be a {'' if allow_empty else 'non-empty '}string, got {shown(value)}")
        return value

    return check


def one_of(choices: Iterable[str], allow_none: bool = False) -> BeforeValidator:
    """A value from `choices` (or null)."""
    options = tuple(choices)

    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if value not in options:
            raise fail(f" must be one of {', '.join(options)}; got {shown(value)}")
        return value

    return BeforeValidator(check)


def check_device(value: Any, key: str = "device") -> str:
    """A device string: auto | cpu | cuda | cuda:N | mps; otherwise a ConfigError naming `key`."""
    if not isinstance(value, str) or not _DEVICE_PATTERN.match(value):
        raise ConfigError(f"{key} must be one of {DEVICE_CHOICES}; got {shown(value)}")
    return value


def _device(value: Any) -> str:
    try:
        return check_device(value)
    except ConfigError:
        raise fail(f" must be one of {DEVICE_CHOICES}; got {shown(value)}") from None


def sequence_of(
    what: str, allow_empty: bool = False, strings: bool = False, allow_none: bool = False
) -> BeforeValidator:
    """A list (a single string counts as a one-item list when `strings`), or null when `allow_none`."""

    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if strings and isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or (not value and not allow_empty):
            raise fail(f" must be a {'' if allow_empty else 'non-empty '}list of {what}")
        if strings:
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise fail(f"[{index}] must be a string, got {shown(item)}")
        return value

    return BeforeValidator(check)


def _channel_stats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise fail(f" must be a list of per-channel numbers like [0.485, 0.456, 0.406], got {shown(value)}")
    return tuple(within(f"[{index}]", parse_fraction, item) for index, item in enumerate(value))


positive_int = _integer(1)
positive_step = _positive_step
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Budget = Annotated[float, BeforeValidator(parse_budget)]
PositiveStep = Annotated[float | None, BeforeValidator(positive_step)]
PositiveInt = Annotated[int, BeforeValidator(positive_int)]
OptionalPositiveInt = Annotated[int | None, BeforeValidator(_integer(1, allow_none=True))]
NonNegativeInt = Annotated[int, BeforeValidator(_integer(0))]
Crf = Annotated[int, BeforeValidator(_integer(0, 51))]
Flag = Annotated[bool, BeforeValidator(_boolean)]
Name = Annotated[str, BeforeValidator(_string())]
OptionalName = Annotated[str | None, BeforeValidator(_string(allow_none=True))]
OptionalText = Annotated[str | None, BeforeValidator(_string(allow_none=True, allow_empty=True))]
Device = Annotated[str, BeforeValidator(_device)]
ChannelStats = Annotated[tuple[float, ...] | None, BeforeValidator(_channel_stats)]


def unique(values: Sequence[str], what: str) -> None:
    """Refuse repeated names (a config-level error, not tied to one entry)."""
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        raise fail(f"{what} must be unique; repeated: {', '.join(repeated)}", absolute=True)


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document once every alias is expanded (memoized: the cost is the size of the file)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError("a YAML alias refers to itself (recursive anchor)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > limit:
                    break
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def read_config_file(path: str | os.PathLike[str], what: str = "config file") -> Any:
    """The data of a YAML (or JSON) file; None for an empty file.

    Errors name the file: FileNotFoundError when it is missing, ConfigError for bad YAML or a document
    of more than MAX_YAML_NODES nodes after alias expansion (an "alias bomb").
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{what} not found: {str(source)!r}")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{str(source)!r} cannot be read as UTF-8 text: {err}") from err
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{str(source)!r} expands to more than {MAX_YAML_NODES} YAML nodes through its aliases "
                "(&anchor / *alias); a config is far smaller: refusing to load it"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{str(source)!r} is not valid YAML: {err}") from err
    except RecursionError:
        raise ConfigError(f"{str(source)!r} is nested too deeply to be a config") from None
    except ConfigError as err:
        if str(source) in str(err):
            raise
        raise ConfigError(f"{str(source)!r}: {err}") from None
    finally:
        loader.dispose()


# ------------------------------------------------------------------------------------------------
# Devices
# ------------------------------------------------------------------------------------------------


def resolve_device(device: str, local_rank: int | None = None, *, key: str = "device") -> torch.device:
    """A torch.device for a device string; under torchrun, "cuda"/"auto" become cuda:LOCAL_RANK.

    key: where the string came from (``device`` of a config, ``--device`` of the command line).
    """
    check_device(device, key)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key} {device!r} requested but CUDA is not available; use cpu")
        if device == "cuda":
            index = local_rank if local_rank is not None else torch.cuda.current_device()
            device = f"cuda:{index}"
        index = int(device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key} {device!r} does not exist; {torch.cuda.device_count()} CUDA device(s) visible"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} 'mps' requested but it is not available; use cpu")
    return torch.device(device)
