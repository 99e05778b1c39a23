"""HTTP handlers of resource URLs: verbs to the object pipeline, bodies, patches, watches, tables.

Turns one resolved `routing.Target` and its request into a call of `Objects` (writes), `Reads`
(get, list, watch) or the patches module, and the result into a response. Request bodies are
limited to 3 MiB like the real server, decoded from JSON or YAML; every error is a `StatusError`.
Called by `http.py`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lbipam.apiserver.errors import StatusError, not_found
from lbipam.apiserver.kinds import typed
from lbipam.apiserver.kinds.objects import Objects
from lbipam.apiserver.kinds.strategy import WriteOptions, deep
from lbipam.apiserver.patch import patches
from lbipam.apiserver.storage import jsonsafe
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Obj
from lbipam.apiserver.storage.watch import WatchHub, error_line, stream
from lbipam.apiserver.wire import protobuf, tables, yamlsafe
from lbipam.apiserver.wire.faults import Faults
from lbipam.apiserver.wire.limits import LIMITS, Limits
from lbipam.apiserver.wire.reads import Reads
from lbipam.apiserver.wire.routing import Target

MAX_BODY = 3 * 1024 * 1024
BIG_YAML = 64 * 1024  # bytes of YAML parsed off the event loop
_YAML_TURN = asyncio.Semaphore(1)
JSON_TYPES = ("", "application/json", "*/*")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def json_response(payload: Any, code: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json"}
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate got this far: \u-escaped, the response stays valid
        body = json.dumps(payload, separators=(",", ":")).encode()
    response = web.Response(body=body, status=code, headers=headers)
    for warning in warnings or ():
        response.headers.add("Warning", f'299 - "{_header_safe(warning)}"')
    return response


def _header_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")


async def read_body(request: web.Request) -> bytes:
    """The body, at most MAX_BODY bytes (413) sent within the body timeout (408)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise StatusError(413, f"Request entity too large: limit is {MAX_BODY}")
    if request.content.is_eof():  # it all came with the headers, as small bodies do
        data = await request.read()
        if len(data) > MAX_BODY:
            raise StatusError(413, f"Request entity too large: limit is {MAX_BODY}")
        return data
    chunks, size = [], 0
    limits = request.app.get(LIMITS) or Limits()
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_BODY:
                    raise StatusError(413, f"Request entity too large: limit is {MAX_BODY}")
                chunks.append(chunk)
    except TimeoutError:
        raise StatusError(408, f"the request body did not arrive within {limits.body_timeout:g}s") from None
    return b"".join(chunks)


def media_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def decode(data: bytes, ctype: str) -> Any:
    """A JSON or YAML request body; 400 for malformed text or values no client could read back
    (`jsonsafe`, `yamlsafe`), 415 for other media types."""
    if ctype in JSON_TYPES:
        try:
            return jsonsafe.loads(data)
        except StatusError as exc:
            raise StatusError(400, f"couldn't get version/kind; {exc.message}") from None
    if ctype in YAML_TYPES or ctype == APPLY:
        return yamlsafe.load_one(data)
    raise StatusError(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml",
    )


async def decode_async(data: bytes, ctype: str, rtype: ResourceType | None = None) -> Any:
    """`decode`, with a large YAML body parsed in a worker thread (one at a time): PyYAML needs
    seconds for a few MiB, and the event loop keeps serving meanwhile. With the resource type the
    body is sent to: protobuf too for the built-in kinds (custom resources have no protobuf form,
    as in Kubernetes)."""
    builtin = rtype is not None and rtype.builtin
    if builtin and ctype == protobuf.MEDIA_TYPE:
        assert rtype is not None
        try:
            value = protobuf.decode(data, rtype.group, rtype.version, rtype.kind)
        except protobuf.ProtobufError as exc:
            raise protobuf.status_error(exc, rtype.kind, rtype.version, data) from None
        jsonsafe.check(value, "protobuf body")  # the JSON rules hold too (e.g. a NaN double)
        return value
    try:
        if len(data) < BIG_YAML or ctype in JSON_TYPES or data.lstrip()[:1] == b"{":
            return decode(data, ctype)
        async with _YAML_TURN:
            return await asyncio.to_thread(decode, data, ctype)
    except StatusError as exc:
        if exc.code == 415 and builtin:
            exc.message += ", " + protobuf.MEDIA_TYPE
            exc.args = (exc.message,)
        raise


