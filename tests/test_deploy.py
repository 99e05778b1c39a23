"""deploy/ and the Dockerfile: the kustomizations render with the stock kubectl, every object is
valid Kubernetes 1.32, and the pieces agree with each other and with the code (flags, ports,
probes, selectors, service accounts, the CRDs generated from the models, the image's user).

deploy/ installs the CRDs and the workloads and needs no Prometheus Operator; deploy/crds/ and
deploy/workloads/ are its two halves (upgraded and uninstalled apart: deleting the workloads keeps
the pools); deploy/with-monitoring/ adds the monitoring Component; an overlay's `images:` points
the workloads at a registry. deploy/examples/ are the package's own examples (`lbipam demo`'s),
kept equal by a test.

Validation: built-in kinds against Kubernetes 1.32's JSON schemas (`kubernetes-validate`, strict:
unknown fields are errors). The Prometheus Operator kinds (PrometheusRule, ServiceMonitor) have no
schema there: test_deploy_monitoring.py checks them. The image is not built here (no registry):
the Dockerfile and .dockerignore are read and checked against deploy/ and the package layout.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from bgp.main import add_speaker_parser
from lbipam.api.crdgen import crd_dicts, crd_filename, render_crd_yaml
from lbipam.cli import build_parser
from tests.deploy_harness import (
    CRDS_ONLY,
    DEPLOY,
    MONITORED,
    NAMESPACE,
    ROOT,
    WORKLOADS,
    WORKLOADS_ONLY,
    Obj,
    find,
    ident,
    kustomize,
    rendered,
)

KUBERNETES = "1.32"
OPERATOR_KINDS = {"PrometheusRule", "ServiceMonitor"}  # monitoring.coreos.com/v1: no schema here


# ---- rendering and schemas --------------------------------------------------------------------
def test_base_renders_what_lbipam_needs() -> None:
    kinds = sorted(ident(d) for d in rendered())
    crds = sorted(f"CustomResourceDefinition/{d['metadata']['name']}" for d in crd_dicts())
    assert kinds == sorted(
        [
            *crds,
            "Namespace/lbipam-system",
            "ServiceAccount/lbipam-controller",
            "ServiceAccount/lbipam-speaker",
            "ClusterRole/lbipam-controller",
            "ClusterRole/lbipam-controller-podcidr",
            "ClusterRole/lbipam-speaker",
            "ClusterRoleBinding/lbipam-controller",
            "ClusterRoleBinding/lbipam-controller-podcidr",
            "ClusterRoleBinding/lbipam-speaker",
            "Role/lbipam-controller-leader-election",
            "Role/lbipam-controller-secrets",
            "Role/lbipam-speaker-secrets",
            "RoleBinding/lbipam-controller-leader-election",
            "RoleBinding/lbipam-controller-secrets",
            "RoleBinding/lbipam-speaker-secrets",
            "Deployment/lbipam-controller",
            "PodDisruptionBudget/lbipam-controller",
            "Service/lbipam-controller-metrics",
            "DaemonSet/lbipam-speaker",
            "Service/lbipam-speaker-metrics",
        ]
    )
    assert "CustomResourceDefinition/ciliumnodes.cilium.io" not in kinds  # tests and embedded use only


def test_the_install_needs_no_prometheus_operator() -> None:
    """A vanilla cluster takes `kubectl apply -k deploy/`: nothing of monitoring.coreos.com."""
    assert not [ident(d) for d in rendered() if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert not [ident(d) for d in rendered(WORKLOADS_ONLY) if d["kind"] in OPERATOR_KINDS]


def test_crds_and_workloads_are_the_two_halves_of_the_install() -> None:
    """deploy/crds/ and deploy/workloads/ render exactly what deploy/ does, and nothing twice: the
    CRDs are upgraded on their own, and `kubectl delete -k deploy/workloads/` deletes no CRD (so
    no pool, peer or advertisement)."""
    crds, workloads = rendered(CRDS_ONLY), rendered(WORKLOADS_ONLY)
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"}
    assert "CustomResourceDefinition" not in {d["kind"] for d in workloads}
    assert sorted(map(ident, crds + workloads)) == sorted(map(ident, rendered()))
    by_ident = {ident(d): d for d in rendered()}
    assert all(by_ident[ident(d)] == d for d in crds + workloads)


def test_the_monitoring_component_adds_the_operator_kinds_to_the_workloads() -> None:
    monitored = rendered(MONITORED)
    operator = sorted(ident(d) for d in monitored if d["kind"] in OPERATOR_KINDS)
    assert operator == ["PrometheusRule/lbipam", "ServiceMonitor/lbipam"]
    rest = [d for d in monitored if d["kind"] not in OPERATOR_KINDS]
    assert sorted(map(ident, rest)) == sorted(map(ident, rendered(WORKLOADS_ONLY)))
    for doc in (d for d in monitored if d["kind"] in OPERATOR_KINDS):
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "lbipam"


def test_an_overlay_points_the_workloads_at_a_registry(tmp_path: Path) -> None:
    """README's overlay: `images:` renames the image of both workloads, and only that."""
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n"
        f"  - {os.path.relpath(DEPLOY, tmp_path)}\n"
        "images:\n"
        "  - name: lbipam\n"
        "    newName: registry.example.com/lbipam\n"
        "    newTag: 0.1.0\n"
    )
    result = kustomize(tmp_path)
    assert result.returncode == 0, result.stderr
    images = re.findall(r"^\s*image: (\S+)$", result.stdout, flags=re.MULTILINE)
    assert images == ["registry.example.com/lbipam:0.1.0"] * len(WORKLOADS)
    default = [c["image"] for kind, name in WORKLOADS.values() for c in pod_spec_of(find(kind, name))]
    assert default == ["lbipam:0.1.0"] * len(WORKLOADS)


