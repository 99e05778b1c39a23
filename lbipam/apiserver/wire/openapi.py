"""OpenAPI documents for the embedded server: /openapi/v2 (JSON) and /openapi/v3.

Owned by the discovery owner; the HTTP layer serves what these return.

    openapi_v2(rtypes) -> dict                               # GET /openapi/v2 (JSON only)
    openapi_v3_index(rtypes) -> dict                         # GET /openapi/v3
    openapi_v3_group(group_version, rtypes) -> dict | None   # GET /openapi/v3/api/v1, .../apis/<g>/<v>

What kubectl 1.32 needs: `apply`, `create`, `replace` and `edit` validate with the server
(`?fieldValidation=Strict`) once the group-version's v3 document lists that query parameter on
the kind's PATCH operation, and client-side `apply` reads `x-kubernetes-patch-*` from the v3
schemas of built-in kinds; `explain` reads v3 too. kubectl fetches /openapi/v2 only as protobuf
(`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which this server does not
speak: answer such a request with 406 (client-go then tries /swagger-2.0.0.pb-v1: 404), and
serve `openapi_v2` to clients that accept application/json. The v3 index URLs carry a `hash` of
their document; serve /openapi/v3/... whatever `hash` says (client-go caches by URL).

Built-in schemas are Kubernetes 1.32's definitions for the kinds served here (and what they
reference), vendored by `kinds/definitions.py`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from lbipam.apiserver.kinds import definitions
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.wire.discovery import GIT_VERSION

Doc = dict[str, Any]
_META = definitions.META
_OBJECT_META = _META + "ObjectMeta"
_LIST_META = _META + "ListMeta"
_PACKAGES = definitions.PACKAGES
_PATCH_TYPES = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
_SMP = "application/strategic-merge-patch+json"
_upstream = definitions.upstream
_refs = definitions.refs


# --- definitions ---------------------------------------------------------------------------------


def _convert(node: Any, ref_prefix: str, v3: bool) -> Any:
    """JSON-schema form -> OpenAPI form: single types, refs into `ref_prefix`."""
    if isinstance(node, list):
        return [_convert(v, ref_prefix, v3) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out["$ref"] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out["type"] = kinds[0]
        elif key == "properties":
            out[key] = {k: _convert(v, ref_prefix, v3) for k, v in value.items()}
        else:
            out[key] = _convert(value, ref_prefix, v3)
    if v3 and "$ref" in out and len(out) > 1:  # siblings of a $ref: v3 documents wrap it in allOf
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


@functools.cache
def _builtin_definitions(v3: bool) -> dict[str, Any]:
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    out: dict[str, Any] = {}
    for name, schema in _upstream().items():
        if name.rsplit(".", 1)[0] not in {*_PACKAGES.values(), _META[:-1]} and not name.startswith(
            "io.k8s.apimachinery"
        ):
            continue
        converted: dict[str, Any] = _SPECIAL.get(name) or _convert(schema, prefix, v3)
        for field in ("apiVersion", "kind"):  # kubernetes-validate's addition; the real spec has none
            (converted.get("properties") or {}).get(field, {}).pop("enum", None)
        out[name] = converted
    return out


def _closure(roots: Iterable[str], defs: dict[str, Any]) -> dict[str, Any]:
    """The definitions reachable from `roots`."""
    out: dict[str, Any] = {}
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = defs[name]
        text = json.dumps(defs[name])
        todo.extend(ref for ref in _refs(text) if ref in defs and ref not in out)
    return out


def definition_name(rtype: ResourceType) -> str:
    """`io.k8s.api.core.v1.Service`, `io.lbipam.v1alpha1.LoadBalancerIPPool`."""
    package = _PACKAGES.get((rtype.group, rtype.version))
    if rtype.builtin and package:
        return f"{package}.{rtype.kind}"
    reverse = ".".join(reversed(rtype.group.split(".")))
    return f"{reverse}.{rtype.version}.{rtype.kind}"


def _gvk(rtype: ResourceType, kind: str | None = None) -> dict[str, str]:
    return {"group": rtype.group, "kind": kind or rtype.kind, "version": rtype.version}


def _custom_definitions(rtype: ResourceType, prefix: str, v3: bool) -> dict[str, Any]:
    """A CRD kind's schema (metadata as ObjectMeta) and its List."""
    schema = copy.deepcopy(rtype.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    if not v3:
        schema = _strip_v2(schema)
    meta_ref = {"$ref": prefix + _OBJECT_META}
    props = schema.setdefault("properties", {})
    props["metadata"] = {
        "description": "Standard object's metadata.",
        **({"allOf": [meta_ref]} if v3 else meta_ref),
    }
    schema["x-kubernetes-group-version-kind"] = [_gvk(rtype)]
    name = definition_name(rtype)
    items = {"type": "array", "items": {"$ref": prefix + name}}
    list_meta = {"$ref": prefix + _LIST_META}
    listing = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": items,
            "kind": {"type": "string"},
            "metadata": {"allOf": [list_meta]} if v3 else list_meta,
        },
        "x-kubernetes-group-version-kind": [_gvk(rtype, rtype.list_kind)],
    }
    return {name: schema, name + "List": listing}


