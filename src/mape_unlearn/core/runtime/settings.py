"""The core's settings objects: frozen, validated when built, unknown fields refused.

One object per concern (the search, unlearning, the relearning attack), built once from a
stage's parameters by Kedro (a node's ``params:`` input typed with it) or by a caller; the
allowed values are declared on the object's fields and checked nowhere else.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

T = TypeVar("T")


def settings(cls: type[T]) -> type[T]:
    """A frozen pydantic dataclass: a plain dataclass to its users, validated on creation
    (``dataclasses.replace`` too)."""
    return dataclass(frozen=True, config=ConfigDict(extra="forbid"))(cls)
