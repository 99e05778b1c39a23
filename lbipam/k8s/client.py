"""`Kube`: lbipam's one door to the Kubernetes API, over plain JSON dicts.

Built on kubernetes_asyncio's configuration loaders and `ApiClient.call_api` at the raw level
(`_preload_content=False`): the client handles kubeconfig, TLS, tokens and its connection pool,
and lbipam reads and writes plain JSON instead of building V1 models (PERF.md: ~0.6 ms a model
against ~17 us for json.loads). Every failure surfaces as an `lbipam.k8s.errors` type.

Callers: the informer, status writer, event recorder and leader elector in this package, the
controllers and speaker (through those), and `lbipam` commands that read objects once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, NamedTuple

import aiohttp
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import OpenApiException
from kubernetes_asyncio.config import ConfigException

from lbipam import __version__
from lbipam.k8s.config import load_configuration, use_trust_env
from lbipam.k8s.errors import KubeConfigError, PermanentError, TemporaryError, error_from_body
from lbipam.k8s.resources import Resource, object_key
from lbipam.k8s.wire import (
    PATCH_CONTENT_TYPES,
    JsonLines,
    Obj,
    PatchType,
    Selector,
    parse_watch_event,
    query_params,
    selector_text,
)

USER_AGENT = f"lbipam/{__version__}"


def user_agent_for(component: str) -> str:
    """The User-Agent of one lbipam process, e.g. "lbipam-controller/0.1.0": the API server's
    audit log (and tests/test_rbac.py) tell the processes apart by it."""
    return f"lbipam-{component}/{__version__}"


class Listing(NamedTuple):
    """Every item of a (possibly paginated) list, and the list's resourceVersion to watch from."""

    items: list[Obj]
    resource_version: str


def _transport_error(method: str, path: str, err: BaseException) -> TemporaryError:
    if isinstance(err, TimeoutError):
        return TemporaryError(f"{method} {path}: timed out", reason="Timeout")
    return TemporaryError(f"{method} {path}: {type(err).__name__}: {err}", reason="ConnectionError")