def _strip_v2(schema: Any) -> Any:
    """What the real server drops converting CRD schemas to OpenAPI v2."""
    if isinstance(schema, list):
        return [_strip_v2(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    drop = {"oneOf", "anyOf", "not", "allOf", "nullable", "x-kubernetes-validations"}
    return {k: _strip_v2(v) for k, v in schema.items() if k not in drop}


def _definitions(types: list[ResourceType], v3: bool) -> dict[str, Any]:
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    builtin = _builtin_definitions(v3)
    roots = [definition_name(t) for t in types if t.builtin]
    roots += [n + "List" for n in roots]
    roots += [
        _OBJECT_META,
        _LIST_META,
        _META + "Status",
        _META + "Patch",
        _META + "DeleteOptions",
        _META + "WatchEvent",
    ]
    out = _closure(roots, builtin)
    for t in types:
        if not t.builtin:
            out.update(_custom_definitions(t, prefix, v3))
        elif definition_name(t) not in out:  # no upstream definitions: an open schema
            out[definition_name(t)] = _open_schema(t)
    return out


def _open_schema(t: ResourceType) -> dict[str, Any]:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk(t)],
    }


# --- paths -----------------------------------------------------------------------------------------

_QUERY = {
    "write": ("dryRun", "fieldManager", "fieldValidation"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force"),
    "delete": ("dryRun", "gracePeriodSeconds", "propagationPolicy"),
    "list": (
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "timeoutSeconds",
        "watch",
    ),
}
_INTEGER = {"gracePeriodSeconds", "limit", "timeoutSeconds"}
_BOOLEAN = {"allowWatchBookmarks", "force", "watch"}


def _param(name: str, where: str, v3: bool) -> dict[str, Any]:
    kind = "integer" if name in _INTEGER else "boolean" if name in _BOOLEAN else "string"
    param: dict[str, Any] = {"name": name, "in": where, "description": name}
    if where == "path":
        param["required"] = True
    if v3:
        param["schema"] = {"type": kind, "uniqueItems": True}
    else:
        param.update(type=kind, uniqueItems=True)
    return param


def _op(
    t: ResourceType, action: str, verb: str, v3: bool, query: str = "", body: str = "", kind: str = ""
) -> Doc:
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    out_ref = {"$ref": prefix + (kind or definition_name(t))}
    tag = (t.group.split(".")[0] if t.group else "core") + "_" + t.version
    op: Doc = {
        "tags": [tag],
        "operationId": f"{verb}{t.kind}",
        "parameters": [_param(p, "query", v3) for p in _QUERY.get(query, ())],
    }
    if body:
        types = (
            [*_PATCH_TYPES, *([_SMP] if t.builtin and _upstream() else [])] if body == "patch" else ["*/*"]
        )
        in_ref = {"$ref": prefix + (_META + "Patch" if body == "patch" else definition_name(t))}
        if v3:
            op["requestBody"] = {
                "content": {ct: {"schema": in_ref} for ct in sorted(types)},
                "required": True,
            }
        else:
            op["consumes"] = sorted(types)
            op["parameters"].insert(0, {"name": "body", "in": "body", "required": True, "schema": in_ref})
    if v3:
        content = {ct: {"schema": out_ref} for ct in ("application/json", "application/yaml")}
        op["responses"] = {
            "200": {"description": "OK", "content": content},
            "401": {"description": "Unauthorized"},
        }
    else:
        op["produces"] = ["application/json", "application/yaml"]
        op["responses"] = {
            "200": {"description": "OK", "schema": out_ref},
            "401": {"description": "Unauthorized"},
        }
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = _gvk(t)
    return op


def _paths(t: ResourceType, v3: bool) -> dict[str, Doc]:
    base = f"/apis/{t.group}/{t.version}" if t.group else "/api/v1"
    scope = f"{base}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{base}/{t.plural}"
    scope_params = [_param("namespace", "path", v3)] if t.namespaced else []
    list_kind = definition_name(t) + "List"
    status_ref = _META + "Status"
    paths: dict[str, Doc] = {
        scope: {
            "get": _op(t, "list", "list", v3, "list", kind=list_kind),
            "post": _op(t, "post", "create", v3, "write", body="object"),
            "delete": _op(t, "deletecollection", "deleteCollection", v3, "delete", kind=status_ref),
            "parameters": scope_params,
        },
        f"{scope}/{{name}}": {
            "get": _op(t, "get", "read", v3),
            "put": _op(t, "put", "replace", v3, "write", body="object"),
            "patch": _op(t, "patch", "patch", v3, "patch", body="patch"),
            "delete": _op(t, "delete", "delete", v3, "delete", kind=status_ref),
            "parameters": [_param("name", "path", v3), *scope_params],
        },
    }
    for sub in sorted(t.subresources):
        verb = sub.capitalize()
        paths[f"{scope}/{{name}}/{sub}"] = {
            "get": _op(t, "get", f"read{verb}", v3),
            "put": _op(t, "put", f"replace{verb}", v3, "write", body="object"),
            "patch": _op(t, "patch", f"patch{verb}", v3, "patch", body="patch"),
            "parameters": [_param("name", "path", v3), *scope_params],
        }
    if t.namespaced:
        paths[f"{base}/{t.plural}"] = {
            "get": _op(t, "list", "listForAllNamespaces", v3, "list", kind=list_kind)
        }
    return paths


# --- documents -------------------------------------------------------------------------------------


def _document(types: list[ResourceType], *, v3: bool) -> Doc:
    """The OpenAPI v2 (swagger) or v3 document of `types`: every path and definition, sorted."""
    paths: dict[str, Doc] = {}
    for t in types:
        paths.update(_paths(t, v3=v3))
    definitions = dict(sorted(_definitions(types, v3=v3).items()))
    return {
        **({"openapi": "3.0.0"} if v3 else {"swagger": "2.0"}),
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": dict(sorted(paths.items())),
        **({"components": {"schemas": definitions}} if v3 else {"definitions": definitions}),
    }


def openapi_v2(rtypes: Iterable[ResourceType]) -> Doc:
    return _document(list(rtypes), v3=False)


def _group_key(t: ResourceType) -> str:
    return f"apis/{t.group}/{t.version}" if t.group else "api/v1"


def openapi_v3_group(group_version: str, rtypes: Iterable[ResourceType]) -> Doc | None:
    types = [t for t in rtypes if t.group_version == group_version]
    if not types:
        return None
    return _document(types, v3=True)


def openapi_v3_index(rtypes: Iterable[ResourceType]) -> Doc:
    types = list(rtypes)
    out: dict[str, Doc] = {}
    for key, gv in sorted({(_group_key(t), t.group_version) for t in types}):
        doc = openapi_v3_group(gv, types)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()
        out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": out}
