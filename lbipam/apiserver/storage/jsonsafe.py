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
    no_constant                # json.loads(parse_constant=...): NaN and Infinity are not JSON
    problem(value) -> str|None # the first rule `value` breaks, naming its path
    check(value, what)         # StatusError 400 "<what>: <problem>"
    repair(value) -> (value, [what was changed])
    load_stored(text) -> (value, [what was changed])   # a stored object's JSON, repaired if needed

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


def no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    """Parse a JSON body; StatusError 400 for malformed JSON or a value `problem` refuses."""
    try:
        value = json.loads(data, parse_constant=no_constant)
    except RecursionError:
        raise StatusError(400, f"json parse error: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(400, f"json parse error: {exc}") from None
    check(value, "json parse error")
    return value


def check(value: Any, what: str) -> None:
    """StatusError 400 `<what>: <problem>` if `value` breaks a rule."""
    found = problem(value)
    if found is not None:
        raise StatusError(400, f"{what}: {found}")


def problem(value: Any) -> str | None:
    """The first rule `value` breaks, as `<path>: <what is wrong>`; None when it is fine.

    Iterative, so it is safe on a value of any depth."""
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


# What a stored text that needs repair must contain: a surrogate escape, a NaN or Infinity token,
# or a run of 19+ digits. Texts without any (nearly all) skip the walk, so opening stays fast.
_SUSPECT = re.compile(r"\\u[dD][89a-fA-F]|NaN|Infinity|\d{19}")


def load_stored(text: str) -> tuple[Any, list[str]]:
    """A stored object's JSON text as a value, repaired if an older version stored it unchecked.

    ValueError (or RecursionError) when the text is not JSON at all."""
    value = json.loads(text)
    if _SUSPECT.search(text) is None and text.count("{") + text.count("[") < MAX_DEPTH:
        return value, []
    if problem(value) is None:
        return value, []
    return repair(value)
