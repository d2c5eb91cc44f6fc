"""Items as JSON: what JSON can carry is encoded, the rest is refused by name.

orjson does the work (UTF-8, not ASCII-escaped). What it cannot encode by itself:

- a ``set`` or ``frozenset`` becomes a list (sorted when its members sort);
- a ``Decimal`` becomes a string (``"19.99"``): a number would round it to a float;
- an integer beyond 64 bits is written exactly, as a JSON number (by the standard
  ``json`` module, for that item only).

An item is refused, with a message naming the field, when a field holds NaN or an
infinity (orjson would write ``null``, silently), a dict key that is not a string,
a number or a boolean, or a value of another type."""

from __future__ import annotations

import datetime
import enum
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS
_KEY_TYPES = (str, int, float, bool)
# Scalars orjson writes by itself (dates as ISO 8601, UUIDs and enums by value), or _default does.
_SCALARS = (str, int, float, Decimal, datetime.date, datetime.time, uuid.UUID, enum.Enum)


def encode_items(items: Iterable[Any]) -> tuple[bytes, list[str]]:
    """Encode items as JSON Lines. Items that cannot be encoded are left out and
    described (which field, and why) in the second element."""
    lines: list[bytes] = []
    failures: list[str] = []
    for item in items:
        try:
            lines.append(encode_value(item))
        except ValueError as exc:
            failures.append(f"item not written: {exc}")
    return (b"\n".join(lines) + b"\n" if lines else b""), failures


def encode_value(value: Any) -> bytes:
    """One value as compact JSON; `ValueError` names the field JSON cannot carry."""
    try:
        encoded = orjson.dumps(value, default=_default, option=OPTIONS)
    except TypeError:
        problem = find_problem(value)
        if problem is None:  # only integers beyond 64 bits: exact, by the slower encoder
            return _encode_big_integers(value)
        raise ValueError(problem) from None
    if b"null" in encoded and (problem := find_problem(value)) is not None:
        raise ValueError(problem)  # a NaN or an infinity that orjson wrote as null
    return encoded


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def find_problem(value: Any, path: str = "") -> str | None:
    """What JSON cannot carry in ``value``, and where (``field 'price'``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{_where(path)} is {value}, which JSON cannot carry"
    if isinstance(value, Mapping):
        return _problem_in_mapping(value, path)
    if isinstance(value, list | tuple | set | frozenset):
        return next(filter(None, (find_problem(v, f"{path}[{i}]") for i, v in enumerate(value))), None)
    if _is_dataclass_instance(value):
        fields = {name: getattr(value, name) for name in value.__dataclass_fields__}
        return _problem_in_mapping(fields, path)
    if value is None or isinstance(value, _SCALARS):
        return None
    return f"{_where(path)} is of type {type(value).__name__}, which JSON cannot carry"


def _problem_in_mapping(mapping: Mapping[Any, Any], path: str) -> str | None:
    for key, item in mapping.items():
        if not isinstance(key, _KEY_TYPES):
            return f"{_where(path)} has a {type(key).__name__} key {key!r}; JSON keys are strings"
        if problem := find_problem(item, f"{path}.{key}" if path else str(key)):
            return problem
    return None


def _where(path: str) -> str:
    return f"field {path!r}" if path else "the item"


def _is_dataclass_instance(value: Any) -> bool:
    return hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type)


def _encode_big_integers(value: Any) -> bytes:
    text = json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _plain(value: Any) -> Any:
    """``value`` with what orjson's options and ``_default`` do, for the json module."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else json.dumps(k): _plain(v) for k, v in value.items()}
    if _is_dataclass_instance(value):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _plain_scalar(value)


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, set | frozenset | Decimal):
        return _plain(_default(value))
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    return str(value) if isinstance(value, uuid.UUID) else value
