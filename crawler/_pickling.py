"""Pickling for the slotted dataclasses that cross process boundaries and are stored.

Dataclass pickling calls ``dataclasses.fields()`` for every object, which made
unpickling requests and parse results a fifth of the main process's time. A class
decorated with ``@fast_pickle`` travels as ``restore(cls, FORMAT, {field: value})``
and is rebuilt without running ``__init__`` (the values were valid when pickled).

Requests are also *stored* this way (a job's SQLite database, a Redis frontier),
so the format must outlive the code that wrote it: fields travel by name, a field
the stored object lacks takes its default, and the format number lets a later
version change the layout on purpose. Format 1 (before fields were named) was
``rebuild(cls, (value, ...))`` in the order of ``cls._format1_fields``; `rebuild`
still reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

FORMAT = 2
_MISSING = object()


def fast_pickle(cls: type[T]) -> type[T]:
    names = tuple(cls.__slots__)  # type: ignore[attr-defined]
    defaults = _defaults(cls)
    cls._pickled_fields = names  # type: ignore[attr-defined]
    cls._slot_setters = tuple(getattr(cls, name).__set__ for name in names)  # type: ignore[attr-defined]
    cls._restore_plan = tuple(  # type: ignore[attr-defined]
        (name, getattr(cls, name).__set__, *defaults.get(name, (_MISSING, None))) for name in names
    )
    # Fields equal to their default are left out: a stored request stays small.
    plain = tuple((name, _default_value(*defaults.get(name, (_MISSING, None)))) for name in names)

    def __reduce__(self: T) -> tuple[Callable[..., T], tuple[Any, ...]]:
        fields = {}
        for name, default in plain:
            value = getattr(self, name)
            if value is not default and value != default:
                fields[name] = value
        return restore, (cls, FORMAT, fields)

    cls.__reduce__ = __reduce__  # type: ignore[assignment, method-assign]
    return cls


Default = tuple[Any, "Callable[[], Any] | None"]


def _defaults(cls: type) -> dict[str, Default]:
    """(default value, default factory) of each field that has a default."""
    found: dict[str, Default] = {}
    for spec in dataclasses.fields(cls):
        if spec.default is not dataclasses.MISSING:
            found[spec.name] = (spec.default, None)
        elif spec.default_factory is not dataclasses.MISSING:
            found[spec.name] = (_MISSING, spec.default_factory)
    return found


def _default_value(value: Any, factory: Callable[[], Any] | None) -> Any:
    return factory() if factory is not None else value


def restore(cls: type[T], version: int, fields: dict[str, Any]) -> T:
    """Make an instance of ``cls`` from its named field values, without ``__init__``.
    Fields the stored object lacks take their defaults; fields this version does
    not know (written by a newer one) are ignored."""
    if version > FORMAT:
        raise ValueError(
            f"a stored {cls.__name__} has format {version}; this version of crawler reads "
            f"formats up to {FORMAT}: upgrade crawler to read it"
        )
    instance = object.__new__(cls)
    for name, set_slot, default, factory in cls._restore_plan:  # type: ignore[attr-defined]
        value = fields.get(name, default)
        if value is _MISSING:
            if factory is None:
                raise ValueError(f"a stored {cls.__name__} lacks its required field {name!r}")
            value = factory()
        set_slot(instance, value)
    return instance


def rebuild(cls: type[T], values: tuple[Any, ...]) -> T:
    """Read format 1: the slot values in the order of ``cls._format1_fields``."""
    names: tuple[str, ...] = getattr(cls, "_format1_fields", None) or cls._pickled_fields  # type: ignore[attr-defined]
    if len(values) != len(names):
        raise ValueError(f"a stored {cls.__name__} has {len(values)} fields, format 1 had {len(names)}")
    return restore(cls, 1, dict(zip(names, values, strict=True)))


def from_slots(cls: type[T], values: tuple[Any, ...]) -> T:
    """An instance of ``cls`` from its slot values in the current order (for hot paths
    inside one process, where the layout cannot differ)."""
    instance = object.__new__(cls)
    for set_slot, value in zip(cls._slot_setters, values, strict=True):  # type: ignore[attr-defined]
        set_slot(instance, value)
    return instance
