"""Protobuf bodies for tests, built with the decoder's own message classes (`wire/protobuf.py`),
and the golden bodies captured from kubectl (tests/data/kubectl-protobuf/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format

from lbipam.apiserver.wire import protobuf

GOLDEN = Path(__file__).parent / "data" / "kubectl-protobuf"
CORE = "k8s.io.api.core.v1."


def message(name: str, fields: dict[str, Any]) -> Any:
    """A message of the decoder's pool, from its protobuf field names."""
    return json_format.ParseDict(fields, protobuf.message_class(name)())


def envelope(raw: bytes, kind: str = "Secret", api_version: str = "v1") -> bytes:
    """The wire form: the magic, then runtime.Unknown around `raw`."""
    unknown = protobuf.message_class(protobuf.UNKNOWN)()
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind, unknown.raw = api_version, kind, raw
    return protobuf.MAGIC + unknown.SerializeToString()


def body(name: str, fields: dict[str, Any], api_version: str = "v1", kind: str = "") -> bytes:
    """An object of message `name` (its kind by default) as a protobuf request body."""
    raw = message(name, fields).SerializeToString()
    return envelope(raw, kind or name.rsplit(".", 1)[1], api_version)
