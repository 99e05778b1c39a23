"""deploy/'s RBAC grants each lbipam process exactly the API calls it makes: nothing it needs is
missing, nothing granted goes unused.

The embedded API server records every request (`lbipam.apiserver.wire.audit`) named as Kubernetes'
authorizer names it (verb, API group, resource, subresource, namespace, name). Each component runs
through the scenarios of rbac_scenarios.py; its recorded calls are then matched against the rules
that the rendered (`kubectl kustomize deploy/`) ClusterRoles and Roles bind to its ServiceAccount
(lbipam-controller, lbipam-speaker). Calls to discovery and health paths need no rule of ours:
every authenticated client may make them (system:discovery, system:public-info-viewer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.wire.audit import Call, Recorder, request_info
from tests.deploy_harness import NAMESPACE, Obj, rendered
from tests.rbac_scenarios import SCENARIOS, run_scenarios

# What every authenticated client may GET without any binding of ours (system:discovery and
# system:public-info-viewer): discovery, /version, OpenAPI, health.
DISCOVERY = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
COMPONENTS = sorted(SCENARIOS)


# ---- what the rendered roles grant ------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """One (group, resource[/subresource], verb, name) a role grants, and where."""

    role: str
    namespace: str  # "" = every namespace and cluster-scoped objects (a ClusterRoleBinding)
    group: str
    resource: str
    verb: str
    name: str = ""  # "" = any name

    def permits(self, call: Call) -> bool:
        resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
        return (
            (self.group, self.resource, self.verb) == (call.group, resource, call.verb)
            and self.namespace in ("", call.namespace)
            and self.name in ("", call.name)
        )


def grants_for(docs: Iterable[Obj], account: str, namespace: str = NAMESPACE) -> set[Grant]:
    """Everything the ClusterRoleBindings and RoleBindings give ServiceAccount `namespace/account`."""
    docs = list(docs)
    roles = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d.get("rules") or []
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
    }
    grants: set[Grant] = set()
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if not any(s.items() >= subject.items() for s in binding.get("subjects") or []):
            continue
        scope = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = binding["roleRef"]
        role_ns = scope if ref["kind"] == "Role" else ""
        rules = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in rules:
            grants |= {
                Grant(f"{ref['kind']}/{ref['name']}", scope, group, resource, verb, name)
                for group in rule.get("apiGroups") or [""]
                for resource in rule.get("resources") or []
                for verb in rule.get("verbs") or []
                for name in rule.get("resourceNames") or [""]
            }
    return grants


def is_discovery(call: Call) -> bool:
    return call.verb == "get" and any(call.path == p or call.path.startswith(p + "/") for p in DISCOVERY)


def compare(calls: list[Call], grants: set[Grant]) -> tuple[list[str], list[str]]:
    """(calls no grant permits, grants no call used), as readable lines."""
    denied = sorted(
        {
            f"{c.verb} {c.path or '/'.join(p for p in (c.group, c.resource, c.subresource) if p)}"
            f"{' in ' + c.namespace if c.namespace else ''}{' named ' + c.name if c.name else ''}"
            for c in calls
            if not (is_discovery(c) if c.path else any(g.permits(c) for g in grants))
        }
    )
    unused = sorted(
        f"{g.role}: {g.verb} {g.group}/{g.resource}{' named ' + g.name if g.name else ''}"
        for g in grants
        if not any(g.permits(c) for c in calls if not c.path)
    )
    return denied, unused


# ---- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("component", COMPONENTS)
async def test_rbac_grants_exactly_the_calls_made(component: str, tmp_path: Path) -> None:
    account = f"lbipam-{component}"
    calls = await run_scenarios(SCENARIOS[component], account, tmp_path)
    denied, unused = compare(calls, grants_for(rendered(), account))
    assert not denied, f"{account} makes calls deploy/ does not grant it:\n" + "\n".join(denied)
    assert not unused, f"deploy/ grants {account} what it never uses:\n" + "\n".join(unused)


def test_roles_name_everything_they_grant() -> None:
    """No wildcards: every rule lists its API groups, resources and verbs."""
    for doc in rendered():
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules") or []:
                named = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]
                assert not [x for x in named if "*" in x], (doc["metadata"]["name"], rule)
                assert not rule.get("nonResourceURLs"), (doc["metadata"]["name"], rule)


def test_comparison_finds_a_missing_and_an_unused_grant() -> None:
    grants = grants_for(rendered(), "lbipam-controller")
    status = request_info("PATCH", "/api/v1/namespaces/default/services/web/status", {}, "c")
    delete = request_info("DELETE", "/api/v1/namespaces/default/services/web", {}, "c")
    lease = request_info("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/other", {}, "c")
    lease_elsewhere = request_info("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", {}, "c")
    denied, unused = compare([status, delete, lease, lease_elsewhere], grants)
    assert denied == [
        "create coordination.k8s.io/leases in default",
        "delete services in default named web",
        f"update coordination.k8s.io/leases in {NAMESPACE} named other",
    ]
    assert "ClusterRole/lbipam-controller: patch /services/status" not in unused
    assert "ClusterRole/lbipam-controller: list /services" in unused
    assert (
        "Role/lbipam-controller-leader-election: get coordination.k8s.io/leases named lbipam-controller"
        in unused
    )
    assert grants_for(rendered(), "someone-else") == set()


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/services", {}, ("list", "", "services", "", "", "")),
        ("GET", "/api/v1/services", {"watch": "true"}, ("watch", "", "services", "", "", "")),
        ("GET", "/api/v1/namespaces/default/services/web", {}, ("get", "", "services", "", "default", "web")),
        (
            "GET",
            "/api/v1/watch/namespaces/default/services/web",
            {},
            ("watch", "", "services", "", "default", "web"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"watch": "1", "fieldSelector": "metadata.name=n1"},
            ("watch", "", "nodes", "", "", "n1"),
        ),
        ("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name!=n1"}, ("list", "", "nodes", "", "", "")),
        (
            "PATCH",
            "/api/v1/namespaces/default/services/web/status",
            {},
            ("patch", "", "services", "status", "default", "web"),
        ),
        (
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            {},
            ("create", "events.k8s.io", "events", "", "default", ""),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
            {},
            ("update", "coordination.k8s.io", "leases", "", "x", "l"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/services",
            {},
            ("deletecollection", "", "services", "", "default", ""),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/services/web",
            {},
            ("delete", "", "services", "", "default", "web"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
        ("GET", "/api/v1/namespaces/default", {}, ("get", "", "namespaces", "", "default", "default")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "namespaces", "finalize", "x", "x")),
        (
            "PATCH",
            "/apis/lbipam.io/v1alpha1/loadbalancerippools/a/status",
            {},
            ("patch", "lbipam.io", "loadbalancerippools", "status", "", "a"),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None,
)
def test_request_info_names_requests_as_kubernetes_does(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    call = request_info(method, path, query, "lbipam-controller/0.1.0")
    assert (call.verb, call.group, call.resource, call.subresource, call.namespace, call.name) == expected
    assert call.component == "lbipam-controller"
    assert call.path == ""


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis/lbipam.io/v1alpha1", "/openapi/v3"])
def test_request_info_leaves_discovery_without_a_resource(path: str) -> None:
    call = request_info("GET", path, {}, "kubectl/v1.32")
    assert (call.verb, call.resource, call.path) == ("get", "", path)
    assert is_discovery(call)


async def test_the_server_records_requests_before_routing_them() -> None:
    """Also a call to a kind the server does not serve (yet): RBAC decides before routing."""
    recorder = Recorder()
    server = EmbeddedAPIServer(port=0, recorder=recorder)
    await server.start()
    try:
        async with server.session(headers={"User-Agent": "probe/1"}) as session:
            async with session.get("/apis/nope.example/v1/things", params={"watch": "true"}) as r:
                assert r.status == 404
            async with session.get("/api/v1/namespaces/default") as r:
                assert r.status == 200
    finally:
        await server.stop()
    assert recorder.calls == [
        Call("probe/1", "watch", "nope.example", "things"),
        Call("probe/1", "get", "", "namespaces", "", "default", "default"),
    ]
