"""What a value must be for the embedded server to keep it: JSON that every client can read back.

Python's `json` accepts more than clients do: NaN and Infinity, integers of any size, strings with
lone UTF-16 surrogates (from `"\\ud800"` escapes), and nesting until the interpreter's recursion
limit. A value like that, once stored, breaks every list that includes it (a surrogate cannot be
encoded as UTF-8; a Go client cannot parse NaN or an integer beyond int64; code that walks the
object recursively fails on it). So every body is checked on the way in (`loads`, `check`): a
4xx naming the field, never a stored object that cannot be served back. Objects written by an
older version are mended on the way out of the database (`repair`).

    MAX_DEPTH                  # nested objects and arrays allowed in a body or object (100)
    loads(data) -> Any         # json.loads, with the rules above; StatusError 400
    decode(data, what) -> Any  # the same, but ValueError when it is not JSON at all
    problem(value) -> str|None # the first rule `value` breaks, naming its path
    check(value, what)         # StatusError 400 "<what>: <problem>"
    check_depth(value, what)   # the same for nesting alone (quicker)
    repair(value) -> (value, [what was changed])
    load_stored(text) -> (value, [what was changed])   # a stored object's JSON, repaired if needed
    copy(value) -> value       # a deep copy of a JSON value, some four times quicker than deepcopy

Used by the request decoding (`wire/handlers.py`), the patches (`patch/patches.py`), the write
pipeline (`kinds/objects.py`) and the store when it loads the database (`store.py`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from lbipam.apiserver.errors import StatusError

# Deeper than any real object (a CRD of a large operator nests some 40 levels) and shallow enough
# that every recursive walk of an object stays far inside Python's recursion limit.
MAX_DEPTH = 100
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class _OutOfRange(ValueError):
    """An integer beyond int64 or a float beyond float64, met while parsing."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _int64(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _OutOfRange(text)
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(text)
    return value


# One decoder for every call (json.loads with hooks builds a new one each time).
_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_int=_int64, parse_float=_finite)
_LENIENT = json.JSONDecoder(parse_constant=_no_constant)


def decode(data: bytes | str, what: str) -> Any:
    """Parse JSON text: ValueError (or RecursionError) when it is not JSON, StatusError 400
    `<what>: <path>: <problem>` when its value breaks a rule."""
    text = (
        data.decode(json.detect_encoding(data), "surrogatepass")
        if isinstance(data, bytes | bytearray)
        else data
    )
    try:
        value = _STRICT.decode(text)
    except _OutOfRange:  # parse again to say where
        value = _LENIENT.decode(text)
        check(value, what)
        raise
    # Lone surrogates come from escapes or CESU-8 bytes, nesting needs brackets: only text with
    # any of them is walked (quick substring and count tests, in C).
    if (
        "\\ud" in text
        or "\\uD" in text
        or (not text.isascii() and _SURROGATE.search(text))
        or text.count("{") + text.count("[") >= MAX_DEPTH
    ):
        check(value, what)
    return value


