"""Structured key=value logging, one bound logger per object (STYLE.md convention 12).

`KVLog(logger, kind="Service", namespace="web", name="frontend").info("ip allocated", ip="192.0.2.7")`
logs `ip allocated kind=Service namespace=web name=frontend ip=192.0.2.7`. Values with spaces,
quotes or `=` are quoted, so a line always splits back into its fields. Used throughout lbipam.k8s
and by the controllers and the speaker for per-object logs.

The record also carries the message and the fields apart, so that `JsonFormatter` (`--log-format
json`) writes one JSON object per line: time, level, logger, msg and the fields as keys.
`configure(level, format)` sets up the root logger for a command (controller, speaker).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
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
            merged = {**self.fields, **fields}
            line = kv(merged)
            extra = {"kv_msg": msg, "kv_fields": merged}
            self.logger.log(level, "%s %s" if line else "%s%s", msg, line, exc_info=exc_info, extra=extra)

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


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_BASE_KEYS = ("time", "level", "logger", "msg")


def _json_value(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, msg, then a KVLog's fields
    as keys (a field named like one of those four gets a trailing `_`), and `traceback` when the
    record carries an exception. Records of other loggers have no fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        msg = getattr(record, "kv_msg", None)
        out: dict[str, object] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage() if msg is None else msg,
        }
        fields: Mapping[str, object] = getattr(record, "kv_fields", None) or {}
        for key, value in fields.items():
            if value is not None:
                out[f"{key}_" if key in _BASE_KEYS else key] = _json_value(value)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out)


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level` (a name: INFO, debug...) in `log_format` (text or json).
    Raises ValueError, before changing anything, for a level name logging does not know."""
    if level.upper() not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown level {level!r} (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
