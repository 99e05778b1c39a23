"""CustomResourceDefinitions and the custom objects they define.

`CRDStrategy` validates and defaults CRDs (`crdcheck.py`), sets their status the way the
apiextensions controllers do (NamesAccepted, Established, acceptedNames, storedVersions), and once a
CRD write is committed registers its served versions in the registry, with their `/status`
subresource, schema and printer columns, so that discovery and the resource URLs appear at once;
deleting a CRD deletes its objects and unregisters the kind. `CustomStrategy` is how custom objects
behave: pruning, defaulting and validation against the schema (`schema.py`), `generation`, and no
unconditional updates. Both are wired by `server.py`; the pipeline calls their hooks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from lbipam.apiserver.errors import Cause, StatusError
from lbipam.apiserver.kinds.crdcheck import crd_causes, schema_type_problem
from lbipam.apiserver.kinds.schema import Schema, apply_defaults, drop_nulls, prune, validate
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions
from lbipam.apiserver.kinds.validation import now
from lbipam.apiserver.storage.registry import Registry, ResourceType
from lbipam.apiserver.storage.store import Change, Obj, Store
from lbipam.apiserver.storage.watch import WatchHub

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
_CRD = "CustomResourceDefinition"


class CustomStrategy(Strategy):
    generation = True
    unconditional_update = False

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        self._clean(rtype, obj, opts)

    def prepare_status(self, rtype: ResourceType, obj: Obj, old: Obj, opts: WriteOptions) -> None:
        self._clean(rtype, obj, opts, status_only(rtype.schema or {}))

    @staticmethod
    def _clean(rtype: ResourceType, obj: Obj, opts: WriteOptions, schema: Schema | None = None) -> None:
        if schema is None:
            schema = rtype.schema or {}
        drop_nulls(obj, schema)
        pruned = prune(obj, schema)
        unknown = [f'unknown field "{path}"' for path in pruned]
        if unknown and opts.field_validation == "Strict":
            raise StatusError(400, "strict decoding error: " + ", ".join(unknown))
        if opts.field_validation == "Warn":
            opts.warnings += unknown
        apply_defaults(obj, schema)

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        return super().validate(rtype, obj, old) + validate(obj, rtype.schema or {})

    def validate_status(self, rtype: ResourceType, obj: Obj, old: Obj) -> list[Cause]:
        return validate(obj, status_only(rtype.schema or {}))


_status_schemas: dict[int, tuple[Schema, Schema]] = {}


def status_only(schema: Schema) -> Schema:
    """`schema` with every top-level field but `status` (and metadata) taken as it is.

    A /status write changes nothing else: the rest is the stored object, pruned, defaulted and
    validated when it was written. kube-apiserver (1.30+, CRD validation ratcheting) likewise
    lets unchanged fields through; and a pool of 100,000 blocks need not be walked again for
    every status update (seconds each here)."""
    cached = _status_schemas.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    kept = {"x-kubernetes-preserve-unknown-fields": True}
    props = {
        key: sub if key in ("status", "metadata") else kept
        for key, sub in (schema.get("properties") or {}).items()
    }
    derived = {**schema, "properties": props}
    _status_schemas[id(schema)] = (schema, derived)
    return derived


def _version_rank(name: str) -> tuple[int, int, int, str]:
    """Kubernetes' version priority: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", name)
    if not match:
        return (3, 0, 0, name)
    major, stage, minor = match.groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0), name)


def resource_types(crd: Obj) -> list[ResourceType]:
    """The served versions of a CRD as resource types; the first is the preferred one."""
    spec = crd["spec"]
    names = spec["names"]
    served = sorted((v for v in spec["versions"] if v.get("served")), key=lambda v: _version_rank(v["name"]))
    types = []
    for index, version in enumerate(served):
        # Only /status is served; a declared /scale is not (nothing lbipam or kubectl here needs it).
        subresources = frozenset(k for k in ("status",) if k in (version.get("subresources") or {}))
        types.append(
            ResourceType(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                spec["scope"] == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                builtin=False,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                extra={"storage": bool(version.get("storage")), "crd": crd["metadata"]["name"]},
                preferred=index == 0,
            )
        )
    return types


