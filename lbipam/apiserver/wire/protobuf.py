"""Protobuf request bodies (`application/vnd.kubernetes.protobuf`) of the built-in kinds, as JSON.

kubectl's typed commands (`kubectl create secret generic`, `create configmap`, `create namespace`,
`create service ...`) and Go clients send protobuf. The wire form is Kubernetes' public one: the
magic `k8s\\x00`, then a `runtime.Unknown` envelope (typeMeta, raw, contentEncoding, contentType)
whose `raw` is the kind's message from k8s.io/api's `generated.proto`. Google's `protobuf` package
parses it against descriptors built from the vendored messages (`kinds/gotypes.py`); `decode`
then writes the JSON Go's encoding/json would write for the decoded struct (pointers only when set,
`omitempty` zero values dropped, int-or-string, quantities, times, bytes as base64), so the object
goes down the same path as a JSON body. Anything undecodable is a 400 naming the problem.

Pure; called by `handlers.py` for bodies of that media type.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds import gotypes
from lbipam.apiserver.kinds.gotypes import Field

if TYPE_CHECKING:  # google.protobuf is imported on first use: the server starts without it
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message import Message

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_MAX_DEPTH = 100  # nested messages, as protobuf's own recursion limit
_SCALARS = ("string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float")


class ProtobufError(ValueError):
    """A body that is not a decodable protobuf object; the text says what is wrong."""

    def __init__(self, message: str, sent_kind: str = "") -> None:
        super().__init__(message)
        self.sent_kind = sent_kind  # the kind the envelope named, once it could be read


# --- descriptors ----------------------------------------------------------------------------------


def _package(full_name: str) -> str:
    return full_name.rsplit(".", 1)[0]


def _entry_name(field: Field) -> str:
    return field.name[0].upper() + field.name[1:] + "Entry"


def _field_proto(field: Field, out: Any) -> None:
    out.name, out.number = field.name, field.number
    out.label = out.LABEL_REPEATED if field.repeated or field.map_types else out.LABEL_OPTIONAL
    if field.map_types:
        out.type, out.type_name = out.TYPE_MESSAGE, _entry_name(field)
    elif field.type in _SCALARS:
        out.type = getattr(out, "TYPE_" + field.type.upper())
    else:
        out.type, out.type_name = out.TYPE_MESSAGE, "." + field.type


def _message_proto(name: str, fields: tuple[Field, ...], out: descriptor_pb2.DescriptorProto) -> set[str]:
    """Fill `out` with message `name`; returns the packages it refers to."""
    out.name = name.rsplit(".", 1)[1]
    packages = set()
    for field in fields:
        _field_proto(field, out.field.add())
        types = field.map_types or (field.type,)
        packages |= {_package(t) for t in types if "." in t}
        if field.map_types:
            entry = out.nested_type.add(name=_entry_name(field))
            entry.options.map_entry = True
            key, value = field.map_types
            for number, (part, kind) in enumerate((("key", key), ("value", value)), start=1):
                _field_proto(Field(number, part, kind, False, part, False, False, False), entry.field.add())
    return packages


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    """One proto2 file per package of the vendored messages, added in dependency order."""
    from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: PLC0415 (on first use)

    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    needs: dict[str, set[str]] = {}
    for name, fields in gotypes.messages().items():
        package = _package(name)
        file = files.setdefault(
            package,
            descriptor_pb2.FileDescriptorProto(name=package + ".proto", package=package, syntax="proto2"),
        )
        needs.setdefault(package, set()).update(_message_proto(name, fields, file.message_type.add()))
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(package: str) -> None:
        if package in added:
            return
        added.add(package)
        for dependency in sorted(needs[package] - {package}):
            add(dependency)
            files[package].dependency.append(dependency + ".proto")
        pool.Add(files[package])

    for package in sorted(files):
        add(package)
    return pool


@functools.cache
def message_class(full_name: str) -> type[Message]:
    from google.protobuf import message_factory  # noqa: PLC0415 (on first use)

    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


# --- decoding -------------------------------------------------------------------------------------


def decode(data: bytes, group: str, version: str, kind: str) -> dict[str, Any]:
    """The JSON object of a protobuf body sent to a resource of (group, version, kind).

    Like the real decoder, the envelope's typeMeta names the kind and the URL's fills in what it
    leaves out. Raises ProtobufError naming what is wrong."""
    if not data:
        raise ProtobufError("empty data")
    if not data.startswith(MAGIC):
        raise ProtobufError(
            f"provided data does not appear to be a protobuf message, expected prefix {list(MAGIC)}"
        )
    if len(data) == len(MAGIC):
        raise ProtobufError("empty body")
    envelope = _parse(UNKNOWN, data[len(MAGIC) :])
    type_meta = _get(envelope, "typeMeta")
    api_version = _get(type_meta, "apiVersion") or (f"{group}/{version}" if group else version)
    sent_kind = _get(type_meta, "kind") or kind
    sent_group, _, sent_version = api_version.rpartition("/")
    if sent_kind == "DeleteOptions":  # registered in every group version, as in Kubernetes
        name: str | None = gotypes.DELETE_OPTIONS
    else:
        name = gotypes.message_of(sent_group, sent_version, sent_kind)
    if name is None:
        raise ProtobufError(f'no kind "{sent_kind}" is registered for version "{api_version}"', sent_kind)
    try:
        obj = _to_json(_parse(name, _get(envelope, "raw")), name, 0)
    except ProtobufError as exc:
        raise ProtobufError(str(exc), sent_kind) from None
    return {"apiVersion": api_version, "kind": sent_kind, **obj}


def _get(message: Message, name: str) -> Any:
    """A field of a message class built at run time (no attributes for the type checker)."""
    value = getattr(message, name)
    return _text(value) if isinstance(value, bytes) and _is_string(message, name) else value


def _is_string(message: Message, name: str) -> bool:
    field = message.DESCRIPTOR.fields_by_name[name]
    return bool(field.type == field.TYPE_STRING)


def _text(value: Any) -> Any:
    """A proto2 string that is not UTF-8 comes back as bytes: Go's JSON writes U+FFFD for each bad byte."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _parse(name: str, data: bytes) -> Message:
    from google.protobuf.message import DecodeError  # noqa: PLC0415 (on first use)

    message = message_class(name)()
    try:
        message.ParseFromString(data)
    except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python parser checks UTF-8 itself
        raise ProtobufError(f"unable to decode {name.rsplit('.', 1)[1]}: {exc}") from None
    return message


