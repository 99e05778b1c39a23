"""Reading the input documents and writing the result: YAML for stdout, the report for stderr.

`documents(text)`: every object of a YAML (or JSON) stream, `kind: List` items included;
`InputError` for what is not a stream of objects. `render_yaml(report, source)`: the objects, in
a stable order (Secrets, pools, peers, advertisements; by name), each under a comment naming the
objects it comes from. `render_report(report)`: one line per finding, then a summary. Pure; used
by `lbipam migrate` and the golden tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from lbipam.migrate.report import Obj, Report
from lbipam.migrate.shapes import load_yaml

ORDER = ("Secret", "LoadBalancerIPPool", "BGPPeer", "BGPAdvertisement")


class InputError(ValueError):
    """The input is not a stream of Kubernetes objects."""


def documents(text: str, where: str) -> list[Obj]:
    """The objects of a YAML stream (`where` names it in errors); `List` objects are flattened."""
    try:
        loaded = load_yaml(text)
    except yaml.YAMLError as err:
        raise InputError(f"{where}: not YAML: {err}") from None
    out: list[Obj] = []
    for index, doc in enumerate(loaded):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or "apiVersion" not in doc:
            raise InputError(
                f"{where}: document {index + 1} is not a Kubernetes object (apiVersion and kind)"
            )
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            items = [i for i in doc["items"] if isinstance(i, dict)]
            if len(items) != len(doc["items"]):
                raise InputError(f"{where}: document {index + 1}: a List item is not an object")
            out.extend(items)
        else:
            out.append(doc)
    return out


def _tidy(obj: Mapping[str, Any]) -> Obj:
    """The object without empty labels."""
    meta = dict(obj["metadata"])
    if not meta.get("labels"):
        meta.pop("labels", None)
    return {**obj, "metadata": meta}


def render_yaml(report: Report, source: str) -> str:
    outputs = sorted(
        report.outputs, key=lambda o: (ORDER.index(o.kind) if o.kind in ORDER else len(ORDER), o.name)
    )
    count = f"{len(outputs)} object{'s' if len(outputs) != 1 else ''}"
    parts = [f"# lbipam migrate --from {source}: {count}\n"]
    for output in outputs:
        origin = ", ".join(str(s) for s in dict.fromkeys(output.sources))
        body = yaml.safe_dump(_tidy(output.obj), sort_keys=False, default_flow_style=False)
        parts.append(f"---\n# from {origin}\n{body}")
    return "".join(parts)


def render_report(report: Report) -> str:
    findings = sorted(report.findings, key=lambda f: (f.carried, f.source, f.field, f.reason))
    lines = [f.line() for f in findings]
    dropped = sum(1 for f in findings if not f.carried)
    written = f"{len(report.outputs)} object{'s' if len(report.outputs) != 1 else ''} written"
    if dropped:
        lines.append(
            f"lbipam migrate: {written}; {dropped} field{'s' if dropped != 1 else ''} or objects not carried"
        )
    else:
        lines.append(f"lbipam migrate: {written}; everything carried")
    return "\n".join(lines) + "\n"
