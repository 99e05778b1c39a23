"""`lbipam migrate --from metallb|cilium`: read MetalLB's or Cilium's objects from files or a
cluster, print the lbipam objects (YAML, stdout) and what could not be carried (stderr).

Files: `-f FILE` (repeatable; `-` is stdin), YAML or JSON, several documents or a `List` each, as
`kubectl get -o yaml` writes them. A cluster: `--kubeconfig` (else $KUBECONFIG, in-cluster,
~/.kube/config), read through `lbipam.k8s`: every kind `lbipam.migrate` translates, in the
newest version the API serves, and the Services. Exit code: 0 everything carried, 1 something
not (see stderr), 2 bad input or an unreadable cluster. The translation is `lbipam.migrate`;
this module only reads and prints. Wired into `lbipam.cli` as `lbipam migrate`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.resources import SERVICES, Resource
from lbipam.tools import EXIT_CLEAN, EXIT_FINDINGS, fail

if TYPE_CHECKING:
    from lbipam.k8s.client import Kube

Obj = dict[str, Any]
SOURCES = ("metallb", "cilium")


class NothingServed(Exception):
    """The cluster serves none of the kinds of the source asked for."""


def _res(group: str, versions: tuple[str, ...], plural: str, kind: str, namespaced: bool) -> list[Resource]:
    """One kind in each of its versions, newest first."""
    return [Resource(group, v, plural, kind, namespaced=namespaced) for v in versions]


#: What each source reads from a cluster: per kind, its versions newest first.
CLUSTER_KINDS: dict[str, list[list[Resource]]] = {
    "metallb": [
        _res("metallb.io", ("v1beta1",), "ipaddresspools", "IPAddressPool", True),
        _res("metallb.io", ("v1beta2", "v1beta1"), "bgppeers", "BGPPeer", True),
        _res("metallb.io", ("v1beta1",), "bgpadvertisements", "BGPAdvertisement", True),
        _res("metallb.io", ("v1beta1",), "bfdprofiles", "BFDProfile", True),
        _res("metallb.io", ("v1beta1",), "communities", "Community", True),
        _res("metallb.io", ("v1beta1",), "l2advertisements", "L2Advertisement", True),
    ],
    "cilium": [
        _res("cilium.io", ("v2", "v2alpha1"), "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", False),
        _res("cilium.io", ("v2", "v2alpha1"), "ciliumbgpclusterconfigs", "CiliumBGPClusterConfig", False),
        _res("cilium.io", ("v2", "v2alpha1"), "ciliumbgppeerconfigs", "CiliumBGPPeerConfig", False),
        _res("cilium.io", ("v2", "v2alpha1"), "ciliumbgpadvertisements", "CiliumBGPAdvertisement", False),
        _res("cilium.io", ("v2alpha1",), "ciliumbgppeeringpolicies", "CiliumBGPPeeringPolicy", False),
        _res(
            "cilium.io",
            ("v2", "v2alpha1"),
            "ciliumbgpnodeconfigoverrides",
            "CiliumBGPNodeConfigOverride",
            False,
        ),
    ],
}
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
#: Where MetalLB before v0.13 kept its configuration.
LEGACY_CONFIGMAP = ("metallb-system", "config")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "migrate",
        help="translate MetalLB's or Cilium's LB-IPAM and BGP objects into lbipam's (YAML on stdout)",
        description="Read MetalLB (metallb.io IPAddressPool, BGPPeer, BGPAdvertisement, BFDProfile, "
        "Community, L2Advertisement, and the legacy ConfigMap) or Cilium (cilium.io "
        "CiliumLoadBalancerIPPool, CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement, "
        "CiliumBGPPeeringPolicy) objects from files or a cluster, and print the equivalent lbipam objects "
        "as YAML on stdout, ready for kubectl apply -f. On stderr: every field or object that could not "
        "be carried and why, and notes on what was carried in a way worth knowing; Services whose IPs "
        "would not carry are reported too. Exit code: 0 everything carried, 1 something was not, 2 bad "
        "input or an unreadable cluster.",
    )
    cmd.add_argument(
        "--from", dest="source", choices=SOURCES, required=True, help="the project to migrate from"
    )
    cmd.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="a YAML or JSON file of objects (as kubectl get -o yaml writes them); repeatable; - reads "
        "stdin. Without -f the objects are read from the cluster",
    )
    cmd.add_argument(
        "--kubeconfig",
        help="read the objects from this cluster (default, without -f: $KUBECONFIG, else the "
        "in-cluster config, else ~/.kube/config)",
    )
    cmd.add_argument(
        "--secret-namespace",
        default="lbipam-system",
        help="namespace of the Secrets written for MetalLB BGPPeers' literal passwords; the speaker "
        "must be allowed to read Secrets there (default lbipam-system, as deploy/ allows)",
    )
    cmd.add_argument(
        "--cilium-secret-namespace",
        default="kube-system",
        help="where Cilium keeps BGP passwords (Helm value bgpControlPlane.secretNamespace.name; "
        "default kube-system)",
    )
    cmd.set_defaults(run=run)


def read_files(paths: list[str]) -> list[Obj]:
    """Every object of the files (`-`: stdin); InputError or OSError when one cannot be read."""
    from lbipam.migrate.output import documents  # noqa: PLC0415  # pydantic models: not for --help

    out: list[Obj] = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        out.extend(documents(text, "stdin" if path == "-" else path))
    return out


async def _list_kind(kube: Kube, versions: list[Resource]) -> list[Obj] | None:
    """The objects of one kind in the newest version served; None when no version is served."""
    for resource in versions:
        try:
            return list((await kube.list_all(resource)).items)
        except NotFound:
            continue
    return None


async def read_cluster(kube: Kube, source: str) -> tuple[list[Obj], bool]:
    """The objects of `source` and the Services; whether the API serves any of `source`'s kinds."""
    found = await asyncio.gather(*(_list_kind(kube, versions) for versions in CLUSTER_KINDS[source]))
    served = any(items is not None for items in found)
    objects = [obj for items in found for obj in items or ()]
    if source == "metallb":
        try:
            legacy = await kube.get(CONFIGMAPS, LEGACY_CONFIGMAP[1], namespace=LEGACY_CONFIGMAP[0])
        except NotFound:
            pass
        else:
            objects.append({"apiVersion": "v1", "kind": "ConfigMap", **legacy})
            served = True
    objects.extend((await kube.list_all(SERVICES)).items)
    return objects, served


