"""Building blocks shared by every lbipam custom resource model.

Owns: the wire conventions (camelCase aliases, `extra="forbid"` on specs), the validated string
types (`SafeStr`, DNS names, IP addresses, CIDRs) with the JSON-schema hints that `crdgen` turns
into CRD formats and patterns, `ObjectMeta`, `LabelSelector`, `Condition`, `ResourceStatus`, and
`describe_errors`, which renders a pydantic ValidationError as the one-line messages the
controller puts into conditions and Events. Used by the kind modules of `lbipam.api`; pure, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    JsonValue,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from lbipam.core.addresses import AddressError, parse_address, parse_cidr
from lbipam.core.selectors import EVERYTHING, Selector, SelectorError, compile_selector

GROUP: Final = "lbipam.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "lbipam.io/v1alpha1"

#: A JSON object, as pydantic's json_schema_extra takes it.
JsonDict = dict[str, JsonValue]

# C0 and C1 control characters (newline, carriage return, NUL, ...), plus the Unicode line and
# paragraph separators that str.splitlines() also breaks on. A line break in a value that reaches
# ExaBGP's text API would start a second command.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: The same guard as an RE2- and ECMA-compatible pattern for the CRD schema (used under `not`,
#: so it needs no anchors: Python's `$` would match before a trailing newline).
UNSAFE_PATTERN = r"[\x00-\x1f\x7f-\x9f]"


@dataclass(frozen=True)
class SchemaExtra:
    """Annotated marker: extra JSON-schema keywords (format, pattern, ...) for the CRD schema.

    Schema only: the validators next to it do the checking, with messages that name the value.
    """

    keywords: dict[str, Any] = field(default_factory=dict)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.update(self.keywords)
        return out

    def __hash__(self) -> int:  # Annotated[...] | None hashes its metadata
        return hash(repr(sorted(self.keywords.items())))


def quote(value: object, limit: int = 80) -> str:
    """A value for an error message: one line (repr of strings, JSON otherwise), cut at `limit`."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_error(message: str, value: object, *loc: str | int) -> pydantic.ValidationError:
    """A ValidationError at `loc` (relative to the model or field being validated).

    Raised from a validator, pydantic prefixes `loc` with the path to that model, so cross-field
    checks can still point at the one field at fault.
    """
    error = PydanticCustomError("lbipam", "{reason}", {"reason": message})
    return pydantic.ValidationError.from_exception_data(
        "lbipam", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def check_safe(value: str) -> str:
    """Reject control characters and line breaks; they could inject a second ExaBGP command."""
    found = _UNSAFE.search(value)
    if found:
        raise ValueError(
            f"{quote(value)} contains the control character {found.group()!r} at index "
            f"{found.start()}; line breaks and control characters are not allowed"
        )
    return value


def checker(check: Callable[[str], object]) -> AfterValidator:
    """An AfterValidator that runs `check` (which raises ValueError) and keeps the value as is."""

    def run(value: str) -> str:
        check(value)
        return value

    return AfterValidator(run)


def _matching(pattern: str, what: str, max_length: int) -> Callable[[str], None]:
    regex = re.compile(pattern)

    def check(value: str) -> None:
        # fullmatch, never match + "$": "$" also matches before a trailing newline.
        if len(value) > max_length or not regex.fullmatch(value):
            raise ValueError(f"{quote(value)} is not {what}")

    return check


def anchored(pattern: str) -> str:
    """`pattern` anchored at both ends, for a CRD `pattern` (which is unanchored by default)."""
    return f"^(?:{pattern})$"


DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"

#: Any string that may reach an ExaBGP command or its configuration.
SafeStr = Annotated[str, AfterValidator(check_safe), SchemaExtra({"not": {"pattern": UNSAFE_PATTERN}})]
DNSLabel = Annotated[
    SafeStr,
    checker(_matching(DNS_LABEL, "a DNS-1123 label (lower-case alphanumerics and '-')", 63)),
    SchemaExtra({"pattern": anchored(DNS_LABEL), "maxLength": 63}),
]
DNSSubdomain = Annotated[
    SafeStr,
    checker(_matching(DNS_SUBDOMAIN, "a DNS-1123 subdomain name (lower-case alphanumerics, '-', '.')", 253)),
    SchemaExtra({"pattern": anchored(DNS_SUBDOMAIN), "maxLength": 253}),
]


def _check_ipv4(value: str) -> None:
    if parse_address(value).version != 4:
        raise AddressError(f"{quote(value)} is not an IPv4 address")


IPAddress = Annotated[
    SafeStr, checker(parse_address), SchemaExtra({"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
]
IPv4Address = Annotated[SafeStr, checker(_check_ipv4), SchemaExtra({"format": "ipv4"})]
#: A CIDR with the host bits clear, e.g. 192.0.2.0/24 (192.0.2.1/24 is rejected).
CIDR = Annotated[SafeStr, checker(parse_cidr), SchemaExtra({"format": "cidr"})]
UInt32 = Annotated[int, Field(ge=0, le=4294967295)]


class WireModel(BaseModel):
    """Base of every model: snake_case in Python, camelCase on the wire.

    Strict, as the API server's schema is: "64512" is not an integer, "yes" is not a boolean.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True)

    def to_wire(self) -> dict[str, Any]:
        """The object as the Kubernetes API shows it (camelCase, absent fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(WireModel):
    """A model users write: unknown fields (typos) are errors."""

    model_config = ConfigDict(extra="forbid")


class ObjectMeta(WireModel):
    """The part of metav1.ObjectMeta lbipam reads; other fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: DNSSubdomain | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None
    creation_timestamp: str | None = None


class LabelSelectorRequirement(SpecModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(SpecModel):
    """A metav1.LabelSelector; all terms ANDed; empty selects everything."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    @model_validator(mode="after")
    def _compiles(self) -> LabelSelector:
        self.compiled()
        return self

    def compiled(self) -> Selector:
        """The core Selector; raises a ValidationError naming the term at fault."""
        try:
            return compile_selector(self.to_wire(), field="selector")
        except SelectorError as exc:
            loc = _parse_path(exc.field.removeprefix("selector"))
            raise field_error(str(exc)[len(exc.field) + 2 :], _dig(self.to_wire(), loc), *loc) from None


def compiled(selector: LabelSelector | None) -> Selector:
    """The core Selector of an optional selector field; absent selects everything."""
    return EVERYTHING if selector is None else selector.compiled()


def _parse_path(path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[([^\]]*)\]", path):
        parts.append(name or (int(index) if index.isdigit() else index))
    return tuple(parts)


def _dig(data: Any, loc: Iterable[str | int]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


class Condition(WireModel):
    """A metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


CONDITIONS_LIST: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class ResourceStatus(WireModel):
    """Conditions about the object, e.g. problems the schema cannot express."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST)


def _wire_names() -> dict[str, str]:
    """Python field name -> wire name, over every WireModel (errors of models built by name)."""
    names: dict[str, str] = {}
    pending: list[type[BaseModel]] = [WireModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        names.update((name, info.alias) for name, info in model.model_fields.items() if info.alias)
    return names


def _format_loc(loc: Iterable[str | int], names: dict[str, str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{names.get(part, part)}"
    return text.lstrip(".") or "(object)"


def describe_error(error: Any, names: dict[str, str] | None = None) -> str:
    """One line for one pydantic error dict: `path: message`, the message quoting the value."""
    path = _format_loc(error["loc"], _wire_names() if names is None else names)
    kind = error["type"]
    if kind == "lbipam":
        message = str(error["msg"])
    elif kind in ("value_error", "assertion_error"):
        message = str(error["ctx"]["error"])
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = f"unknown field (value {quote(error['input'])}); check the spelling"
    else:
        message = f"{error['msg']}, got {quote(error['input'])}"
    return f"{path}: {message}"


def describe_errors(exc: pydantic.ValidationError) -> list[str]:
    """Every error of `exc` as `spec.blocks[1].cidr: '192.0.2.0/33' has an invalid ...` lines."""
    names = _wire_names()
    return [describe_error(e, names) for e in exc.errors(include_url=False)]
