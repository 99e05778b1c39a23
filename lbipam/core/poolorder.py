"""What both kinds of pool state share about serving: where the serving pools' blocks lie, and
the order pools are tried in (priority, then name). Used by `lbpools` and `pcpools`. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from lbipam.core.addresses import Block
from lbipam.core.blockindex import BlockIndex


class _Spec(Protocol):
    @property
    def blocks(self) -> tuple[Block, ...]: ...
    @property
    def order_key(self) -> tuple[int, str]: ...


class _State(Protocol):
    @property
    def view(self) -> _Spec: ...
    @property
    def accepted(self) -> _Spec | None: ...
    @property
    def serving(self) -> bool: ...


S = TypeVar("S", bound=_State)


def pool_index(states: Mapping[str, _State]) -> BlockIndex:
    """Where each serving pool's (accepted) blocks lie."""
    return BlockIndex(
        (block, name)
        for name, state in states.items()
        if state.serving and state.accepted is not None
        for block in state.accepted.blocks
    )


def ordered(states: Iterable[S]) -> list[S]:
    """Pools in the order they are tried: priority, then name (of the accepted spec)."""
    return sorted(states, key=lambda s: (s.accepted or s.view).order_key)
