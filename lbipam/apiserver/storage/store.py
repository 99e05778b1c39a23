"""Durable object storage for the embedded server: SQLite on disk, an in-memory index for reads.

Owns the global resourceVersion, the committed index that every read and list sees, the bounded
event history that watches replay from, and one writer thread. A write is *staged* on the event
loop (it gets its resourceVersion and becomes visible to later writes at once, so checks such as
"already exists" see it), then committed by the writer thread, which groups every write waiting at
that moment into one transaction. Only after the commit is the change applied to the committed
index, appended to the history, published to watchers, and acknowledged: a write is durable before
anyone can see it. Objects handed to the store are never mutated afterwards.

A batch that cannot be committed (a full disk) fails its writes, and those staged before the event
loop heard of it (they may build on what failed); `failure_listeners` rebuild what staged writes
changed (Service allocations). Later writes are tried again as usual: they succeed once the disk
has room. `write_error` says why the last commit failed until one succeeds; `probe()` tries a
commit (for /readyz). The file itself (mode, repair of old objects) is `sqlitefile.py`'s.

Called by the object pipeline (`objects.py`) and the watch hub (`watch.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedDict

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.storage import sqlitefile

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Name = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(slots=True)
class Change:
    """One committed write: the new state (for DELETED, the last state) and the one before."""

    type: str  # ADDED, MODIFIED or DELETED
    key: str
    namespace: str
    name: str
    obj: Obj
    old: Obj | None
    rv: int


_Write = tuple[Change, "asyncio.Future[Change]"]  # a staged change and its waiting writer


class Expired(Exception):
    """A resourceVersion older than the kept history: the caller answers 410 Expired."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