def loads(data: bytes | str) -> Any:
    """Parse a JSON body; StatusError 400 for malformed JSON or a value `problem` refuses."""
    try:
        return decode(data, "json parse error")
    except RecursionError:
        raise StatusError(400, f"json parse error: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise StatusError(400, f"json parse error: {exc}") from None


def check(value: Any, what: str) -> None:
    """StatusError 400 `<what>: <problem>` if `value` breaks a rule."""
    if _fine(value):
        return
    found = problem(value)
    if found is not None:
        raise StatusError(400, f"{what}: {found}")


def check_depth(value: Any, what: str) -> None:
    """StatusError 400 `<what>: <path>: nested deeper than MAX_DEPTH levels`, if it is: the one
    rule a patch of checked values can break. Walks only the objects and arrays."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            check(value, what)  # names the path
        for sub in item.values() if type(item) is dict else item if type(item) is list else ():
            if type(sub) is dict or type(sub) is list:
                stack.append((sub, depth + 1))


def _fine(value: Any) -> bool:
    """Whether `value` keeps every rule: the quick walk (no paths), iterative."""
    if type(value) is not dict and type(value) is not list:
        return _leaf_problem(value) is None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return False
        if type(item) is dict:
            if not all(type(k) is str and (k.isascii() or not _SURROGATE.search(k)) for k in item):
                return False
            item = item.values()
        for sub in item:
            kind = type(sub)
            if kind is str:
                if not sub.isascii() and _SURROGATE.search(sub):
                    return False
            elif kind is dict or kind is list:
                stack.append((sub, depth + 1))
            elif kind is int:
                if not INT64_MIN <= sub <= INT64_MAX:
                    return False
            elif kind is float and not math.isfinite(sub):
                return False
    return True


def problem(value: Any) -> str | None:
    """The first rule `value` breaks, as `<path>: <what is wrong>`; None when it is fine.

    Iterative, so it is safe on a value of any depth."""
    if not isinstance(value, dict | list):
        found = _leaf_problem(value)
        return None if found is None else f"<body>: {found}"
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_DEPTH:
                return f"{path or '<body>'}: nested deeper than {MAX_DEPTH} levels"
            for key, sub in item.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return f"{path or '<body>'}: invalid UTF-8 (a lone surrogate) in a field name"
                stack.append((sub, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                return f"{path or '<body>'}: nested deeper than {MAX_DEPTH} levels"
            stack.extend((sub, f"{path}[{index}]", depth + 1) for index, sub in enumerate(item))
        else:
            found = _leaf_problem(item)
            if found is not None:
                return f"{path or '<body>'}: {found}"
    return None


def _leaf_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return "invalid UTF-8 (a lone surrogate) in a string" if _SURROGATE.search(item) else None
    if isinstance(item, bool) or item is None:
        return None
    if isinstance(item, int):
        if INT64_MIN <= item <= INT64_MAX:
            return None
        return f"integer {_short(item)} is out of the range of a 64-bit integer"
    if isinstance(item, float) and not math.isfinite(item):
        return f"{item} is not a JSON number"
    return None


def _short(number: int) -> str:
    text = str(number) if number.bit_length() < 4000 else "(a very large number)"
    return text if len(text) <= 40 else text[:20] + "..." + text[-10:]


def repair(value: Any) -> tuple[Any, list[str]]:
    """`value` made acceptable, and what was changed (for a log line): lone surrogates become
    U+FFFD (as Kubernetes' decoder does), NaN, Infinity and out-of-range integers become null,
    and what is nested deeper than MAX_DEPTH is dropped. Recursion-free."""
    changes: list[str] = []
    out = _repair_node(value, "", 0, changes)
    return out, changes


def _repair_node(value: Any, path: str, depth: int, changes: list[str]) -> Any:
    # Recursion is bounded by MAX_DEPTH: deeper containers are cut off before descending.
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        changes.append(f"{path or '<object>'}: dropped what was nested deeper than {MAX_DEPTH} levels")
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            name = _fix_text(str(key), f"{path}.{key!r}", changes)
            out[name] = _repair_node(sub, f"{path}.{name}" if path else name, depth + 1, changes)
        return out
    if isinstance(value, list):
        return [_repair_node(sub, f"{path}[{i}]", depth + 1, changes) for i, sub in enumerate(value)]
    if isinstance(value, str):
        return _fix_text(value, path, changes)
    found = _leaf_problem(value)
    if found is not None:
        changes.append(f"{path or '<object>'}: {found}: set to null")
        return None
    return value


def _fix_text(text: str, path: str, changes: list[str]) -> str:
    if not _SURROGATE.search(text):
        return text
    changes.append(f"{path or '<object>'}: lone surrogates replaced by U+FFFD")
    return _SURROGATE.sub("\ufffd", text)


def load_stored(text: str) -> tuple[Any, list[str]]:
    """A stored object's JSON text as a value, repaired if an older version stored it unchecked.

    ValueError (or RecursionError) when the text is not JSON at all. Nearly every text parses
    with the strict decoder and shows no surrogate escape and too few brackets to nest too deep,
    so opening a database walks almost nothing."""
    try:
        value = _STRICT.decode(text)
    except ValueError:  # NaN, Infinity, a number out of range, or not JSON (then this raises too)
        value = json.loads(text)
    else:
        if not ("\\ud" in text or "\\uD" in text or text.count("{") + text.count("[") >= MAX_DEPTH):
            return value, []
    if problem(value) is None:
        return value, []
    return repair(value)


def copy(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars). No memo, no reduce protocol: objects
    are trees of plain values, copied on every write and patch."""
    kind = type(value)
    if kind is dict:
        return {key: copy(sub) for key, sub in value.items()}
    if kind is list:
        return [copy(sub) for sub in value]
    return value
