"""The protobuf body decoder (`wire/protobuf.py`) on bad input: every undecodable body is a
ProtobufError saying what is wrong (the server answers it as a 400), never another exception;
strings that are not UTF-8 read as Go writes them; random bytes decode or fail cleanly.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbipam.apiserver.kinds import gotypes
from lbipam.apiserver.wire import protobuf
from lbipam.apiserver.wire.protobuf import ProtobufError
from tests.protobuf_harness import CORE, body, envelope, message


def test_strings_that_are_not_utf8_read_as_go_writes_them() -> None:
    meta = message(gotypes.META + "ObjectMeta", {"name": "x"}).SerializeToString().replace(b"x", b"\xff")
    raw = b"\x0a" + bytes([len(meta)]) + meta
    envelope = protobuf.message_class(protobuf.UNKNOWN)()
    envelope.raw = raw
    decoded = protobuf.decode(protobuf.MAGIC + envelope.SerializeToString(), "", "v1", "Secret")
    assert decoded["metadata"]["name"] == "\ufffd"


def _secret_with_fields_v1(text: bytes) -> bytes:
    raw = base64.b64encode(text).decode()
    return body(CORE + "Secret", {"metadata": {"name": "s", "managedFields": [{"fieldsV1": {"Raw": raw}}]}})


def _crd_with_schema(schema: dict[str, Any]) -> bytes:
    spec = {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}
    return body(gotypes.CRD + "CustomResourceDefinition", {"spec": spec}, "apiextensions.k8s.io/v1")


def _wrap(name: str, field: str, payload: bytes) -> bytes:
    """`payload` as the length-delimited field `field` of message `name`."""
    number = next(f.number for f in gotypes.messages()[name] if f.name == field)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _nested_crd(levels: int) -> bytes:
    """A CRD whose schema nests `not` schemas `levels` deep (protobuf's limit is 100)."""
    crd = gotypes.CRD
    schema = b""
    for _ in range(levels):
        schema = _wrap(crd + "JSONSchemaProps", "not", schema)
    version = _wrap(
        crd + "CustomResourceDefinitionVersion",
        "schema",
        _wrap(crd + "CustomResourceValidation", "openAPIV3Schema", schema),
    )
    spec = _wrap(crd + "CustomResourceDefinitionSpec", "versions", version)
    return envelope(
        _wrap(crd + "CustomResourceDefinition", "spec", spec),
        "CustomResourceDefinition",
        "apiextensions.k8s.io/v1",
    )


BAD = [
    pytest.param(b"", "empty data", id="empty"),
    pytest.param(b'{"kind":"Secret"}', "does not appear to be a protobuf message", id="JSON, not protobuf"),
    pytest.param(protobuf.MAGIC, "empty body", id="magic only"),
    pytest.param(protobuf.MAGIC + b"\x0a\xff\xff\xff", "unable to decode Unknown", id="broken envelope"),
    pytest.param(envelope(b"\x0a\x05\x0a\x03"), "unable to decode Secret", id="truncated object"),
    pytest.param(
        envelope(b"", kind="Pod"), 'no kind "Pod" is registered for version "v1"', id="kind not served"
    ),
    pytest.param(
        envelope(
            message(CORE + "Service", {"spec": {"ports": [{"targetPort": {"type": 7}}]}}).SerializeToString(),
            kind="Service",
        ),
        "impossible IntOrString.Type: 7",
        id="int-or-string of no type",
    ),
    pytest.param(
        envelope(
            message(
                CORE + "Node", {"spec": {"taints": [{"timeAdded": {"seconds": 10**15}}]}}
            ).SerializeToString(),
            kind="Node",
        ),
        "time out of range",
        id="time out of range",
    ),
    pytest.param(_secret_with_fields_v1(b'{"a'), "FieldsV1 holds invalid JSON", id="managed fields not JSON"),
    pytest.param(_secret_with_fields_v1(b'"\\ud800"'), "FieldsV1 holds invalid JSON", id="lone surrogate"),
    pytest.param(_nested_crd(150), "unable to decode CustomResourceDefinition", id="nested 150 deep"),
    pytest.param(_crd_with_schema({"maximum": "NaN"}), "not a valid JSON number", id="NaN"),
]


@pytest.mark.parametrize(("data", "problem"), BAD)
def test_undecodable_bodies_say_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(ProtobufError, match=problem.replace("(", r"\(")):
        protobuf.decode(data, "", "v1", "Secret")


def test_status_error_names_the_kinds() -> None:
    with pytest.raises(ProtobufError) as caught:
        protobuf.decode(b"garbage", "", "v1", "Secret")
    error = protobuf.status_error(caught.value, "Secret", "v1", b"garbage")
    assert error.code == 400
    assert error.message.startswith("the object provided is unrecognized (must be of type Secret): ")
    with pytest.raises(ProtobufError) as caught:
        protobuf.decode(envelope(b"\x0a\x05\x0a\x03"), "", "v1", "Secret")
    error = protobuf.status_error(caught.value, "Secret", "v1", b"")
    assert error.message.startswith('Secret in version "v1" cannot be handled as a Secret: unable to decode')


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (2_000_000, "2ms"),
        (90 * 10**9, "1m30s"),
        (3_600_000_000_001, "1h0m0.000000001s"),
        (-5 * 10**9, "-5s"),
    ],
)
def test_go_duration_strings(nanos: int, text: str) -> None:
    assert protobuf.go_duration(nanos) == text


@settings(max_examples=300, deadline=None, derandomize=True)
@given(payload=st.binary(max_size=200), kind=st.sampled_from(["Secret", "Node", "Service", "Event", "Lease"]))
def test_random_bytes_decode_or_fail_cleanly(payload: bytes, kind: str) -> None:
    for data in (protobuf.MAGIC + payload, envelope(payload, kind)):
        try:
            decoded = protobuf.decode(data, "", "v1", kind)
        except ProtobufError:
            continue
        json.dumps(decoded, ensure_ascii=False, allow_nan=False).encode()  # storable JSON, UTF-8 clean