def pod_spec_of(workload: Obj) -> list[Obj]:
    containers: list[Obj] = workload["spec"]["template"]["spec"]["containers"]
    return containers


@pytest.mark.parametrize("name", sorted(p.name for p in (DEPLOY / "examples").glob("*.yaml")))
def test_deploy_examples_are_the_packaged_ones(name: str) -> None:
    """deploy/examples/ is for kubectl users; `lbipam demo` loads the package's (lbipam/examples/),
    which also holds the demo's make-believe cluster (Nodes, Services) that no cluster should get."""
    packaged = ROOT / "lbipam" / "examples" / name
    assert packaged.exists(), f"deploy/examples/{name} is not in lbipam/examples/"
    assert (DEPLOY / "examples" / name).read_bytes() == packaged.read_bytes(), f"copy lbipam/examples/{name}"


def test_deploy_examples_hold_no_make_believe_cluster() -> None:
    assert not (DEPLOY / "examples" / "demo-cluster.yaml").exists()
    assert (ROOT / "lbipam" / "examples" / "demo-cluster.yaml").exists()


@pytest.mark.parametrize("doc", [d for d in rendered() if d["kind"] not in OPERATOR_KINDS], ids=ident)
def test_object_is_valid_kubernetes(doc: Obj) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        pytest.fail(f"{ident(doc)} is not valid Kubernetes {KUBERNETES}: {path}: {err.message}")


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_operator_kinds_have_no_schema_in_kubernetes_validate(kind: str) -> None:
    """Why they are checked by hand in test_deploy_monitoring.py; if the package ever ships them,
    validate them there."""
    doc = next(d for d in rendered(MONITORED) if d["kind"] == kind)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validator_rejects_what_it_should() -> None:
    """The validation above can fail: a typo in a field and a wrong type are caught."""
    deployment = find("Deployment", "lbipam-controller")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    daemonset = find("DaemonSet", "lbipam-speaker")
    daemonset["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES, strict=True)


def test_deploy_crds_are_the_generated_ones() -> None:
    """kustomize reads only files below deploy/, so the CRDs are copied into deploy/crds/."""
    expected = {crd_filename(d): render_crd_yaml(d) for d in crd_dicts()}
    present = {
        p.name: p.read_text(encoding="utf-8")
        for p in (DEPLOY / "crds").glob("*.yaml")
        if p.name != "kustomization.yaml"
    }
    fix = "regenerate: python -c 'from lbipam.api.crdgen import write_crds; write_crds(\"deploy/crds\")'"
    assert sorted(present) == sorted(expected), fix
    for name, text in expected.items():
        assert present[name] == text, f"deploy/crds/{name} drifted from the models; {fix}"


def test_namespaced_objects_live_in_lbipam_system() -> None:
    for doc in rendered():
        if doc["kind"] in ("Namespace", "CustomResourceDefinition") or doc["kind"].startswith("Cluster"):
            assert "namespace" not in doc["metadata"], ident(doc)
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, ident(doc)


# ---- the workloads ------------------------------------------------------------------------------
METRICS_PORTS = {"controller": 7472, "speaker": 7473}


def pod_spec(component: str) -> Obj:
    spec: Obj = find(*WORKLOADS[component])["spec"]["template"]["spec"]
    return spec


def container(component: str) -> Obj:
    containers = pod_spec(component)["containers"]
    assert len(containers) == 1, component
    return dict(containers[0])


def expanded_args(component: str) -> list[str]:
    """The container's args as the kubelet runs them: $(VAR) from the env, which must define it."""
    c = container(component)
    env = {e["name"] for e in c.get("env") or []}
    args = [str(a) for a in c["args"]]
    for var in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert var in env, f"{component}: $({var}) in the args, but no env {var}"
    return [re.sub(r"\$\((\w+)\)", lambda m: f"value-of-{m[1]}", a) for a in args]


def lbipam_parser() -> argparse.ArgumentParser:
    """lbipam's parser, with `speaker` added from bgp.main while lbipam/cli.py lacks it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "speaker" not in sub.choices:
        add_speaker_parser(sub)
    return parser


def parse_args(component: str) -> Any:
    """The args through lbipam's own parser: every flag exists and every value is accepted."""
    args = expanded_args(component)
    try:
        return lbipam_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{component}: `lbipam {shlex.join(args)}` is refused by lbipam's parser")


def env_from(c: Obj, name: str) -> str | None:
    for e in c.get("env") or []:
        if e["name"] == name:
            return str(((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"))
    return None


def test_controller_runs_two_leader_elected_replicas() -> None:
    deployment = find("Deployment", "lbipam-controller")
    assert deployment["spec"]["replicas"] == 2
    args = parse_args("controller")
    assert args.command == "controller"
    assert not args.no_leader_elect
    assert (args.metrics_port, args.metrics_address) == (7472, "::")  # both families
    # The Lease lives in the pod's namespace, where the leader-election Role grants it.
    assert env_from(container("controller"), "POD_NAMESPACE") == "metadata.namespace"
    role = find("Role", "lbipam-controller-leader-election")
    assert role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert [args.lease_name] == [r for rule in role["rules"] for r in rule.get("resourceNames", [])]


def test_speaker_runs_on_every_node_on_the_host_network() -> None:
    spec = pod_spec("speaker")
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"  # cluster DNS despite hostNetwork
    c = container("speaker")
    assert env_from(c, "NODE_NAME") == "spec.nodeName"
    assert "--node=$(NODE_NAME)" in c["args"]
    tolerated = {(t["key"], t.get("effect")) for t in spec.get("tolerations") or []}
    assert ("node-role.kubernetes.io/control-plane", "NoSchedule") in tolerated
    # The root filesystem is read-only: ExaBGP's config and socket go to a writable emptyDir.
    runtime = next(a.split("=", 1)[1] for a in c["args"] if a.startswith("--runtime-dir="))
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == runtime)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume
    assert not mount.get("readOnly")


def test_speaker_args_are_accepted() -> None:
    args = parse_args("speaker")
    assert (args.command, args.node) == ("speaker", "value-of-NODE_NAME")
    assert (args.metrics_port, str(args.runtime_dir)) == (7473, "/run/lbipam")


@pytest.mark.parametrize("component", sorted(WORKLOADS))
def test_probes_and_metrics_service_use_the_metrics_port(component: str) -> None:
    c = container(component)
    port = METRICS_PORTS[component]
    assert f"--metrics-port={port}" in c["args"]
    assert {(p["name"], p["containerPort"]) for p in c["ports"]} == {("metrics", port)}
    assert (c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]) == (
        "/healthz",
        "metrics",
    )
    assert (c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]) == (
        "/readyz",
        "metrics",
    )
    service = find("Service", f"lbipam-{component}-metrics")
    labels = find(*WORKLOADS[component])["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("metrics", port, "metrics")
    ]
    workload = find(*WORKLOADS[component])
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod_spec(component)["serviceAccountName"] == f"lbipam-{component}"
    find("ServiceAccount", f"lbipam-{component}")


@pytest.mark.parametrize("component", sorted(WORKLOADS))
def test_pods_run_unprivileged(component: str) -> None:
    pod = pod_spec(component)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == image_uid() != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(component)
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}  # and nothing added: see deploy/workloads/speaker.yaml
    assert "privileged" not in sc
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, (component, kind)
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod_spec(component)["volumes"] if v["name"] == tmp["name"])