async def read_decoded(request: web.Request, rtype: ResourceType | None = None) -> Any:
    """The request body, read within the size limit and decoded."""
    return await decode_async(await read_body(request), media_type(request), rtype)


def write_options(request: web.Request) -> WriteOptions:
    query = request.query
    dry_run = query.getall("dryRun", [])
    for value in dry_run:
        if value != "All":
            raise StatusError(400, f'dryRun: Unsupported value: "{value}": supported values: "All"')
    validation = query.get("fieldValidation", "Warn") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise StatusError(
            400,
            f'fieldValidation: Unsupported value: "{validation}": '
            'supported values: "Ignore", "Strict", "Warn"',
        )
    manager = query.get("fieldManager", "")
    return WriteOptions(
        dry_run=bool(dry_run),
        field_manager=manager or None,
        manager=patches.manager_from_user_agent(manager, request.headers.get("User-Agent", "")),
        field_validation=validation,
        force=query.get("force", "").lower() == "true",
    )


class ResourceHandlers:
    def __init__(
        self, objects: Objects, reads: Reads, hub: WatchHub, faults: Faults, bookmark_interval: float
    ) -> None:
        self.objects = objects
        self.reads = reads
        self.hub = hub
        self.faults = faults
        self.bookmark_interval = bookmark_interval

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            self.faults.check_write(target.rtype, target.name)
        if target.name is None:
            return await self._collection(request, target)
        if target.watch and method == "GET":
            query = dict(request.query)
            query["fieldSelector"] = ",".join(
                s for s in (query.get("fieldSelector", ""), f"metadata.name={target.name}") if s
            )
            return await self.watch(request, target, query)
        namespace = target.namespace or ""
        if method == "GET":
            return self.respond(request, target.rtype, self.reads.get(target.rtype, namespace, target.name))
        opts = write_options(request)
        if method == "PUT":
            body = await read_decoded(request, target.rtype)
            code, obj = await self.objects.update(
                target.rtype, namespace, target.name, body, target.subresource, opts
            )
            return json_response(obj, code, opts.warnings)
        if method == "PATCH":
            code, obj = await self.patch(request, target, opts)
            return json_response(obj, code, opts.warnings)
        if method == "DELETE" and not target.subresource:
            options = await self._delete_options(request, target.rtype)
            return json_response(
                await self.objects.delete(target.rtype, namespace, target.name, options, opts)
            )
        raise StatusError(405, "the server does not allow this method on the requested resource")

    async def _collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        rtype, method = target.rtype, request.method
        if method == "GET":
            if target.watch or request.query.get("watch", "").lower() in ("true", "1"):
                return await self.watch(request, target, request.query)
            return self.respond(
                request, rtype, self.reads.list_objects(rtype, target.namespace, request.query)
            )
        if method == "POST" and (target.namespace is not None or not rtype.namespaced):
            opts = write_options(request)
            body = await read_decoded(request, rtype)
            obj = await self.objects.create(rtype, target.namespace or "", body, opts)
            return json_response(obj, 201, opts.warnings)
        if method == "DELETE":
            return await self._delete_collection(request, target)
        raise StatusError(405, "the server does not allow this method on the requested resource")

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        opts = write_options(request)
        options = await self._delete_options(request, target.rtype)
        listed = self.reads.list_objects(target.rtype, target.namespace, request.query)
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                await self.objects.delete(
                    target.rtype, meta.get("namespace", ""), meta["name"], options, opts
                )
            except StatusError as exc:
                if exc.code != 404:
                    raise
            deleted.append(item)
        listed["items"] = deleted
        return json_response(listed)

    async def _delete_options(self, request: web.Request, rtype: ResourceType) -> dict[str, Any]:
        data = await read_body(request)
        if not data.strip():
            return {}
        options = await decode_async(data, media_type(request), rtype)
        if not isinstance(options, dict):
            raise StatusError(400, "the body of a DELETE must be a DeleteOptions object")
        return options

    async def patch(self, request: web.Request, target: Target, opts: WriteOptions) -> tuple[int, Obj]:
        rtype, namespace, name = target.rtype, target.namespace or "", target.name or ""
        ctype = media_type(request)
        data = await read_body(request)
        strategy = self.objects.strategy(rtype)
        current = self.objects.store.latest(rtype.storage_key, namespace, name)
        original = deep(strategy.encode(rtype, current)) if current is not None else None
        if ctype == APPLY:
            if not opts.field_manager:
                raise patches.missing_field_manager()
            applied = await decode_async(data, APPLY)
            if not isinstance(applied, dict):
                raise StatusError(400, "the apply configuration must be an object")
            typed.prune_unknown(rtype, applied, opts)
            if original is None and target.subresource:
                raise self._missing(rtype, name)
            new = patches.server_side_apply(
                rtype, original, applied, opts.field_manager, opts.force, target.subresource
            )
            opts.applied = True
            if original is None:
                return 201, await self.objects.create(rtype, namespace, new, opts)
        elif ctype in PATCH_TYPES:
            if opts.force:
                raise patches.force_without_apply()
            if original is None:
                raise self._missing(rtype, name)
            new = patches.apply_patch(rtype, ctype, original, data)
        else:
            raise StatusError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        return await self.objects.update(rtype, namespace, name, new, target.subresource, opts, patched=True)

    @staticmethod
    def _missing(rtype: ResourceType, name: str) -> StatusError:
        return not_found(rtype.qualified, name, rtype.group, rtype.plural)

    async def watch(self, request: web.Request, target: Target, query: Any) -> web.StreamResponse:
        rtype = target.rtype
        timeout = _timeout(query.get("timeoutSeconds"))
        limits = request.app.get(LIMITS) or Limits()
        if self.hub.count() >= limits.max_watches:
            raise StatusError(
                429, f"too many open watches (at most {limits.max_watches})", details={"retryAfterSeconds": 1}
            )
        watcher, end_marker, error = self.reads.open_watch(rtype, target.namespace, query)
        if error is not None:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(error_line(error))
            await response.write_eof()
            return response
        bookmarks = query.get("allowWatchBookmarks", "").lower() == "true"
        self.hub.add(watcher)
        try:
            return await stream(
                request,
                watcher,
                self._event_encoder(request, rtype),
                (lambda: self.reads.bookmark(rtype)) if bookmarks else None,
                self.bookmark_interval,
                timeout,
                end_marker,
            )
        finally:
            self.hub.remove(watcher)

    def respond(self, request: web.Request, rtype: ResourceType, payload: Obj) -> web.Response:
        """JSON, or a meta.k8s.io Table when the client asks for one (kubectl get)."""
        if not tables.wants_table(request.headers.get("Accept")):
            return json_response(payload)
        include = tables.include_object(request.query.get("includeObject"))
        if "items" in payload and payload.get("kind") == rtype.list_kind:
            items, list_meta = payload["items"], payload["metadata"]
        else:
            items, list_meta = [payload], {}
        table = tables.render_table(rtype, items, list_meta=list_meta, include_object=include)
        response = json_response(table)
        response.content_type = "application/json"
        response.headers["Content-Type"] = tables.TABLE_CONTENT_TYPE
        return response

    def _event_encoder(self, request: web.Request, rtype: ResourceType) -> Callable[[Obj], Obj]:
        """Objects of watch events: as stored, or Table rows (headers with the first event)."""
        strategy = self.objects.strategy(rtype)
        if not tables.wants_table(request.headers.get("Accept")):
            return lambda obj: strategy.encode(rtype, obj)
        include = tables.include_object(request.query.get("includeObject"))
        first = [True]

        def encode(obj: Obj) -> Obj:
            table = tables.render_table(
                rtype,
                [strategy.encode(rtype, obj)],
                list_meta={},
                include_object=include,
                no_headers=not first[0],
            )
            first[0] = False
            return table

        return encode


def _timeout(text: str | None) -> float:
    """timeoutSeconds, or the real server's default: a random 30 to 60 minutes."""
    if text:
        try:
            return max(float(int(text)), 0.0)
        except ValueError:
            raise StatusError(400, f"timeoutSeconds: invalid integer {text!r}") from None
    return 1800.0 * (1 + random.random())
