"""`Informer`: lbipam's own list-then-watch loop for one kind, feeding a local cache.

The loop (STYLE.md convention 11): list (paginated) -> watch from the list's resourceVersion ->
when the stream ends or breaks, watch again from the last resourceVersion seen (events and
BOOKMARKs advance it) -> on 410 Expired (an ERROR event or HTTP 410) relist, and synthesize
DELETED for objects that vanished in between. Errors back off with jitter; a bad event or a
failing handler is logged and skipped: the loop never dies.

Handlers get `(event_type, new_obj, old_obj)`: ADDED (old None), MODIFIED, DELETED (new is the
last state known). The cached dicts are shared with handlers: treat them as read-only.
Cached objects carry no `metadata.managedFields` (as client-go's TransformStripManagedFields):
lbipam never reads them, they are half of a Service's size (a cache of 50,000 Services held a
gigabyte), and a merge patch or an update without them leaves the server's as they are.
The controllers and the speaker run one informer per kind they read.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from contextlib import aclosing

from lbipam.k8s.client import Kube
from lbipam.k8s.errors import Backoff, Expired, KubeError, TemporaryError
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import Resource, object_key
from lbipam.k8s.wire import Obj, Selector

Handler = Callable[[str, Obj, Obj | None], Awaitable[None] | None]
Key = tuple[str, str]


def _rv(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _strip(obj: Obj) -> Obj:
    """`obj` without its managedFields (see the module's docstring)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class Informer:
    """A cache of one kind (optionally one namespace / selector), kept in sync by `run()`."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        page_size: int = 500,
        watch_timeout: int = 300,
        backoff: Backoff | None = None,
        trim: Callable[[Obj], Obj] | None = None,
    ) -> None:
        self.kube = kube
        self.trim = trim  # keeps only what the handlers read (e.g. a Node's labels), to save memory
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.lists = 0  # completed lists: 1 + the relists that 410s forced
        self.watches = 0  # watch streams opened
        self._backoff = backoff or Backoff(base=0.2, cap=30.0)
        self._cache: dict[Key, Obj] = {}
        self._handlers: list[Handler] = []
        self._log = KVLog("lbipam.k8s.informer", kind=resource.kind, namespace=namespace)

    # -- the cache -------------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call `handler(event_type, new_obj, old_obj)` on every change from now on."""
        self._handlers.append(handler)

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._cache.get((namespace or "", name))

    def list(self) -> list[Obj]:
        return list(self._cache.values())

    def __len__(self) -> int:
        return len(self._cache)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch, forever; cancel to stop. Run again later, it resumes the watch
        from where it stopped (a 410 then makes it relist)."""
        loop = asyncio.get_running_loop()
        need_list = not self.synced.is_set()
        while True:
            delay = 0.0
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                started = loop.time()
                delivered = await self._watch_once()
                if delivered or loop.time() - started >= 1.0:
                    self._backoff.reset()
                    continue
                delay = self._backoff.next()  # closed at once with nothing: do not hammer the server
            except Expired as err:
                self._log.info(
                    "resourceVersion expired, relisting", rv=self.resource_version, error=err.message
                )
                # Relist at once; only a list that itself hits 410 (a stale continue token) waits.
                delay = self._backoff.next() if need_list else 0.0
                need_list = True
            except KubeError as err:
                if err.reason == "MalformedWatchEvent":
                    need_list = True  # resuming would replay the same bad line
                delay = self._backoff.next()
                if isinstance(err, TemporaryError) and err.retry_after:
                    delay = max(delay, min(err.retry_after, self._backoff.cap))
                self._log.warning("list/watch failed", error=str(err), retry_in=f"{delay:.2f}s")
            except Exception:  # a bug must not stop the cache: log, relist, go on
                delay = self._backoff.next()
                need_list = True
                self._log.exception("informer loop error", retry_in=f"{delay:.2f}s")
            if delay:
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listing = await self.kube.list_all(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self.page_size,
        )
        fresh: dict[Key, Obj] = {}
        for obj in listing.items:
            _strip(obj)
            fresh[object_key(obj)] = self.trim(obj) if self.trim is not None else obj
        old, self._cache = self._cache, fresh
        self.resource_version = listing.resource_version
        self.lists += 1
        self._log.debug("listed", items=len(fresh), rv=self.resource_version)
        for key, prev in old.items():
            now = fresh.get(key)
            if now is None or _uid(now) != _uid(prev):  # gone, or deleted and recreated meanwhile
                await self._dispatch("DELETED", prev, prev)
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None or _uid(obj) != _uid(before):
                await self._dispatch("ADDED", obj, None)
            elif _rv(before) != _rv(obj):
                await self._dispatch("MODIFIED", obj, before)
        self.synced.set()

    async def _watch_once(self) -> int:
        """One watch stream from the current resourceVersion; returns how many events it gave."""
        timeout = int(self.watch_timeout * random.uniform(1.0, 2.0))  # spread reconnects
        self.watches += 1
        delivered = 0
        stream = self.kube.watch(
            self.resource,
            namespace=self.namespace,
            resource_version=self.resource_version or None,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
        )
        async with aclosing(stream) as events:
            async for event_type, obj in events:
                delivered += 1
                await self._apply(event_type, obj)
        return delivered

    async def _apply(self, event_type: str, obj: Obj) -> None:
        rv = _rv(obj)
        if event_type == "BOOKMARK":
            self.resource_version = rv or self.resource_version
            return
        key = object_key(obj)
        _strip(obj)
        if self.trim is not None:
            obj = self.trim(obj)
        if event_type not in ("ADDED", "MODIFIED", "DELETED") or not key[1]:
            self._log.warning("skipping bad watch event", type=event_type, object=str(obj)[:200])
            return
        if event_type == "DELETED":
            prev = self._cache.pop(key, None)
            await self._dispatch("DELETED", obj, prev)
        else:
            prev = self._cache.get(key)
            self._cache[key] = obj
            # Normalise: ADDED means "not cached before", whatever the server called it.
            if prev is None:
                await self._dispatch("ADDED", obj, None)
            elif _rv(prev) != rv:
                await self._dispatch("MODIFIED", obj, prev)
        self.resource_version = rv or self.resource_version

    async def _dispatch(self, event_type: str, new: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                result = handler(event_type, new, old)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                namespace, name = object_key(new)
                self._log.exception("handler failed", event=event_type, object=f"{namespace}/{name}")

    def __repr__(self) -> str:
        return f"Informer({self.resource}, namespace={self.namespace!r}, items={len(self._cache)})"