def test_disruption_budget_keeps_a_controller() -> None:
    pdb = find("PodDisruptionBudget", "lbipam-controller")
    labels = find("Deployment", "lbipam-controller")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < find("Deployment", "lbipam-controller")["spec"]["replicas"]


def test_bindings_name_existing_roles_and_accounts() -> None:
    docs = rendered()
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in names, ident(binding)
        for subject in binding["subjects"]:
            assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", NAMESPACE), ident(binding)
            assert ("ServiceAccount", subject["name"]) in names, ident(binding)


# ---- the Dockerfile -----------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def image_uid() -> int:
    users = [args for op, args in dockerfile() if op == "USER"]
    return int(users[-1].split(":")[0])


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last:]


def test_dockerfile_builds_a_non_root_lbipam_image() -> None:
    stage = final_stage()
    assert all(args.split()[0] == "python:3.11-slim" for op, args in dockerfile() if op == "FROM")
    assert stage[-2:] == [("ENTRYPOINT", '["lbipam"]'), ("CMD", '["--help"]')]
    assert image_uid() == 65532  # what deploy/ runs as: runAsNonRoot needs a numeric USER
    runs = " ".join(args for op, args in stage if op == "RUN")
    assert "pip install" in runs
    assert "lbipam" in runs
    assert "useradd" in runs
    assert "--uid 65532" in runs
    build = " ".join(args for op, args in dockerfile() if op == "RUN")
    assert "pip wheel" in build
    assert "exabgp" not in build.lower()