class CRDStrategy(Strategy):
    generation = True
    unconditional_update = False
    key = CRD_KEY
    shape = {
        "spec": {
            "group": str,
            "names": {
                "plural": str,
                "singular": str,
                "kind": str,
                "listKind": str,
                "shortNames": [str],
                "categories": [str],
            },
            "scope": str,
            "versions": [
                {
                    "name": str,
                    "served": bool,
                    "storage": bool,
                    "schema": {"openAPIV3Schema": dict},
                    "subresources": {"status": dict, "scale": dict},
                    "additionalPrinterColumns": [dict],
                }
            ],
            "conversion": dict,
        }
    }

    def __init__(self, registry: Registry, hub: WatchHub, store: Store) -> None:
        self.registry = registry
        self.hub = hub
        self.store = store
        self.strategies: dict[str, Strategy] = {}
        self.custom = CustomStrategy()

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("names"), dict):
            return  # validation reports it
        names = spec["names"]
        if isinstance(names.get("kind"), str):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        for index, version in enumerate(spec.get("versions") or []):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            problem = (
                schema_type_problem(schema, f"spec.versions[{index}].schema.openAPIV3Schema")
                if schema
                else None
            )
            columns = version.get("additionalPrinterColumns")
            if columns is not None and not all(isinstance(c, dict) for c in columns):
                problem = f"spec.versions[{index}].additionalPrinterColumns: must be a list of objects"
            if problem:
                raise StatusError(
                    400,
                    f'CustomResourceDefinition in version "v1" cannot be handled as a {_CRD}: {problem}',
                )
        if not crd_causes(obj, old):
            obj["status"] = self._status(obj, (old or {}).get("status") or {})

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        return super().validate(rtype, obj, old) + crd_causes(obj, old)

    def _status(self, crd: Obj, previous: dict[str, Any]) -> dict[str, Any]:
        spec = crd["spec"]
        clash = self._name_conflict(crd)
        if clash is None:
            accepted = copy.deepcopy(spec["names"])
            named = ("True", "NoConflicts", "no conflicts found")
            established = ("True", "InitialNamesAccepted", "the initial names have been accepted")
        else:
            accepted = copy.deepcopy(previous.get("acceptedNames") or {"plural": "", "kind": ""})
            named = ("False", clash[0], clash[1])
            established = ("False", "NotAccepted", "not all names are accepted")
        stored = list(previous.get("storedVersions") or [])
        stored += [v["name"] for v in spec["versions"] if v.get("storage") and v["name"] not in stored]
        return {
            "acceptedNames": accepted,
            "conditions": [
                _condition(previous, "NamesAccepted", *named),
                _condition(previous, "Established", *established),
            ],
            "storedVersions": stored,
        }

    def _name_conflict(self, crd: Obj) -> tuple[str, str] | None:
        spec, name = crd["spec"], crd["metadata"]["name"]
        names = spec["names"]
        for other in self.store.items(CRD_KEY):
            if other["metadata"]["name"] == name or other["spec"].get("group") != spec["group"]:
                continue
            taken = (other.get("status") or {}).get("acceptedNames") or {}
            if names["kind"] in (taken.get("kind"), taken.get("listKind")):
                return "KindConflict", f'"{names["kind"]}" is already in use'
            for short in set(names.get("shortNames") or ()) & set(taken.get("shortNames") or ()):
                return "ShortNamesConflict", f'"{short}" is already in use'
        return None

    def dependents(self, obj: Obj, store: Store) -> list[tuple[str, str, str]]:
        key = f"{obj['spec']['group']}/{obj['spec']['names']['plural']}"
        return [(key, ns, name) for ns, name in store.latest_names(key)]

    def committed(self, change: Change) -> None:
        if change.type == "DELETED":
            self._unregister(change.obj)
        else:
            self._register(change.obj)

    def restore(self, crds: Iterable[Obj]) -> None:
        """Serve the kinds of the CRDs found in the database at start-up."""
        for crd in crds:
            self._register(crd)

    def _register(self, crd: Obj) -> None:
        spec = crd["spec"]
        self.registry.remove(spec["group"], spec["names"]["plural"])
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        for rtype in resource_types(crd):
            self.registry.add(rtype)
        self.strategies[f"{spec['group']}/{spec['names']['plural']}"] = self.custom

    def _unregister(self, crd: Obj) -> None:
        spec = crd["spec"]
        key = f"{spec['group']}/{spec['names']['plural']}"
        self.registry.remove(spec["group"], spec["names"]["plural"])
        self.strategies.pop(key, None)
        self.hub.close_all(key)


def _condition(previous: dict[str, Any], kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    before = next((c for c in previous.get("conditions") or [] if c.get("type") == kind), None)
    since = before["lastTransitionTime"] if before and before.get("status") == status else now()
    return {"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message}
