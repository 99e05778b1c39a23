"""`lbipam migrate` as a user runs it: files, stdin or a cluster in; YAML on stdout, the report on
stderr; exit code 0 (all carried), 1 (something not) or 2 (bad input); a password only ever in
the Secret on stdout."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lbipam.cli import main
from tests.conftest import CRD_PATH

DATA = Path(__file__).parent / "data" / "migrate"
ROOT = Path(__file__).parent.parent
POOL = DATA / "metallb" / "input" / "configsamples-ipaddresspool_simple.yaml"
PEERS = DATA / "metallb" / "input" / "lbipam-peers.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["migrate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_everything_carried_exits_0_with_yaml_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--from", "metallb", "-f", str(POOL))
    assert code == 0
    (pool,) = [d for d in yaml.safe_load_all(out) if d]
    assert (pool["kind"], pool["metadata"]["name"]) == ("LoadBalancerIPPool", "example")
    assert err == "lbipam migrate: 1 object written; everything carried\n"


def test_something_not_carried_exits_1_and_says_what(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--from", "metallb", "-f", str(PEERS), "--secret-namespace", "bgp")
    assert code == 1
    assert "not carried: BGPPeer metallb-system/unnumbered spec.interface: unnumbered BGP" in err
    secret = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Secret")
    assert secret["metadata"] == {"name": "tor-node-a-bgp-password", "namespace": "bgp"}
    assert base64.b64decode(secret["data"]["password"]) == b"not-a-real-secret"
    assert "not-a-real-secret" not in err
    assert "not-a-real-secret" not in out


def test_several_files_and_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ad = DATA / "metallb" / "input" / "configsamples-bgpadv_selectspool_by_label.yaml"
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(ad.read_text()))
    code, out, _ = run(capsys, "--from", "metallb", "-f", str(POOL), "-f", "-")
    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(out) if d] == ["LoadBalancerIPPool", "BGPAdvertisement"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not YAML"),
        ("- 1\n- 2\n", "document 1 is not a Kubernetes object"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "the input holds no metallb object"),
    ],
    ids=["not yaml", "not an object", "nothing of metallb"],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "--from", "metallb", "-f", str(path))
    assert (code, out) == (2, "")
    assert err.startswith("lbipam migrate: ")
    assert message in err


def test_a_missing_file_and_two_sources_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--from", "cilium", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err
    code, _, err = run(capsys, "--from", "cilium", "-f", str(POOL), "--kubeconfig", str(tmp_path / "k"))
    assert code == 2
    assert "not both" in err


async def _apply(apiserver: object, docs: list[dict[str, object]]) -> None:
    """POST `docs` (CRDs, namespaces, then objects) as kubectl create would."""
    async with apiserver.session() as session:  # type: ignore[attr-defined]
        for doc in docs:
            kind = str(doc["kind"])
            meta = doc["metadata"]
            assert isinstance(meta, dict)
            if kind == "CustomResourceDefinition":
                path = CRD_PATH
            elif kind == "Namespace":
                path = "/api/v1/namespaces"
            else:
                group_version = str(doc["apiVersion"])
                plural = {
                    "IPAddressPool": "ipaddresspools",
                    "BGPPeer": "bgppeers",
                    "BGPAdvertisement": "bgpadvertisements",
                }[kind]
                path = f"/apis/{group_version}/namespaces/{meta['namespace']}/{plural}"
            for _ in range(50):  # a CRD's resources are served once it is Established
                async with session.post(path, json=doc) as response:
                    if response.status != 404:
                        assert response.status == 201, await response.text()
                        break
                await asyncio.sleep(0.05)


async def test_from_a_cluster_as_from_its_manifests(apiserver: object, kubeconfig: Path) -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((DATA / "metallb" / "crds").glob("*.yaml"))]
    inputs = [
        DATA / "metallb" / "input" / n for n in ("docs-config-bgp.yaml", "docs-bgp-service-selectors.yaml")
    ]
    objects = [d for p in inputs for d in yaml.safe_load_all(p.read_text()) if d]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}}
    await _apply(apiserver, [*crds, namespace, *objects])
    argv = [sys.executable, "-m", "lbipam", "migrate", "--from", "metallb"]
    from_cluster = await asyncio.to_thread(
        subprocess.run,
        [*argv, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    files = [a for p in inputs for a in ("-f", str(p))]
    from_files = await asyncio.to_thread(
        subprocess.run, [*argv, *files], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert from_cluster.returncode == 0, from_cluster.stderr
    assert from_cluster.stdout == from_files.stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(from_cluster.stdout) if d]
    assert kinds == [
        "LoadBalancerIPPool",
        "BGPPeer",
        "BGPAdvertisement",
        "BGPAdvertisement",
        "BGPAdvertisement",
    ]


async def test_a_cluster_without_their_crds_exits_2(kubeconfig: Path) -> None:
    argv = [sys.executable, "-m", "lbipam", "migrate", "--from", "cilium", "--kubeconfig", str(kubeconfig)]
    result = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 2
    assert (
        result.stderr == "lbipam migrate: the API serves none of cilium's kinds (are its CRDs installed?)\n"
    )