async def _from_cluster(args: argparse.Namespace) -> list[Obj]:
    from lbipam.k8s.client import connect  # noqa: PLC0415  # ~0.3 s to import: not for --help

    kube = await connect(args.kubeconfig)
    try:
        objects, served = await read_cluster(kube, args.source)
    finally:
        await kube.close()
    if not served:
        raise NothingServed(f"the API serves none of {args.source}'s kinds (are its CRDs installed?)")
    return objects


def run(args: argparse.Namespace) -> int:
    from lbipam.migrate import Options, recognised, translate  # noqa: PLC0415
    from lbipam.migrate.output import InputError, render_report, render_yaml  # noqa: PLC0415

    if args.files and args.kubeconfig:
        return fail("migrate", "give -f files or --kubeconfig, not both")
    try:
        documents = read_files(args.files) if args.files else asyncio.run(_from_cluster(args))
    except (InputError, OSError, UnicodeDecodeError, KubeError, NothingServed) as err:
        return fail("migrate", str(err))
    if args.files and not recognised(args.source, documents):
        return fail("migrate", f"the input holds no {args.source} object")
    options = Options(
        secret_namespace=args.secret_namespace, cilium_secret_namespace=args.cilium_secret_namespace
    )
    report = translate(args.source, documents, options)
    sys.stdout.write(render_yaml(report, args.source))
    sys.stderr.write(render_report(report))
    return EXIT_CLEAN if report.complete else EXIT_FINDINGS
