"""Optional request recording: which client called which API verb on what, in RBAC's terms.

Off unless `EmbeddedAPIServer(recorder=Recorder())`; then `http.py` adds `middleware(recorder)`,
which records every request that passed authentication, before it is routed, so a call to a kind
the server does not serve (yet) is recorded too, as Kubernetes authorizes before it routes.
Requests are named the way kube-apiserver's RequestInfoFactory names them for the authorizer:
verbs get, list, watch, create, update, patch, delete, deletecollection; the resource and
subresource from the URL; the name also from a `metadata.name=` field selector on a list or watch
(so `resourceNames` rules can be checked). Used by tests/test_rbac.py to compare what lbipam's
processes call with what deploy/'s ClusterRoles grant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_METHOD_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool


@dataclass(frozen=True, slots=True)
class Call:
    """One request. Non-resource requests (discovery, /version) have resource "" and a `path`."""

    user_agent: str
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def component(self) -> str:
        """The user agent up to its first '/': "lbipam-controller/0.1.0" -> "lbipam-controller"."""
        return self.user_agent.split("/", 1)[0]


def request_info(method: str, path: str, query: Mapping[str, str], user_agent: str = "") -> Call:
    """Name a request as kube-apiserver's authorizer sees it (pure)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:  # /version, /openapi/..., /api, /apis/<group>[/<version>]: no resource
        return Call(user_agent, method.lower(), path=path)
    verb = "watch" if rest[0] == "watch" and method in ("GET", "HEAD") else _METHOD_VERBS.get(method, "")
    if rest[0] == "watch":
        rest = rest[1:]
    if not rest:
        return Call(user_agent, method.lower(), path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource, name = rest[0], rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "watch" else ""
    if method == "DELETE":
        verb = "delete" if name else "deletecollection"
    elif verb == "get" and not name:
        verb = "watch" if query.get("watch", "") in _TRUE else "list"
    if verb in ("list", "watch") and not name:
        name = _exact_name(query.get("fieldSelector", ""))
    return Call(user_agent, verb or method.lower(), group, resource, subresource, namespace, name)


def _exact_name(field_selector: str) -> str:
    """The name a `metadata.name=X` (or `==X`) term pins, as RequiresExactMatch finds it."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name":  # "metadata.name!=x" leaves "metadata.name!"
            return value.strip()
    return ""


class Recorder:
    """Every request seen, in order of arrival. Not bounded: for tests and short diagnostics."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def record(self, method: str, path: str, query: Mapping[str, str], user_agent: str) -> None:
        self.calls.append(request_info(method, path, query, user_agent))

    def clear(self) -> None:
        self.calls.clear()


def middleware(recorder: Recorder) -> Middleware:
    """An aiohttp middleware that records each request with `recorder`, then serves it."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        recorder.record(request.method, request.path, request.query, request.headers.get("User-Agent", ""))
        return await handler(request)

    return record
