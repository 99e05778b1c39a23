"""Structured key=value logging, one bound logger per object (STYLE.md convention 12).

`KVLog(logger, kind="Service", namespace="web", name="frontend").info("ip allocated", ip="192.0.2.7")`
logs `ip allocated kind=Service namespace=web name=frontend ip=192.0.2.7`. Values with spaces,
quotes or `=` are quoted, so a line always splits back into its fields. Used throughout lbipam.k8s
and by the controllers and the speaker for per-object logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from lbipam.k8s.resources import Resource, object_key


def _value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\\n\r\t'):
        return text
    return json.dumps(text)


def kv(fields: Mapping[str, object]) -> str:
    """`key=value` pairs, in order, skipping None values."""
    return " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)


class KVLog:
    """A logger with bound fields; every message gets them appended as key=value."""

    def __init__(self, logger: logging.Logger | str, **fields: object) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.fields = fields

    def bind(self, **fields: object) -> KVLog:
        """A logger with more bound fields (later ones win)."""
        return KVLog(self.logger, **{**self.fields, **fields})

    def _log(self, level: int, msg: str, fields: Mapping[str, object], exc_info: bool = False) -> None:
        if self.logger.isEnabledFor(level):
            line = kv({**self.fields, **fields})
            self.logger.log(level, "%s %s" if line else "%s%s", msg, line, exc_info=exc_info)

    def debug(self, msg: str, **fields: object) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: object) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: object) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: object) -> None:
        self._log(logging.ERROR, msg, fields)

    def exception(self, msg: str, **fields: object) -> None:
        """An error with the current exception's traceback."""
        self._log(logging.ERROR, msg, fields, exc_info=True)


def object_log(logger: logging.Logger | str, resource: Resource, obj: Mapping[str, Any]) -> KVLog:
    """The logger for one object: kind, namespace (if any) and name bound."""
    namespace, name = object_key(obj)
    return KVLog(logger, kind=resource.kind, namespace=namespace or None, name=name)
