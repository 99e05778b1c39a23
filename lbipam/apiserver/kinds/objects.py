"""The write pipeline of the embedded server: create, update (PUT, patch, /status), delete.

Owns what every kind shares, in the real server's order: body checks (apiVersion, kind, name,
namespace), server-set metadata (uid, creationTimestamp, generation, resourceVersion), the
`.status` rules of the main resource and `/status`, optimistic concurrency, finalizers, namespace
existence and termination, no-op updates (no write, no event), then the kind's `Strategy` hooks and
the store. Reads and watches are in `reads.py`. Called by the HTTP handlers (`handlers.py`).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from typing import Any

from lbipam.apiserver.errors import (
    StatusError,
    already_exists,
    conflict,
    forbidden,
    invalid,
    invalid_object,
    not_found,
)
from lbipam.apiserver.kinds import gotypes, shapes, typed
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions, deep, require_dict
from lbipam.apiserver.kinds.validation import now
from lbipam.apiserver.patch import patches
from lbipam.apiserver.storage import jsonsafe
from lbipam.apiserver.storage.registry import Registry, ResourceType
from lbipam.apiserver.storage.store import Change, Obj, Store

_STATUS_WRITE = frozenset(("apiVersion", "kind", "metadata", "status"))  # what a /status write reads
_SERVER_SET = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the real generateName draws from
# UIDs must be unique, not secret: a generator seeded once from the OS, instead of a getrandom()
# system call for every object (uuid.uuid4), which costs more than the rest of a small create.
_UIDS = random.Random(os.urandom(32))


def new_uid() -> str:
    """A random (version 4) UUID, as the real server gives every object."""
    return str(uuid.UUID(int=_UIDS.getrandbits(128), version=4))


class Objects:
    def __init__(self, store: Store, registry: Registry, strategies: dict[str, Strategy]) -> None:
        self.store = store
        self.registry = registry
        self.strategies = strategies
        self.default = Strategy()
        self._tasks: set[asyncio.Task[None]] = set()
        self._finishing: set[str] = set()  # namespaces being emptied now

    def strategy(self, rtype: ResourceType) -> Strategy:
        return self.strategies.get(rtype.storage_key, self.default)

    # -- create -----------------------------------------------------------------------------

    async def create(self, rtype: ResourceType, namespace: str, body: Any, opts: WriteOptions) -> Obj:
        strategy = self.strategy(rtype)
        obj = self._check_body(rtype, body, opts)
        meta = obj["metadata"]
        self._place(rtype, meta, namespace)
        if rtype.namespaced:
            self._check_namespace(namespace)
        if meta.get("resourceVersion"):
            raise StatusError(400, "resourceVersion should not be set on objects to be created")
        for key in (*_SERVER_SET, "selfLink"):
            meta.pop(key, None)
        if "status" in rtype.subresources and not strategy.status_on_create:
            obj.pop("status", None)
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and meta["generateName"]:
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        obj = strategy.decode(rtype, obj)
        meta = obj["metadata"]
        strategy.prepare(rtype, obj, None, opts)
        meta = obj["metadata"]
        self._raise_invalid(rtype, obj, strategy.validate(rtype, obj, None))
        ns, name = meta.get("namespace", ""), meta["name"]
        if self.store.latest(rtype.storage_key, ns, name) is not None:
            raise already_exists(rtype.qualified, name, rtype.group, rtype.plural)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now()
        if strategy.generation:
            meta["generation"] = 1
        # Ownership is recorded before the server fills in clusterIPs and nodePorts: like the real
        # server, fields it allocates belong to no manager.
        if not opts.applied and not opts.dry_run:
            obj = patches.record_update(rtype, None, obj, opts.manager, "Update", "")
        gotypes.fill_object(obj)  # what Go's types always write (a Node's "spec": {}), owned by no one
        strategy.allocate(obj, None)
        if opts.dry_run:
            strategy.release(obj)
            return strategy.encode(rtype, obj)
        change = await self._stage("ADDED", rtype, strategy, obj, None)
        return strategy.encode(rtype, change.obj)

    # -- update -----------------------------------------------------------------------------

    async def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str,
        opts: WriteOptions,
        patched: bool = False,
    ) -> tuple[int, Obj]:
        """PUT (and the second half of every patch); returns (HTTP code, object)."""
        strategy = self.strategy(rtype)
        only = _STATUS_WRITE if subresource == "status" else None
        obj = self._check_body(rtype, body, opts, only)
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise StatusError(
                400, f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        self._place(rtype, meta, namespace)
        cur = self.store.latest(rtype.storage_key, namespace, name)
        if cur is None:
            if strategy.create_on_update and not subresource and not patched:
                return 201, await self.create(rtype, namespace, obj, opts)
            raise not_found(rtype.qualified, name, rtype.group, rtype.plural)
        given_rv = meta.get("resourceVersion")
        if given_rv and given_rv != cur["metadata"]["resourceVersion"]:
            raise conflict(rtype.qualified, name, rtype.group, rtype.plural)
        if not given_rv and not strategy.unconditional_update and not patched:
            cause = invalid("metadata.resourceVersion", 0, "must be specified for an update")
            self._raise_invalid(rtype, obj, [cause])
        new = self._next_version(rtype, strategy, cur, strategy.decode(rtype, obj), subresource, opts)
        if _same(new, cur):
            return 200, strategy.encode(rtype, cur)  # the real server writes nothing: no new rv, no event
        if opts.dry_run:
            return 200, strategy.encode(rtype, new)
        if not opts.applied:
            new = patches.record_update(rtype, cur, new, opts.manager, "Update", subresource)
        strategy.allocate(new, cur)
        finished = bool(new["metadata"].get("deletionTimestamp")) and not new["metadata"].get("finalizers")
        change = await self._stage("DELETED" if finished else "MODIFIED", rtype, strategy, new, cur)
        return 200, strategy.encode(rtype, change.obj)

    def _next_version(
        self,
        rtype: ResourceType,
        strategy: Strategy,
        cur: Obj,
        obj: Obj,
        subresource: str,
        opts: WriteOptions,
    ) -> Obj:
        """The object to store: the status rules, server-set metadata kept, defaults, validation."""
        if subresource == "status":
            new = deep(cur)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            if "managedFields" in obj["metadata"]:
                new["metadata"]["managedFields"] = obj["metadata"]["managedFields"]
        else:
            new = obj
            if "status" in rtype.subresources:
                if "status" in cur:
                    new["status"] = jsonsafe.copy(cur["status"])
                else:
                    new.pop("status", None)
        meta, old_meta = new["metadata"], cur["metadata"]
        causes = []
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            causes.append(invalid("metadata.uid", meta["uid"], "field is immutable"))
        for key in _SERVER_SET:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource == "status":
            strategy.prepare_status(rtype, new, cur, opts)
            causes += strategy.validate_status(rtype, new, cur)
        else:
            strategy.prepare(rtype, new, cur, opts)
            causes += strategy.validate(rtype, new, cur)
        causes += _finalizer_causes(meta, old_meta)
        self._raise_invalid(rtype, new, causes)
        gotypes.fill_object(new)
        if strategy.generation and strategy.spec_of(rtype, new) != strategy.spec_of(rtype, cur):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    # -- delete -----------------------------------------------------------------------------

    async def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: dict[str, Any], opts: WriteOptions
    ) -> Obj:
        strategy = self.strategy(rtype)
        cur = self.store.latest(rtype.storage_key, namespace, name)
        if cur is None:
            raise not_found(rtype.qualified, name, rtype.group, rtype.plural)
        self._check_preconditions(rtype, cur, options.get("preconditions") or {})
        strategy.before_delete(rtype, cur)
        if opts.dry_run:
            return strategy.encode(rtype, cur)
        meta = cur["metadata"]
        if meta.get("finalizers") or strategy.finalize_on_delete:
            if meta.get("deletionTimestamp"):
                return strategy.encode(rtype, cur)
            new = deep(cur)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            strategy.terminating(new)
            change = await self._stage("MODIFIED", rtype, strategy, new, cur)
            if strategy.finalize_on_delete:  # a Namespace: empty it, then remove it
                self.spawn(self.finish_namespace(name))
            return strategy.encode(rtype, change.obj)
        await self.cascade(rtype, cur)
        change = await self._stage("DELETED", rtype, strategy, deep(cur), cur)
        if strategy.return_deleted:
            return strategy.encode(rtype, change.obj)
        details = {"name": name, "kind": rtype.plural, "uid": meta.get("uid", "")}
        if rtype.group:
            details["group"] = rtype.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    async def cascade(self, rtype: ResourceType, obj: Obj) -> None:
        """Delete what goes with `obj` (a CRD's objects) before `obj` itself."""
        for key, namespace, name in self.strategy(rtype).dependents(obj, self.store):
            dependent = self.store.latest(key, namespace, name)
            target = self.registry.storage_type(key)
            if dependent is not None and target is not None:
                await self._stage("DELETED", target, self.strategy(target), deep(dependent), dependent)

    def _check_preconditions(self, rtype: ResourceType, cur: Obj, pre: dict[str, Any]) -> None:
        meta = cur["metadata"]
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            if pre.get(key) and pre[key] != meta.get(key):
                why = f"Precondition failed: {label} in precondition: {pre[key]}, "
                why += f"{label} in object meta: {meta.get(key)}"
                raise conflict(rtype.qualified, meta["name"], rtype.group, rtype.plural, why)

    # -- shared steps -----------------------------------------------------------------------

    def _check_body(
        self, rtype: ResourceType, body: Any, opts: WriteOptions, only: frozenset[str] | None = None
    ) -> Obj:
        """Bodies come here held to jsonsafe's rules (decoded, or patched by checked patches)."""
        obj = require_dict(body, "the request body")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, "", rtype.api_version):
            raise StatusError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version})",
            )
        if kind not in (None, "", rtype.kind):
            raise StatusError(
                400,
                f'{kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f'no kind "{kind}" is registered for version "{rtype.api_version}"',
            )
        rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        obj = {
            "apiVersion": rtype.api_version,
            "kind": rtype.kind,
            "metadata": obj.get("metadata") or {},
            **rest,
        }
        shapes.check(obj, self.strategy(rtype).shape_of(rtype), rtype.kind, rtype.version)
        typed.prune_unknown(rtype, obj, opts, only)
        return obj

    @staticmethod
    def _place(rtype: ResourceType, meta: dict[str, Any], namespace: str) -> None:
        if not rtype.namespaced:
            meta.pop("namespace", None)
        elif meta.get("namespace") and meta["namespace"] != namespace:
            raise StatusError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        else:
            meta["namespace"] = namespace

    def _check_namespace(self, namespace: str) -> None:
        ns = self.store.latest("/namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace, "", "namespaces")
        if ns["metadata"].get("deletionTimestamp"):
            raise StatusError(
                403,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": "namespaces"},
            )

    @staticmethod
    def _raise_invalid(rtype: ResourceType, obj: Obj, causes: list[Any]) -> None:
        if causes:
            name = obj.get("metadata", {}).get("name", "")
            raise invalid_object(rtype.qualified_kind, name, rtype.group, rtype.kind, causes)

    async def _stage(
        self, kind: str, rtype: ResourceType, strategy: Strategy, obj: Obj, old: Obj | None
    ) -> Change:
        meta = obj["metadata"]
        future = self.store.stage(kind, rtype.storage_key, meta.get("namespace", ""), meta["name"], obj, old)
        if kind == "DELETED":
            strategy.release(obj)
        change = await future
        strategy.committed(change)
        if kind == "DELETED" and change.namespace:
            self._after_namespaced_delete(change.namespace)
        return change

    # -- namespaces -------------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _after_namespaced_delete(self, namespace: str) -> None:
        ns = self.store.get("/namespaces", "", namespace)
        if ns is not None and ns["metadata"].get("deletionTimestamp") and namespace not in self._finishing:
            self.spawn(self.finish_namespace(namespace))

    async def finish_namespace(self, namespace: str) -> None:
        """Empty a terminating namespace, then remove it (what the namespace controller does)."""
        if namespace in self._finishing:
            return
        self._finishing.add(namespace)
        try:
            await self._finish_namespace(namespace)
        finally:
            self._finishing.discard(namespace)

    async def _finish_namespace(self, namespace: str) -> None:
        keys = {t.storage_key for t in self.registry if t.namespaced}
        for key in sorted(keys):
            target = self.registry.storage_type(key)
            for ns, name in self.store.latest_names(key, namespace):
                if target is not None:
                    try:
                        await self.delete(target, ns, name, {}, WriteOptions())
                    except StatusError as exc:
                        if exc.code != 404:
                            raise
        ns_obj = self.store.latest("/namespaces", "", namespace)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if any(self.store.latest_names(key, namespace) for key in keys):
            return  # objects with finalizers: finished when the last one goes
        ns_type = self.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        await self._stage("DELETED", ns_type, self.strategy(ns_type), deep(ns_obj), ns_obj)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _finalizer_causes(meta: dict[str, Any], old_meta: dict[str, Any]) -> list[Any]:
    if not old_meta.get("deletionTimestamp"):
        return []
    added = sorted(set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
    if not added:
        return []
    return [
        forbidden(
            "metadata.finalizers",
            f"no new finalizers can be added if the object is being deleted, found new finalizers {added}",
        )
    ]


def _comparable(obj: Obj, managed: bool) -> Obj:
    skip = ("resourceVersion",) if managed else ("resourceVersion", "managedFields")
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in skip}
    return {**obj, "metadata": meta}


def _same(new: Obj, cur: Obj) -> bool:
    """Whether an update changes nothing. A body without managedFields keeps the stored ones (as
    the real field manager does), so only managedFields a client sends count as a change."""
    managed = "managedFields" in new.get("metadata", {})
    return _comparable(new, managed) == _comparable(cur, managed)
