"""Every lbipam object the translation writes is checked against lbipam's own models (the source
of the CRDs) before it is output: what does not validate is reported, never printed.

`problems(obj)` gives the one-line errors of an object (`spec.blocks[1].cidr: ...`), none for
an object of another API (the Secrets the translation writes). `BFD` says whether this lbipam's
BGPPeer has `spec.bfd`. Pure; called by `lbipam.migrate.report.Report.emit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from lbipam.api import API_VERSION, describe_errors, parse_resource


def problems(obj: Mapping[str, Any]) -> list[str]:
    if obj.get("apiVersion") != API_VERSION:
        return []
    try:
        parse_resource(obj)
    except pydantic.ValidationError as err:
        return describe_errors(err)
    except KeyError as err:
        return [str(err)]
    return []
