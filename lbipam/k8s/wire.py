"""The wire format lbipam speaks: patch content types, query strings, watch-stream framing.

Pure helpers used by `lbipam.k8s.client.Kube`; kept apart so they can be tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from lbipam.k8s.errors import TemporaryError, error_from_status

PatchType = Literal["merge", "json", "strategic", "apply"]
# The Content-Type is always chosen here: kubernetes_asyncio's CustomObjectsApi would send a dict
# body as a JSON patch, which a real API server rejects with 400.
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
Selector = str | Mapping[str, str] | None
Obj = dict[str, Any]


def selector_text(selector: Selector) -> str | None:
    """A label/field selector as the API takes it: "a=b,c=d" from a dict, or the string as is."""
    if selector is None or isinstance(selector, str):
        return selector or None
    return ",".join(f"{k}={v}" for k, v in selector.items()) or None


def query_params(**params: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value is False:
            continue
        out.append((key, "true" if value is True else str(value)))
    return out


class JsonLines:
    """Splits a byte stream into lines, whatever the chunking; a line may be any length."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        lines: list[bytes] = []
        start = 0
        while (end := self._buf.find(b"\n", start)) >= 0:
            if end > start:
                lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [rest] if rest.strip() else []


def parse_watch_event(line: bytes) -> tuple[str, Obj]:
    """One watch line -> (type, object). ERROR events raise their typed error (410 -> Expired)."""
    try:
        event = json.loads(line)
    except ValueError as err:
        raise TemporaryError(f"malformed watch line {line[:120]!r}", reason="MalformedWatchEvent") from err
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise TemporaryError(f"watch event without an object: {line[:120]!r}", reason="MalformedWatchEvent")
    kind, obj = str(event.get("type", "")), event["object"]
    if kind == "ERROR":
        raise error_from_status(500, obj)  # the Status carries the real code
    return kind, obj