_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class Kube:
    """Typed, model-free access to the API. Objects in and out are plain dicts."""

    def __init__(self, api: Any, *, request_timeout: float = 30.0) -> None:
        self._api = api
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=min(request_timeout, 10.0))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    @property
    def trust_env(self) -> bool:
        """Whether the HTTP session consults proxy variables and .netrc (off unless a proxy is set)."""
        return bool(self._api.rest_client.pool_manager.trust_env)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport -------------------------------------------------------------------------------

    async def _open(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        limits: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=limits or self._timeout,
            )
        except _TRANSPORT_ERRORS as err:
            raise _transport_error(method, path, err) from err
        except OpenApiException as err:
            raise PermanentError(f"{method} {path}: {err}", reason="ClientError") from err
        except ConfigException as err:  # refreshing an exec-plugin or in-cluster token failed
            raise KubeConfigError(f"{method} {path}: credentials: {err}", reason="Credentials") from err
        return response

    async def _request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        response = await self._open(method, path, query, body, content_type)
        try:
            data = await response.read()
        except _TRANSPORT_ERRORS as err:
            raise _transport_error(method, path, err) from err
        finally:
            response.release()
        if response.status >= 300:
            raise error_from_body(response.status, data, response.headers.get("Retry-After"))
        try:
            result = json.loads(data)
        except ValueError as err:
            raise PermanentError(f"{method} {path}: response is not JSON", reason="BadResponse") from err
        if not isinstance(result, dict):
            raise PermanentError(f"{method} {path}: response is not an object", reason="BadResponse")
        return result

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, *, namespace: str | None = None) -> Obj:
        return await self._request("GET", res.path(namespace, name))

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a list: the List object (items, metadata.resourceVersion/continue)."""
        params = query_params(
            labelSelector=selector_text(label_selector),
            fieldSelector=selector_text(field_selector),
            limit=limit,
            resourceVersion=resource_version,
            **{"continue": continue_},
        )
        page = await self._request("GET", res.path(namespace), params)
        for item in page.get("items") or ():
            # List items come without kind/apiVersion; watch events and gets have them.
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return page

    async def list_all(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        page_size: int = 500,
    ) -> Listing:
        """Every item, following `continue`; an expired continue token raises `Expired`."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = await self.list(
                res,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=page_size,
                continue_=token,
            )
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return Listing(items, str(meta.get("resourceVersion") or ""))

    async def watch(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        timeout_seconds: int | None = None,
        bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """(type, object) for each event: ADDED, MODIFIED, DELETED, BOOKMARK.

        The stream ends when the server closes it (timeoutSeconds) or raises TemporaryError when
        it breaks; an ERROR event raises its typed error (a too-old resourceVersion -> Expired).
        Close it early with `contextlib.aclosing`.
        """
        params = query_params(
            watch=True,
            resourceVersion=resource_version,
            labelSelector=selector_text(label_selector),
            fieldSelector=selector_text(field_selector),
            allowWatchBookmarks=bookmarks,
            timeoutSeconds=timeout_seconds,
        )
        # No total deadline on a stream; a silent connection is dead once it outlives the
        # server-side timeout by a margin.
        idle = timeout_seconds + 30 if timeout_seconds else None
        limits = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=idle)
        path = res.path(namespace)
        response = await self._open("GET", path, params, limits=limits)
        try:
            if response.status >= 300:
                body = await response.read()
                raise error_from_body(response.status, body, response.headers.get("Retry-After"))
            lines = JsonLines()
            async for chunk in response.content.iter_any():
                for line in lines.feed(chunk):
                    yield parse_watch_event(line)
            for line in lines.flush():
                yield parse_watch_event(line)
        except _TRANSPORT_ERRORS as err:
            raise _transport_error("WATCH", path, err) from err
        finally:
            # A half-read stream cannot go back to the pool: close the connection.
            response.close()

    # -- writes ----------------------------------------------------------------------------------

    async def create(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        namespace = namespace or object_key(obj)[0] or None
        params = query_params(fieldManager=field_manager)
        return await self._request("POST", res.path(namespace), params, body=dict(obj))

    async def replace(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT the whole object; its metadata.resourceVersion makes it conditional (409 if stale)."""
        namespace, name = object_key(obj)
        if not name:
            raise ValueError(f"{res.kind}: replace needs metadata.name")
        path = res.path(namespace or None, name, subresource)
        return await self._request("PUT", path, query_params(fieldManager=field_manager), body=dict(obj))

    async def patch(
        self,
        res: Resource,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Obj:
        """PATCH with an explicit Content-Type: merge (default), json, strategic or apply."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"{res.kind} {name}: unknown patch type {patch_type!r}")
        if patch_type == "json" and not isinstance(body, list):
            raise ValueError(f"{res.kind} {name}: a JSON patch is a list of operations")
        if patch_type != "json" and not isinstance(body, Mapping):
            raise ValueError(f"{res.kind} {name}: a {patch_type} patch is an object")
        if patch_type == "apply" and not field_manager:
            raise ValueError(f"{res.kind} {name}: an apply patch needs a field manager")
        if force is not None and patch_type != "apply":
            raise ValueError(f"{res.kind} {name}: force applies only to apply patches")
        if isinstance(body, Mapping):
            body = dict(body)
        params = query_params(fieldManager=field_manager, force=force)
        path = res.path(namespace, name, subresource)
        return await self._request("PATCH", path, params, body, PATCH_CONTENT_TYPES[patch_type])

    async def delete(
        self,
        res: Resource,
        name: str,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: str | None = None,
    ) -> Obj:
        """DELETE; `resource_version`/`uid` are preconditions (409 if they no longer hold)."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {k: v for k, v in (("resourceVersion", resource_version), ("uid", uid)) if v}
        if preconditions:
            options["preconditions"] = preconditions
        if propagation:
            options["propagationPolicy"] = propagation
        return await self._request("DELETE", res.path(namespace, name), body=options)


async def connect(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    request_timeout: float = 30.0,
    user_agent: str = USER_AGENT,
) -> Kube:
    """A `Kube` for `kubeconfig`, else $KUBECONFIG, else the in-cluster service account,
    else ~/.kube/config. Raises `KubeConfigError` when none of them works. `user_agent`: who is
    calling, e.g. `user_agent_for("controller")`."""
    configuration = await load_configuration(kubeconfig, context=context)
    api = ApiClient(configuration)
    api.user_agent = user_agent
    if not use_trust_env(configuration):
        # kubernetes_asyncio builds its session with trust_env=True: two thread-pool hops (netrc,
        # proxy variables) per request, ~2 ms of its 3.4 ms (PERF.md). Keep its connector (TLS,
        # pool size) and swap the session for one that skips them.
        old = api.rest_client.pool_manager
        api.rest_client.pool_manager = aiohttp.ClientSession(
            connector=old.connector, trust_env=False, read_bufsize=2**21
        )
        old.detach()
    return Kube(api, request_timeout=request_timeout)
