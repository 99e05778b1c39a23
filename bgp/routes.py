"""The pure half of the driver: which routes to send a peer, and the commands that send them.

Used by `bgp.driver` only. `desired` keeps the plan's routes that `bgp.render` accepts (and of the
peer's families), `difference` compares them with what ExaBGP acknowledged, `withdrawals` and
`announcements` turn the result into commands -- routes of one family with equal attributes in bulk
commands -- and `recorder` updates the acknowledged state from each command's answer. No I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping

from bgp import render
from bgp.exabgp_channel import CommandFailed
from bgp.render import RenderError
from bgp.views import RouteAttributes

#: A command to send, the prefixes it changes, and their attributes (None: withdrawn).
Command = tuple[str, list[str], RouteAttributes | None]


class Checked:
    """`render`'s verdict on prefixes and attributes, remembered while the plan holds them: a plan
    of 50k routes is checked once, not on every apply."""

    def __init__(self) -> None:
        self._routes: dict[str, str | RenderError] = {}
        self._attrs: dict[tuple[RouteAttributes, bool], RenderError | None] = {}
        self._used: set[str] = set()

    def route(self, cidr: str) -> str | RenderError:
        """The canonical prefix, or why it cannot be sent."""
        self._used.add(cidr)
        verdict = self._routes.get(cidr)
        if verdict is None:
            try:
                verdict = render.prefix(cidr, "route")
            except RenderError as err:
                verdict = err
            self._routes[cidr] = verdict
        return verdict

    def attributes(self, attrs: RouteAttributes, route: str) -> RenderError | None:
        """Why `attrs` cannot go with `route` (a canonical prefix), or None."""
        key = (attrs, ":" in route)
        if key not in self._attrs:
            try:
                render.attributes(attrs, route)
                self._attrs[key] = None
            except RenderError as err:
                self._attrs[key] = RenderError(str(err).replace(route, "<prefix>"))
        error = self._attrs[key]
        return None if error is None else RenderError(str(error).replace("<prefix>", route))

    def trim(self) -> None:
        """Forget the prefixes not looked at since the last trim."""
        self._routes = {cidr: self._routes[cidr] for cidr in self._used if cidr in self._routes}
        self._used = set()
        if len(self._attrs) > 10_000:
            self._attrs.clear()


def desired(
    plan: Mapping[str, RouteAttributes],
    families: Iterable[str],
    checked: Checked,
    session: str | None = None,
) -> tuple[dict[str, RouteAttributes], list[str]]:
    """The routes of `plan` that can be sent, by canonical prefix, and the errors of the others.
    Routes of a family the peer does not carry are left out without an error. On a `session`
    (the peer's address) of the other family, "next-hop self" is refused: ExaBGP would write the
    router ID (the planner never gives it; this is the last guard)."""
    wanted: dict[str, RouteAttributes] = {}
    errors: list[str] = []
    families = set(families)
    session_family = render.family_of(session) if session is not None else None
    for cidr, attrs in plan.items():
        route = checked.route(cidr)
        if isinstance(route, RenderError):
            errors.append(str(route))
            continue
        family = render.family_of(route)
        problem = checked.attributes(attrs, route)
        if problem is None and attrs.next_hop == "self" and session_family not in (None, family):
            problem = RenderError(
                f"route {route}: no next hop of its family on this session (not the router ID)"
            )
        if problem is not None:
            errors.append(str(problem))
        elif family in families:
            wanted[route] = attrs
    return wanted, errors


def summary(errors: list[str]) -> str:
    """The first error, and how many more there are."""
    if not errors:
        return ""
    return errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def difference(
    sent: Mapping[str, RouteAttributes],
    unsure: Iterable[str],
    wanted: Mapping[str, RouteAttributes],
    *,
    full: bool = False,
) -> tuple[list[str], dict[str, RouteAttributes]]:
    """(prefixes to withdraw, routes to announce). Unsure prefixes are withdrawn or re-announced;
    `full` re-announces everything wanted."""
    unsure = set(unsure)
    stale = [cidr for cidr in dict.fromkeys([*sent, *unsure]) if cidr not in wanted]
    changed = {
        cidr: attrs for cidr, attrs in wanted.items() if full or cidr in unsure or sent.get(cidr) != attrs
    }
    return stale, changed


def _by_family(prefixes: Iterable[str]) -> dict[str, list[str]]:
    families: dict[str, list[str]] = {}
    for cidr in prefixes:
        families.setdefault(render.family_of(cidr), []).append(cidr)
    return families


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def withdrawals(peer: str, prefixes: Iterable[str], bulk_min: int, bulk_size: int) -> Iterator[Command]:
    """Withdraw commands: one per prefix, or bulk when a family has `bulk_min` or more. Made as
    they are sent, so ExaBGP starts on the first while the rest are rendered."""
    for group in _by_family(prefixes).values():
        if len(group) < bulk_min:
            for cidr in group:
                yield render.withdraw(peer, cidr), [cidr], None
            continue
        for chunk in _chunks(group, bulk_size):
            (line,) = render.withdraw_bulk(peer, chunk, limit=len(chunk))
            yield line, chunk, None


def announcements(
    peer: str, routes: Mapping[str, RouteAttributes], bulk_min: int, bulk_size: int
) -> Iterator[Command]:
    """Announce commands: one per route, or bulk for `bulk_min` or more routes of one family
    with equal attributes. Made as they are sent."""
    groups: dict[tuple[str, RouteAttributes], list[str]] = {}
    for cidr, attrs in routes.items():
        groups.setdefault((render.family_of(cidr), attrs), []).append(cidr)
    for (_, attrs), group in groups.items():
        if len(group) < bulk_min:
            for cidr in group:
                yield render.announce(peer, cidr, attrs), [cidr], attrs
            continue
        for chunk in _chunks(group, bulk_size):
            (line,) = render.announce_bulk(peer, attrs, chunk, limit=len(chunk))
            yield line, chunk, attrs


def recorder(
    sent: dict[str, RouteAttributes],
    unsure: set[str],
    prefixes: list[str],
    attrs: RouteAttributes | None,
    errors: list[str],
) -> Callable[[asyncio.Future[list[str]]], None]:
    """A done-callback for one command's answer: `done` updates `sent`; `error` changed nothing
    (noted in `errors`); either way the prefixes are no longer unsure. A lost answer leaves them
    unsure."""

    def record(future: asyncio.Future[list[str]]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            for cidr in prefixes:
                if attrs is None:
                    sent.pop(cidr, None)
                else:
                    sent[cidr] = attrs
        elif isinstance(error, CommandFailed):
            errors.append(str(error))
        else:
            return
        unsure.difference_update(prefixes)

    return record
