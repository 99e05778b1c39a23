"""`lbipam plan`: what it prints is valid and applies to a real API, and `--check` finds overlaps.

The command runs in-process through its own `add_parser`/`run` (as `lbipam.cli` calls them), the
YAML goes through the models, the generated CRD schemas and the stock kubectl against the embedded
API server, and one test runs `python -m lbipam plan` as a real process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbipam.api import parse_resource
from lbipam.api.crdgen import crd_dicts
from lbipam.api.schemacheck import crd_schema, schema_errors
from lbipam.k8s.client import connect
from lbipam.k8s.resources import LBPOOLS, PODCIDRPOOLS
from lbipam.tools import plan_cli

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60.0
SMALL = ["--clusters", "2", "--nodes", "2", "--pods-per-node", "8", "--services", "10", "--lb-ips", "4"]
DOC_BASES = ["--headroom", "1", "--ipv4-base", "198.51.100.0/24", "--ipv6-base", "2001:db8::/32"]


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="lbipam")
    plan_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["plan", *argv])
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


async def process(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run a real process (the event loop keeps serving meanwhile); (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv} did not finish in {DEADLINE}s") from None
    return proc.returncode or 0, out.decode(), err.decode()


def schemas() -> dict[str, Any]:
    return {crd["spec"]["names"]["kind"]: crd_schema(crd) for crd in crd_dicts()}


def test_yaml_objects_validate_against_the_models_and_the_crd_schemas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = invoke(capsys, *SMALL, *DOC_BASES, "--names", "red,blue", "-o", "yaml")
    assert code == 0
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("PodCIDRPool", "red-pods"),
        ("LoadBalancerIPPool", "red-lb"),
        ("PodCIDRPool", "blue-pods"),
        ("LoadBalancerIPPool", "blue-lb"),
    ]
    by_kind = schemas()
    for doc in docs:
        parse_resource(doc)
        assert schema_errors(doc, by_kind[doc["kind"]]) == []
    red_pods, red_lb = docs[0], docs[1]
    assert red_pods["spec"]["ipv4"] == {"cidrs": ["198.51.100.0/27"], "maskSize": 28}
    assert red_pods["spec"]["ipv6"] == {"cidrs": ["2001:db8::/123"], "maskSize": 124}
    assert red_pods["metadata"]["annotations"] == {
        plan_cli.SERVICE_CIDR_ANNOTATION: "198.51.100.64/28,2001:db8::40/124"
    }
    assert red_lb["spec"]["blocks"] == [{"cidr": "198.51.100.96/29"}, {"cidr": "2001:db8::60/125"}]
    assert "# red: kube-apiserver --service-cluster-ip-range=198.51.100.64/28,2001:db8::40/124" in out


def test_table_shows_every_cluster_and_what_it_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, *SMALL, *DOC_BASES)
    assert code == 0
    lines = out.splitlines()
    assert any(
        line.split()[:3] == ["cluster-2", "IPv4", "198.51.100.32/27"] for line in lines if line.strip()
    )
    assert "IPv4: 2 nodes x 13 pods, 14 Services, 6 LoadBalancer IPs" in out
    assert "IPv4 198.51.100.0/24: plan uses 112 of 256 addresses (43%)" in out


def test_impossible_input_is_refused_naming_the_size_needed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "--clusters", "3", "--ipv4-base", "192.0.2.0/24")
    assert code == 2
    assert out == ""
    assert "192.0.2.0/24 holds 256 addresses" in err
    assert "a /14 or larger" in err


def test_names_and_clusters_must_agree(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "--clusters", "3", "--names", "a,b")
    assert code == 2
    assert "--clusters 3 but --names lists 2 names" in err


def test_check_accepts_a_printed_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out, _ = invoke(capsys, "--clusters", "4", "-o", "yaml")
    (tmp_path / "plan.yaml").write_text(out)
    code, checked, _ = invoke(capsys, "--check", str(tmp_path / "plan.yaml"))
    assert code == 0
    assert "no overlaps among" in checked


def test_check_rejects_a_plan_with_an_overlap_naming_the_pair(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, out, _ = invoke(capsys, *SMALL, *DOC_BASES, "--names", "red,blue", "-o", "yaml")
    docs = [d for d in yaml.safe_load_all(out) if d]
    docs[3]["spec"]["blocks"][0]["cidr"] = "198.51.100.64/29"  # blue's LB range on red's services
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump_all(docs))
    code, found, _ = invoke(capsys, "--check", str(tmp_path / "edited.yaml"))
    assert code == 1
    assert found.splitlines() == [
        "overlap: LoadBalancerIPPool blue-lb spec.blocks[0] 198.51.100.64/29 (cluster blue) overlaps "
        f"PodCIDRPool red-pods metadata.annotations[{plan_cli.SERVICE_CIDR_ANNOTATION}] 198.51.100.64/28 "
        "(cluster red)"
    ]


@pytest.mark.parametrize("shape", ["sequence", "List"])
def test_check_reads_a_list_of_pools(capsys: pytest.CaptureFixture[str], tmp_path: Path, shape: str) -> None:
    pools = [
        {"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "a"},
         "spec": {"blocks": [{"cidr": "192.0.2.0/25"}, {"start": "2001:db8::1", "stop": "2001:db8::9"}]}},
        {"apiVersion": "lbipam.io/v1alpha1", "kind": "PodCIDRPool", "metadata": {"name": "b"},
         "spec": {"ipv6": {"cidrs": ["2001:db8::/120"], "maskSize": 124}}},
        {"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "c"},
         "spec": {"blocks": [{"cidr": "192.0.2.128/25"}]}},
    ]  # fmt: skip
    body: Any = pools if shape == "sequence" else {"apiVersion": "v1", "kind": "List", "items": pools}
    (tmp_path / "pools.yaml").write_text(yaml.safe_dump(body))
    code, found, _ = invoke(capsys, "--check", str(tmp_path / "pools.yaml"))
    assert code == 1
    assert found.splitlines() == [
        "overlap: PodCIDRPool b spec.ipv6.cidrs[0] 2001:db8::/120 overlaps "
        "LoadBalancerIPPool a spec.blocks[1] 2001:db8::1-2001:db8::9"
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kind: ConfigMap\napiVersion: v1\n", ["object 1", "'ConfigMap' is not a LoadBalancerIPPool"]),
        (
            "apiVersion: lbipam.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: x}\n"
            "spec: {blocks: [{cidr: 192.0.2.1/24}]}\n",
            ["object 1 (LoadBalancerIPPool x)", "spec.blocks[0].cidr", "host bits"],
        ),
        ("[unclosed", ["--check"]),
        ("# nothing\n", ["holds no LoadBalancerIPPool or PodCIDRPool"]),
    ],
    ids=["not-a-pool", "invalid-pool", "not-yaml", "empty"],
)
def test_check_refuses_bad_input_naming_the_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, words: list[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    code, _, err = invoke(capsys, "--check", str(tmp_path / "bad.yaml"))
    assert code == 2
    for word in words:
        assert word in err


def test_check_of_a_missing_file_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = invoke(capsys, "--check", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err


async def test_the_printed_yaml_applies_with_kubectl(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is installed on every machine this project builds on"
    _, out, _ = invoke(capsys, "--clusters", "2", "-o", "yaml")
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""), "CLOUDSDK_CONFIG": str(tmp_path / "g")}
    code, stdout, stderr = await process(
        kubectl, f"--kubeconfig={kubeconfig}", "apply", "-f", "-", stdin=out, env=env
    )
    assert code == 0, stderr
    assert "podcidrpool.lbipam.io/cluster-1-pods created" in stdout
    async with await connect(str(kubeconfig)) as kube:
        lb = {o["metadata"]["name"] for o in (await kube.list_all(LBPOOLS)).items}
        pc = (await kube.list_all(PODCIDRPOOLS)).items
    assert lb == {"cluster-1-lb", "cluster-2-lb"}
    assert {o["metadata"]["labels"][plan_cli.CLUSTER_LABEL] for o in pc} == {"cluster-1", "cluster-2"}


async def test_lbipam_plan_runs_as_a_command(tmp_path: Path) -> None:
    """Needs `lbipam plan` wired into lbipam.cli."""
    code, out, err = await process(sys.executable, "-m", "lbipam", "plan", "--clusters", "2", "-o", "yaml")
    assert code == 0, err
    code, checked, err = await process(sys.executable, "-m", "lbipam", "plan", "--check", "-", stdin=out)
    assert code == 0, err
    assert "no overlaps" in checked
