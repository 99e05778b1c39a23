"""Views of API objects, converted again only when the object changed in a way the view reads.

Every pool change makes a controller convert every pool again, and validating a pool of 100,000
blocks takes seconds: `ViewCache` keeps each object's view while its uid and generation (bumped
on every spec change) stay the same, and falls back on the resourceVersion for an object without
a generation. Used by both controllers for their pool views, in their `start` and `set_pools`
hooks; thread-safe as those hooks need (one user at a time, whole-dict swaps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

V = TypeVar("V")
Obj = Mapping[str, Any]


def _stamp(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    version = str(generation) if generation else f"rv:{meta.get('resourceVersion', '')}"
    return (
        str(meta.get("name", "")),
        str(meta.get("uid", "")),
        str(meta.get("creationTimestamp", "")),
        version,
    )


class ViewCache(Generic[V]):
    def __init__(self, convert: Callable[[Obj], V]) -> None:
        self.convert = convert
        self._views: dict[str, tuple[tuple[str, str, str, str], V]] = {}

    def views(self, objs: Iterable[Obj]) -> list[V]:
        """The view of each object, in order; forgets the objects no longer given."""
        fresh: dict[str, tuple[tuple[str, str, str, str], V]] = {}
        out = []
        for obj in objs:
            stamp = _stamp(obj)
            cached = self._views.get(stamp[0])
            view = cached[1] if cached is not None and cached[0] == stamp else self.convert(obj)
            fresh[stamp[0]] = (stamp, view)
            out.append(view)
        self._views = fresh
        return out
