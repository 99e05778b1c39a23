"""What a translation gives back: the lbipam objects and the findings about what did not carry.

`Source` names the MetalLB or Cilium object a finding (or an output object) comes from; a
`Finding` is one field or object that was not carried, with the reason, or a `note` about one
that was carried in a way the user should know of (a Secret written, a default made explicit).
`Report` collects both while the translators run. Pure data; used by every module of
`lbipam.migrate` and printed by `lbipam.migrate.output`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbipam.migrate.validate import problems

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class Source:
    """One input object: its kind, namespace (MetalLB's objects are namespaced) and name."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Source:
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return cls(str(obj.get("kind") or "?"), str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}" if where else self.kind


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """`carried` False: the field (or, with `field` empty, the whole object) was not carried."""

    source: Source
    field: str
    reason: str
    carried: bool = False

    def line(self) -> str:
        what = f"{self.source} {self.field}" if self.field else str(self.source)
        return f"{'note' if self.carried else 'not carried'}: {what}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Options:
    """Choices the user makes on the command line."""

    #: where a BGPPeer's literal password goes, as a Secret the speaker may read (deploy/ grants
    #: the speaker the Secrets of lbipam-system only)
    secret_namespace: str = "lbipam-system"
    #: where Cilium keeps BGP passwords (its Helm value bgpControlPlane.secretNamespace.name)
    cilium_secret_namespace: str = "kube-system"


@dataclass
class Output:
    """One lbipam object (or Secret) and the input objects it was made from."""

    obj: Obj
    sources: tuple[Source, ...]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass
class Report:
    """Collects the output objects and the findings of one translation."""

    outputs: list[Output] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def emit(self, obj: Obj, *sources: Source) -> bool:
        """Output `obj` when it validates against lbipam's models; else report why, not it."""
        errors = problems(obj)
        for error in errors:
            self.drop(sources[0], "", f"the {obj['kind']} it becomes would be invalid: {error}")
        if not errors:
            self.outputs.append(Output(obj, sources))
        return not errors

    def drop(self, source: Source, field_name: str, reason: str) -> None:
        """Something of `source` is not carried (the exit code becomes 1)."""
        self._add(Finding(source, field_name, reason))

    def note(self, source: Source, field_name: str, reason: str) -> None:
        """Something of `source` is carried in a way worth saying (the exit code stays 0)."""
        self._add(Finding(source, field_name, reason, carried=True))

    def _add(self, finding: Finding) -> None:
        if finding not in self.findings:  # an object shared by several (a peer config) says it once
            self.findings.append(finding)

    @property
    def complete(self) -> bool:
        """Everything was carried."""
        return all(f.carried for f in self.findings)

    def names(self, kind: str) -> set[str]:
        return {o.name for o in self.outputs if o.kind == kind}