def _to_json(message: Message, name: str, depth: int) -> Any:
    """The JSON value Go's encoding/json writes for `message` decoded into its Go type."""
    if depth > _MAX_DEPTH:
        raise ProtobufError(f"objects nested deeper than {_MAX_DEPTH} levels")
    special = _SPECIAL.get(name)
    if special is not None:
        return special(message, name, depth)
    out: dict[str, Any] = {}
    for field in gotypes.messages()[name]:
        if field.json == "-":
            continue
        written, value = _field_json(message, field, depth)
        if not written:
            continue
        if field.inline and isinstance(value, dict):
            out.update(value)
        else:
            out[field.json] = value
    return out


def _field_json(message: Message, field: Field, depth: int) -> tuple[bool, Any]:
    """(written?, JSON value) of one field, by Go's rules for its pointer-ness and omitempty."""
    raw = _get(message, field.name)
    if field.map_types is not None:
        if not raw:
            return field.always, None
        value_type = field.map_types[1]
        return True, {_text(k): _value(v, value_type, depth) for k, v in raw.items()}
    if field.repeated:
        if not raw:
            return field.always, None
        return True, [_value(v, field.type, depth) for v in raw]
    if field.pointer or field.is_message:
        # A pointer is written when set; a struct always (its own MarshalJSON decides how).
        if field.pointer and not message.HasField(field.name):
            return False, None
        return True, _value(raw, field.type, depth)
    if not raw and not field.always:
        return False, None
    return True, _value(raw, field.type, depth)


