"""Watches: per-watcher queues fed by committed changes, streamed as chunked JSON lines.

Owns `Watcher` (one open watch: its filter and a bounded queue), `WatchHub` (routes every committed
`store.Change` to the watchers of its resource, synchronously on the event loop, so a watcher never
misses or repeats an event between its initial state and live events) and `stream`, the response
loop (events, BOOKMARKs, timeoutSeconds). A watcher whose queue overflows is closed, as the real
server closes an unresponsive watcher: writers never wait for readers.

Called by the HTTP handlers; fault injection calls `WatchHub.close_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lbipam.apiserver.storage.store import Change, Obj

_LIVENESS_CHECK = 5.0  # seconds between checks that an idle watch's client is still connected
Event = tuple[str, Obj]  # (type, object in storage shape)
Matcher = Callable[[Obj], bool]


class Watcher:
    """One open watch on a resource: which objects it sees and what it has not sent yet."""

    def __init__(self, key: str, namespace: str | None, matches: Matcher, limit: int) -> None:
        self.key = key
        self.namespace = namespace
        self.matches = matches
        self.limit = limit
        self.backlog: deque[Event] = deque()  # initial ADDEDs or replayed history: not bounded
        self.pending: deque[Event] = deque()
        self.closed = False
        self._wakeup = asyncio.Event()

    def translate(self, change: Change) -> Event | None:
        """What this watcher sees of `change`: leaving the filter is DELETED, entering is ADDED."""
        if self.namespace is not None and change.namespace != self.namespace:
            return None
        now = change.type != "DELETED" and self.matches(change.obj)
        before = change.old is not None and self.matches(change.old)
        if change.type == "DELETED":
            return ("DELETED", change.obj) if self.matches(change.obj) or before else None
        if now and before:
            return ("MODIFIED", change.obj)
        if now:
            return ("ADDED", change.obj)
        if before:
            return ("DELETED", change.obj)
        return None

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        event = self.translate(change)
        if event is None:
            return
        if len(self.pending) >= self.limit:
            self.close()  # too far behind: the client re-watches from its last resourceVersion
            return
        self.pending.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    def take(self, most: int) -> list[Event]:
        out: list[Event] = []
        while len(out) < most and (self.backlog or self.pending):
            out.append((self.backlog or self.pending).popleft())
        return out

    async def wait(self, seconds: float) -> None:
        """Return when there is something to send, the watcher is closed, or after `seconds`."""
        if self.backlog or self.pending or self.closed:
            return
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):  # not wait_for: 3.11's can swallow a cancel
                await self._wakeup.wait()


class WatchHub:
    """Every open watcher, by storage key; fed by the store's commit listener."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[Watcher]] = {}

    def dispatch(self, change: Change) -> None:
        for watcher in list(self._watchers.get(change.key, ())):
            watcher.offer(change)

    def add(self, watcher: Watcher) -> None:
        self._watchers.setdefault(watcher.key, set()).add(watcher)

    def remove(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.key, set()).discard(watcher)

    def close_all(self, key: str | None = None) -> int:
        """Close every open watch (of one storage key): their streams end now."""
        closed = 0
        for k, watchers in self._watchers.items():
            if key is None or k == key:
                for watcher in watchers:
                    watcher.close()
                    closed += 1
        return closed

    def count(self) -> int:
        return sum(len(w) for w in self._watchers.values())


async def stream(
    request: web.Request,
    watcher: Watcher,
    encode: Callable[[Obj], Obj],
    bookmark: Callable[[], Obj] | None,
    bookmark_interval: float,
    lifetime: float,
    initial_end: Obj | None = None,
) -> web.StreamResponse:
    """Serve one watch until timeoutSeconds, the client leaves, or the watcher is closed."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    deadline = time.monotonic() + lifetime
    next_bookmark = time.monotonic() + bookmark_interval
    try:
        await response.prepare(request)
        while not watcher.closed or watcher.backlog or watcher.pending:
            now = time.monotonic()
            if now >= deadline or _client_gone(request):
                break
            wake = min(deadline, next_bookmark) if bookmark is not None else deadline
            wake = min(wake, now + _LIVENESS_CHECK)
            await watcher.wait(wake - now)
            events = watcher.take(500)
            lines = [_line(kind, encode(obj)) for kind, obj in events]
            if initial_end is not None and not watcher.backlog:
                lines.append(_line("BOOKMARK", initial_end))
                initial_end = None
            if not lines and bookmark is not None and time.monotonic() >= next_bookmark:
                lines.append(_line("BOOKMARK", bookmark()))
            if lines:
                await response.write(b"".join(lines))
            if bookmark is not None and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + bookmark_interval
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away: nothing to tell it
    return response


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _line(kind: str, obj: Any) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def error_line(status: dict[str, Any]) -> bytes:
    return _line("ERROR", status)
