"""Kubernetes' shared validation rules: DNS names, label keys and values, object metadata, timestamps.

Pure functions returning `errors.Cause` lists with the real server's field paths and messages.
Called by the object pipeline (`objects.py`) and the kind-specific modules (`builtins.py`,
`services.py`, `events.py`, `crd.py`).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from lbipam.apiserver.errors import Cause, StatusError, invalid, required

_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_DNS1035_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_QNAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def dns1123_label(value: str) -> list[str]:
    """Why `value` is not an RFC 1123 label ([] when it is)."""
    problems = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return problems + ([] if _LABEL_RE.match(value) else [DNS1123_LABEL_MSG])


def dns1123_subdomain(value: str) -> list[str]:
    problems = [] if len(value) <= 253 else ["must be no more than 253 characters"]
    return problems + ([] if _SUBDOMAIN_RE.match(value) else [DNS1123_SUBDOMAIN_MSG])


def dns1035_label(value: str) -> list[str]:
    problems = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return problems + ([] if _DNS1035_RE.match(value) else [DNS1035_LABEL_MSG])


def qualified_name(value: str) -> list[str]:
    """Label and annotation keys: an optional DNS subdomain prefix, '/', and a name part."""
    prefix, _, name = value.rpartition("/")
    if value.count("/") > 1:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
            "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    problems = []
    if "/" in value:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        return [*problems, "name part must be non-empty"]
    if len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QNAME_RE.match(name):
        problems.append(QNAME_MSG)
    return problems


def label_value(value: str) -> list[str]:
    problems = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return problems + ([] if _LABEL_VALUE_RE.match(value) else [LABEL_VALUE_MSG])


def name_causes(path: str, value: str, check: Any) -> list[Cause]:
    """One cause per problem `check` (e.g. dns1123_label) finds in `value`."""
    return [invalid(path, value, problem) for problem in check(value)]


def validate_labels(labels: Any, path: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of string keys and string values")]
    causes: list[Cause] = []
    for key, value in labels.items():
        causes += [invalid(path, key, p) for p in qualified_name(key)]
        if not isinstance(value, str):
            causes.append(invalid(f"{path}[{key}]", value, "must be a string"))
        else:
            causes += [invalid(path, value, p) for p in label_value(value)]
    return causes


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid(path, annotations, "must be a map of string keys and string values")]
    causes: list[Cause] = []
    total = 0
    for key, value in annotations.items():
        causes += [invalid(path, key, p) for p in qualified_name(key.lower())]
        if not isinstance(value, str):
            causes.append(invalid(f"{path}[{key}]", value, "must be a string"))
        else:
            total += len(key) + len(value)
    if total > 256 * 1024:
        causes.append(Cause(path, "Too long: must have at most 262144 bytes", "FieldValueTooLong"))
    return causes


def validate_meta(meta: dict[str, Any], namespaced: bool, name_check: Any) -> list[Cause]:
    """ObjectMeta rules shared by every kind (the name rule differs per kind)."""
    causes: list[Cause] = []
    name = meta.get("name", "")
    if not isinstance(name, str) or not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes += name_causes("metadata.name", name, name_check)
    if namespaced:
        namespace = meta.get("namespace", "")
        if not namespace:
            causes.append(required("metadata.namespace"))
        elif isinstance(namespace, str):
            causes += name_causes("metadata.namespace", namespace, dns1123_label)
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    finalizers = meta.get("finalizers") or []
    if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
        causes.append(invalid("metadata.finalizers", finalizers, "must be a list of strings"))
    else:
        for index, fin in enumerate(finalizers):
            causes += [invalid(f"metadata.finalizers[{index}]", fin, p) for p in qualified_name(fin)]
    return causes


_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp as Go's time.Parse(time.RFC3339) reads it; None if it cannot."""
    match = _TIME_RE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        micro = int((frac or ".0")[1:7].ljust(6, "0"))
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, UTC)
    except ValueError:
        return None
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment


def format_time(moment: datetime, micro: bool = False) -> str:
    """metav1.Time (seconds) or metav1.MicroTime (microseconds), always in UTC with a Z."""
    moment = moment.astimezone(UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now(micro: bool = False) -> str:
    return format_time(datetime.now(UTC), micro)


def normalize_time(holder: dict[str, Any], key: str, what: str, micro: bool = False) -> None:
    """Rewrite holder[key] as the real server would store it; 400 for text that is not a time."""
    value = holder.get(key)
    if value is None:
        return
    moment = parse_time(value) if isinstance(value, str) else None
    if moment is None:
        raise StatusError(
            400,
            f'{what}: parsing time {value!r} as "2006-01-02T15:04:05Z07:00": cannot parse it as RFC 3339',
        )
    holder[key] = format_time(moment, micro)


def parse_ip(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as Go's net.ParseIP reads it (no zone, no prefix); None if it is not one."""
    if not isinstance(text, str) or "%" in text or not text or text != text.strip():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_cidr(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Go's net.ParseCIDR reads it (host bits may be set); None if it is not one."""
    if not isinstance(text, str) or "/" not in text:
        return None
    address, _, prefix = text.partition("/")
    if parse_ip(address) is None or not prefix.isdigit() or (len(prefix) > 1 and prefix[0] == "0"):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
