"""How one stored resource behaves: the per-kind hooks of the object pipeline, and their defaults.

Like the real server's registry strategies: which name rule applies, whether `generation` is kept,
whether create-on-update and unconditional updates are allowed, defaulting (`prepare`), validation,
allocation of server-side resources (Service cluster IPs and node ports), field selectors, and the
conversion between the wire shape of an API version and the stored shape. `Strategy` is the plain
default; `builtins.py`, `services.py`, `events.py` and `crd.py` subclass it. Called by `objects.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lbipam.apiserver.errors import Cause, StatusError
from lbipam.apiserver.kinds.validation import dns1123_subdomain, validate_meta
from lbipam.apiserver.storage import jsonsafe
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Change, Obj, Store

_NOT_SPEC = frozenset({"metadata", "status", "apiVersion", "kind"})


@dataclass
class WriteOptions:
    """Query options of a write, and the warnings it collects for `Warning:` headers."""

    dry_run: bool = False
    field_manager: str | None = None  # the fieldManager query parameter, as given
    manager: str = "unknown"  # the manager recorded in managedFields (defaults from the User-Agent)
    field_validation: str = "Warn"  # Strict, Warn or Ignore (unknown fields of custom objects)
    force: bool = False
    applied: bool = False  # the body comes from server-side apply: managedFields already set
    warnings: list[str] = field(default_factory=list)


class Strategy:
    """Defaults for a kind with no special rules (ConfigMap-like)."""

    name_check: Callable[[str], list[str]] = staticmethod(dns1123_subdomain)
    generation = False  # keep metadata.generation (1 on create, +1 on spec changes)
    create_on_update = False  # PUT of a missing object creates it
    unconditional_update = True  # PUT without metadata.resourceVersion is allowed
    status_on_create = False  # keep .status given on create although /status exists (Nodes)
    extra_fields: tuple[str, ...] = ()  # field selectors beyond metadata.name/metadata.namespace
    finalize_on_delete = False  # delete only marks the object (Namespaces: Terminating)
    return_deleted = False  # DELETE answers with the object rather than a Status
    shape: dict[str, Any] = {}  # JSON types of the fields beyond metadata (see shapes.py)

    # -- shape ------------------------------------------------------------------------------

    def decode(self, rtype: ResourceType, obj: Obj) -> Obj:
        """The wire object of `rtype` in the stored shape (identity unless versions differ)."""
        return obj

    def encode(self, rtype: ResourceType, obj: Obj) -> Obj:
        """A stored object as `rtype` shows it (the stored dict itself when nothing differs)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = rtype.api_version
        return out

    def shape_of(self, rtype: ResourceType) -> dict[str, Any]:
        """The field types of `rtype`'s wire shape (events.k8s.io differs from core/v1)."""
        return self.shape

    def spec_of(self, rtype: ResourceType, obj: Obj) -> dict[str, Any]:
        """What counts as the spec for generation bumps: all but metadata and, with /status, status."""
        skip = _NOT_SPEC if "status" in rtype.subresources else _NOT_SPEC - {"status"}
        return {k: v for k, v in obj.items() if k not in skip}

    # -- hooks ------------------------------------------------------------------------------

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        """Defaulting on create (old is None) and update; mutates `obj`. May raise StatusError."""

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        """Field causes of a 422 for the whole object (create, update)."""
        return validate_meta(obj.get("metadata", {}), rtype.namespaced, self.name_check)

    def validate_status(self, rtype: ResourceType, obj: Obj, old: Obj) -> list[Cause]:
        """Field causes for a /status write (the rest of the object is the old one)."""
        return []

    def prepare_status(self, rtype: ResourceType, obj: Obj, old: Obj, opts: WriteOptions) -> None:
        """Defaulting of a /status write."""

    def before_delete(self, rtype: ResourceType, obj: Obj) -> None:
        """Refuse a delete (StatusError), e.g. of a protected namespace."""

    def terminating(self, obj: Obj) -> None:
        """Mark `obj` (already given a deletionTimestamp) as being deleted."""

    def dependents(self, obj: Obj, store: Store) -> list[tuple[str, str, str]]:
        """(storage key, namespace, name) of objects deleted along with `obj` (a CRD's objects)."""
        return []

    def allocate(self, obj: Obj, old: Obj | None) -> None:
        """Reserve server-side resources for `obj` (after validation); StatusError(422) if none."""

    def release(self, obj: Obj) -> None:
        """Give back what `allocate` reserved, when `obj` is deleted."""

    def committed(self, change: Change) -> None:
        """Called once a write of this kind is committed (e.g. CRDs register their kinds)."""

    # -- field selectors --------------------------------------------------------------------

    def supports_field(self, label: str) -> bool:
        return label in ("metadata.name", "metadata.namespace") or label in self.extra_fields

    def field_label(self, rtype: ResourceType, label: str) -> str | None:
        """The stored object's selectable field that `label` of `rtype`'s API names (None: not
        selectable there); differs where two APIs serve one kind (events.k8s.io)."""
        return label if self.supports_field(label) else None

    def field_value(self, obj: Obj, label: str) -> str:
        meta = obj.get("metadata", {})
        if label == "metadata.name":
            return str(meta.get("name", ""))
        if label == "metadata.namespace":
            return str(meta.get("namespace", ""))
        value: Any = obj
        for part in label.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)


def deep(obj: Obj) -> Obj:
    """A private copy of a stored object, to build the next version from."""
    copied: Obj = jsonsafe.copy(obj)  # several times quicker than copy.deepcopy
    return copied


def require_dict(value: Any, what: str) -> dict[str, Any]:
    """A body part that must be a JSON object; 400 like a decoding error otherwise."""
    if not isinstance(value, dict):
        raise StatusError(400, f"{what} must be a JSON object, not {type(value).__name__}")
    return value
