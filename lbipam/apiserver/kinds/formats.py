"""The string formats Kubernetes checks in CRD schemas (kube-openapi's strfmt), for `jsonschema`.

ipv4, ipv6 and cidr as Go's net package parses them (no zones, no leading zeros, host bits allowed
in a CIDR), date-time/datetime (RFC 3339), date, duration (Go syntax), uuid, byte (base64), mac,
hostname and email. Formats Kubernetes does not know are not checked, as there. Pure; used by
`schema.py`.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date

import jsonschema

from lbipam.apiserver.kinds.validation import dns1123_subdomain, parse_cidr, parse_ip, parse_time

CHECKER = jsonschema.FormatChecker(formats=())
_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.I)
_MAC = re.compile(r"([0-9a-f]{2}[:-]){5}[0-9a-f]{2}\Z|([0-9a-f]{4}\.){2}[0-9a-f]{4}\Z", re.I)
_DURATION = re.compile(r"[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+\Z|0\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


@CHECKER.checks("ipv4")
def _ipv4(value: object) -> bool:
    ip = parse_ip(value)
    return not isinstance(value, str) or (ip is not None and ip.version == 4)


@CHECKER.checks("ipv6")
def _ipv6(value: object) -> bool:
    ip = parse_ip(value)
    return not isinstance(value, str) or (ip is not None and ip.version == 6)


@CHECKER.checks("cidr")
def _cidr(value: object) -> bool:
    return not isinstance(value, str) or parse_cidr(value) is not None


@CHECKER.checks("date-time")
@CHECKER.checks("datetime")
def _datetime(value: object) -> bool:
    return not isinstance(value, str) or parse_time(value) is not None


@CHECKER.checks("date")
def _date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


@CHECKER.checks("duration")
def _duration(value: object) -> bool:
    return not isinstance(value, str) or bool(_DURATION.match(value))


@CHECKER.checks("uuid")
@CHECKER.checks("uuid3")
@CHECKER.checks("uuid4")
@CHECKER.checks("uuid5")
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(_UUID.match(value))


@CHECKER.checks("byte")
def _byte(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@CHECKER.checks("mac")
def _mac(value: object) -> bool:
    return not isinstance(value, str) or bool(_MAC.match(value))


@CHECKER.checks("hostname")
def _hostname(value: object) -> bool:
    return not isinstance(value, str) or not dns1123_subdomain(value.lower())


@CHECKER.checks("email")
def _email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))