def docker_excluded(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: the last pattern that
    matches the path or one of its parent directories decides (`!` lets it back in)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if glob.startswith("**/"):
            hit = any(Path(c).match(glob[3:]) for c in candidates)
        else:
            hit = any(re.fullmatch(re.escape(glob).replace(r"\*", "[^/]*"), c) for c in candidates)
        if hit:
            excluded = not negate
    return excluded


def test_build_context_holds_what_pip_install_reads() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in (
        "pyproject.toml",
        "README.md",
        "LICENSE",  # pyproject's license-files
        "lbipam/examples/demo-cluster.yaml",  # `lbipam demo` in the image
        "lbipam/cli.py",
        "bgp/speaker.py",
        "lbipam/apiserver/kinds/data/kubernetes-1.32-definitions.json.gz",
    ):
        assert not docker_excluded(needed, patterns), needed
    for unwanted in (
        ".git/config",
        "tests/test_deploy.py",
        "bench/allocator.py",
        "lbipam/__pycache__/cli.cpython-311.pyc",
    ):
        assert docker_excluded(unwanted, patterns), unwanted
    copied = [args.split()[:-1] for op, args in dockerfile() if op == "COPY" and "--from" not in args]
    for source in (s for sources in copied for s in sources):
        assert (ROOT / source).exists(), source
        assert not docker_excluded(source, patterns), source
