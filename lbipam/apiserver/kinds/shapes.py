"""JSON types of the built-in kinds' fields, checked the way Go's decoder would reject a body.

The real server decodes a body into typed Go structs, so `"port": "80"` or `"labels": []` is a 400
BadRequest before any validation runs. `check` walks a body against a small declared shape and
raises that 400 (nulls are dropped, as Go's decoder turns them into zero values and `omitempty`
drops them again); everything not declared passes through untouched. Pure; called by `objects.py`
with the shape a `Strategy` declares.
"""

from __future__ import annotations

from typing import Any

from lbipam.apiserver.errors import StatusError

# A shape: a Python type (or tuple of types) for a leaf, a dict of field shapes for a struct
# ("*" for a map with uniform values), or a one-element list for an array of that shape.
Shape = Any
INT_OR_STRING = (int, str)
STR_MAP = {"*": str}

_GO_NAMES = {str: "string", int: "int32", bool: "bool", float: "float64"}

OWNER_REF = {
    "apiVersion": str,
    "kind": str,
    "name": str,
    "uid": str,
    "controller": bool,
    "blockOwnerDeletion": bool,
}
META = {
    "name": str,
    "generateName": str,
    "namespace": str,
    "uid": str,
    "resourceVersion": str,
    "generation": int,
    "creationTimestamp": str,
    "deletionTimestamp": str,
    "deletionGracePeriodSeconds": int,
    "labels": STR_MAP,
    "annotations": STR_MAP,
    "finalizers": [str],
    "ownerReferences": [OWNER_REF],
    "managedFields": [dict],
}
CONDITION = {
    "type": str,
    "status": str,
    "reason": str,
    "message": str,
    "observedGeneration": int,
    "lastTransitionTime": str,
}


def check(obj: dict[str, Any], shape: dict[str, Any], kind: str, version: str) -> None:
    """Raise 400 if `obj` has a field of the wrong JSON type; drop null fields in place."""
    problem = _walk(obj, {"metadata": META, **shape}, kind)
    if problem is not None:
        raise StatusError(400, f'{kind} in version "{version}" cannot be handled as a {kind}: {problem}')


def json_type(value: Any) -> str:
    """The JSON type Go's decoder names in its errors: bool, number, string, array, object."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_type(shape: Shape) -> str:
    if isinstance(shape, list):
        return "[]" + _go_type(shape[0])
    if isinstance(shape, dict):
        return "map[string]" + _go_type(shape["*"]) if "*" in shape else "struct"
    if isinstance(shape, tuple):
        return "intstr.IntOrString"
    return _GO_NAMES.get(shape, "object")


def _fits(value: Any, shape: Shape) -> bool:
    if isinstance(shape, list):
        return isinstance(value, list)
    if isinstance(shape, dict) or shape is dict:
        return isinstance(value, dict)
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, float) and int in types and float not in types:
        return False
    return isinstance(value, types)


def _walk(value: Any, shape: Shape, path: str) -> str | None:
    if not _fits(value, shape):
        got, wanted = json_type(value), _go_type(shape)
        return f"json: cannot unmarshal {got} into Go struct field {path} of type {wanted}"
    if isinstance(shape, list):
        for index, item in enumerate(value):
            if item is None:  # Go decodes a null element as the zero value
                value[index] = _zero(shape[0])
                continue
            problem = _walk(item, shape[0], path)
            if problem:
                return problem
    elif isinstance(shape, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for key, item in value.items():
            sub = shape.get("*", shape.get(key))
            if sub is not None:
                problem = _walk(item, sub, f"{path}.{key}")
                if problem:
                    return problem
    return None


def _zero(shape: Shape) -> Any:
    if isinstance(shape, dict) or shape is dict:
        return {}
    if isinstance(shape, list):
        return []
    if isinstance(shape, tuple):
        return 0
    return {str: "", int: 0, bool: False, float: 0.0}.get(shape)