class Store:
    def __init__(self, path: str, history: int = 10000) -> None:
        self.path = path
        self.history_size = max(history, 1)
        self.rv = 0  # the last committed resourceVersion
        self.history_start = 0  # every change with rv > history_start is in the history
        self.listeners: list[Callable[[Change], None]] = []
        self._next_rv = 1
        self._index: dict[str, SortedDict[Name, Obj]] = {}
        self._overlay: dict[tuple[str, str, str], Change] = {}  # staged, not committed yet
        self._history: deque[Change] = deque()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self.write_error: str | None = None  # why the last commit failed, until one succeeds
        self.failure_listeners: list[Callable[[], None]] = []  # rebuild what staged writes changed
        self._poisoned = 0  # writes up to this resourceVersion fail: staged before a failure was heard
        self.commits = 0  # transactions committed: fewer than writes when writes are grouped

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Open the database, load every object and the resourceVersion, start the writer."""
        self._loop = asyncio.get_running_loop()
        conn = sqlitefile.connect(self.path)
        for key, namespace, name, obj in sqlitefile.load_objects(conn):
            self._bucket(key)[(namespace, name)] = obj
        row = conn.execute("SELECT v FROM meta WHERE k = 'rv'").fetchone()
        self.rv = self.history_start = int(row[0]) if row else 0
        self._next_rv = self.rv + 1
        self._conn = conn
        self._thread = threading.Thread(target=self._writer, name="apiserver-sqlite-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- reads (committed state) ------------------------------------------------------------

    def _bucket(self, key: str) -> SortedDict[Name, Obj]:
        bucket = self._index.get(key)
        if bucket is None:
            bucket = self._index[key] = SortedDict()
        return bucket

    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        bucket = self._index.get(key)
        return bucket.get((namespace, name)) if bucket is not None else None

    def items(self, key: str, namespace: str | None = None, start: Name | None = None) -> Iterator[Obj]:
        """Committed objects of `key` in (namespace, name) order, optionally after `start`."""
        bucket = self._index.get(key)
        if not bucket:
            return iter(())
        low = start if start is not None else ((namespace, "") if namespace is not None else None)
        high = (namespace, "\uffff") if namespace is not None else None
        names = bucket.irange(low, high, inclusive=(start is None, True))
        return (bucket[n] for n in names)

    def count(self, key: str) -> int:
        return len(self._index.get(key, ()))

    def latest(self, key: str, namespace: str, name: str) -> Obj | None:
        """The newest state including staged, uncommitted writes: what the next write builds on."""
        pending = self._overlay.get((key, namespace, name))
        if pending is not None:
            return None if pending.type == "DELETED" else pending.obj
        return self.get(key, namespace, name)

    def latest_names(self, key: str, namespace: str | None = None) -> list[Name]:
        names = {(ns, n) for ns, n in self._index.get(key, {}) if namespace in (None, ns)}
        for (k, ns, n), change in self._overlay.items():
            if k == key and namespace in (None, ns):
                (names.discard if change.type == "DELETED" else names.add)((ns, n))
        return sorted(names)

    def keys(self) -> list[str]:
        return list(self._index)

    # -- history ----------------------------------------------------------------------------

    def replay(self, key: str, after: int) -> list[Change]:
        """Committed changes of `key` with rv > after; Expired if some are no longer kept."""
        if after < self.history_start:
            raise Expired(after, self.history_start)
        found = []
        for change in reversed(self._history):
            if change.rv <= after:
                break
            if change.key == key:
                found.append(change)
        found.reverse()
        return found

    def changed_since(self, key: str, after: int) -> bool:
        """Whether `key` changed after `after`; Expired when the history cannot tell."""
        return bool(self.replay(key, after))

    def compact(self) -> None:
        """Forget the event history: resuming from any older resourceVersion now gets 410."""
        self._history.clear()
        self.history_start = self.rv

    # -- writes -----------------------------------------------------------------------------

    def stage(
        self, kind: str, key: str, namespace: str, name: str, obj: Obj, old: Obj | None
    ) -> asyncio.Future[Change]:
        """Give `obj` the next resourceVersion and queue it; the future resolves once committed.

        `obj` must be a fresh dict the caller no longer touches: its metadata.resourceVersion is
        set here. For DELETED, `obj` is the final state (it also gets the new resourceVersion).
        """
        if self._loop is None:
            raise StatusError(500, "Internal error occurred: the store is closed")
        rv = self._next_rv
        self._next_rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        change = Change(kind, key, namespace, name, obj, old, rv)
        self._overlay[(key, namespace, name)] = change
        future: asyncio.Future[Change] = self._loop.create_future()
        self._queue.put((change, future))
        return future

    def _writer(self) -> None:
        """The writer thread: one transaction (and one fsync) per batch of waiting writes.

        A batch that cannot be committed (a full disk) fails its writes only. The writes staged
        after it, up to the moment the event loop has heard of the failure, may build on what
        failed, so they fail too (`_poisoned`); the writer waits for that moment before going on."""
        conn, loop = self._conn, self._loop
        assert conn is not None
        assert loop is not None
        while True:
            batch, probes, stop = self._take()
            doomed = [(c, f) for c, f in batch if c.rv <= self._poisoned]
            batch = [(c, f) for c, f in batch if c.rv > self._poisoned]
            if doomed:
                loop.call_soon_threadsafe(self._fail, doomed, "an earlier write it may build on failed")
            if batch:
                failed = self._commit(conn, [change for change, _ in batch])
                if failed is None:
                    loop.call_soon_threadsafe(self._committed, batch)
                else:
                    heard = threading.Event()
                    loop.call_soon_threadsafe(self._failed, batch, failed, heard)
                    heard.wait(10)  # the loop runs while close() waits for this thread
            for probe in probes:
                loop.call_soon_threadsafe(self._probed, probe, self._probe(conn))
            if stop:
                return

    def _take(
        self,
    ) -> tuple[list[_Write], list[asyncio.Future[str | None]], bool]:
        """The next batch: every write waiting now, the readiness probes among them, and whether
        the store is closing."""
        items = [self._queue.get()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        stop = None in items
        writes = [i for i in items if isinstance(i, tuple)]
        probes = [i for i in items if isinstance(i, asyncio.Future)]
        return writes, probes, stop

    def _commit(self, conn: sqlite3.Connection, changes: list[Change]) -> str | None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for c in changes:
                if c.type == "DELETED":
                    conn.execute(
                        "DELETE FROM objects WHERE key = ? AND namespace = ? AND name = ?",
                        (c.key, c.namespace, c.name),
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                        (c.key, c.namespace, c.name, c.rv, json.dumps(c.obj, separators=(",", ":"))),
                    )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(changes[-1].rv),))
            conn.execute("COMMIT")
        except Exception as exc:  # a full or broken disk: this batch fails, the server stays up
            log.error("sqlite commit failed writes=%d error=%s: %s", len(changes), type(exc).__name__, exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return str(exc) or type(exc).__name__
        self.commits += 1
        return None

    @staticmethod
    def _probe(conn: sqlite3.Connection) -> str | None:
        """Whether a write can be committed now (for /readyz): the error, or None."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('probe', datetime('now'))")
            conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return str(exc) or type(exc).__name__
        return None

    # -- on the event loop: the outcome of commits -------------------------------------------

    def _committed(self, batch: list[_Write]) -> None:
        """Make a committed batch visible, in resourceVersion order."""
        self.write_error = None
        for change, future in batch:
            self._apply(change)
            if not future.done():
                future.set_result(change)

    def _failed(self, batch: list[_Write], error: str, heard: threading.Event) -> None:
        """A batch could not be committed: it fails, so does every write staged since (they may
        build on it), and what was derived from staged writes is rebuilt from committed state."""
        self.write_error = error
        self._poisoned = self._next_rv - 1
        self._overlay.clear()
        heard.set()
        self._fail(batch, error)
        for listener in self.failure_listeners:
            listener()

    @staticmethod
    def _fail(batch: list[_Write], why: str) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(
                    StatusError(500, f"Internal error occurred: the write could not be stored: {why}")
                )

    async def probe(self) -> str | None:
        """Whether the store can commit a write now: None, or why not (for /readyz)."""
        if self._loop is None or self._thread is None:
            return "the store is closed"
        future: asyncio.Future[str | None] = self._loop.create_future()
        self._queue.put(future)
        return await future

    def _probed(self, future: asyncio.Future[str | None], error: str | None) -> None:
        if error is None:
            self.write_error = None
        if not future.done():
            future.set_result(error)

    def _apply(self, change: Change) -> None:
        where = (change.key, change.namespace, change.name)
        bucket = self._bucket(change.key)
        if change.type == "DELETED":
            bucket.pop((change.namespace, change.name), None)
        else:
            bucket[(change.namespace, change.name)] = change.obj
        if self._overlay.get(where) is change:
            del self._overlay[where]
        self.rv = change.rv
        if len(self._history) >= self.history_size:
            self.history_start = self._history.popleft().rv
        self._history.append(change)
        for listener in self.listeners:
            listener(change)
