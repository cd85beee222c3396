"""Checks of settings as they are read: each names the setting, what it got and what it takes."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from ..errors import ConfigError


def check_range(owner: str, name: str, value: float, low: float, high: float,
                 low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}.{name} must be a number; got {value!r} ({type(value).__name__})")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ConfigError(
            f"{owner}.{name} must lie in {left}{low}, {high}{right}; got {value!r}"
        )


def check_choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {list(choices)}; got {value!r}")


def check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}; got {value!r}")


# The Python types a TOML value of each annotated field may have (an int is a valid float).
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "dict[str, Any]": (dict,)}


def table(owner: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{owner}] must be a table of settings; got {value!r} ({type(value).__name__})")
    return dict(value)


def check_types(owner: str, values: dict[str, Any], kind: type) -> None:
    """Refuse a value whose type is not its field's (``learning_rate = "fast"``, ``source = 5``)."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    for name, value in values.items():
        allowed = _TYPES.get(annotations[name])
        if allowed is None:
            continue
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            expected = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                        "dict[str, Any]": "a table"}[annotations[name]]
            raise ConfigError(f"{owner}.{name} must be {expected}; got {value!r} ({type(value).__name__})")


def field_names(kind: type) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


def reject_unknown(owner: str, values: dict[str, Any], known: Any) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{owner}: unknown setting(s) {unknown}; known: {sorted(known)}")


def drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    return value


def reject_unknown_settings(names: Any, paths: dict[str, tuple[str, ...]]) -> None:
    unknown = [name for name in names if name not in paths]
    if unknown:
        close = sorted({match for name in unknown for match in difflib.get_close_matches(name, paths)})
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                          f"{hint}; known settings: {sorted(paths)}")
