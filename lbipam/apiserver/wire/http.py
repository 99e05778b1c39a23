"""The aiohttp application of the embedded server: routing, authentication, errors as Status.

One catch-all route dispatches by path: discovery and OpenAPI documents (built by `discovery.py`
and `openapi.py`), health checks, the fault-injection endpoint (only when enabled), and resource
URLs (handed to `handlers.py`). Middleware checks the bearer token (unless the server is insecure):
without it only `PUBLIC_PATHS` answer, as Kubernetes' system:public-info-viewer allows, and
everything else is 401. Another middleware turns every error into a
Kubernetes `Status` body: the `StatusError`s the pipeline raises, aiohttp's own HTTP errors, and,
as a last resort, any unexpected exception as a 500 (logged with its traceback). Built by
`server.py`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from lbipam.apiserver.errors import NO_RESOURCE, StatusError
from lbipam.apiserver.storage.registry import Registry
from lbipam.apiserver.wire import audit, discovery, openapi, protobuf
from lbipam.apiserver.wire.faults import Faults
from lbipam.apiserver.wire.handlers import ResourceHandlers, decode, json_response, media_type, read_body
from lbipam.apiserver.wire.routing import Discovery, Target, resolve

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULTS_PATH = "/debug/lbipam/faults"
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
PUBLIC_PATHS = frozenset((*HEALTH_PATHS, "/version", "/version/"))


def status_response(error: StatusError) -> web.Response:
    response = json_response(error.to_status(), error.code)
    retry = error.details.get("retryAfterSeconds")
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    return response


def make_app(
    registry: Registry,
    resources: ResourceHandlers,
    faults: Faults | None,
    token: str | None,
    recorder: audit.Recorder | None = None,
    not_ready: Callable[[], Awaitable[str | None]] | None = None,
) -> web.Application:
    """`not_ready`: why /readyz should fail now, or None (always ready when not given)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as exc:
            return status_response(exc)
        except web.HTTPException as exc:  # aiohttp's own, e.g. a malformed request
            return status_response(StatusError(exc.status, exc.reason or exc.text or "request failed"))
        except Exception as exc:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return status_response(StatusError(500, f"Internal error occurred: {type(exc).__name__}: {exc}"))

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(errors="replace"), expected):
                return status_response(StatusError(401, "Unauthorized"))
        return await handler(request)

    expected = f"Bearer {token}".encode()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == FAULTS_PATH and faults is not None:
            return await _faults(request, faults)
        if path.rstrip("/") in HEALTH_PATHS or path.startswith(tuple(p + "/" for p in HEALTH_PATHS)):
            problem = await not_ready() if not_ready is not None and path.startswith("/readyz") else None
            if problem is not None:  # as kube-apiserver words a failed check
                return web.Response(
                    text=f"[-]{problem}\nreadyz check failed\n", status=500, content_type="text/plain"
                )
            return web.Response(text="ok", content_type="text/plain")
        target = resolve(registry, path)
        if isinstance(target, Target):
            return await resources.handle(request, target)
        if request.method not in ("GET", "HEAD"):
            if target is None and not _is_document(path):
                raise StatusError(404, NO_RESOURCE, details={})
            raise StatusError(405, "the server does not allow this method on the requested resource")
        if isinstance(target, Discovery):
            return _discovery(request, registry, target)
        if path == "/openapi/v2" and not _accepts_json(request.headers.get("Accept", "")):
            return _openapi_v2_protobuf(request.headers.get("Accept", ""))
        document = _document(registry, path)
        if document is None:
            raise StatusError(404, NO_RESOURCE, details={})
        return json_response(document)

    middlewares: list[Middleware] = [errors, authenticate]
    if recorder is not None:  # after authentication: what an authorizer would be asked
        middlewares.append(audit.middleware(recorder))
    app = web.Application(middlewares=middlewares, client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _accepts_json(accept: str) -> bool:
    if not accept.strip():
        return True
    types = {part.split(";")[0].strip() for part in accept.split(",")}
    return bool(types & {"application/json", "application/*", "*/*"})


def _openapi_v2_protobuf(accept: str) -> web.Response:
    """What kubectl asks /openapi/v2 for: protobuf only (client-side validation of kinds the
    OpenAPI v3 documents lack). A Swagger 2.0 document naming the API and holding no definitions:
    kubectl then skips validating a kind no server knows and reports it as Kubernetes does ("no
    matches for kind"); everything else kubectl reads from OpenAPI v3."""
    if not any(part.split(";")[0].strip() in protobuf.OPENAPI_V2_TYPES for part in accept.split(",")):
        raise StatusError(406, "only application/json and the protobuf OpenAPI v2 form are served here")
    version = discovery.version_info()["gitVersion"]
    body = protobuf.openapi_v2_header("Kubernetes", version)
    return web.Response(body=body, headers={"Content-Type": protobuf.OPENAPI_V2_TYPES[-1]})


def _is_document(path: str) -> bool:
    return path == "/version" or path.startswith("/openapi/")


def _document(registry: Registry, path: str) -> dict[str, Any] | None:
    """/version and the OpenAPI documents."""
    rtypes = registry.all()
    if path.rstrip("/") == "/version":
        return discovery.version_info()
    if path == "/openapi/v2":
        return openapi.openapi_v2(rtypes)
    if path.rstrip("/") == "/openapi/v3":
        return openapi.openapi_v3_index(rtypes)
    if path.startswith("/openapi/v3/"):
        gv = path.removeprefix("/openapi/v3/").strip("/")
        gv = gv.removeprefix("apis/") if gv.startswith("apis/") else gv.removeprefix("api/")
        return openapi.openapi_v3_group(gv, rtypes)
    return None


def _discovery(request: web.Request, registry: Registry, target: Discovery) -> web.Response:
    rtypes = registry.all()
    if target.group is None:
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", ""):
            aggregated = discovery.aggregated_discovery(rtypes, target.core)
            if aggregated is not None:
                version = str(aggregated.get("apiVersion", "apidiscovery.k8s.io/v2")).rpartition("/")[2]
                response = json_response(aggregated)
                response.headers["Content-Type"] = (
                    f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
                )
                return response
        if target.core:
            return json_response(discovery.core_api_versions(request.host))
        return json_response(discovery.api_group_list(rtypes))
    if target.version is None:
        for group in discovery.api_group_list(rtypes).get("groups", []):
            if group.get("name") == target.group:
                return json_response({"kind": "APIGroup", "apiVersion": "v1", **group})
        raise StatusError(404, NO_RESOURCE, details={})
    group_version = f"{target.group}/{target.version}" if target.group else target.version
    return json_response(discovery.api_resource_list(group_version, rtypes))


async def _faults(request: web.Request, faults: Faults) -> web.Response:
    if request.method == "GET":
        return json_response({"pending": faults.pending()})
    if request.method != "POST":
        raise StatusError(405, "the server does not allow this method on the requested resource")
    return json_response(faults.apply(decode(await read_body(request), media_type(request))))