def _value(raw: Any, kind: str, depth: int) -> Any:
    if kind == "bytes":
        return base64.b64encode(raw).decode()
    if kind in gotypes.messages():
        return _to_json(raw, kind, depth + 1)
    if kind == "string":
        return _text(raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ProtobufError(f"{raw} is not a valid JSON number")
    return raw


# --- types with a JSON form of their own ----------------------------------------------------------


def _time(message: Message, name: str, depth: int) -> str | None:
    """metav1.Time (RFC 3339, seconds) and MicroTime (microseconds); null when zero, as in Go."""
    if not message.ListFields():
        return None
    seconds, nanos = _get(message, "seconds"), _get(message, "nanos")
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"time out of range: {seconds} seconds since 1970") from None
    if name == gotypes.TIME:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{max(nanos, 0) // 1000 % 1_000_000:06d}Z"


def _int_or_string(message: Message, name: str, depth: int) -> int | str:
    kind = _get(message, "type")
    if kind == 0:
        return int(_get(message, "intVal"))
    if kind == 1:
        return str(_get(message, "strVal"))
    raise ProtobufError(f"impossible IntOrString.Type: {kind}")


def _quantity(message: Message, name: str, depth: int) -> str:
    return str(_get(message, "string")) or "0"


def _duration(message: Message, name: str, depth: int) -> str:
    return go_duration(int(_get(message, "duration")))


def _raw_json(message: Message, name: str, depth: int) -> Any:
    """FieldsV1 and apiextensions' JSON: JSON text carried as bytes."""
    raw = _get(message, "Raw" if name == gotypes.FIELDS else "raw")
    if not raw:
        return None
    try:
        value = json.loads(raw)
        json.dumps(value, ensure_ascii=False).encode()  # no lone surrogates from \ud800 escapes
    except (ValueError, UnicodeError) as exc:
        raise ProtobufError(f"{name.rsplit('.', 1)[1]} holds invalid JSON: {exc}") from None
    return value


def _schema_or(message: Message, name: str, depth: int) -> Any:
    """apiextensions' JSONSchemaPropsOr{Array,Bool,StringArray}, as their MarshalJSON writes them."""
    schema = gotypes.CRD + "JSONSchemaProps"
    has_schema = message.HasField("schema")
    if name.endswith("OrBool"):
        return (
            _to_json(_get(message, "schema"), schema, depth + 1)
            if has_schema
            else bool(_get(message, "allows"))
        )
    listed = _get(message, "jSONSchemas" if name.endswith("OrArray") else "property")
    if listed:
        return [_value(item, schema if name.endswith("OrArray") else "string", depth) for item in listed]
    return _to_json(_get(message, "schema"), schema, depth + 1) if has_schema else None


_SPECIAL: dict[str, Callable[[Message, str, int], Any]] = {
    gotypes.TIME: _time,
    gotypes.MICRO_TIME: _time,
    gotypes.DURATION: _duration,
    gotypes.INT_OR_STRING: _int_or_string,
    gotypes.QUANTITY: _quantity,
    gotypes.FIELDS: _raw_json,
    gotypes.RAW_JSON: _raw_json,
    **dict.fromkeys(gotypes.SCHEMA_OR, _schema_or),
}


def go_duration(nanos: int) -> str:
    """Go's time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{fraction:0{digits}d}".rstrip("0")


def status_error(error: ProtobufError, kind: str, version: str, body: bytes) -> StatusError:
    """The 400 the real server answers for an undecodable body to a resource of `kind`."""
    if error.sent_kind:
        return StatusError(
            400, f'{error.sent_kind} in version "{version}" cannot be handled as a {kind}: {error}'
        )
    summary = body[:30].decode("utf-8", "replace") + (" ..." if len(body) > 30 else "")
    return StatusError(
        400, f"the object provided is unrecognized (must be of type {kind}): {error} ({summary})"
    )


# --- the protobuf form of /openapi/v2 -------------------------------------------------------------

# What client-go asks for, and what the real server answers it with.
OPENAPI_V2_TYPES = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)


def openapi_v2_header(title: str, version: str) -> bytes:
    """A gnostic `openapi.v2.Document` with `swagger: "2.0"` and `info` {title, version} only:
    three strings, written by hand (fields 1 and 2 of Document, 1 and 2 of Info)."""
    info = _length_delimited(1, title.encode()) + _length_delimited(2, version.encode())
    return _length_delimited(1, b"2.0") + _length_delimited(2, info)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
